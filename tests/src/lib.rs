//! Harness for Rampart's end-to-end tests: the real origin on a free port and the real edge
//! running in workerd through `wrangler dev`, each torn down when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub mod test_origin;

/// How `TempDir::new("edge-state")` names an edge's directory; the owning test's pid follows.
const STATE_PREFIX: &str = "rampart-edge-state-";

/// How long `wrangler dev` may take to answer (it builds the Worker first when the build is stale).
const EDGE_START_TIMEOUT: Duration = Duration::from_secs(600);

/// How many ports `wrangler dev` is tried on, when the one chosen is taken before it binds it.
const EDGE_START_ATTEMPTS: u32 = 3;

/// The longest any test request may take, body included: a stalled answer fails its test, with
/// the edge's log, instead of holding the whole suite.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// An HTTP client for tests: every request bounded by [`REQUEST_TIMEOUT`].
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("an HTTP client")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// An origin server running in this process.
#[derive(Debug)]
pub struct Origin {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    /// The folder of the origin's SQLite file, removed with the origin.
    _folder: tempfile::TempDir,
}

impl Origin {
    /// Starts the origin on a free loopback port.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Like [`Origin::start`], with `configure` applied to the configuration last.
    pub async fn start_with(configure: impl FnOnce(&mut origin::config::Config)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("bound address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let folder = tempfile::tempdir().expect("temporary folder");
        let mut config = origin::config::Config::default();
        config.database.url = format!("sqlite:{}/origin.db", folder.path().display());
        config.database.demo_data = origin::config::DemoData::Small;
        // The suite sends many requests from one address.
        config.resilience.rate_limits = None;
        config.cache.warm_paths = Vec::new();
        configure(&mut config);
        tokio::spawn(origin::server::run(listener, config, async move {
            let _ = stopped.await;
        }));
        Self {
            url,
            stop: Some(stop),
            _folder: folder,
        }
    }

    /// How many requests the origin has answered for `route` (a route template), read from its
    /// own `/metrics`.
    pub async fn requests_served(&self, route: &str) -> u64 {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await
            .expect("origin metrics reachable")
            .text()
            .await
            .expect("metrics body");
        let needle = format!("route=\"{route}\"");
        text.lines()
            .filter(|line| line.starts_with("http_requests_total{") && line.contains(&needle))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The origin in shield mode (`origin shield`), running in this process in front of one
/// upstream.
#[derive(Debug)]
pub struct Shield {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Shield {
    /// Starts the shield on a free loopback port in front of `upstream` (`http://host:port`),
    /// waiting for the response head at most `first_byte_timeout`.
    pub async fn start(upstream: &str, first_byte_timeout: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("bound address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let mut config = origin::config::Config::default();
        config.shield.upstreams = vec![upstream.parse().expect("an upstream URL")];
        config.shield.first_byte_timeout = first_byte_timeout;
        config.resilience.rate_limits = None;
        config.cache.warm_paths = Vec::new();
        tokio::spawn(origin::shield::run(listener, config, async move {
            let _ = stopped.await;
        }));
        Self {
            url,
            stop: Some(stop),
        }
    }
}

impl Drop for Shield {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The edge Worker running in workerd (`wrangler dev`), in its own process group.
#[derive(Debug)]
pub struct Edge {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    child: Child,
    _state: TempDir,
}

impl Edge {
    /// Starts `wrangler dev` against `origin_url` with a fresh cache, and waits until a request
    /// passes through it to the origin.
    pub async fn start(origin_url: &str) -> Self {
        Self::start_with_vars(origin_url, &[]).await
    }

    /// Like [`Edge::start`], with extra `[vars]`. A port taken between choosing it and
    /// `wrangler dev` binding it (another test's server) is chosen again, up to
    /// [`EDGE_START_ATTEMPTS`] times; any other exit fails at once, with the log.
    pub async fn start_with_vars(origin_url: &str, vars: &[(&str, &str)]) -> Self {
        let root = repo_root();
        let wrangler = root.join("node_modules/.bin/wrangler");
        assert!(
            wrangler.exists(),
            "{} is missing: run scripts/test.sh (it installs the npm packages)",
            wrangler.display()
        );
        ensure_worker_built(&root);
        reap_orphans();
        for attempt in 1..=EDGE_START_ATTEMPTS {
            let mut edge = Self::spawn(&root, &wrangler, origin_url, vars);
            match edge.wait_ready().await {
                Ok(()) => return edge,
                Err(Startup::PortTaken) if attempt < EDGE_START_ATTEMPTS => continue,
                Err(Startup::PortTaken) => panic!(
                    "wrangler dev found its port taken {EDGE_START_ATTEMPTS} times; its log:\n{}",
                    edge.log()
                ),
                Err(Startup::Exited(status)) => {
                    panic!("wrangler dev exited ({status}); its log:\n{}", edge.log())
                }
                Err(Startup::TimedOut) => panic!(
                    "wrangler dev did not become ready within {EDGE_START_TIMEOUT:?}; its log:\n{}",
                    edge.log()
                ),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// `wrangler dev` started on a free port against `origin_url`, not yet ready.
    fn spawn(root: &Path, wrangler: &Path, origin_url: &str, vars: &[(&str, &str)]) -> Self {
        let port = free_port();
        let state = TempDir::new("edge-state");
        let log = std::fs::File::create(state.path.join("wrangler.log")).expect("log file");
        let mut command = Command::new(wrangler);
        command
            .current_dir(root)
            .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .args(["--var", &format!("ORIGIN_URL:{origin_url}")])
            .args(
                vars.iter()
                    .flat_map(|(name, value)| ["--var".to_owned(), format!("{name}:{value}")]),
            )
            .args(["--persist-to", &state.path.to_string_lossy()])
            .args([
                "--show-interactive-dev-session=false",
                "--log-level",
                "warn",
            ])
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("start wrangler dev");
        Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _state: state,
        }
    }

    /// What `wrangler dev` (and the Worker's console) has written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._state.path.join("wrangler.log")).unwrap_or_default()
    }

    /// Waits until a request passes through the edge, or `wrangler dev` exits or says its
    /// port is taken (it reports that and stays up, serving nothing).
    async fn wait_ready(&mut self) -> Result<(), Startup> {
        let started = Instant::now();
        let client = client();
        while started.elapsed() < EDGE_START_TIMEOUT {
            if self.log().contains("Address already in use") {
                return Err(Startup::PortTaken);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Startup::Exited(status));
            }
            if let Ok(response) = client.get(format!("{}/health", self.url)).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(Startup::TimedOut)
    }
}

/// Why `wrangler dev` did not become ready.
#[derive(Debug)]
enum Startup {
    /// Its port was taken before it bound it.
    PortTaken,
    /// It exited, with this status.
    Exited(std::process::ExitStatus),
    /// It did not answer within [`EDGE_START_TIMEOUT`].
    TimedOut,
}

impl Drop for Edge {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The test failed with this edge running: its log tells what the edge saw.
            eprintln!("--- the edge's log (wrangler dev) ---\n{}", self.log());
        }
        // Stop wrangler and the workerd processes it spawned: the whole process group. wrangler
        // ignores SIGTERM but shuts down on SIGINT; SIGKILL if it lingers.
        signal_group(self.child.id(), "INT");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        signal_group(self.child.id(), "KILL");
        let _ = self.child.wait();
    }
}

/// Builds the Worker once per test process, so that a compile error fails at once with the
/// compiler's output instead of leaving `wrangler dev` waiting (its own build is then a no-op).
fn ensure_worker_built(root: &Path) {
    static BUILD: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILD.get_or_init(|| {
        let output = Command::new("bash")
            .arg(root.join("scripts/build-edge.sh"))
            .current_dir(root)
            .output()
            .map_err(|e| format!("cannot run scripts/build-edge.sh: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    if let Err(log) = result {
        panic!("the edge Worker does not build:\n{log}");
    }
}

fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), "--".to_owned(), format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// Kills `wrangler dev` groups left behind by test processes that died without running `Drop`
/// (their state directory names the test's pid).
fn reap_orphans() {
    let Ok(output) = Command::new("ps").args(["-eo", "pgid=,args="]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some((_, rest)) = line.split_once(STATE_PREFIX) else {
            continue;
        };
        let owner = rest.split('-').next().unwrap_or_default();
        let pgid = line
            .split_whitespace()
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        if let (Ok(owner), Some(pgid)) = (owner.parse::<u32>(), pgid) {
            if !Path::new(&format!("/proc/{owner}")).exists() {
                signal_group(pgid, "KILL");
            }
        }
    }
}

/// A directory removed on drop.
#[derive(Debug)]
pub struct TempDir {
    /// Its path.
    pub path: PathBuf,
}

impl TempDir {
    /// Creates a fresh directory under the system temp dir.
    pub fn new(prefix: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("rampart-{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// The `Cache-Status` header of a response, or `""`.
pub fn cache_status(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}
