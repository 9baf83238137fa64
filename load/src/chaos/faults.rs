//! The faults the campaign injects, how each is injected and undone, and what Rampart promises
//! while it lasts.

use std::time::Duration;

use super::redis::Shape as RedisShape;
use super::services::{Process, ServiceError, System};

/// The single Redis node of `system`.
fn single(system: &mut System) -> Result<&mut Process, ServiceError> {
    system.redis.node().ok_or_else(|| ServiceError::Failed {
        what: "a single-node Redis fault".to_owned(),
        output: "Redis runs as a cluster".to_owned(),
    })
}

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Redis frozen (`SIGSTOP`), then thawed.
    RedisStopped,
    /// Redis killed (`SIGKILL`) and started again, empty.
    RedisRestartedEmpty,
    /// A primary of the Redis Cluster killed: its replica takes over; it comes back as one.
    ClusterPrimaryKilled,
    /// PostgreSQL restarted (`pg_ctl restart -m fast`).
    PostgresRestarted,
    /// Every connection to the database closed by the server (`pg_terminate_backend`).
    PostgresConnectionsKilled,
    /// The comments table locked: writes of comments wait.
    PostgresSlow,
    /// One origin of three killed (`SIGKILL`), started again later.
    OriginKilled,
    /// One origin of three stopped (`SIGTERM`: it drains), started again later.
    OriginDrained,
    /// Every origin killed: the edge alone answers.
    AllOriginsDown,
    /// Every byte between the edge and the origins delayed.
    SlowNetwork,
}

/// What may become of reads of pages never read before, which only an origin can answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UncachedReads {
    /// Not checked.
    #[default]
    Unchecked,
    /// Every one answered 2xx.
    Answered,
    /// Those that fail are answered at once with an error a client can read: `502`, `503` or
    /// `504`, with the JSON error body (its `code`) or, for a browser, an HTML page.
    FailCleanly,
}

/// What must hold while a fault lasts; `None` is not checked.
#[derive(Debug, Clone, Copy, Default)]
pub struct Promise {
    /// Failed reads allowed (any lane that is not down).
    pub failed_reads: Option<usize>,
    /// Failed writes allowed.
    pub failed_writes: Option<usize>,
    /// Every failed write answered `503 DATABASE_UNAVAILABLE` with `Retry-After`.
    pub writes_fail_fast: bool,
    /// p99 during the fault at most this many times p99 before.
    pub p99_ratio: Option<f64>,
    /// Ready again (every origin ready, every breaker closed) within this after the restore.
    pub recovery: Option<Duration>,
    /// Reads that no cache can answer.
    pub uncached: UncachedReads,
    /// Some reads through the edge are answered by a stored copy standing in for the origin
    /// (`Cache-Status: …; fwd=stale`): the reloads, whose copies must be validated.
    pub serves_stale: bool,
}

impl Fault {
    /// Every fault, in the order the campaign injects them.
    pub const ALL: [Self; 10] = [
        Self::RedisStopped,
        Self::RedisRestartedEmpty,
        Self::ClusterPrimaryKilled,
        Self::PostgresRestarted,
        Self::PostgresConnectionsKilled,
        Self::PostgresSlow,
        Self::OriginKilled,
        Self::OriginDrained,
        Self::SlowNetwork,
        Self::AllOriginsDown,
    ];

    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::RedisStopped => "redis SIGSTOP",
            Self::RedisRestartedEmpty => "redis SIGKILL + empty restart",
            Self::ClusterPrimaryKilled => "redis cluster primary SIGKILL (failover)",
            Self::PostgresRestarted => "postgres restart",
            Self::PostgresConnectionsKilled => "postgres connections killed",
            Self::PostgresSlow => "postgres table locked",
            Self::OriginKilled => "origin 1 of 3 SIGKILL",
            Self::OriginDrained => "origin 2 of 3 SIGTERM",
            Self::SlowNetwork => "edge-origin +200 ms per chunk",
            Self::AllOriginsDown => "all origins down",
        }
    }

    /// Whether it can be injected into Redis of `shape`.
    pub fn applies_to(self, shape: RedisShape) -> bool {
        match self {
            Self::RedisStopped | Self::RedisRestartedEmpty => shape == RedisShape::Node,
            Self::ClusterPrimaryKilled => shape == RedisShape::Cluster,
            _ => true,
        }
    }

    /// Whether the direct lane's origin is down while it lasts (its answers are not counted).
    pub fn takes_down_direct_lane(self) -> bool {
        self == Self::AllOriginsDown
    }

    /// What Rampart promises while it lasts.
    pub fn promise(self) -> Promise {
        let none_lost = Promise {
            failed_reads: Some(0),
            failed_writes: Some(0),
            uncached: UncachedReads::Answered,
            ..Promise::default()
        };
        match self {
            Self::RedisStopped | Self::RedisRestartedEmpty | Self::ClusterPrimaryKilled => {
                Promise {
                    p99_ratio: Some(3.0),
                    ..none_lost
                }
            }
            // A page no cache holds needs the database.
            Self::PostgresRestarted | Self::PostgresConnectionsKilled => Promise {
                failed_reads: Some(0),
                writes_fail_fast: true,
                recovery: Some(Duration::from_secs(5)),
                uncached: UncachedReads::FailCleanly,
                ..Promise::default()
            },
            Self::PostgresSlow => Promise {
                failed_reads: Some(0),
                uncached: UncachedReads::FailCleanly,
                ..Promise::default()
            },
            // Only what was in flight on the killed origin may fail: the edge sends reads
            // elsewhere; a write it had sent is not sent twice.
            Self::OriginKilled => Promise {
                failed_reads: Some(0),
                failed_writes: Some(2),
                uncached: UncachedReads::Answered,
                ..Promise::default()
            },
            Self::OriginDrained | Self::SlowNetwork => none_lost,
            // Through the edge, every page read before is served from the cache (stale, where
            // it must be validated); the others get the edge's 502 (JSON, or HTML for a
            // browser).
            Self::AllOriginsDown => Promise {
                failed_reads: Some(0),
                uncached: UncachedReads::FailCleanly,
                serves_stale: true,
                ..Promise::default()
            },
        }
    }

    /// How long it lasts, at `scale` (1 for the full campaign).
    pub fn length(self, scale: f64) -> Duration {
        let full = match self {
            Self::RedisStopped | Self::SlowNetwork | Self::ClusterPrimaryKilled => 15.0,
            Self::AllOriginsDown => 30.0,
            Self::PostgresSlow | Self::OriginKilled | Self::OriginDrained => 10.0,
            Self::RedisRestartedEmpty => 5.0,
            Self::PostgresRestarted | Self::PostgresConnectionsKilled => 0.0,
        };
        Duration::from_secs_f64(full * scale)
    }

    /// Injects it.
    pub async fn inject(self, system: &mut System, scale: f64) -> Result<(), ServiceError> {
        match self {
            Self::RedisStopped => single(system)?.signal("-STOP").await,
            Self::RedisRestartedEmpty => single(system)?.stop_with("-KILL").await,
            Self::ClusterPrimaryKilled => {
                let primary = system.redis.a_primary().await?;
                system.killed_primary = Some(primary);
                if let Some(node) = system.redis.cluster_node(primary) {
                    node.stop_with("-KILL").await;
                }
            }
            Self::PostgresRestarted => system.postgres.restart().await?,
            Self::PostgresConnectionsKilled => {
                system.postgres.terminate_connections().await?;
            }
            Self::PostgresSlow => {
                // Runs in the background for the fault's length; the lock ends with it.
                drop(system.postgres.lock_table("comments", self.length(scale)));
            }
            Self::OriginKilled => system.origins[0].stop_with("-KILL").await,
            Self::OriginDrained => system.origins[1].stop_with("-TERM").await,
            Self::SlowNetwork => {
                for proxy in &system.proxies {
                    proxy.set_delay(Duration::from_millis(200));
                }
            }
            Self::AllOriginsDown => {
                for origin in &mut system.origins {
                    origin.stop_with("-KILL").await;
                }
            }
        }
        Ok(())
    }

    /// Undoes it.
    pub async fn restore(self, system: &mut System) -> Result<(), ServiceError> {
        match self {
            Self::RedisStopped => single(system)?.signal("-CONT").await,
            Self::RedisRestartedEmpty => single(system)?.restart().await?,
            Self::ClusterPrimaryKilled => {
                let killed = system.killed_primary.take();
                if let Some(node) = killed.and_then(|at| system.redis.cluster_node(at)) {
                    node.restart().await?;
                }
                system
                    .redis
                    .wait_until_healthy(Duration::from_secs(60))
                    .await?;
            }
            Self::PostgresRestarted | Self::PostgresConnectionsKilled | Self::PostgresSlow => {}
            Self::OriginKilled => system.origins[0].restart().await?,
            Self::OriginDrained => system.origins[1].restart().await?,
            Self::SlowNetwork => {
                for proxy in &system.proxies {
                    proxy.set_delay(Duration::ZERO);
                }
            }
            Self::AllOriginsDown => {
                for origin in &mut system.origins {
                    origin.restart().await?;
                }
            }
        }
        Ok(())
    }
}
