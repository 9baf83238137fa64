//! Bodies on their way through the shield, both directions: each ends in an error when its
//! sender stays silent for longer than the idle timeout (a cut body is never passed off as a
//! whole one), can say when it has been read to its end (the upstream's first-byte timeout
//! starts then, so that a long upload is not cut by it), and can keep its request counted in
//! flight on an upstream until it is dropped.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::HttpBody;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::oneshot;

use super::upstreams::InFlight;

/// What a watched body fails with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body whose sender stayed silent too long.
#[derive(Debug, thiserror::Error)]
#[error("nothing arrived for {0:?} within a body")]
pub struct IdleTimeout(pub Duration);

pin_project_lite::pin_project! {
    /// `B`, watched.
    pub struct Watched<B> {
        #[pin]
        inner: B,
        #[pin]
        silence: tokio::time::Sleep,
        idle: Duration,
        ended: Option<oneshot::Sender<()>>,
        in_flight: Option<InFlight>,
    }
}

impl<B> Watched<B> {
    /// `inner`, cut when silent for `idle`.
    pub fn new(inner: B, idle: Duration) -> Self {
        Self {
            inner,
            silence: tokio::time::sleep(idle),
            idle,
            ended: None,
            in_flight: None,
        }
    }

    /// The body, keeping `in_flight` until dropped.
    #[must_use]
    pub fn counting(mut self, in_flight: InFlight) -> Self {
        self.in_flight = Some(in_flight);
        self
    }

    /// The body, and what hears when it has been read to its end (or dropped before).
    pub fn telling_end(mut self) -> (Self, oneshot::Receiver<()>) {
        let (sender, receiver) = oneshot::channel();
        self.ended = Some(sender);
        (self, receiver)
    }
}

impl<B> HttpBody for Watched<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + *this.idle;
                this.silence.as_mut().reset(deadline);
                if frame.is_none() || this.inner.is_end_stream() {
                    if let Some(ended) = this.ended.take() {
                        let _ = ended.send(());
                    }
                }
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => match this.silence.poll(cx) {
                Poll::Ready(()) => {
                    tracing::warn!(idle = ?this.idle, "body idle: cut");
                    Poll::Ready(Some(Err(Box::new(IdleTimeout(*this.idle)))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test(start_paused = true)]
    async fn a_silent_body_is_cut_and_a_whole_one_tells_its_end() {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let stream = tokio_stream_of(receiver);
        let (body, mut ended) =
            Watched::new(StreamBody::new(stream), Duration::from_secs(5)).telling_end();
        let mut body = Box::pin(body);
        sender
            .send(Ok(Frame::data(Bytes::from_static(b"a"))))
            .await
            .expect("sent");
        let first = body.frame().await.expect("a frame").expect("data");
        assert_eq!(first.into_data().ok(), Some(Bytes::from_static(b"a")));
        assert!(ended.try_recv().is_err(), "not yet at its end");
        let cut = body.frame().await.expect("an error");
        assert!(cut.is_err(), "silent for longer than the idle timeout");
        drop(sender);

        let whole = Watched::new(
            http_body_util::Full::new(Bytes::from_static(b"xy")),
            Duration::from_secs(5),
        );
        let (whole, ended) = whole.telling_end();
        let collected = whole.collect().await.expect("read").to_bytes();
        assert_eq!(collected, Bytes::from_static(b"xy"));
        assert!(ended.await.is_ok(), "read to its end");
    }

    /// A stream of the frames `receiver` gets.
    fn tokio_stream_of(
        mut receiver: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
    ) -> impl futures::Stream<Item = Result<Frame<Bytes>, BoxError>> {
        futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
    }
}
