//! A real Prometheus server for tests: its own data folder and loopback port, scraping the
//! given targets every second, queried through its HTTP API.
// Each test binary includes this module and may use a subset of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The scrape job every target is in.
pub const JOB: &str = "rampart-origin";

/// The `prometheus` binary: on `PATH`, or where the Debian package puts it.
pub fn binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .map(|folder| folder.join("prometheus"))
        .chain([PathBuf::from("/usr/bin/prometheus")])
        .find(|path| path.is_file())
}

/// A Prometheus process, stopped and its data removed when dropped.
pub struct Prometheus {
    _child: tokio::process::Child,
    _folder: tempfile::TempDir,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    client: reqwest::Client,
}

fn config(targets: &[&str]) -> String {
    let list = targets
        .iter()
        .map(|target| format!("\"{target}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [{list}]\n"
    )
}

fn command(binary: &Path, folder: &Path, port: u16) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(binary);
    command
        .arg(format!(
            "--config.file={}",
            folder.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            folder.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

impl Prometheus {
    /// Starts `binary` on a free port, scraping `targets` (`host:port`), and waits until it is
    /// ready.
    pub async fn start(binary: &Path, targets: &[&str], port: u16) -> Self {
        let folder = tempfile::tempdir().expect("temporary folder");
        std::fs::write(folder.path().join("prometheus.yml"), config(targets)).expect("config");
        let child = command(binary, folder.path(), port)
            .spawn()
            .unwrap_or_else(|error| panic!("start {}: {error}", binary.display()));
        let prometheus = Self {
            _child: child,
            _folder: folder,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        prometheus.wait_ready().await;
        prometheus
    }

    async fn wait_ready(&self) {
        let url = format!("{}/-/ready", self.base);
        for _ in 0..300 {
            if let Ok(response) = self.client.get(&url).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("Prometheus on {} was not ready within 15 s", self.base);
    }

    /// The answer of `GET /api/v1/query` for `expr` now: `status`, and `data.result`.
    pub async fn query(&self, expr: &str) -> Value {
        let response = self
            .client
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", expr)])
            .send()
            .await
            .expect("Prometheus answers");
        response.json().await.expect("a JSON answer")
    }

    /// The values of `label` across the series that match `selector`.
    pub async fn label_values(&self, label: &str, selector: &str) -> Vec<String> {
        let answer: Value = self
            .client
            .get(format!("{}/api/v1/label/{label}/values", self.base))
            .query(&[("match[]", selector)])
            .send()
            .await
            .expect("Prometheus answers")
            .json()
            .await
            .expect("a JSON answer");
        let values = answer["data"].as_array().cloned().unwrap_or_default();
        values
            .iter()
            .filter_map(|value| value.as_str().map(str::to_owned))
            .collect()
    }

    /// Waits until `target` has been scraped successfully.
    pub async fn wait_up(&self, target: &str, limit: Duration) {
        let expr = format!("up{{job=\"{JOB}\",instance=\"{target}\"}} == 1");
        let started = Instant::now();
        while started.elapsed() < limit {
            if !result(&self.query(&expr).await).is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("Prometheus did not scrape {target} within {limit:?}");
    }
}

/// The series of a query's answer (empty when there are none or the query failed).
pub fn result(answer: &Value) -> Vec<Value> {
    answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
