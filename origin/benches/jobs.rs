//! Throughput of the job system against a bare Redis Streams loop on the same Redis, each run
//! once per round (the order reversed in even rounds), so that both meet the same machine:
//!
//! - **Jobs**: `BENCH_JOBS` no-op jobs enqueued with [`Jobs::enqueue_all`] in batches of
//!   `BENCH_BATCH`, run by one instance's workers on the notifications queue (its default
//!   concurrency, 4), timed from the first enqueue until every job is recorded completed.
//! - **Bare loop**: the same number of `XADD`s, pipelined in the same batches, one
//!   `XGROUP CREATE`, and a consumer shaped like the runner with nothing else: one reader on a
//!   connection of its own, `XREADGROUP … COUNT <free slots, at most 4> BLOCK 1000`, each entry
//!   then acknowledged and deleted (`XACK` + `XDEL` in one round trip, as the job system
//!   deletes acknowledged entries) by a task holding one of 4 slots; timed from the first
//!   `XADD` until the last entry is acknowledged.
//!
//! The figure is the median of the per-round ratios Jobs / bare loop (the target is ≥ 0.5×).
//! Beside each rate: Redis's CPU time per job (from `INFO cpu`) and this process's, and for the
//! last round the Redis commands each job cost (`INFO commandstats`); both are server-wide, so
//! another client of the same Redis shows up in them.
//!
//! Run: `cargo bench -p origin --bench jobs` (part of `scripts/bench-jobs.sh`).
//!
//!   BENCH_JOBS        jobs per run       (default 20000)
//!   BENCH_BATCH       jobs per enqueue   (default 100)
//!   BENCH_ROUNDS      rounds             (default 5)
//!   REDIS_URL         the Redis          (default redis://127.0.0.1:6379)
//!   BENCH_KEY_PREFIX  where its keys live, deleted after each run (default `bench-jobs-<random>:`)

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use origin::core::dependencies::redis::RedisTarget;
use origin::core::jobs::{Job, JobError, JobSettings, Jobs, NewJob, Queue, Retention};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use serde_json::json;
use tokio::sync::{Notify, Semaphore};

// The origin's allocator, so that both peers allocate as the origin does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The queue the jobs run on; its default concurrency is 4.
const QUEUE: Queue = Queue::Notifications;
/// The bare loop's slots: the queue's default concurrency.
const CONCURRENCY: usize = 4;
/// The consumer group, as the job system names it.
const GROUP: &str = "workers";
const KIND: &str = "noop";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// What one run of a peer measured.
struct Run {
    elapsed: Duration,
    /// Redis's CPU time over the run (server-wide).
    redis_cpu: Duration,
    /// This process's CPU time over the run.
    client_cpu: Duration,
    /// Calls and µs per Redis command over the run (server-wide).
    commands: HashMap<String, (u64, u64)>,
}

impl Run {
    fn rate(&self, jobs: usize) -> f64 {
        jobs as f64 / self.elapsed.as_secs_f64()
    }
}

/// Redis's CPU time and per-command calls and µs so far.
struct RedisCounters {
    cpu: Duration,
    commands: HashMap<String, (u64, u64)>,
}

async fn redis_counters(conn: &mut MultiplexedConnection) -> RedisCounters {
    let text: String = redis::cmd("INFO")
        .arg("cpu")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO");
    let mut cpu = 0.0;
    let mut commands = HashMap::new();
    for line in text.lines() {
        if let Some(value) = line
            .strip_prefix("used_cpu_sys:")
            .or_else(|| line.strip_prefix("used_cpu_user:"))
        {
            cpu += value.trim().parse::<f64>().unwrap_or(0.0);
        } else if let Some((name, stats)) = line
            .strip_prefix("cmdstat_")
            .and_then(|rest| rest.split_once(':'))
        {
            let field = |key: &str| {
                stats
                    .split(',')
                    .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            commands.insert(name.to_owned(), (field("calls"), field("usec")));
        }
    }
    RedisCounters {
        cpu: Duration::from_secs_f64(cpu),
        commands,
    }
}

/// This process's CPU time (user + system), from `/proc/self/stat` (in 1/100 s on Linux).
fn client_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is the first, utime the 12th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Runs `peer`, measuring Redis's and this process's CPU and Redis's commands around it.
async fn measured(
    info: &mut MultiplexedConnection,
    peer: impl std::future::Future<Output = Duration>,
) -> Run {
    let before = redis_counters(info).await;
    let cpu_before = client_cpu();
    let elapsed = peer.await;
    let client_cpu = client_cpu().saturating_sub(cpu_before);
    let after = redis_counters(info).await;
    let commands = after
        .commands
        .iter()
        .map(|(name, (calls, usec))| {
            let (calls0, usec0) = before.commands.get(name).copied().unwrap_or((0, 0));
            (
                name.clone(),
                (calls.saturating_sub(calls0), usec.saturating_sub(usec0)),
            )
        })
        .filter(|(_, (calls, _))| *calls > 0)
        .collect();
    Run {
        elapsed,
        redis_cpu: after.cpu.saturating_sub(before.cpu),
        client_cpu,
        commands,
    }
}

/// Deletes every key under `prefix`.
async fn delete_keys(conn: &mut MultiplexedConnection, prefix: &str) {
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("SCAN");
        if !keys.is_empty() {
            let _: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(conn)
                .await
                .expect("UNLINK");
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// `jobs` no-op jobs through [`Jobs`] under `prefix`: enqueued in batches of `batch` while one
/// instance's workers run them; returns the time until all are recorded completed.
async fn run_jobs(url: &str, prefix: &str, jobs: usize, batch: usize) -> Duration {
    let settings = JobSettings {
        // Every completed record is kept for the count that ends the run.
        retention: Retention {
            keep_for: Duration::from_secs(3600),
            keep_count: jobs as u64 + 1,
        },
        ..JobSettings::default()
    };
    assert_eq!(settings.concurrency(QUEUE), CONCURRENCY);
    let system = Jobs::on_redis(
        &RedisTarget::node(url).expect("a Redis URL"),
        prefix,
        Duration::from_secs(5),
        settings,
    )
    .expect("a Redis URL");
    let ran = Arc::new(AtomicUsize::new(0));
    let all_ran = Arc::new(Notify::new());
    {
        let (ran, all_ran) = (Arc::clone(&ran), Arc::clone(&all_ran));
        system.register(KIND, move |_job: Job| {
            if ran.fetch_add(1, Ordering::Relaxed) + 1 == jobs {
                all_ran.notify_one();
            }
            async { Ok::<(), JobError>(()) }
        });
    }
    let batches: Vec<Vec<NewJob>> = (0..jobs)
        .collect::<Vec<_>>()
        .chunks(batch)
        .map(|chunk| {
            chunk
                .iter()
                .map(|n| NewJob::new(QUEUE, KIND, json!({ "n": n })))
                .collect()
        })
        .collect();
    system.store().prepare(QUEUE).await.expect("the queue");
    let workers = system.start(Vec::new());
    let started = Instant::now();
    for jobs in &batches {
        system.enqueue_all(jobs).await.expect("enqueued");
    }
    all_ran.notified().await;
    // The last handlers have returned; wait for their outcomes to be recorded.
    while system
        .store()
        .counts(QUEUE)
        .await
        .expect("counts")
        .completed
        < jobs as u64
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    workers.stop(Duration::from_secs(5)).await;
    elapsed
}

/// Entry ids of an `XREADGROUP` reply (RESP2 arrays or RESP3 maps; nil when it timed out).
fn entry_ids(reply: &Value) -> Vec<String> {
    let entries_of = |entries: &Value| -> Vec<String> {
        let Value::Array(entries) = entries else {
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|entry| match entry {
                Value::Array(parts) => redis::from_redis_value_ref(parts.first()?).ok(),
                _ => None,
            })
            .collect()
    };
    match reply {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|stream| match stream {
                Value::Array(pair) => pair.get(1).map(entries_of),
                _ => None,
            })
            .flatten()
            .collect(),
        Value::Map(streams) => streams.iter().flat_map(|(_, e)| entries_of(e)).collect(),
        _ => Vec::new(),
    }
}

/// The bare loop on `stream`: `jobs` entries added in pipelines of `batch`, read and
/// acknowledged with 4 slots; returns the time until the last is acknowledged.
async fn run_bare(client: &redis::Client, stream: &str, jobs: usize, batch: usize) -> Duration {
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    // The reader blocks up to 1 s: its answer may take longer than the default bound.
    let reader_config =
        AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(5)));
    let mut reader = client
        .get_multiplexed_async_connection_with_config(&reader_config)
        .await
        .expect("reader connection");
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .expect("XGROUP CREATE");
    let pipes: Vec<redis::Pipeline> = (0..jobs)
        .collect::<Vec<_>>()
        .chunks(batch)
        .map(|chunk| {
            let mut pipe = redis::pipe();
            for n in chunk {
                pipe.cmd("XADD")
                    .arg(stream)
                    .arg("*")
                    .arg("id")
                    .arg(format!("bare-{n:016x}"))
                    .ignore();
            }
            pipe
        })
        .collect();
    let acked = Arc::new(AtomicUsize::new(0));
    let all_acked = Arc::new(Notify::new());
    let consumer = {
        let (acked, all_acked) = (Arc::clone(&acked), Arc::clone(&all_acked));
        let (conn, stream) = (conn.clone(), stream.to_owned());
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(CONCURRENCY));
            loop {
                let first = Arc::clone(&slots)
                    .acquire_owned()
                    .await
                    .expect("open semaphore");
                let free = 1 + slots.available_permits();
                let reply: Value = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(GROUP)
                    .arg("bare")
                    .arg("COUNT")
                    .arg(free)
                    .arg("BLOCK")
                    .arg(1000)
                    .arg("STREAMS")
                    .arg(&stream)
                    .arg(">")
                    .query_async(&mut reader)
                    .await
                    .expect("XREADGROUP");
                let mut permits = std::iter::once(first).chain(std::iter::from_fn(|| {
                    Arc::clone(&slots).try_acquire_owned().ok()
                }));
                for id in entry_ids(&reply) {
                    let permit = permits.next();
                    let (mut conn, stream) = (conn.clone(), stream.clone());
                    let (acked, all_acked) = (Arc::clone(&acked), Arc::clone(&all_acked));
                    tokio::spawn(async move {
                        let mut pipe = redis::pipe();
                        pipe.cmd("XACK").arg(&stream).arg(GROUP).arg(&id).ignore();
                        pipe.cmd("XDEL").arg(&stream).arg(&id).ignore();
                        let () = pipe.query_async(&mut conn).await.expect("XACK + XDEL");
                        if acked.fetch_add(1, Ordering::Relaxed) + 1 == jobs {
                            all_acked.notify_one();
                        }
                        drop(permit);
                    });
                }
            }
        })
    };
    let started = Instant::now();
    for pipe in &pipes {
        let () = pipe.query_async(&mut conn).await.expect("XADD");
    }
    all_acked.notified().await;
    let elapsed = started.elapsed();
    consumer.abort();
    elapsed
}

/// The median (the mean of the middle two when even).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The commands that cost Redis the most time in `run`, per job.
fn profile(run: &Run, jobs: usize) -> String {
    let mut commands: Vec<_> = run.commands.iter().collect();
    commands.sort_by_key(|(_, (_, usec))| std::cmp::Reverse(*usec));
    commands
        .iter()
        .take(8)
        .map(|(name, (calls, usec))| {
            format!(
                "{name} {:.2} calls {:.1} us",
                *calls as f64 / jobs as f64,
                *usec as f64 / jobs as f64
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn bench(url: &str, prefix: &str, jobs: usize, batch: usize, rounds: usize) {
    let client = redis::Client::open(url).expect("a Redis URL");
    let mut info = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let per_job = |d: Duration| d.as_secs_f64() * 1e6 / jobs as f64;
    println!(
        "queue throughput: {jobs} no-op jobs per run, enqueued in batches of {batch}; Jobs: one instance's \
         workers on the {QUEUE} queue (concurrency {CONCURRENCY}); bare loop: XADD pipelined by {batch}, one \
         reader XREADGROUP COUNT <= {CONCURRENCY} BLOCK 1000, XACK + XDEL per entry in {CONCURRENCY} slots"
    );
    // Warm-up: connections, scripts loaded, allocator and caches; not counted.
    let warm = (jobs / 10).max(batch);
    run_jobs(url, &format!("{prefix}warm:"), warm, batch).await;
    run_bare(&client, &format!("{prefix}warm:bare"), warm, batch).await;
    delete_keys(&mut info, prefix).await;

    let mut ratios = Vec::new();
    let mut rates = (Vec::new(), Vec::new());
    let mut last = None;
    for round in 1..=rounds {
        let jobs_prefix = format!("{prefix}r{round}:");
        let stream = format!("{prefix}r{round}:bare");
        let (jobs_run, bare_run) = if round % 2 == 1 {
            let a = measured(&mut info, run_jobs(url, &jobs_prefix, jobs, batch)).await;
            delete_keys(&mut info, &jobs_prefix).await;
            let b = measured(&mut info, run_bare(&client, &stream, jobs, batch)).await;
            (a, b)
        } else {
            let b = measured(&mut info, run_bare(&client, &stream, jobs, batch)).await;
            delete_keys(&mut info, &stream).await;
            let a = measured(&mut info, run_jobs(url, &jobs_prefix, jobs, batch)).await;
            (a, b)
        };
        delete_keys(&mut info, prefix).await;
        let (a, b) = (jobs_run.rate(jobs), bare_run.rate(jobs));
        println!(
            "  round {round} ({} first): Jobs {a:>7.0} jobs/s, bare loop {b:>7.0} entries/s, ratio {:.3}; \
             Redis CPU per job {:.1} / {:.1} us, this process's {:.1} / {:.1} us",
            if round % 2 == 1 { "Jobs" } else { "bare loop" },
            a / b,
            per_job(jobs_run.redis_cpu),
            per_job(bare_run.redis_cpu),
            per_job(jobs_run.client_cpu),
            per_job(bare_run.client_cpu),
        );
        ratios.push(a / b);
        rates.0.push(a);
        rates.1.push(b);
        last = Some((jobs_run, bare_run));
    }
    if let Some((jobs_run, bare_run)) = last {
        println!(
            "  Redis commands per job, last round (server-wide; calls inside scripts count too):"
        );
        println!("    Jobs:      {}", profile(&jobs_run, jobs));
        println!("    bare loop: {}", profile(&bare_run, jobs));
    }
    println!(
        "median: Jobs {:.0} jobs/s, bare loop {:.0} entries/s; Jobs / bare loop {:.3} (median of {rounds} per-round ratios; target >= 0.5)",
        median(rates.0),
        median(rates.1),
        median(ratios)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs benches without it.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("jobs: a benchmark; run it with `cargo bench -p origin --bench jobs`");
        return;
    }
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let jobs = env_number("BENCH_JOBS", 20_000);
    let batch = env_number("BENCH_BATCH", 100);
    let rounds = env_number("BENCH_ROUNDS", 5);
    let prefix = std::env::var("BENCH_KEY_PREFIX")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| format!("bench-jobs-{:08x}:", fastrand::u32(..)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench(&url, &prefix, jobs, batch, rounds));
}
