//! The Grafana dashboard `ops/grafana/rampart.json`: its structure (rows, unique ids, the
//! templated data source, units, a target per panel), and every panel's query evaluated by a
//! real Prometheus scraping a real origin under a little load, each of which must return data.
//!
//! Prometheus is required: `scripts/test.sh` installs it (the Debian package `prometheus`). Where
//! it is missing the test fails, unless `RAMPART_SKIP_PROMETHEUS=1` asks to skip it.

mod common;
#[path = "support/memory_group.rs"]
mod memory_group;
#[path = "support/prometheus.rs"]
mod prometheus;
#[path = "support/purge_receiver.rs"]
mod purge_receiver;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{free_port, metrics, spawn_with, unique_prefix};
use memory_group::MemoryGroup;
use prometheus::{result, Prometheus};
use serde_json::{json, Value};

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ops/grafana/rampart.json");
const DATASOURCE: &str = "${datasource}";
const ROWS: [&str; 6] = [
    "Traffic",
    "Latency",
    "Cache",
    "Dependencies",
    "Saturation",
    "Queues",
];
/// What `$__rate_interval` and `$__interval` stand for: a few scrapes of the 1 s interval.
const RATE_INTERVAL: &str = "15s";
const ADMIN_TOKEN: &str = "dashboard-admin-token";

fn dashboard() -> Value {
    let text = std::fs::read_to_string(DASHBOARD).expect("ops/grafana/rampart.json");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every panel, rows included, with the panels of collapsed rows.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let top = dashboard["panels"].as_array().expect("panels");
    top.iter()
        .flat_map(|panel| {
            let nested = panel["panels"].as_array().map(Vec::as_slice);
            std::iter::once(panel).chain(nested.unwrap_or_default())
        })
        .collect()
}

fn is_row(panel: &Value) -> bool {
    panel["type"] == "row"
}

/// One query of a panel: the panel's title, the target's `refId` and its `expr`.
struct Query {
    panel: String,
    ref_id: String,
    expr: String,
}

fn queries(dashboard: &Value) -> Vec<Query> {
    let panels = all_panels(dashboard).into_iter().filter(|p| !is_row(p));
    panels
        .flat_map(|panel| {
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            targets.into_iter().map(move |target| Query {
                panel: panel["title"].as_str().unwrap_or_default().to_owned(),
                ref_id: target["refId"].as_str().unwrap_or_default().to_owned(),
                expr: target["expr"].as_str().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

fn variable<'a>(dashboard: &'a Value, name: &str) -> &'a Value {
    let list = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    list.iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("a `{name}` variable"))
}

fn uses_the_variable(datasource: &Value) -> bool {
    datasource["uid"] == DATASOURCE || datasource == DATASOURCE
}

/// What is wrong with the non-row `panel` (empty when nothing is).
fn panel_problems(panel: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if !uses_the_variable(&panel["datasource"]) {
        problems.push(format!(
            "data source {} is not {DATASOURCE}",
            panel["datasource"]
        ));
    }
    if panel["type"] == "timeseries" && panel["fieldConfig"]["defaults"]["unit"].is_null() {
        problems.push("no unit".to_owned());
    }
    let targets = panel["targets"].as_array().cloned().unwrap_or_default();
    if targets.is_empty() {
        problems.push("no target".to_owned());
    }
    for target in targets {
        problems.extend(target_problems(&target));
    }
    problems
}

fn target_problems(target: &Value) -> Vec<String> {
    let expr = target["expr"].as_str().unwrap_or_default();
    let mut problems = Vec::new();
    if expr.is_empty() {
        problems.push(format!("target {} has no expr", target["refId"]));
    }
    if !target["datasource"].is_null() && !uses_the_variable(&target["datasource"]) {
        problems.push(format!(
            "target {} has its own data source",
            target["refId"]
        ));
    }
    if !expr.contains("instance=~\"$instance\"") {
        problems.push(format!("`{expr}` ignores the instance variable"));
    }
    let windows = expr.matches("rate(").count() + expr.matches("increase(").count();
    if expr.matches("[$__rate_interval]").count() < windows {
        problems.push(format!("`{expr}` has a window other than $__rate_interval"));
    }
    problems
}

#[test]
fn the_dashboard_is_well_formed() {
    let dashboard = dashboard();
    assert!(dashboard["schemaVersion"].as_u64().unwrap_or(0) >= 39);
    let source = variable(&dashboard, "datasource");
    assert_eq!(
        (&source["type"], &source["query"]),
        (&json!("datasource"), &json!("prometheus"))
    );
    let instance = variable(&dashboard, "instance");
    assert!(uses_the_variable(&instance["datasource"]), "{instance}");
    assert!(instance["definition"]
        .as_str()
        .unwrap_or_default()
        .starts_with("label_values("));
    let unspaced = |v: &Value| v.as_str().unwrap_or_default().replace(' ', "");
    assert_eq!(
        unspaced(&instance["query"]["query"]),
        unspaced(&instance["definition"]),
        "the variable runs the query it shows"
    );

    let panels = all_panels(&dashboard);
    let mut ids = HashSet::new();
    let mut problems = Vec::new();
    for panel in &panels {
        let title = panel["title"].as_str().unwrap_or_default();
        if title.is_empty() {
            problems.push(format!("panel {}: no title", panel["id"]));
        }
        if !panel["id"].is_u64() || !ids.insert(panel["id"].to_string()) {
            problems.push(format!("{title}: id {} missing or taken", panel["id"]));
        }
        if !is_row(panel) {
            let found = panel_problems(panel).into_iter();
            problems.extend(found.map(|problem| format!("{title}: {problem}")));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| is_row(p))
        .filter_map(|p| p["title"].as_str())
        .collect();
    assert_eq!(rows, ROWS);
}

/// `expr` with Grafana's variables replaced as Grafana would: the intervals by
/// [`RATE_INTERVAL`] and the instance by `instance` (a regular expression).
fn substitute(expr: &str, instance: &str) -> String {
    let instance = instance.replace('.', "\\\\.");
    let pairs = [
        ("${__rate_interval}", RATE_INTERVAL),
        ("$__rate_interval", RATE_INTERVAL),
        ("${__interval}", RATE_INTERVAL),
        ("$__interval", RATE_INTERVAL),
        ("${instance}", &instance),
        ("$instance", &instance),
    ];
    let replaced = pairs
        .iter()
        .fold(expr.to_owned(), |text, (from, to)| text.replace(from, to));
    assert!(
        !unknown_variable(&replaced),
        "a Grafana variable the test does not know in `{expr}`"
    );
    replaced
}

/// Whether `expr` still holds a Grafana variable (`$name`, `${name}`); `${1}` of
/// `label_replace` is not one.
fn unknown_variable(expr: &str) -> bool {
    expr.match_indices('$').any(|(at, _)| {
        let rest = expr[at + 1..].trim_start_matches('{');
        rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
    })
}

#[test]
fn the_substitution_replaces_every_variable_grafana_would() {
    let expr = r#"sum by (x) (label_replace(rate(m{instance=~"$instance"}[$__rate_interval]), "x", "${1}", "y", "(.)"))"#;
    assert_eq!(
        substitute(expr, "127.0.0.1:80"),
        r#"sum by (x) (label_replace(rate(m{instance=~"127\\.0\\.0\\.1:80"}[15s]), "x", "${1}", "y", "(.)"))"#
    );
    assert!(unknown_variable("rate(m[$window])"));
    assert!(unknown_variable("m{a=\"${job}\"}"));
}

/// The `prometheus` binary, `None` when it is missing and `RAMPART_SKIP_PROMETHEUS=1` says to
/// skip; otherwise a missing binary fails the test.
fn prometheus_or_skip() -> Option<std::path::PathBuf> {
    if let Some(binary) = prometheus::binary() {
        return Some(binary);
    }
    let skip = std::env::var("RAMPART_SKIP_PROMETHEUS").is_ok_and(|value| value == "1");
    assert!(
        skip,
        "`prometheus` is not installed: scripts/test.sh installs it (Debian package \
         `prometheus`); set RAMPART_SKIP_PROMETHEUS=1 to skip this test"
    );
    eprintln!("SKIPPED: `prometheus` is not installed and RAMPART_SKIP_PROMETHEUS=1");
    None
}

/// Requests that bring out every series the dashboard shows.
struct Load {
    client: reqwest::Client,
    base: String,
}

impl Load {
    async fn send(&self, request: reqwest::RequestBuilder) -> u16 {
        request
            .send()
            .await
            .expect("the origin answers")
            .status()
            .as_u16()
    }

    async fn get(&self, path: &str) -> u16 {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, body: Value) -> u16 {
        let url = format!("{}{path}", self.base);
        self.send(self.client.post(url).json(&body)).await
    }

    /// Jobs on three queues, a crawler request over its budget, and writes.
    async fn events(&self) {
        let warm = self
            .client
            .post(format!("{}/api/admin/cache/warm", self.base));
        let warm = warm
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "paths": ["/api/tasks"] }));
        assert_eq!(self.send(warm).await, 202, "a warm-up job on cache-refresh");
        let mut links = Vec::new();
        for _ in 0..3 {
            let body = json!({ "url": "http://127.0.0.1:9/page" });
            links.push(self.post("/api/tasks/1/links", body).await);
        }
        assert_eq!(
            links,
            [202, 202, 429],
            "crawler jobs, then its budget of 2 is spent"
        );
        for id in 2..5 {
            let url = format!("{}/api/tasks/{id}", self.base);
            let patch = self
                .client
                .patch(url)
                .json(&json!({ "title": format!("t{id}") }));
            assert_eq!(
                self.send(patch).await,
                200,
                "a write: its purge is an edge-purge job"
            );
        }
    }

    /// Waits until the crawler is done with task 1's links.
    async fn links_settled(&self) {
        for _ in 0..100 {
            let url = format!("{}/api/tasks/1/links", self.base);
            let links: Value = self
                .client
                .get(url)
                .send()
                .await
                .expect("up")
                .json()
                .await
                .expect("json");
            let pending = links["data"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|l| l["status"] == "pending");
            if !pending {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the crawler did not finish task 1's links");
    }

    /// One round of reads: hits and misses, a 404, an unmatched path, and links of tasks never
    /// read before, which fail (`500`) once their table is gone (see [`break_links`]).
    async fn round(&self, round: u32) {
        let id = 1 + round % 30;
        let paths = [
            format!("/api/tasks/{id}"),
            "/api/tasks/1".to_owned(),
            "/api/tasks?per_page=5".to_owned(),
            "/api/tasks/999999".to_owned(),
            "/no-such-page/x/y".to_owned(),
            format!("/api/tasks/{}/links", 31 + round % 30),
            "/api/stats".to_owned(),
        ];
        let statuses = futures::future::join_all(paths.iter().map(|p| self.get(p))).await;
        assert_eq!(statuses[..6], [200, 200, 200, 404, 404, 500], "{paths:?}");
    }

    /// Reads for `length`.
    async fn reads(&self, length: Duration) {
        let started = Instant::now();
        let mut round = 0;
        while started.elapsed() < length {
            self.round(round).await;
            round += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Series the origin exposes only on some machines: the cgroup memory limit, absent where none
/// is set. A query of one may come back empty only when the origin's own `/metrics` lacks it.
const MACHINE_DEPENDENT: [&str; 1] = ["process_memory_limit_bytes"];

/// Why `query` failed, or `None` when it returned data (or may be empty here; see
/// [`MACHINE_DEPENDENT`]).
async fn failure(
    prometheus: &Prometheus,
    query: &Query,
    instance: &str,
    exposed: &str,
) -> Option<String> {
    let expr = substitute(&query.expr, instance);
    let answer = prometheus.query(&expr).await;
    let name = format!("panel \"{}\" target {}: {expr}", query.panel, query.ref_id);
    if answer["status"] != "success" {
        return Some(format!("{name}\n    failed: {}", answer["error"]));
    }
    if !result(&answer).is_empty() {
        return None;
    }
    let absent_here = MACHINE_DEPENDENT
        .iter()
        .find(|metric| expr.contains(*metric) && !exposed.contains(&format!("\n{metric} ")));
    if let Some(metric) = absent_here {
        eprintln!("note: {name}\n    is empty: this machine sets no limit, so {metric} is absent");
        return None;
    }
    Some(format!("{name}\n    returned no series"))
}

/// The `instance` variable's `label_values(<selector>, <label>)` lists `instance`.
async fn check_instance_variable(prometheus: &Prometheus, dashboard: &Value, instance: &str) {
    let definition = variable(dashboard, "instance")["definition"]
        .as_str()
        .unwrap_or_default();
    let inner = definition
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("label_values(…) in {definition}"));
    let (selector, label) = inner
        .rsplit_once(',')
        .expect("label_values(<selector>, <label>)");
    let values = prometheus.label_values(label.trim(), selector.trim()).await;
    assert!(
        values.iter().any(|v| v == instance),
        "{definition}: {values:?}"
    );
}

/// Renames the links' table under the running origin: reading links fails with `500` (a
/// query's own error, which opens no breaker).
async fn break_links(database: &str) {
    use sqlx::Connection;
    let mut connection = sqlx::SqliteConnection::connect(database)
        .await
        .expect("the origin's database");
    sqlx::query("ALTER TABLE task_links RENAME TO task_links_gone")
        .execute(&mut connection)
        .await
        .expect("renamed");
}

/// Puts the origin under a memory limit, so that it reports one, where cgroups can be written.
fn memory_limit(origin: &tokio::process::Child) -> Option<MemoryGroup> {
    let group = origin.id().and_then(|pid| MemoryGroup::limit(pid, 4 << 30));
    if group.is_none() {
        eprintln!("note: no memory cgroup could be made here: the origin reports no memory limit");
    }
    group
}

fn origin_env(purge_url: &str) -> Vec<(&'static str, String)> {
    let pairs = [
        ("ADMIN_TOKEN", ADMIN_TOKEN),
        ("EDGE_PURGE_URL", purge_url),
        // Entries go stale after a second: stale copies served, refresh jobs, expiries.
        ("CACHE_TTL", "1"),
        ("RATE_LIMIT_MAX_REQUESTS", "1000000"),
        ("RATE_LIMIT_CRAWLER_MAX_REQUESTS", "2"),
    ];
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// The origin binary on its own SQLite file and Redis prefix, with a purge receiver (its writes
/// become edge-purge jobs) and, where possible, a memory limit; stopped when dropped.
struct Subject {
    // Dropped first: the origin leaves the group while it still runs.
    _limit: Option<MemoryGroup>,
    _origin: tokio::process::Child,
    _receiver: purge_receiver::Receiver,
    _folder: tempfile::TempDir,
    base: String,
    database: String,
}

impl Subject {
    async fn start() -> Self {
        let (receiver, purge_url) = purge_receiver::Receiver::start().await;
        let folder = tempfile::tempdir().expect("folder");
        let database = format!("sqlite:{}/origin.db", folder.path().display());
        let env = origin_env(&purge_url);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (origin, base) = spawn_with(&database, &unique_prefix("dashboard"), &env).await;
        Self {
            _limit: memory_limit(&origin),
            _origin: origin,
            _receiver: receiver,
            _folder: folder,
            base,
            database,
        }
    }

    /// `host:port`, as Prometheus labels it.
    fn instance(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    /// About 15 s of load: the events, then reads (with links failing).
    async fn drive(&self) {
        let load = Load {
            client: reqwest::Client::new(),
            base: self.base.clone(),
        };
        load.events().await;
        load.links_settled().await;
        break_links(&self.database).await;
        load.reads(Duration::from_secs(12)).await;
        // The last scrapes, and the job system's queue gauges (refreshed every 5 s).
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// Every query of `dashboard` that failed or came back empty, with its panel.
async fn failed_queries(
    prometheus: &Prometheus,
    dashboard: &Value,
    subject: &Subject,
) -> Vec<String> {
    let exposed = format!("\n{}", metrics(&subject.base).await);
    let mut failures = Vec::new();
    for query in &queries(dashboard) {
        let found = failure(prometheus, query, &subject.instance(), &exposed).await;
        failures.extend(found);
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_returns_data_from_prometheus_scraping_the_origin() {
    let Some(binary) = prometheus_or_skip() else {
        return;
    };
    let started = Instant::now();
    let dashboard = dashboard();
    let subject = Subject::start().await;
    let instance = subject.instance();
    let prometheus = Prometheus::start(&binary, &[&instance], free_port()).await;
    prometheus.wait_up(&instance, Duration::from_secs(20)).await;
    subject.drive().await;

    check_instance_variable(&prometheus, &dashboard, &instance).await;
    let failures = failed_queries(&prometheus, &dashboard, &subject).await;
    let count = queries(&dashboard).len();
    assert!(
        failures.is_empty(),
        "{} of {count} queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("{count} queries returned data ({seconds:.1} s)");
}
