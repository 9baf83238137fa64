//! The system the campaign breaks, every part of it its own and on loopback: a Redis, a
//! PostgreSQL (a data folder of its own, started with `pg_ctl`), three origin processes on
//! them, a delaying proxy in front of each origin, and the edge in workerd (`wrangler dev`)
//! whose `ORIGIN_URL` lists the three proxies. Each part can be stopped, killed and started
//! again on the same port.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::proxy::DelayProxy;
use super::redis::{Redis, Shape as RedisShape};

/// Why the system could not be set up or driven.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A program could not be started.
    #[error("{what}: {error}")]
    Spawn {
        /// What was started.
        what: String,
        /// Why it did not start.
        error: std::io::Error,
    },
    /// A program ran and failed.
    #[error("{what} failed: {output}")]
    Failed {
        /// What ran.
        what: String,
        /// What it said.
        output: String,
    },
    /// A service did not become ready in time.
    #[error("{0} did not become ready; see its log in the work folder")]
    NotReady(String),
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_or(0, |address| address.port())
}

/// Waits until `port` accepts connections.
pub async fn wait_for_port(port: u16, what: &str, limit: Duration) -> Result<(), ServiceError> {
    let deadline = Instant::now() + limit;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            return Err(ServiceError::NotReady(what.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Sends `signal` (`-STOP`, `-CONT`, `-KILL`, `-TERM`) to `pid`.
pub async fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .await;
}

/// How to start one process again and again: program, arguments, environment, log file.
#[derive(Debug, Clone)]
pub struct Spec {
    /// A short name, for messages and the log file.
    pub name: String,
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables set on top of the campaign's environment.
    pub env: Vec<(String, String)>,
    /// The port it listens on.
    pub port: u16,
    /// Where it runs (the campaign's own folder when `None`).
    pub cwd: Option<PathBuf>,
}

/// A process started from a [`Spec`], killed when dropped.
#[derive(Debug)]
pub struct Process {
    spec: Spec,
    logs: PathBuf,
    child: Option<Child>,
}

impl Process {
    /// Starts `spec`, its output appended to `<logs>/<name>.log`, and waits for its port.
    pub async fn start(spec: Spec, logs: &Path) -> Result<Self, ServiceError> {
        let mut process = Self {
            spec,
            logs: logs.to_owned(),
            child: None,
        };
        process.launch().await?;
        Ok(process)
    }

    async fn launch(&mut self) -> Result<(), ServiceError> {
        let spawn_error = |error| ServiceError::Spawn {
            what: self.spec.name.clone(),
            error,
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{}.log", self.spec.name)))
            .map_err(spawn_error)?;
        let mut command = Command::new(&self.spec.program);
        command
            .args(&self.spec.args)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(spawn_error)?)
            .stderr(log)
            .kill_on_drop(true)
            .process_group(0);
        if let Some(cwd) = &self.spec.cwd {
            command.current_dir(cwd);
        }
        self.child = Some(command.spawn().map_err(spawn_error)?);
        wait_for_port(self.spec.port, &self.spec.name, Duration::from_secs(180)).await
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.spec.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.spec.port
    }

    /// Sends it `signal` (its whole process group: `wrangler` runs workerd as a child).
    pub async fn signal(&self, signal_name: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args([signal_name, "--", &format!("-{pid}")])
                .status()
                .await;
        }
    }

    /// Sends it `signal_name` and waits until it has exited.
    pub async fn stop_with(&mut self, signal_name: &str) {
        self.signal(signal_name).await;
        if let Some(mut child) = self.child.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
            let _ = child.kill().await;
        }
    }

    /// Starts it again, same port, same settings.
    pub async fn restart(&mut self) -> Result<(), ServiceError> {
        self.stop_with("-KILL").await;
        self.launch().await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

/// A PostgreSQL server of the campaign's own, driven with `pg_ctl` (as the `postgres` user when
/// the campaign runs as root, since PostgreSQL refuses root).
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    /// Its loopback port.
    pub port: u16,
}

impl Postgres {
    /// Makes a data folder under `folder` and starts the server.
    pub async fn start(folder: &Path) -> Result<Self, ServiceError> {
        let bin = newest_postgres()?;
        let data = folder.join("postgres");
        std::fs::create_dir_all(folder).map_err(|error| ServiceError::Spawn {
            what: "the PostgreSQL folder".to_owned(),
            error,
        })?;
        hand_to_postgres(folder).await?;
        let server = Self {
            bin,
            data,
            port: free_port(),
        };
        let data_arg = server.data.display().to_string();
        server
            .pg(
                "initdb",
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
            .await?;
        server.ctl("start").await?;
        server.psql("CREATE DATABASE rampart").await?;
        Ok(server)
    }

    /// `postgres://postgres@127.0.0.1:<port>/rampart`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/rampart", self.port)
    }

    /// Stops it at once (`-m fast`) and starts it again; returns when it accepts queries.
    pub async fn restart(&self) -> Result<(), ServiceError> {
        self.ctl("restart").await
    }

    /// Closes every connection to the `rampart` database from the server's side.
    pub async fn terminate_connections(&self) -> Result<String, ServiceError> {
        self.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = 'rampart' AND pid <> pg_backend_pid()",
        )
        .await
    }

    /// Holds an exclusive lock on `table` for `hold`, in the background: every query of it
    /// waits (a slow database, as a long migration makes it).
    pub fn lock_table(&self, table: &str, hold: Duration) -> tokio::task::JoinHandle<()> {
        let sql = format!(
            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep({}); COMMIT;",
            hold.as_secs_f64()
        );
        let (psql, port) = (self.bin.join("psql"), self.port.to_string());
        tokio::spawn(async move {
            let _ = Command::new(psql)
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "postgres",
                    "-d",
                    "rampart",
                ])
                .args(["-q", "-c", &sql])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
        })
    }

    /// The one-column answers of `sql` on the `rampart` database (or `postgres` before it
    /// exists), one per line.
    pub async fn psql(&self, sql: &str) -> Result<String, ServiceError> {
        let database = if sql.starts_with("CREATE DATABASE") {
            "postgres"
        } else {
            "rampart"
        };
        let output = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", database, "-At", "-c", sql])
            .output()
            .await
            .map_err(|error| ServiceError::Spawn {
                what: "psql".to_owned(),
                error,
            })?;
        finished("psql", &output).map(|()| String::from_utf8_lossy(&output.stdout).into())
    }

    async fn ctl(&self, action: &str) -> Result<(), ServiceError> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off",
            self.port
        );
        let data = self.data.display().to_string();
        let log = self.data.with_extension("log").display().to_string();
        self.pg(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-m", "fast", "-w", action,
            ],
        )
        .await
    }

    async fn pg(&self, program: &str, args: &[&str]) -> Result<(), ServiceError> {
        let program = self.bin.join(program).display().to_string();
        run_as_postgres(&program, args).await
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().map(str::to_owned));
        if let Some(pid) = pid {
            let _ = std::process::Command::new("kill")
                .args(["-QUIT", &pid])
                .status();
        }
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|meta| std::os::unix::fs::MetadataExt::uid(&meta) == 0)
        .unwrap_or(false)
}

/// Gives `folder` to the `postgres` user when the campaign runs as root.
async fn hand_to_postgres(folder: &Path) -> Result<(), ServiceError> {
    if !is_root() {
        return Ok(());
    }
    let output = Command::new("chown")
        .args(["-R", "postgres"])
        .arg(folder)
        .output()
        .await
        .map_err(|error| ServiceError::Spawn {
            what: "chown".to_owned(),
            error,
        })?;
    finished("chown", &output)
}

/// Runs `program` (as `postgres` when root) and waits for it.
async fn run_as_postgres(program: &str, args: &[&str]) -> Result<(), ServiceError> {
    let mut command = if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", program]);
        command
    } else {
        Command::new(program)
    };
    let output = command
        .args(args)
        .output()
        .await
        .map_err(|error| ServiceError::Spawn {
            what: program.to_owned(),
            error,
        })?;
    finished(program, &output)
}

fn finished(what: &str, output: &std::process::Output) -> Result<(), ServiceError> {
    if output.status.success() {
        return Ok(());
    }
    Err(ServiceError::Failed {
        what: what.to_owned(),
        output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

/// The newest PostgreSQL server binaries on the machine (Debian's layout).
fn newest_postgres() -> Result<PathBuf, ServiceError> {
    let missing = || ServiceError::Failed {
        what: "finding PostgreSQL".to_owned(),
        output: "no /usr/lib/postgresql/<version>/bin/pg_ctl: install postgresql".to_owned(),
    };
    let versions = std::fs::read_dir("/usr/lib/postgresql").map_err(|_| missing())?;
    versions
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
        .ok_or_else(missing)
}

/// Everything the campaign runs, and how each part is reached.
#[derive(Debug)]
pub struct System {
    /// Redis: one node or a cluster.
    pub redis: Redis,
    /// The PostgreSQL server.
    pub postgres: Postgres,
    /// The three origins.
    pub origins: Vec<Process>,
    /// The proxies between the edge and each origin.
    pub proxies: Vec<DelayProxy>,
    /// The edge in workerd.
    pub edge: Process,
    /// The cluster node a fault killed, to be started again.
    pub killed_primary: Option<usize>,
}

/// Where the campaign's programs are.
#[derive(Debug, Clone)]
pub struct Programs {
    /// The origin binary (release).
    pub origin: PathBuf,
    /// `node_modules/.bin/wrangler`, run in `repo`.
    pub wrangler: PathBuf,
    /// The repository (where `wrangler.toml` is).
    pub repo: PathBuf,
}

impl System {
    /// Starts every part, Redis in `shape`, logs in `work`.
    pub async fn start(
        programs: &Programs,
        work: &Path,
        shape: RedisShape,
    ) -> Result<Self, ServiceError> {
        let redis = Redis::start(shape, work).await?;
        let postgres = Postgres::start(&work.join("db")).await?;
        let mut origins = Vec::new();
        for n in 1..=3 {
            let spec = origin_spec(n, &programs.origin, &redis.url(), &postgres.url());
            origins.push(Process::start(spec, work).await?);
        }
        let mut proxies = Vec::new();
        for origin in &origins {
            proxies.push(DelayProxy::start(origin.spec.port).await?);
        }
        let list: Vec<String> = proxies.iter().map(DelayProxy::url).collect();
        let edge = Process::start(edge_spec(programs, work, &list.join(",")), work).await?;
        Ok(Self {
            redis,
            postgres,
            origins,
            proxies,
            edge,
            killed_primary: None,
        })
    }
}

fn origin_spec(n: usize, binary: &Path, redis: &str, database: &str) -> Spec {
    let port = free_port();
    let env = [
        ("ORIGIN_ADDR", format!("127.0.0.1:{port}")),
        ("DATABASE_URL", database.to_owned()),
        ("REDIS_URL", redis.to_owned()),
        ("REDIS_KEY_PREFIX", "chaos:".to_owned()),
        ("DEMO_DATA", "small".to_owned()),
        ("CACHE_WARM_PATHS", String::new()),
        // All traffic comes from loopback: one client as far as budgets go.
        ("RATE_LIMIT_ENABLED", "false".to_owned()),
        ("SHUTDOWN_TIMEOUT", "10000".to_owned()),
        // A drained origin keeps answering 3 s, announcing it, so the edge moves away first.
        ("SHUTDOWN_DELAY_MS", "3000".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    Spec {
        name: format!("origin-{n}"),
        program: binary.to_owned(),
        args: Vec::new(),
        env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        port,
        cwd: None,
    }
}

fn edge_spec(programs: &Programs, work: &Path, origins: &str) -> Spec {
    let port = free_port();
    let args = [
        "dev".to_owned(),
        "--ip".to_owned(),
        "127.0.0.1".to_owned(),
        "--port".to_owned(),
        port.to_string(),
        "--inspector-port".to_owned(),
        free_port().to_string(),
        "--var".to_owned(),
        format!("ORIGIN_URL:{origins}"),
        "--persist-to".to_owned(),
        work.join("edge-state").display().to_string(),
        "--show-interactive-dev-session=false".to_owned(),
        "--log-level".to_owned(),
        "warn".to_owned(),
    ];
    Spec {
        name: "edge".to_owned(),
        program: programs.wrangler.clone(),
        args: args.to_vec(),
        env: [
            ("WRANGLER_SEND_METRICS", "false"),
            ("CLOUDFLARE_CF_FETCH_ENABLED", "false"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec(),
        port,
        cwd: Some(programs.repo.clone()),
    }
}
