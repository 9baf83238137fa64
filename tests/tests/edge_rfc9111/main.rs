//! The edge's HTTP caching conformance suite: the Worker in workerd in front of a generic origin
//! (`TestOrigin`, which answers whatever each case scripts), one case per behaviour, organised by
//! the section of RFC 9111 (caching) or RFC 9110 (semantics) it checks. Cases run concurrently
//! on their own paths; the test prints a table of results by section and fails if any case does.

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
use rampart_tests::Edge;

use support::{Case, Ctx};

/// Every case, with the section it checks.
const CASES: &[(&str, &str, Case)] = &[
    ("RFC 9111 §3", "no-store", |c| {
        Box::pin(storing::no_store_is_not_stored(c))
    }),
    ("RFC 9111 §3", "private", |c| {
        Box::pin(storing::private_is_not_stored(c))
    }),
    ("RFC 9111 §3", "explicit freshness, any status", |c| {
        Box::pin(storing::explicit_freshness_stores_any_final_status(c))
    }),
    ("RFC 9111 §5.2.2.3", "must-understand", |c| {
        Box::pin(storing::must_understand_overrides_no_store_for_known_statuses(c))
    }),
    ("RFC 9111 §3 (policy)", "Set-Cookie not stored", |c| {
        Box::pin(storing::set_cookie_is_not_stored_by_default(c))
    }),
    ("RFC 9111 §3.5", "Authorization", |c| {
        Box::pin(storing::authorization_needs_explicit_permission(c))
    }),
    ("RFC 9111 §4.3.4", "304 freshens (ETag)", |c| {
        Box::pin(validation::not_modified_freshens_the_stored_response(c))
    }),
    ("RFC 9111 §4.3.4", "304 freshens (Last-Modified)", |c| {
        Box::pin(validation::last_modified_validates_too(c))
    }),
    ("RFC 9111 §4.1", "variants side by side", |c| {
        Box::pin(vary::vary_keeps_variants_side_by_side(c))
    }),
    ("RFC 9111 §4.1", "absent matches absent", |c| {
        Box::pin(vary::vary_absent_matches_only_absent(c))
    }),
    ("RFC 9111 §4.1", "Vary: *", |c| {
        Box::pin(vary::vary_star_is_never_reused(c))
    }),
    ("RFC 9111 §4.1", "normalised values", |c| {
        Box::pin(vary::vary_normalises_values(c))
    }),
    ("RFC 9111 §4.1", "several fields", |c| {
        Box::pin(vary::vary_on_several_fields_in_any_order(c))
    }),
    ("RFC 9111 §4.2.3", "upstream Age", |c| {
        Box::pin(freshness::upstream_age_counts(c))
    }),
    ("RFC 9111 §5.1", "Age parsing", |c| {
        Box::pin(freshness::age_values_are_parsed_as_section_5_1_says(c))
    }),
    ("RFC 9111 §4.2.1, §5.3", "Expires and Date", |c| {
        Box::pin(freshness::expires_against_date(c))
    }),
    ("RFC 9111 §5.2.2.10", "shared lifetimes", |c| {
        Box::pin(freshness::shared_cache_lifetimes(c))
    }),
    ("RFC 9213", "CDN-Cache-Control", |c| {
        Box::pin(freshness::cdn_cache_control_targets_the_edge(c))
    }),
    ("RFC 9111 §4.2.2", "heuristic freshness", |c| {
        Box::pin(freshness::heuristic_freshness_for_heuristic_statuses_only(
            c,
        ))
    }),
    ("RFC 9111 §4.2.4", "stale-if-error", |c| {
        Box::pin(freshness::stale_if_error_on_5xx(c))
    }),
    ("RFC 9111 §4.2.4", "disconnected", |c| {
        Box::pin(freshness::disconnected_cache_serves_stale_unless_forbidden(
            c,
        ))
    }),
    ("RFC 5861 §3", "stale-while-revalidate", |c| {
        Box::pin(freshness::stale_while_revalidate_window(c))
    }),
    ("RFC 9111 §4.3.2", "conditions from fresh", |c| {
        Box::pin(validation::conditional_requests_answered_from_fresh_responses(c))
    }),
    ("RFC 9111 §4.3.2", "If-Modified-Since and Date", |c| {
        Box::pin(validation::if_modified_since_falls_back_on_date(c))
    }),
    ("RFC 9111 §4.3.1", "miss forwards conditions", |c| {
        Box::pin(validation::a_miss_forwards_the_clients_conditions(c))
    }),
    ("RFC 9111 §4.3.5", "HEAD", |c| {
        Box::pin(validation::head_requests(c))
    }),
    ("RFC 9111 §4.3.5", "HEAD freshens", |c| {
        Box::pin(validation::head_freshens_the_stored_get(c))
    }),
    ("RFC 9111 §4.4", "unsafe methods", |c| {
        Box::pin(invalidation::unsafe_methods_invalidate(c))
    }),
    ("RFC 9111 §4.4", "failed writes", |c| {
        Box::pin(invalidation::failed_writes_do_not_invalidate(c))
    }),
    ("RFC 9111 §4.4", "Location, Content-Location", |c| {
        Box::pin(invalidation::location_and_content_location_are_invalidated(
            c,
        ))
    }),
    ("RFC 9111 §5.2.1", "request directives", |c| {
        Box::pin(requests::request_directives(c))
    }),
    ("RFC 9110 §7.6.1", "hop-by-hop", |c| {
        Box::pin(semantics::hop_by_hop_fields(c))
    }),
    ("RFC 9110 §14", "ranges", |c| {
        Box::pin(semantics::ranges_from_a_stored_response(c))
    }),
    ("security", "no open proxy", |c| {
        Box::pin(security::never_fetches_from_another_host(c))
    }),
    ("security", "origin's headers win", |c| {
        Box::pin(security::origin_security_headers_win(c))
    }),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_is_a_conformant_shared_cache() {
    let origin = TestOrigin::start().await;
    let elsewhere = TestOrigin::start().await;
    let edge = Edge::start_with_vars(&origin.url, &[("ORIGIN_TIMEOUT_MS", "3000")]).await;
    let ctx = Arc::new(Ctx {
        edge: edge.url.clone(),
        origin,
        elsewhere,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client"),
    });
    let mut running = Vec::new();
    for (section, name, case) in CASES {
        running.push((section, name, tokio::spawn(case(ctx.clone()))));
    }
    let mut failures = Vec::new();
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
        CASES.len() - failures.len(),
        failures.len()
    );
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
    assert!(
        failures.is_empty(),
        "failed cases:\n{}",
        failures.join("\n")
    );
}
