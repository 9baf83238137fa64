//! A connection to Redis in any shape, and what differs on a cluster: `SCAN` runs on every
//! primary.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// A connection to Redis in any shape; every command and pipeline runs on it as on one node.
#[derive(Clone)]
pub enum RedisConnection {
    /// One node, shared and reconnecting.
    Shared(ConnectionManager),
    /// One node, a connection of its own.
    Own(MultiplexedConnection),
    /// A cluster: each command goes to the node serving its slot.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Shared(_) => "RedisConnection::Shared",
            Self::Own(_) => "RedisConnection::Own",
            Self::Cluster(_) => "RedisConnection::Cluster",
        })
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Shared(connection) => connection.req_packed_command(cmd),
            Self::Own(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Shared(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Own(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Shared(connection) => connection.get_db(),
            Self::Own(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

impl RedisConnection {
    /// Whether commands go to a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// `PING` on the node, or on every node of a cluster that holds slots as a primary, by its
    /// address: a cluster answers only when each of its slots has a primary that does. During a
    /// failover the dead primary keeps its slots (flagged `fail?`, then `fail`) until its
    /// replica takes them over, so the cluster answers once the failover is over, not before.
    pub async fn ping(&mut self) -> RedisResult<()> {
        match self {
            Self::Cluster(cluster) => {
                let listing = cluster_nodes(cluster).await?;
                let owners = slot_owners_in(&listing);
                if owners.is_empty() {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "no primary holds slots",
                    )));
                }
                for (host, port) in owners {
                    let node =
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                    cluster.route_command(redis::cmd("PING"), node).await?;
                }
                Ok(())
            }
            connection => redis::cmd("PING").query_async(connection).await,
        }
    }

    /// Keys matching the glob `pattern`, at most `limit`, found with `SCAN` (never `KEYS`) on
    /// the node, or on every primary of a cluster; each step bounded by `step_timeout`.
    pub async fn scan(
        &mut self,
        pattern: &str,
        limit: usize,
        step_timeout: Duration,
    ) -> RedisResult<Vec<String>> {
        let mut found = Vec::new();
        let nodes = match self {
            Self::Cluster(cluster) => primaries(cluster, step_timeout).await?,
            _ => vec![None],
        };
        for node in nodes {
            let mut cursor = 0u64;
            loop {
                let mut command = redis::cmd("SCAN");
                command
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000);
                let step = self.scan_step(command, node.clone());
                let (next, keys) = tokio::time::timeout(step_timeout, step)
                    .await
                    .map_err(|_| timed_out())??;
                found.extend(keys);
                if found.len() >= limit {
                    found.truncate(limit);
                    return Ok(found);
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(found)
    }

    async fn scan_step(
        &mut self,
        command: Cmd,
        node: Option<(String, u16)>,
    ) -> RedisResult<(u64, Vec<String>)> {
        match (self, node) {
            (Self::Cluster(cluster), Some((host, port))) => {
                let routing =
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                let value = cluster.route_command(command, routing).await?;
                Ok(redis::from_redis_value(value)?)
            }
            (connection, _) => command.query_async(connection).await,
        }
    }
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "no answer in time"))
}

/// `CLUSTER NODES`, asked of any node.
async fn cluster_nodes(cluster: &mut ClusterConnection) -> RedisResult<String> {
    let listing = cluster
        .route_command(
            redis::cmd("CLUSTER").arg("NODES").to_owned(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await?;
    Ok(redis::from_redis_value(listing)?)
}

/// The cluster's primaries that are up, as `(host, port)`, from `CLUSTER NODES`.
async fn primaries(
    cluster: &mut ClusterConnection,
    timeout: Duration,
) -> RedisResult<Vec<Option<(String, u16)>>> {
    let listing = tokio::time::timeout(timeout, cluster_nodes(cluster))
        .await
        .map_err(|_| timed_out())??;
    Ok(primaries_in(&listing).into_iter().map(Some).collect())
}

/// One line of a `CLUSTER NODES` listing, for a primary.
struct Primary<'a> {
    address: (String, u16),
    flags: &'a str,
    holds_slots: bool,
}

/// The primaries of a `CLUSTER NODES` listing.
fn primaries_listed(listing: &str) -> impl Iterator<Item = Primary<'_>> {
    listing.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let flags = *fields.get(2)?;
        if !flags.split(',').any(|flag| flag == "master") {
            return None;
        }
        // `ip:port@cport[,hostname]`
        let address = fields.get(1)?.split(['@', ',']).next()?;
        let (host, port) = address.rsplit_once(':')?;
        Some(Primary {
            address: (host.to_owned(), port.parse().ok()?),
            flags,
            // Fields 9 and on are slot ranges (and slots being moved).
            holds_slots: fields.len() > 8,
        })
    })
}

/// The primaries that are up in a `CLUSTER NODES` listing.
fn primaries_in(listing: &str) -> Vec<(String, u16)> {
    primaries_listed(listing)
        .filter(|primary| {
            !primary
                .flags
                .split(',')
                .any(|flag| flag == "fail" || flag == "fail?")
        })
        .map(|primary| primary.address)
        .collect()
}

/// Every primary holding slots in a `CLUSTER NODES` listing, up or not.
fn slot_owners_in(listing: &str) -> Vec<(String, u16)> {
    primaries_listed(listing)
        .filter(|primary| primary.holds_slots)
        .map(|primary| primary.address)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_are_read_from_cluster_nodes() {
        let listing = "\
07c3 127.0.0.1:30004@31004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@31002,node-2 master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@31003 master,fail - 0 1426238318243 3 connected 10923-16383
e7d1 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460
";
        assert_eq!(
            primaries_in(listing),
            [
                ("127.0.0.1".to_owned(), 30002),
                ("127.0.0.1".to_owned(), 30001)
            ]
        );
    }

    #[test]
    fn a_failed_primary_holds_its_slots_until_its_replica_takes_them_over() {
        let failing = "\
07c3 127.0.0.1:30004@31004 slave 292f 0 1426238317239 4 connected
67ed 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@31003 master,fail - 0 1426238318243 3 connected 10923-16383
e7d1 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460
";
        let owners = slot_owners_in(failing);
        assert_eq!(owners.len(), 3);
        assert!(owners.contains(&("127.0.0.1".to_owned(), 30003)));
        let over = "\
07c3 127.0.0.1:30004@31004 master - 0 1426238317239 5 connected 10923-16383
67ed 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@31003 master,fail - 0 1426238318243 3 disconnected
e7d1 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460
";
        let owners = slot_owners_in(over);
        assert_eq!(owners.len(), 3);
        assert!(!owners.contains(&("127.0.0.1".to_owned(), 30003)));
        assert!(owners.contains(&("127.0.0.1".to_owned(), 30004)));
    }
}
