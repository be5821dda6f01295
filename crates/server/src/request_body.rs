//! Request bodies: bounded in time while a handler reads them, and read to the end after it answers.
//!
//! A handler that answers early (401, 404, a refused chunk) leaves the rest of the body unread. Closing
//! the connection then would make the kernel reset it under a client still sending, and keeping it
//! open would make the next request on it start inside the old body. So, as Go's server does, up to
//! 256 KiB of what is left is read and dropped before the answer goes out; a longer body gets the
//! answer with `Connection: close`, so the client knows not to reuse the connection.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Body as _, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::AppState;

/// Most of an unread body read after the answer, so the connection can carry the next request.
const DRAIN_LIMIT: usize = 256 * 1024;
/// Longest time spent reading it.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Where a body the handler did not finish goes when the handler drops it.
type Leftover = Arc<Mutex<Option<Body>>>;

/// The middleware: watches the body while the handler runs, then finishes it.
pub async fn finish(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let leftover = Leftover::default();
    let limit = state.options.idle_timeout;
    let request = request.map(|body| Body::new(Watched::new(body, limit, leftover.clone())));
    let mut response = next.run(request).await;
    let unread = leftover.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(body) = unread
        && !drain(body).await
    {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads what is left of `body` and drops it; true if it ended within the limits.
async fn drain(body: Body) -> bool {
    let mut stream = body.into_data_stream();
    let read_all = async {
        let mut read = 0;
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            match chunk {
                Ok(chunk) => read += chunk.len(),
                Err(_) => return false,
            }
            if read > DRAIN_LIMIT {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, read_all)
        .await
        .unwrap_or(false)
}

/// A request body that fails when the client sends nothing for `limit`, and hands itself to
/// `leftover` if dropped before its end.
struct Watched {
    inner: Option<Body>,
    leftover: Leftover,
    limit: Duration,
    /// When a frame last arrived.
    last: Instant,
    /// Set the first time the body waits, and moved only when it fires early.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Read to the end, or broken: nothing to finish.
    done: bool,
}

impl Watched {
    fn new(inner: Body, limit: Duration, leftover: Leftover) -> Watched {
        Watched {
            inner: Some(inner),
            leftover,
            limit,
            last: Instant::now(),
            deadline: None,
            done: false,
        }
    }

    /// Pending until the body has been silent for the limit.
    fn silent_too_long(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let due = self.last + self.limit;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        loop {
            ready!(deadline.as_mut().poll(cx));
            let due = self.last + self.limit;
            if Instant::now() >= due {
                return Poll::Ready(());
            }
            deadline.as_mut().reset(due);
        }
    }
}

impl hyper::body::Body for Watched {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.last = Instant::now();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => {
                this.done = true;
                Poll::Ready(other)
            }
            Poll::Pending => match this.silent_too_long(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => {
                    this.done = true;
                    Poll::Ready(Some(Err(axum::Error::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("the client sent nothing for {} s", this.limit.as_secs_f32()),
                    )))))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take()
            && !self.done
            && !inner.is_end_stream()
        {
            *self.leftover.lock().unwrap_or_else(|e| e.into_inner()) = Some(inner);
        }
    }
}
