//! The load tool against a real HTTP server on loopback: budgets met and missed as the server
//! behaves, peers compared in the same run, a stall charged to every request queued behind it
//! in the open model, and the report written.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use rampart_load::plan::Plan;
use rampart_load::runner::{self, Options, RunError, Summary};

#[derive(Default)]
struct Server {
    flaky: AtomicU64,
    stalled: AtomicU64,
    /// Held while a stall lasts: every `/stall` request waits for it.
    gate: tokio::sync::Mutex<()>,
}

async fn serve() -> String {
    let state = Arc::new(Server::default());
    let app = Router::new()
        .route("/fast", get(|| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                "slow"
            }),
        )
        .route(
            "/flaky",
            get(|State(s): State<Arc<Server>>| async move {
                // Every fourth request fails.
                if s.flaky.fetch_add(1, Ordering::Relaxed) % 4 == 3 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }),
        )
        .route(
            "/comments/{id}",
            post(|body: String| async move {
                let ok = body.starts_with("{\"n\": ") && body.ends_with('}');
                if ok {
                    StatusCode::CREATED
                } else {
                    StatusCode::BAD_REQUEST
                }
            }),
        )
        .route(
            "/stall",
            get(|State(s): State<Arc<Server>>| async move {
                // The 20th request holds everyone up for 400 ms, as a blocked server would.
                if s.stalled.fetch_add(1, Ordering::Relaxed) == 20 {
                    let _held = s.gate.lock().await;
                    tokio::time::sleep(Duration::from_millis(400)).await;
                }
                drop(s.gate.lock().await);
                "ok"
            }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    url
}

fn plan(text: &str) -> Plan {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("plan.toml");
    let profile = "[profiles.test]\nduration_s = 1.5\nwarmup_s = 0.2\nrounds = 2\n\n[vars]\nn = { min = 1, max = 9 }\n\n";
    std::fs::write(&path, format!("{profile}{text}")).expect("write plan");
    Plan::load(&path).expect("the plan is valid")
}

fn options(targets: &[(&str, &str)]) -> Options {
    Options {
        profile: "test".into(),
        targets: targets
            .iter()
            .map(|(n, u)| (n.to_string(), u.to_string()))
            .collect(),
        ..Options::default()
    }
}

fn verdicts(summary: &Summary, scenario: &str) -> Vec<(String, bool)> {
    let result = summary
        .scenarios
        .iter()
        .find(|s| s.name == scenario)
        .expect("scenario ran");
    result
        .checks
        .iter()
        .map(|c| (c.what.clone(), c.ok))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_fails_exactly_the_budgets_it_misses_and_compares_peers_in_the_same_run() {
    let url = serve().await;
    let plan = plan(
        r#"
[[scenario]]
name = "fast"
target = "server"
rate = 200
requests = [{ path = "/fast" }]
budget = { p99_ms = 50, error_rate = 0 }

[[scenario]]
name = "flaky"
target = "server"
rate = 200
requests = [{ path = "/flaky" }]
budget = { error_rate = 0.01 }

[[scenario]]
name = "slow"
target = "server"
connections = 4
requests = [{ path = "/slow" }]
budget = { p99_ms = 10 }

[[scenario]]
name = "write"
target = "server"
rate = 100
requests = [{ method = "POST", path = "/comments/{n}", body = '{{"n": {n}}}', expect = 201 }]
budget = { error_rate = 0 }

[[scenario]]
name = "saturating"
target = "server"
connections = 8
requests = [{ path = "/fast" }]

[[scenario]]
name = "fast-vs-slow"
target = "server"
peer = "server-again"
connections = 4
requests = [{ path = "/fast" }, { path = "/slow" }]
budget = { rps_vs_peer = 0.5, p99_vs_peer = 1.5, peer_slack_ms = 5 }
"#,
    );
    // The server runs in this process: its CPU time is this process's.
    let mut options = options(&[("server", &url), ("server-again", &url)]);
    options
        .cpu
        .insert("server".into(), vec![std::process::id()]);
    let summary = runner::run(&plan, &options)
        .await
        .expect("the run completes");

    assert!(
        verdicts(&summary, "fast").iter().all(|(_, ok)| *ok),
        "{:?}",
        verdicts(&summary, "fast")
    );
    let flaky = summary
        .scenarios
        .iter()
        .find(|s| s.name == "flaky")
        .expect("flaky");
    assert!(
        (flaky.outcome.error_rate - 0.25).abs() < 0.02,
        "{}",
        flaky.outcome.error_rate
    );
    assert_eq!(
        flaky.outcome.statuses.get("503").copied().unwrap_or(0),
        flaky.outcome.errors
    );
    assert!(!flaky.checks[0].ok);
    let slow = summary
        .scenarios
        .iter()
        .find(|s| s.name == "slow")
        .expect("slow");
    assert!(
        slow.outcome.latency_ms.p50 >= 30.0,
        "{:?}",
        slow.outcome.latency_ms
    );
    assert!(
        !slow.checks[0].ok,
        "p99 ≤ 10 ms is missed by a 30 ms handler"
    );
    assert!(
        verdicts(&summary, "write").iter().all(|(_, ok)| *ok),
        "{:?}",
        verdicts(&summary, "write")
    );
    let pair = summary
        .scenarios
        .iter()
        .find(|s| s.name == "fast-vs-slow")
        .expect("pair");
    let peer = pair.peer.as_ref().expect("the peer ran");
    let saturating = summary
        .scenarios
        .iter()
        .find(|s| s.name == "saturating")
        .expect("ran");
    let cpu = saturating
        .outcome
        .cpu_us_per_answer
        .expect("the target's CPU time is read");
    assert!(cpu > 0.0 && cpu < 10_000.0, "{cpu} µs per answer");
    assert_eq!(
        peer.cpu_us_per_answer, None,
        "no process was given for the peer"
    );
    assert_eq!(peer.target, "server-again");
    assert!(
        pair.checks.iter().all(|c| c.ok),
        "{:?}",
        verdicts(&summary, "fast-vs-slow")
    );
    // Two rounds of 1.5 s each: the timeline holds both.
    assert!(
        pair.outcome.timeline.len() >= 4,
        "{}",
        pair.outcome.timeline.len()
    );
    assert!(!summary.passed());

    let dir = tempfile::tempdir().expect("temp dir");
    rampart_load::report::write(dir.path(), &summary).expect("report written");
    let html = std::fs::read_to_string(dir.path().join("report.html")).expect("report");
    assert!(html.contains("<svg") && html.contains("fast-vs-slow") && html.contains("missed"));
    assert!(!html.contains("<script"), "the report needs no script");
    let json = std::fs::read_to_string(dir.path().join("summary.json")).expect("summary");
    let back: Summary = serde_json::from_str(&json).expect("the summary reads back");
    assert_eq!(back.scenarios.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_model_charges_a_stall_to_every_request_due_behind_it() {
    let url = serve().await;
    let plan = plan(
        r#"
[[scenario]]
name = "stall"
target = "server"
rate = 100
requests = [{ path = "/stall" }]
"#,
    );
    let summary = runner::run(&plan, &options(&[("server", &url)]))
        .await
        .expect("run");
    let outcome = &summary.scenarios[0].outcome;
    // About 40 requests fall due during the 400 ms stall; each waits for its end.
    assert!(outcome.latency_ms.p95 >= 100.0, "{:?}", outcome.latency_ms);
    assert_eq!(outcome.errors, 0);
    let answered = outcome.requests as f64 / outcome.seconds;
    assert!(answered >= 90.0, "the offered rate is kept: {answered}");
}

#[tokio::test]
async fn a_scenario_without_a_target_url_is_refused_unless_skipping_is_asked() {
    let plan = plan("[[scenario]]\nname = \"edge-only\"\ntarget = \"edge\"\nrate = 1\nrequests = [{ path = \"/\" }]\n");
    let refused = runner::run(&plan, &options(&[])).await;
    assert!(matches!(refused, Err(RunError::MissingTarget { ref target, .. }) if target == "edge"));
    let skipping = Options {
        skip_missing: true,
        ..options(&[])
    };
    let summary = runner::run(&plan, &skipping).await.expect("skipped");
    assert!(summary.scenarios.is_empty());
    assert_eq!(summary.skipped.len(), 1);
    let unknown = Options {
        only: vec!["nope".into()],
        ..options(&[])
    };
    assert!(matches!(
        runner::run(&plan, &unknown).await,
        Err(RunError::UnknownScenario(_))
    ));
    // A bad URL is refused before any scenario runs, even one no scenario of this plan uses.
    let bad = options(&[
        ("edge", "http://127.0.0.1:9"),
        ("spare", "ftp://127.0.0.1/"),
    ]);
    assert!(
        matches!(runner::run(&plan, &bad).await, Err(RunError::BadTarget(name, _)) if name == "spare")
    );
}

#[test]
fn the_shipped_plan_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plan.toml");
    let plan = Plan::load(&path).expect("load/plan.toml is valid");
    for profile in ["smoke", "full"] {
        plan.profile(profile).expect("profile");
    }
    assert!(plan
        .scenarios
        .iter()
        .any(|s| s.peer.as_deref() == Some("nginx")));
    assert!(plan
        .scenarios
        .iter()
        .any(|s| s.peer.as_deref() == Some("origin-uncached")));
    // Every template names a variable of the plan, or the image scripts/load.sh gives.
    let given = [("image".to_owned(), "/images/a.png".to_owned())];
    let vars = rampart_load::vars::Vars::new(&plan.vars, &given).expect("vars");
    for scenario in &plan.scenarios {
        for request in &scenario.requests {
            rampart_load::driver::Prepared::new(request, &vars).expect("the request's templates");
        }
    }
}
