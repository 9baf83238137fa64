//! The HTTP caching conformance suite of both caching tiers: the edge (the Worker in workerd) and
//! the shield (the origin in shield mode), each in front of a generic origin (`TestOrigin`, which
//! answers whatever each case scripts), one case per behaviour, organised by the section of RFC
//! 9111 (caching) or RFC 9110 (semantics) it checks. Cases run concurrently on their own paths;
//! each test prints a table of results by section and fails if any case does.
//!
//! Most cases run against both tiers. Those marked [`Tier::Edge`] check what only the edge does,
//! and say why the shield differs.

mod freshness;
mod invalidation;
mod requests;
mod security;
mod semantics;
mod storing;
mod support;
mod validation;
mod vary;

use std::sync::Arc;
use std::time::Duration;

use rampart_tests::test_origin::TestOrigin;
use rampart_tests::{Edge, Shield};

use support::{Case, Ctx};

/// Which tiers a case holds for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    /// The edge and the shield.
    Both,
    /// The edge alone, for the reason given.
    Edge(&'static str),
}

use Tier::Both;

/// Why the shield asks its upstream otherwise than the edge does.
const SHIELD_LOADS_WHOLE: &str = "the shield loads a whole GET without the client's conditions \
    or range, once for every client waiting (as Varnish does), and answers the client's HEAD, \
    conditions and range from it";
const SHIELD_IGNORES_REQUEST_DIRECTIVES: &str = "the shield ignores a client's Cache-Control, as \
    Varnish and nginx do: any client could otherwise send every request to the upstream";

/// Every case, with the section it checks and the tiers it holds for.
const CASES: &[(&str, &str, Tier, Case)] = &[
    ("RFC 9111 §3", "no-store", Both, |c| {
        Box::pin(storing::no_store_is_not_stored(c))
    }),
    ("RFC 9111 §3", "private", Both, |c| {
        Box::pin(storing::private_is_not_stored(c))
    }),
    (
        "RFC 9111 §3",
        "explicit freshness, any status",
        Both,
        |c| Box::pin(storing::explicit_freshness_stores_any_final_status(c)),
    ),
    ("RFC 9111 §5.2.2.3", "must-understand", Both, |c| {
        Box::pin(storing::must_understand_overrides_no_store_for_known_statuses(c))
    }),
    (
        "RFC 9111 §3 (policy)",
        "Set-Cookie not stored",
        Both,
        |c| Box::pin(storing::set_cookie_is_not_stored_by_default(c)),
    ),
    ("RFC 9111 §3.5", "Authorization", Both, |c| {
        Box::pin(storing::authorization_needs_explicit_permission(c))
    }),
    ("RFC 9111 §4.3.4", "304 freshens (ETag)", Both, |c| {
        Box::pin(validation::not_modified_freshens_the_stored_response(c))
    }),
    (
        "RFC 9111 §4.3.4",
        "304 freshens (Last-Modified)",
        Both,
        |c| Box::pin(validation::last_modified_validates_too(c)),
    ),
    ("RFC 9111 §4.1", "variants side by side", Both, |c| {
        Box::pin(vary::vary_keeps_variants_side_by_side(c))
    }),
    ("RFC 9111 §4.1", "absent matches absent", Both, |c| {
        Box::pin(vary::vary_absent_matches_only_absent(c))
    }),
    ("RFC 9111 §4.1", "Vary: *", Both, |c| {
        Box::pin(vary::vary_star_is_never_reused(c))
    }),
    ("RFC 9111 §4.1", "normalised values", Both, |c| {
        Box::pin(vary::vary_normalises_values(c))
    }),
    ("RFC 9111 §4.1", "several fields", Both, |c| {
        Box::pin(vary::vary_on_several_fields_in_any_order(c))
    }),
    ("RFC 9111 §4.2.3", "upstream Age", Both, |c| {
        Box::pin(freshness::upstream_age_counts(c))
    }),
    ("RFC 9111 §5.1", "Age parsing", Both, |c| {
        Box::pin(freshness::age_values_are_parsed_as_section_5_1_says(c))
    }),
    ("RFC 9111 §4.2.1, §5.3", "Expires and Date", Both, |c| {
        Box::pin(freshness::expires_against_date(c))
    }),
    ("RFC 9111 §5.2.2.10", "shared lifetimes", Both, |c| {
        Box::pin(freshness::shared_cache_lifetimes(c))
    }),
    ("RFC 9213", "CDN-Cache-Control", Both, |c| {
        Box::pin(freshness::cdn_cache_control_targets_the_edge(c))
    }),
    ("RFC 9111 §4.2.2", "heuristic freshness", Both, |c| {
        Box::pin(freshness::heuristic_freshness_for_heuristic_statuses_only(
            c,
        ))
    }),
    ("RFC 9111 §4.2.4", "stale-if-error", Both, |c| {
        Box::pin(freshness::stale_if_error_on_5xx(c))
    }),
    ("RFC 9111 §4.2.4", "disconnected", Both, |c| {
        Box::pin(freshness::disconnected_cache_serves_stale_unless_forbidden(
            c,
        ))
    }),
    ("RFC 5861 §3", "stale-while-revalidate", Both, |c| {
        Box::pin(freshness::stale_while_revalidate_window(c))
    }),
    ("RFC 9111 §4.3.2", "conditions from fresh", Both, |c| {
        Box::pin(validation::conditional_requests_answered_from_fresh_responses(c))
    }),
    (
        "RFC 9111 §4.3.2",
        "If-Modified-Since and Date",
        Both,
        |c| Box::pin(validation::if_modified_since_falls_back_on_date(c)),
    ),
    (
        "RFC 9111 §4.3.1",
        "miss forwards conditions",
        Tier::Edge(SHIELD_LOADS_WHOLE),
        |c| Box::pin(validation::a_miss_forwards_the_clients_conditions(c)),
    ),
    (
        "RFC 9111 §4.3.5",
        "HEAD",
        Tier::Edge(SHIELD_LOADS_WHOLE),
        |c| Box::pin(validation::head_requests(c)),
    ),
    (
        "RFC 9111 §4.3.5",
        "HEAD freshens",
        Tier::Edge(SHIELD_LOADS_WHOLE),
        |c| Box::pin(validation::head_freshens_the_stored_get(c)),
    ),
    ("RFC 9111 §4.4", "unsafe methods", Both, |c| {
        Box::pin(invalidation::unsafe_methods_invalidate(c))
    }),
    ("RFC 9111 §4.4", "failed writes", Both, |c| {
        Box::pin(invalidation::failed_writes_do_not_invalidate(c))
    }),
    ("RFC 9111 §4.4", "Location, Content-Location", Both, |c| {
        Box::pin(invalidation::location_and_content_location_are_invalidated(
            c,
        ))
    }),
    (
        "RFC 9111 §5.2.1",
        "request directives",
        Tier::Edge(SHIELD_IGNORES_REQUEST_DIRECTIVES),
        |c| Box::pin(requests::request_directives(c)),
    ),
    ("RFC 9110 §7.6.1", "hop-by-hop", Both, |c| {
        Box::pin(semantics::hop_by_hop_fields(c))
    }),
    ("RFC 9110 §14", "ranges", Both, |c| {
        Box::pin(semantics::ranges_from_a_stored_response(c))
    }),
    ("security", "no open proxy", Both, |c| {
        Box::pin(security::never_fetches_from_another_host(c))
    }),
    ("security", "origin's headers win", Both, |c| {
        Box::pin(security::origin_security_headers_win(c))
    }),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_is_a_conformant_shared_cache() {
    let origin = TestOrigin::start().await;
    let elsewhere = TestOrigin::start().await;
    let edge = Edge::start_with_vars(&origin.url, &[("ORIGIN_TIMEOUT_MS", "3000")]).await;
    run_cases(&edge.url, origin, elsewhere, |_| true).await;
    let log = edge.log().to_ascii_lowercase();
    for sign in [
        "panicked",
        "previous wasm instance",
        "hung",
        "will never complete",
    ] {
        assert!(
            !log.contains(sign),
            "the wrangler log shows {sign:?}:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shield_is_a_conformant_shared_cache() {
    let origin = TestOrigin::start().await;
    let elsewhere = TestOrigin::start().await;
    let shield = Shield::start(&origin.url, Duration::from_secs(3)).await;
    run_cases(&shield.url, origin, elsewhere, |tier| tier == Both).await;
}

/// Runs the cases `selected` by their tier against the cache at `cache`, in front of `origin`;
/// prints a line per case and fails the test if any failed.
async fn run_cases(
    cache: &str,
    origin: TestOrigin,
    elsewhere: TestOrigin,
    selected: impl Fn(Tier) -> bool,
) {
    let ctx = Arc::new(Ctx {
        cache: cache.to_owned(),
        origin,
        elsewhere,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client"),
    });
    wait_until_answering(&ctx).await;
    let mut running = Vec::new();
    for (section, name, tier, case) in CASES {
        if selected(*tier) {
            running.push((section, name, tokio::spawn(case(ctx.clone()))));
        } else if let Tier::Edge(why) = tier {
            println!("skip  {section:<24} {name}: {why}");
        }
    }
    let mut failures = Vec::new();
    let ran = running.len();
    for (section, name, handle) in running {
        let outcome = handle
            .await
            .unwrap_or_else(|e| Err(format!("the case panicked: {e}")));
        match outcome {
            Ok(()) => println!("pass  {section:<24} {name}"),
            Err(why) => {
                println!("FAIL  {section:<24} {name}: {why}");
                failures.push(format!("{section} {name}: {why}"));
            }
        }
    }
    println!(
        "conformance: {} passed, {} failed",
        ran - failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "failed cases:\n{}",
        failures.join("\n")
    );
}

/// Waits until the cache answers at all (the edge builds first; the shield starts in a moment).
async fn wait_until_answering(ctx: &Ctx) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while ctx.get("/health/live", &[]).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never answered",
            ctx.cache
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
