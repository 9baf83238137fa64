//! The processes the shield's tests run: the shield itself (the `origin` binary in shield
//! mode) and a Python upstream (`python_upstream.py`), each stopped when dropped.
// Each test binary compiles this module and uses a subset of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::common;

/// The Python upstream, stopped when dropped.
pub struct PythonUpstream {
    child: Child,
    port: u16,
    folder: tempfile::TempDir,
    scheme: &'static str,
}

impl PythonUpstream {
    pub fn start(name: &str) -> Self {
        Self::start_with(name, &[])
    }

    /// An upstream speaking HTTPS alone, with `certificate` and its `key` (PEM files).
    pub fn start_tls(name: &str, certificate: &std::path::Path, key: &std::path::Path) -> Self {
        let mut upstream = Self::start_with(name, &[certificate, key]);
        upstream.scheme = "https";
        upstream
    }

    fn start_with(name: &str, tls: &[&std::path::Path]) -> Self {
        let folder = tempfile::tempdir().expect("a folder");
        let port = common::free_port();
        let script: PathBuf = [
            env!("CARGO_MANIFEST_DIR"),
            "tests",
            "support",
            "python_upstream.py",
        ]
        .iter()
        .collect();
        let child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(name)
            .args(tls)
            .current_dir(folder.path())
            .stdout(Stdio::null())
            // Cut connections make http.server print tracebacks: they are the tests' doing.
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is installed");
        wait_for_port(port);
        Self {
            child,
            port,
            folder,
            scheme: "http",
        }
    }

    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    /// Makes its health check answer 503 (`true`) or 200.
    pub fn set_down(&self, down: bool) {
        let flag = self.folder.path().join(format!("{}.down", self.port));
        if down {
            std::fs::write(flag, b"").expect("flag written");
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }
}

impl Drop for PythonUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The shield, a real `origin` process.
pub struct Shield {
    pub child: tokio::process::Child,
    pub base: String,
}

impl Shield {
    pub async fn start(upstreams: &[String], env: &[(&str, &str)]) -> Self {
        let port = common::free_port();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_origin"));
        command.arg("shield");
        for upstream in upstreams {
            command.arg("--upstream").arg(upstream);
        }
        let child = command
            .env("ORIGIN_ADDR", format!("127.0.0.1:{port}"))
            .env("REDIS_URL", "")
            .env("UPSTREAM_URL", "")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the origin binary");
        let base = format!("http://127.0.0.1:{port}");
        common::wait_until_live(&base).await;
        Self { child, base }
    }

    pub fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    }

    /// Resident memory now and at its peak, in KiB.
    pub fn memory(&self) -> (u64, u64) {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kb| kb.parse().ok())
                .expect("a memory field")
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}
