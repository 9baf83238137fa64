//! A PostgreSQL server of the test's own that accepts only TLS connections (`hostssl` alone in
//! `pg_hba.conf`), with a certificate signed by the test's CA: the machine's PostgreSQL
//! binaries, a fresh data folder, a free loopback port. Run as the `postgres` user when the
//! test runs as root (PostgreSQL refuses root). Stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::test_ca::TestCa;

/// The newest PostgreSQL server binaries on the machine.
fn binaries() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (the set-up installs it)")
        .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    versions.sort_by_key(|bin| {
        bin.parent()
            .and_then(|version| version.file_name())
            .and_then(|name| name.to_str())
            .and_then(|name| name.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().expect("a PostgreSQL version with a server")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.starts_with(b"0\n"))
}

/// `program` with `args`, as `postgres` when running as root.
fn as_server_user(program: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args);
        command
    } else {
        let mut command = Command::new(program);
        command.args(args);
        command
    }
}

/// Makes `path` belong to `postgres` (when root) with `mode`.
fn hand_over(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .expect("chown runs");
        assert!(status.success(), "chown {}", path.display());
    }
}

/// The server, its folder and port.
pub struct TlsPostgres {
    child: Child,
    data: PathBuf,
    _folder: tempfile::TempDir,
    /// Its loopback port.
    pub port: u16,
}

impl TlsPostgres {
    /// Makes a data folder, starts the server with `ca`'s server certificate, and waits until
    /// it accepts connections.
    pub fn start(ca: &TestCa) -> Self {
        let folder = tempfile::tempdir().expect("a folder");
        hand_over(folder.path(), 0o700);
        let data = folder.path().join("data");
        let bin = binaries();
        let data_arg = data.display().to_string();
        let init = as_server_user(
            &bin.join("initdb"),
            &[
                "-D",
                &data_arg,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("initdb runs");
        assert!(init.success(), "initdb");
        std::fs::write(
            data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\nlocal all all trust\n",
        )
        .expect("pg_hba.conf");
        for (from, to) in [(&ca.cert, "server.crt"), (&ca.key, "server.key")] {
            std::fs::copy(from, data.join(to)).expect("certificate copied");
        }
        hand_over(&data, 0o700);
        hand_over(&data.join("server.key"), 0o600);
        let socket_dir = folder.path().display().to_string();
        // A free port can be taken by another test's server before this one binds it: then
        // this server exits, and another port is tried.
        for _ in 0..5 {
            let port = free_port();
            let mut child = as_server_user(
                &bin.join("postgres"),
                &[
                    "-D",
                    &data_arg,
                    "-p",
                    &port.to_string(),
                    "-k",
                    &socket_dir,
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "ssl=on",
                    "-c",
                    "fsync=off",
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts");
            if ready(&mut child, &data) {
                return Self {
                    child,
                    data,
                    _folder: folder,
                    port,
                };
            }
        }
        panic!("PostgreSQL did not start on any of five ports");
    }

    /// A URL of its `postgres` database with `options` (`sslmode=…&sslrootcert=…`).
    pub fn url(&self, options: &str) -> String {
        format!(
            "postgres://postgres@localhost:{}/postgres?{options}",
            self.port
        )
    }
}

/// Waits until the server `child` runs on `data` takes sessions: its own `postmaster.pid`
/// says `ready` (its port opens before that, and another server could be answering on the
/// port). False when it exited first.
fn ready(child: &mut Child, data: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let status = std::fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().nth(7).map(|line| line.trim().to_owned()));
        if status.as_deref() == Some("ready") {
            return true;
        }
        assert!(Instant::now() < deadline, "PostgreSQL did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        // The server itself (not `runuser`) is asked for a fast shutdown (SIGINT).
        let pid = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().map(str::to_owned));
        if let Some(pid) = pid {
            let _ = Command::new("kill").args(["-INT", &pid]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
