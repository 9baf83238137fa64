//! Redis as the campaign runs it: one node, or a Redis Cluster of three primaries with a
//! replica each (`redis-server --cluster-enabled yes`, joined by `redis-cli --cluster create`),
//! whose primaries can be killed to make the cluster fail over.

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;
use tokio::time::Instant;

use super::services::{free_port, Process, ServiceError, Spec};

/// Which shape of Redis the campaign runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One node.
    Node,
    /// Three primaries, three replicas.
    Cluster,
}

/// The running Redis.
#[derive(Debug)]
pub enum Redis {
    /// One node.
    Node(Box<Process>),
    /// Every node of the cluster.
    Cluster(Vec<Process>),
}

/// A `redis-server` on `port` whose files (a replica's synced copy, the cluster's node table)
/// live in a folder of its own under `work`, never in the folder it was started from.
fn server(name: String, port: u16, work: &Path, extra: &[String]) -> Result<Spec, ServiceError> {
    let dir = work.join(&name);
    std::fs::create_dir_all(&dir).map_err(|error| ServiceError::Spawn {
        what: dir.display().to_string(),
        error,
    })?;
    let dir = dir.canonicalize().unwrap_or(dir).display().to_string();
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--dir",
        &dir,
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend_from_slice(extra);
    Ok(Spec {
        name,
        program: "redis-server".into(),
        args,
        env: Vec::new(),
        port,
        cwd: None,
    })
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_node_port() -> u16 {
    loop {
        let port = free_port();
        let bus_free = port
            .checked_add(10_000)
            .is_some_and(|bus| std::net::TcpListener::bind(("127.0.0.1", bus)).is_ok());
        if bus_free {
            return port;
        }
    }
}

impl Redis {
    /// Starts Redis in `shape`, logs and cluster files in `work`.
    pub async fn start(shape: Shape, work: &Path) -> Result<Self, ServiceError> {
        match shape {
            Shape::Node => {
                let port = free_port();
                let spec = server("redis".to_owned(), port, work, &[])?;
                let node = Process::start(spec, work).await?;
                Ok(Self::Node(Box::new(node)))
            }
            Shape::Cluster => Self::start_cluster(work).await,
        }
    }

    async fn start_cluster(work: &Path) -> Result<Self, ServiceError> {
        let mut nodes = Vec::new();
        for n in 1..=6 {
            let port = free_node_port();
            let extra = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ]
            .map(str::to_owned);
            let spec = server(format!("redis-{n}"), port, work, &extra)?;
            nodes.push(Process::start(spec, work).await?);
        }
        let addresses: Vec<String> = nodes.iter().map(|node| address(node.port())).collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(addresses.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "1", "--cluster-yes"]);
        let created = redis_cli(&create).await?;
        if !created.contains("All 16384 slots covered") {
            return Err(ServiceError::Failed {
                what: "redis-cli --cluster create".to_owned(),
                output: created,
            });
        }
        let cluster = Self::Cluster(nodes);
        cluster.wait_until_healthy(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    /// What the origins' `REDIS_URL` says.
    pub fn url(&self) -> String {
        match self {
            Self::Node(node) => format!("redis://{}", address(node.port())),
            Self::Cluster(nodes) => {
                let seeds: Vec<String> = nodes.iter().map(|node| address(node.port())).collect();
                format!("redis+cluster://{}", seeds.join(","))
            }
        }
    }

    /// The single node (`None` for a cluster).
    pub fn node(&mut self) -> Option<&mut Process> {
        match self {
            Self::Node(node) => Some(node),
            Self::Cluster(_) => None,
        }
    }

    /// The index of a primary that is up, from the cluster's own view.
    pub async fn a_primary(&self) -> Result<usize, ServiceError> {
        let Self::Cluster(nodes) = self else {
            return Err(not_a_cluster());
        };
        for node in nodes.iter().filter(|node| node.pid().is_some()) {
            let listing = redis_cli(&["-p", &node.port().to_string(), "cluster", "nodes"]).await?;
            for line in listing.lines() {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let (Some(at), Some(flags)) = (fields.get(1), fields.get(2)) else {
                    continue;
                };
                if !flags.contains("master") || flags.contains("fail") {
                    continue;
                }
                let port = at
                    .split(['@', ':'])
                    .nth(1)
                    .and_then(|p| p.parse::<u16>().ok());
                if let Some(index) = nodes.iter().position(|node| Some(node.port()) == port) {
                    return Ok(index);
                }
            }
        }
        Err(ServiceError::NotReady(
            "a primary of the cluster".to_owned(),
        ))
    }

    /// Node `index` of the cluster.
    pub fn cluster_node(&mut self, index: usize) -> Option<&mut Process> {
        match self {
            Self::Cluster(nodes) => nodes.get_mut(index),
            Self::Node(_) => None,
        }
    }

    /// Waits until every running node reports `cluster_state:ok` (at most `limit`).
    pub async fn wait_until_healthy(&self, limit: Duration) -> Result<(), ServiceError> {
        let Self::Cluster(nodes) = self else {
            return Ok(());
        };
        let deadline = Instant::now() + limit;
        for node in nodes.iter().filter(|node| node.pid().is_some()) {
            let port = node.port().to_string();
            while !redis_cli(&["-p", &port, "cluster", "info"])
                .await?
                .contains("cluster_state:ok")
            {
                if Instant::now() > deadline {
                    return Err(ServiceError::NotReady("the Redis Cluster".to_owned()));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }
}

fn not_a_cluster() -> ServiceError {
    ServiceError::Failed {
        what: "a cluster fault".to_owned(),
        output: "Redis runs as one node (--redis cluster runs a cluster)".to_owned(),
    }
}

fn address(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

async fn redis_cli(args: &[&str]) -> Result<String, ServiceError> {
    let output = Command::new("redis-cli")
        .args(args)
        .output()
        .await
        .map_err(|error| ServiceError::Spawn {
            what: "redis-cli".to_owned(),
            error,
        })?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
