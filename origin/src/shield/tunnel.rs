//! Upgraded connections (RFC 9110 §7.8) to WebSocket (RFC 6455): a `GET` with `Connection:
//! upgrade` and `Upgrade: websocket` goes to the upstream with both fields; when the upstream
//! answers `101 Switching Protocols`, the client gets the `101` and both connections become one
//! tunnel of bytes, closed when either side closes or nothing passes for the idle timeout (as
//! nginx's `proxy_read_timeout` does for WebSocket).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::hygiene;
use super::upstreams::InFlight;
use crate::core::http::header_values::asks_websocket;

/// The upgrade a client asked for.
#[derive(Debug)]
pub struct Upgrade {
    /// The protocols of its `Upgrade` field.
    protocol: HeaderValue,
    /// The client's connection, once the `101` has gone.
    client: OnUpgrade,
}

impl Upgrade {
    /// The upgrade `request` asks for: a WebSocket, and nothing else (an `h2c` upgrade would
    /// open an HTTP/2 channel past the shield's header hygiene).
    pub fn take(request: &mut Request) -> Option<Self> {
        if !asks_websocket(request.method(), request.headers()) {
            return None;
        }
        let protocol = request.headers().get(header::UPGRADE)?.clone();
        let client = request.extensions_mut().remove::<OnUpgrade>()?;
        Some(Self { protocol, client })
    }

    /// Asks the upstream for the same upgrade.
    pub fn ask(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, self.protocol.clone());
    }

    /// The `101` for the client, the tunnel between both connections running behind it; it
    /// closes after `idle` without a byte either way.
    pub fn answer(
        self,
        mut response: Response<hyper::body::Incoming>,
        idle: Duration,
        in_flight: InFlight,
    ) -> Response {
        let upstream = hyper::upgrade::on(&mut response);
        let (mut parts, _) = response.into_parts();
        let protocol = parts.headers.get(header::UPGRADE).cloned();
        hygiene::remove_hop_by_hop(&mut parts.headers);
        hygiene::add_via(&mut parts.headers);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts
            .headers
            .insert(header::UPGRADE, protocol.unwrap_or(self.protocol));
        let client = self.client;
        tokio::spawn(async move {
            let _in_flight = in_flight;
            match tokio::try_join!(client, upstream) {
                Ok((client, upstream)) => relay(client, upstream, idle).await,
                Err(error) => tracing::info!(%error, "an upgraded connection did not open"),
            }
        });
        let mut answer = Response::new(Body::empty());
        *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *answer.headers_mut() = parts.headers;
        answer
    }
}

/// Copies bytes both ways until either side closes or `idle` passes without any.
async fn relay(
    client: hyper::upgrade::Upgraded,
    upstream: hyper::upgrade::Upgraded,
    idle: Duration,
) {
    let started = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut client = Active::new(TokioIo::new(client), &last, started);
    let mut upstream = Active::new(TokioIo::new(upstream), &last, started);
    let copying = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    let watching = async {
        loop {
            let quiet_since = started + Duration::from_millis(last.load(Ordering::Relaxed));
            let deadline = quiet_since + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    };
    tokio::select! {
        copied = copying => {
            if let Err(error) = copied {
                tracing::debug!(%error, "an upgraded connection closed");
            }
        }
        () = watching => tracing::debug!("an upgraded connection closed after its idle timeout"),
    }
}

/// A connection that notes when a byte last passed through it.
struct Active<T> {
    inner: T,
    last: Arc<AtomicU64>,
    started: Instant,
}

impl<T> Active<T> {
    fn new(inner: T, last: &Arc<AtomicU64>, started: Instant) -> Self {
        Self {
            inner,
            last: Arc::clone(last),
            started,
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Active<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Active<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
