//! Redis as the origin reaches it, in every shape it is deployed in: one node (`redis://`, or
//! `rediss://` over TLS with an optional CA file) or a Redis Cluster (`redis+cluster://h:p,h:p`,
//! `rediss+cluster://…`, or `REDIS_CLUSTER_NODES`). The shared cache level, the rate limiter and
//! the job store all connect through one [`RedisTarget`], so each runs on every shape.
//!
//! On a cluster a call that names several keys must keep to one hash slot. Keys that a script
//! or a pipeline uses together share a hash tag (`{…}`); work that spans slots goes through a
//! [`Batch`], one pipeline per slot, sent concurrently (on one node, a single pipeline).
//! Pub/sub needs no slot: a cluster forwards every `PUBLISH` to all of its nodes, so the
//! subscriber listens on any one node and moves to the next when it is lost.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::{AsyncConnectionConfig, RedisResult, TlsCertificates};

use crate::config::RedisConfig;

mod batch;
mod connection;

pub use batch::{slot_of, Batch};
pub use connection::RedisConnection;

/// Why Redis settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    /// A URL the Redis client does not accept.
    #[error("invalid Redis URL {url}: {reason}")]
    Url {
        /// The URL, password redacted.
        url: String,
        /// What the client said.
        reason: String,
    },
    /// The CA file could not be read or holds no certificate.
    #[error("REDIS_TLS_CA_FILE {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A CA file was given for connections that do not use TLS.
    #[error("REDIS_TLS_CA_FILE is set but the Redis URL is not rediss:// (TLS)")]
    CaWithoutTls,
}

/// Where Redis is: one node or a cluster, with its TLS settings.
#[derive(Clone)]
pub struct RedisTarget {
    shape: Shape,
    /// Which seed node the next subscription tries first (cluster only).
    next_subscriber: std::sync::Arc<AtomicUsize>,
}

#[derive(Clone)]
enum Shape {
    Node(Box<redis::Client>),
    Cluster {
        client: Box<ClusterClient>,
        /// One client per seed node, for subscriptions.
        nodes: Vec<redis::Client>,
    },
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shape = match &self.shape {
            Shape::Node(_) => "node".to_owned(),
            Shape::Cluster { nodes, .. } => format!("cluster of {} seed nodes", nodes.len()),
        };
        f.debug_struct("RedisTarget")
            .field("shape", &shape)
            .finish()
    }
}

impl RedisTarget {
    /// The target `config` names, or `None` when no Redis is configured.
    pub fn from_config(config: &RedisConfig) -> Result<Option<Self>, RedisSetupError> {
        let certificates = match &config.tls_ca_file {
            Some(path) => Some(read_ca(path)?),
            None => None,
        };
        let pending = match (&config.url, config.cluster_nodes.is_empty()) {
            (None, true) => return Ok(None),
            (Some(url), true) => {
                cluster_seeds(url).map_or_else(|| Pending::Node(url.clone()), Pending::Cluster)
            }
            (url, false) => Pending::Cluster(seeds(url.as_deref(), &config.cluster_nodes)),
        };
        pending
            .build(certificates.as_ref())
            .map(|shape| Some(Self::of(shape)))
    }

    /// A single node at `url`, trusting the system's CAs for `rediss://` (tests and tools).
    pub fn node(url: &str) -> Result<Self, RedisSetupError> {
        Pending::Node(url.to_owned()).build(None).map(Self::of)
    }

    fn of(shape: Shape) -> Self {
        Self {
            shape,
            next_subscriber: std::sync::Arc::default(),
        }
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.shape, Shape::Cluster { .. })
    }

    /// The connection shared by every call of one user: connects lazily, reconnects by itself,
    /// each call bounded by `timeout`, a failed call retried `retries` times.
    pub fn shared(&self, timeout: Duration, retries: usize) -> RedisResult<RedisConnection> {
        match &self.shape {
            Shape::Node(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(retries);
                let manager = ConnectionManager::new_lazy_with_config((**client).clone(), config)?;
                Ok(RedisConnection::Shared(manager))
            }
            Shape::Cluster { client, .. } => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout);
                Ok(RedisConnection::Cluster(
                    client.get_pending_async_connection_with_config(config),
                ))
            }
        }
    }

    /// A connection of its own, for a caller whose calls block (up to `response_timeout`).
    pub async fn dedicated(
        &self,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> RedisResult<RedisConnection> {
        match &self.shape {
            Shape::Node(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout));
                let connection = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(RedisConnection::Own(connection))
            }
            Shape::Cluster { client, .. } => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(connect_timeout)
                    .set_response_timeout(response_timeout);
                let connection = client.get_async_connection_with_config(config).await?;
                Ok(RedisConnection::Cluster(connection))
            }
        }
    }

    /// A subscriber connection: the node, or on a cluster the next seed node that answers.
    pub async fn subscriber(&self) -> RedisResult<redis::aio::PubSub> {
        match &self.shape {
            Shape::Node(client) => client.get_async_pubsub().await,
            Shape::Cluster { nodes, .. } => {
                let first = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
                let mut last_error = None;
                for offset in 0..nodes.len() {
                    match nodes[(first + offset) % nodes.len()]
                        .get_async_pubsub()
                        .await
                    {
                        Ok(pubsub) => return Ok(pubsub),
                        Err(error) => last_error = Some(error),
                    }
                }
                Err(last_error.unwrap_or_else(|| {
                    redis::RedisError::from((redis::ErrorKind::Io, "no cluster node configured"))
                }))
            }
        }
    }
}

/// A shape whose clients are not made yet (they need the TLS settings).
enum Pending {
    Node(String),
    Cluster(Vec<String>),
}

impl Pending {
    fn build(self, certificates: Option<&TlsCertificates>) -> Result<Shape, RedisSetupError> {
        let urls = match &self {
            Pending::Node(url) => std::slice::from_ref(url),
            Pending::Cluster(seeds) => seeds.as_slice(),
        };
        if certificates.is_some() && urls.iter().any(|url| !url.starts_with("rediss://")) {
            return Err(RedisSetupError::CaWithoutTls);
        }
        if urls.iter().any(|url| url.starts_with("rediss://")) {
            // TLS needs a process-wide crypto provider; the first one installed stays.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let clients = urls
            .iter()
            .map(|url| node_client(url, certificates))
            .collect::<Result<Vec<_>, _>>()?;
        match self {
            Pending::Node(_) => {
                let client = clients.into_iter().next().expect("one URL");
                Ok(Shape::Node(Box::new(client)))
            }
            Pending::Cluster(seeds) => {
                let mut builder = ClusterClientBuilder::new(seeds.clone())
                    // Redirections during a failover are retried briefly; every caller bounds
                    // its calls with its own timeout anyway.
                    .retries(4)
                    .min_retry_wait(20)
                    .max_retry_wait(500);
                if let Some(certificates) = certificates {
                    builder = builder.certs(certificates.clone());
                }
                let client = builder.build().map_err(|error| RedisSetupError::Url {
                    url: seeds
                        .iter()
                        .map(|s| redact(s))
                        .collect::<Vec<_>>()
                        .join(","),
                    reason: error.to_string(),
                })?;
                Ok(Shape::Cluster {
                    client: Box::new(client),
                    nodes: clients,
                })
            }
        }
    }
}

fn node_client(
    url: &str,
    certificates: Option<&TlsCertificates>,
) -> Result<redis::Client, RedisSetupError> {
    let client = match certificates {
        Some(certificates) => redis::Client::build_with_tls(url, certificates.clone()),
        None => redis::Client::open(url),
    };
    client.map_err(|error| RedisSetupError::Url {
        url: redact(url),
        reason: error.to_string(),
    })
}

/// The seed nodes of a `redis+cluster://` or `rediss+cluster://` URL, as node URLs; `None` for
/// any other URL. `rediss+cluster://:secret@a:7000,b:7001/0` gives `rediss://:secret@a:7000/0`
/// and `rediss://:secret@b:7001/0`.
pub fn cluster_seeds(url: &str) -> Option<Vec<String>> {
    let (scheme, rest) = url.split_once("+cluster://")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let (credentials, hosts) = match authority.rsplit_once('@') {
        Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
        None => (String::new(), authority),
    };
    let seeds: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(|host| format!("{scheme}://{credentials}{host}{path}"))
        .collect();
    Some(seeds)
}

/// The entries of `REDIS_CLUSTER_NODES`: comma-separated `host:port` pairs or node URLs.
pub fn cluster_nodes(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|node| !node.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A cluster's seed node URLs: those of `url` (one node or a `+cluster` URL), then `nodes`.
/// A bare `host:port` takes the scheme and credentials of `url` (`rediss://:secret@…` makes
/// every seed TLS with that password), or plain `redis://` without one.
fn seeds(url: Option<&str>, nodes: &[String]) -> Vec<String> {
    let mut seeds = url
        .map(|url| cluster_seeds(url).unwrap_or_else(|| vec![url.to_owned()]))
        .unwrap_or_default();
    let template = seeds.first().map_or("redis://", |first| {
        let after_scheme = first.find("://").map_or(0, |at| at + 3);
        let authority_end = first[after_scheme..]
            .find(['/', '?'])
            .map_or(first.len(), |at| after_scheme + at);
        let host_start = first[..authority_end]
            .rfind('@')
            .map_or(after_scheme, |at| at + 1);
        &first[..host_start]
    });
    let bare = nodes.iter().map(|node| {
        if node.contains("://") {
            node.clone()
        } else {
            format!("{template}{node}")
        }
    });
    let bare: Vec<String> = bare.collect();
    seeds.extend(bare);
    seeds
}

fn read_ca(path: &Path) -> Result<TlsCertificates, RedisSetupError> {
    let failed = |reason: String| RedisSetupError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|error| failed(error.to_string()))?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|window| window == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(failed("no PEM certificate in it".to_owned()));
    }
    Ok(TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    })
}

/// `url` with any password replaced by `***`.
fn redact(url: &str) -> String {
    crate::core::dependencies::database::redact(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_every_seed_with_the_credentials() {
        assert_eq!(
            cluster_seeds("rediss+cluster://:secret@a:7000,b:7001/0").expect("cluster"),
            ["rediss://:secret@a:7000/0", "rediss://:secret@b:7001/0"]
        );
        assert_eq!(
            cluster_seeds("redis+cluster://127.0.0.1:7000").expect("cluster"),
            ["redis://127.0.0.1:7000"]
        );
        assert_eq!(cluster_seeds("redis://127.0.0.1:6379"), None);
        let nodes = cluster_nodes("10.0.0.1:7000, rediss://10.0.0.2:7000,");
        assert_eq!(nodes, ["10.0.0.1:7000", "rediss://10.0.0.2:7000"]);
        assert_eq!(
            seeds(None, &nodes),
            ["redis://10.0.0.1:7000", "rediss://10.0.0.2:7000"]
        );
        assert_eq!(
            seeds(Some("rediss://:secret@10.0.0.9:7000/0"), &nodes[..1]),
            [
                "rediss://:secret@10.0.0.9:7000/0",
                "rediss://:secret@10.0.0.1:7000"
            ]
        );
    }
}
