//! A connection to Redis in any shape, and what differs on a cluster: `SCAN` runs on every
//! primary.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
};
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

    /// `PING` on the node, or on every primary of a cluster: a cluster answers only when each
    /// of its slots has a primary that does (during a failover, not before it is over).
    pub async fn ping(&mut self) -> RedisResult<()> {
        match self {
            Self::Cluster(cluster) => {
                let every_primary = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::AllSucceeded),
                ));
                cluster
                    .route_command(redis::cmd("PING"), every_primary)
                    .await?;
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

/// The cluster's primaries that are up, as `(host, port)`, from `CLUSTER NODES`.
async fn primaries(
    cluster: &mut ClusterConnection,
    timeout: Duration,
) -> RedisResult<Vec<Option<(String, u16)>>> {
    let listing = cluster.route_command(
        redis::cmd("CLUSTER").arg("NODES").to_owned(),
        RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
    );
    let listing = tokio::time::timeout(timeout, listing)
        .await
        .map_err(|_| timed_out())??;
    let text: String = redis::from_redis_value(listing)?;
    Ok(primaries_in(&text).into_iter().map(Some).collect())
}

/// The primaries that are up in a `CLUSTER NODES` listing.
fn primaries_in(listing: &str) -> Vec<(String, u16)> {
    listing
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            let is_primary = flags.split(',').any(|flag| flag == "master");
            let failed = flags
                .split(',')
                .any(|flag| flag == "fail" || flag == "fail?");
            if !is_primary || failed {
                return None;
            }
            // `ip:port@cport[,hostname]`
            let address = fields.get(1)?.split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
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
}
