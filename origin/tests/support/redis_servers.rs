//! Redis servers of a test's own, in the shapes users deploy: a Redis Cluster of real
//! `redis-server --cluster-enabled yes` processes on loopback, joined by
//! `redis-cli --cluster create` (in plain text, or TLS alone: clients, cluster bus and
//! replication), and a Redis that speaks only TLS. Each is stopped when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port that is free, and whose cluster bus port (+10000) is free too.
fn free_node_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free port");
        let Some(bus) = port.checked_add(10_000) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", bus)).is_ok() {
            return port;
        }
    }
}

fn redis_server(folder: &Path, args: &[String]) -> Child {
    // Nothing is kept on disk: each server lives only as long as its test.
    Command::new("redis-server")
        .args(args)
        .args(["--save", "", "--appendonly", "no"])
        .current_dir(folder)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed (the set-up installs it)")
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server on {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn redis_cli(tls: &[String], args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(tls)
        .args(args)
        .output()
        .expect("redis-cli is installed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The certificate files of a Redis that speaks TLS alone.
pub struct TlsFiles<'a> {
    /// The server's certificate (also shown to peers on the cluster bus).
    pub cert: &'a Path,
    /// Its private key.
    pub key: &'a Path,
    /// The CA that signed it: peers' certificates are checked against it.
    pub ca: &'a Path,
}

impl TlsFiles<'_> {
    /// `redis-server` arguments serving TLS alone on `port`.
    fn server_args(&self, port: u16) -> Vec<String> {
        let path = |path: &Path| path.display().to_string();
        [
            "--port".to_owned(),
            "0".to_owned(),
            "--tls-port".to_owned(),
            port.to_string(),
            "--tls-cert-file".to_owned(),
            path(self.cert),
            "--tls-key-file".to_owned(),
            path(self.key),
            "--tls-ca-cert-file".to_owned(),
            path(self.ca),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
            "--tls-cluster".to_owned(),
            "yes".to_owned(),
            "--tls-replication".to_owned(),
            "yes".to_owned(),
        ]
        .to_vec()
    }

    /// `redis-cli` arguments to reach such a server.
    fn cli_args(&self) -> Vec<String> {
        vec![
            "--tls".to_owned(),
            "--cacert".to_owned(),
            self.ca.display().to_string(),
        ]
    }
}

/// A Redis Cluster on loopback: `primaries` primaries, each with `replicas` replicas.
pub struct RedisCluster {
    nodes: Vec<(u16, Child)>,
    /// `redis-cli`'s TLS arguments; empty in plain text.
    cli_tls: Vec<String>,
    _folder: tempfile::TempDir,
}

impl RedisCluster {
    /// Starts the nodes, makes the cluster and waits until every node reports it healthy.
    pub fn start(primaries: usize, replicas: usize) -> Self {
        Self::start_with(primaries, replicas, None)
    }

    /// The same cluster speaking TLS alone: to clients, between nodes and to replicas.
    pub fn start_tls(primaries: usize, replicas: usize, tls: &TlsFiles<'_>) -> Self {
        Self::start_with(primaries, replicas, Some(tls))
    }

    fn start_with(primaries: usize, replicas: usize, tls: Option<&TlsFiles<'_>>) -> Self {
        let folder = tempfile::tempdir().expect("a folder");
        let mut nodes = Vec::new();
        for _ in 0..primaries * (1 + replicas) {
            let port = free_node_port();
            let mut args: Vec<String> = match tls {
                Some(tls) => tls.server_args(port),
                None => vec!["--port".to_owned(), port.to_string()],
            };
            args.extend(
                [
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{port}.conf"),
                    "--cluster-node-timeout",
                    "1000",
                ]
                .iter()
                .map(|arg| (*arg).to_owned()),
            );
            nodes.push((port, redis_server(folder.path(), &args)));
        }
        let cluster = Self {
            nodes,
            cli_tls: tls.map(TlsFiles::cli_args).unwrap_or_default(),
            _folder: folder,
        };
        let addresses: Vec<String> = cluster.addresses();
        for (port, _) in &cluster.nodes {
            wait_for_port(*port);
        }
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        let replicas = replicas.to_string();
        args.extend(["--cluster-replicas", &replicas, "--cluster-yes"]);
        let created = redis_cli(&cluster.cli_tls, &args);
        assert!(
            created.contains("All 16384 slots covered"),
            "cluster create: {created}"
        );
        cluster.wait_until_healthy();
        cluster
    }

    /// `127.0.0.1:<port>` of every node.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
            .collect()
    }

    /// A `redis+cluster://` URL naming every node (`rediss+cluster://` when it speaks TLS).
    pub fn url(&self) -> String {
        let scheme = if self.cli_tls.is_empty() {
            "redis"
        } else {
            "rediss"
        };
        format!("{scheme}+cluster://{}", self.addresses().join(","))
    }

    /// How many keys each node holds.
    pub fn keys_per_node(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .map(|(port, _)| {
                redis_cli(&self.cli_tls, &["-p", &port.to_string(), "dbsize"])
                    .trim()
                    .parse()
                    .unwrap_or(0)
            })
            .collect()
    }

    fn wait_until_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for (port, _) in &self.nodes {
            let port = port.to_string();
            while !redis_cli(&self.cli_tls, &["-p", &port, "cluster", "info"])
                .contains("cluster_state:ok")
            {
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not become healthy"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A Redis that accepts only TLS connections, with a certificate signed by the test's CA.
pub struct TlsRedis {
    child: Child,
    /// Its TLS port.
    pub port: u16,
}

impl TlsRedis {
    /// Starts it with `cert` and `key`, and waits until it listens.
    pub fn start(cert: &Path, key: &Path, folder: &Path) -> Self {
        let port = free_node_port();
        let args: Vec<String> = [
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &cert.display().to_string(),
            "--tls-key-file",
            &key.display().to_string(),
            "--tls-auth-clients",
            "no",
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
        let child = redis_server(folder, &args);
        wait_for_port(port);
        Self { child, port }
    }

    /// `rediss://localhost:<port>`.
    pub fn url(&self) -> String {
        format!("rediss://localhost:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
