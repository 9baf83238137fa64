//! `origin`: runs the Rampart origin server.
//!
//! Configuration comes from the environment (see README, "Configuration"); a bad value exits
//! with status 2 and a message naming the variable.

use std::process::ExitCode;

use origin::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

// A request allocates many small, short-lived objects; mimalloc serves them faster than glibc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("origin: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    init_tracing(config.log_format);
    let listener = match tokio::net::TcpListener::bind(config.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(addr = %config.addr, %error, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map_or_else(|_| config.addr.to_string(), |a| a.to_string());
    tracing::info!("origin listening on http://{addr}");
    match origin::server::run(listener, config, origin::core::shutdown::signal()).await {
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

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}
