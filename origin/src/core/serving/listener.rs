//! Accepts TCP connections and serves HTTP/1.1 and HTTP/2 (cleartext) on them with explicit
//! limits: request head size (431 beyond it), the time a client may take to send its head
//! (slow-loris defence), and a bounded drain on shutdown.
//!
//! Every request carries the peer address as axum's [`ConnectInfo`], which the rate limiter's
//! client identity starts from. Open connections are counted for `active_connections`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use crate::core::service::Inner;

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Largest request head (request line and headers) accepted; larger gets 431.
    /// hyper needs at least 8 KiB.
    pub max_header_bytes: usize,
    /// How long a client may take to send a request head before the connection is closed.
    pub header_read_timeout: Duration,
    /// How long in-flight requests may run after a shutdown signal.
    pub shutdown_timeout: Duration,
}

/// The number of open client connections, shared with the metrics.
#[derive(Debug, Clone, Default)]
pub struct OpenConnections(Arc<AtomicI64>);

impl OpenConnections {
    /// Connections open now.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    fn open(&self) -> ConnectionGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }
}

/// Counts a connection as open until dropped.
struct ConnectionGuard(OpenConnections);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every connection finished its in-flight requests.
    Completely,
    /// The shutdown timeout passed with connections still busy; they were dropped.
    TimedOut {
        /// Connections still open when time ran out.
        remaining: usize,
    },
}

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting, lets
/// in-flight requests finish (up to the shutdown timeout) and returns how the drain ended.
pub async fn serve(
    listener: TcpListener,
    app: impl Inner,
    limits: ConnectionLimits,
    open: OpenConnections,
    shutdown: impl Future<Output = ()>,
) -> Drained {
    let builder = builder(limits);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    pause_after(&error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = serve_connection(&builder, stream, peer, app.clone());
        let watched = graceful.watch(connection.into_owned());
        let guard = open.open();
        tokio::spawn(async move {
            if let Err(error) = watched.await {
                tracing::debug!(%peer, error = %error, "connection ended with an error");
            }
            drop(guard);
        });
    }
    drop(listener);
    let remaining = graceful.count();
    tracing::info!(connections = remaining, "draining in-flight requests");
    match tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown()).await {
        Ok(()) => Drained::Completely,
        Err(_) => Drained::TimedOut {
            remaining: usize::try_from(open.get()).unwrap_or(0),
        },
    }
}

fn builder(limits: ConnectionLimits) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

fn serve_connection(
    builder: &Builder<TokioExecutor>,
    stream: TcpStream,
    peer: SocketAddr,
    app: impl Inner,
) -> hyper_util::server::conn::auto::UpgradeableConnection<
    '_,
    TokioIo<TcpStream>,
    impl hyper::service::Service<
        hyper::Request<Incoming>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send,
    >,
    TokioExecutor,
> {
    // Small responses go out as soon as they are written.
    let _ = stream.set_nodelay(true);
    let service = app.map_request(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
}

/// Accept errors that concern one connection are retried at once; others (out of file
/// descriptors) pause the loop for a second, so that it does not spin.
async fn pause_after(error: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accept failed; pausing for a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
