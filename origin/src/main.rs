//! `origin`: runs the Rampart origin server.
//!
//! Configuration comes from the environment (see README, "Configuration"); a bad value exits
//! with status 2 and a message naming the variable, the value and what it accepts.

use std::process::ExitCode;

use origin::config::Config;
use origin::core::observability::telemetry;

// A request allocates many small, short-lived objects; mimalloc serves them faster than glibc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("origin: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
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
    match origin::server::run(listener, config, origin::core::serving::shutdown::signal()).await {
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
