//! `origin`: runs the Rampart origin server, serving its own application, or as a shield in
//! front of another one (`origin shield --upstream http://127.0.0.1:3000`, or `UPSTREAM_URL`).
//!
//! Configuration comes from the environment (see README, "Configuration"); a bad value exits
//! with status 2 and a message naming the variable, the value and what it accepts.

use std::process::ExitCode;

use origin::config::Config;
use origin::core::observability::telemetry;

// A request allocates many small, short-lived objects; mimalloc serves them faster than glibc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
usage: origin                                        serve the task tracker
       origin shield --upstream <http://host:port>…  proxy to other applications
(settings come from the environment; see the README's configuration table)";

fn main() -> ExitCode {
    let mut config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("origin: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    match command_line(std::env::args().skip(1)) {
        Ok(Command::Serve) => {}
        Ok(Command::Shield(upstreams)) => {
            if !upstreams.is_empty() {
                config.shield.upstreams = upstreams;
            }
            if !config.shield.enabled() {
                eprintln!("origin: shield needs --upstream or UPSTREAM_URL\n{USAGE}");
                return ExitCode::from(2);
            }
        }
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("origin: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    // Before the runtime: the trace exporter's HTTP client must not start inside it.
    let telemetry = match telemetry::init(config.listener.log_format) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("origin: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("origin: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(serve(config));
    drop(runtime);
    telemetry.shutdown();
    code
}

async fn serve(config: Config) -> ExitCode {
    let addr = config.listener.addr;
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%addr, %error, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let bound = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    tracing::info!("origin listening on http://{bound}");
    let shutdown = origin::core::serving::shutdown::signal();
    let served = if config.shield.enabled() {
        origin::shield::run(listener, config, shutdown).await
    } else {
        origin::server::run(listener, config, shutdown).await
    };
    match served {
        Ok(()) => {
            tracing::info!("origin stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// What the command line asks for.
enum Command {
    /// Serve the application (no arguments).
    Serve,
    /// Run as a shield, in front of these upstreams (empty: `UPSTREAM_URL`'s).
    Shield(Vec<axum::http::Uri>),
    /// Print the usage.
    Help,
}

fn command_line(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let Some(first) = args.next() else {
        return Ok(Command::Serve);
    };
    match first.as_str() {
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "shield" => {}
        other => return Err(format!("unknown command {other:?}")),
    }
    let mut upstreams = Vec::new();
    while let Some(arg) = args.next() {
        let value = match arg.split_once('=') {
            Some(("--upstream", value)) => value.to_owned(),
            None if arg == "--upstream" => args
                .next()
                .ok_or("--upstream needs a URL such as http://127.0.0.1:3000")?,
            _ if arg == "-h" || arg == "--help" => return Ok(Command::Help),
            _ => return Err(format!("unknown option {arg:?}")),
        };
        upstreams.extend(origin::config::shield::parse_upstreams(&value)?);
    }
    Ok(Command::Shield(upstreams))
}
