//! A TCP proxy between the edge and one origin that can make the network slow: while a delay is
//! set, every chunk of bytes waits that long before it is passed on, in both directions (as a
//! long or congested path between the tiers would). No root changes to the machine are needed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::services::ServiceError;

/// A proxy on a loopback port, forwarding to an origin's port.
#[derive(Debug)]
pub struct DelayProxy {
    port: u16,
    delay_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl DelayProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: u16) -> Result<Self, ServiceError> {
        let listener =
            TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|error| ServiceError::Spawn {
                    what: "the delaying proxy".to_owned(),
                    error,
                })?;
        let port = listener.local_addr().map_or(0, |address| address.port());
        let delay_ms = Arc::new(AtomicU64::new(0));
        let delay = Arc::clone(&delay_ms);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let delay = Arc::clone(&delay);
                tokio::spawn(async move {
                    if let Ok(origin) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        relay(client, origin, delay).await;
                    }
                });
            }
        });
        Ok(Self {
            port,
            delay_ms,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Delays every chunk by `delay` from now on (zero: none).
    pub fn set_delay(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_ms.store(millis, Ordering::Relaxed);
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies bytes both ways until either side closes; a closed side closes the other.
async fn relay(client: TcpStream, origin: TcpStream, delay: Arc<AtomicU64>) {
    let _ = client.set_nodelay(true);
    let _ = origin.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (origin_read, origin_write) = origin.into_split();
    let up = pass(client_read, origin_write, Arc::clone(&delay));
    let down = pass(origin_read, client_write, delay);
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

async fn pass(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Arc<AtomicU64>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let wait = delay.load(Ordering::Relaxed);
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
