//! Open connections: how many there may be, which are working, and how long one may sit silent.
//!
//! A client that opens connections and sends nothing (or half a request) must not keep real clients
//! out. Every connection is bounded three ways: silence for the idle timeout closes it ([`IdleIo`]:
//! no byte read while no request is in flight, which covers half-open connections and the TLS
//! handshake, or a response the client stopped reading); hyper's header timeout bounds how long a
//! request's headers may take; and at the connection limit (derived from the process's
//! file-descriptor limit) the connection idle longest (no request in flight: a half-open one, or a
//! keep-alive one between requests) is closed to make room for the next. A request body that stalls
//! is bounded where it is read (`request_body`).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Sleep;

/// File descriptors kept free for what requests open (blobs, uploads, the access log).
const RESERVED_DESCRIPTORS: u64 = 64;
/// The fewest connections allowed, however low the descriptor limit.
const MIN_CONNECTIONS: usize = 8;

/// Every open connection, and room for more.
pub struct Connections {
    limit: usize,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    /// Signalled whenever a connection ends.
    closed: Notify,
}

/// One connection's state, shared with the task serving it.
pub struct Connection {
    id: u64,
    opened: Instant,
    /// Requests being answered, response bodies included.
    in_flight: AtomicUsize,
    /// When a byte last moved or a request last finished, in milliseconds after `opened`.
    last_moved: AtomicU64,
    /// Signalled to close it.
    pub evict: Notify,
}

impl Connections {
    /// Room for as many connections as the descriptor limit allows, after raising the soft limit to
    /// the hard one.
    pub fn new() -> Connections {
        let descriptors = raise_descriptor_limit();
        let limit =
            (descriptors.saturating_sub(RESERVED_DESCRIPTORS) as usize).max(MIN_CONNECTIONS);
        tracing::debug!(limit, "connection limit");
        Connections {
            limit,
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            closed: Notify::new(),
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until there is room for another connection, closing the idlest one when at the limit.
    pub async fn make_room(&self) {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.open().len() < self.limit {
                return;
            }
            self.evict_idlest();
            closed.await;
        }
    }

    /// Asks the connection idle longest to close; false when every connection is working.
    pub fn evict_idlest(&self) -> bool {
        let idlest = self
            .open()
            .values()
            .filter(|c| !c.working())
            .min_by_key(|c| c.opened + c.since_open())
            .cloned();
        match idlest {
            Some(connection) => {
                connection.evict.notify_one();
                true
            }
            None => false,
        }
    }

    /// Registers a new connection; it is forgotten when the returned handle is dropped.
    pub fn register(self: &Arc<Self>) -> Registered {
        let connection = Arc::new(Connection {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_moved: AtomicU64::new(0),
            evict: Notify::new(),
        });
        self.open().insert(connection.id, connection.clone());
        Registered {
            connections: self.clone(),
            connection,
        }
    }

    /// How many connections are open.
    pub fn count(&self) -> usize {
        self.open().len()
    }
}

/// A connection while it is open.
pub struct Registered {
    connections: Arc<Connections>,
    pub connection: Arc<Connection>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.open().remove(&self.connection.id);
        self.connections.closed.notify_waiters();
    }
}

impl Connection {
    /// Marks a request as started; it counts as in flight until the returned guard is dropped (after
    /// its response body is sent).
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    fn working(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) > 0
    }

    fn moved(&self) {
        let now = self.opened.elapsed().as_millis() as u64;
        self.last_moved.fetch_max(now, Ordering::Relaxed);
    }

    /// When something last happened, as time after opening.
    fn since_open(&self) -> Duration {
        Duration::from_millis(self.last_moved.load(Ordering::Relaxed))
    }
}

/// A request being answered.
pub struct InFlight(Arc<Connection>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.moved();
    }
}

/// Raises the soft descriptor limit to the hard one and returns it.
#[cfg(target_os = "linux")]
fn raise_descriptor_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let Some(hard) = limit.maximum
        && limit.current.is_some_and(|soft| soft < hard)
    {
        limit.current = Some(hard);
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    limit.current.unwrap_or(u64::MAX).min(1 << 20)
}

#[cfg(not(target_os = "linux"))]
fn raise_descriptor_limit() -> u64 {
    1024
}

/// A connection's stream, which fails when it has been silent for `limit`: a read waiting that long
/// while no request is in flight (a busy handler is not silence), or a write waiting that long.
pub struct IdleIo<T> {
    inner: T,
    connection: Arc<Connection>,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<T> IdleIo<T> {
    pub fn new(inner: T, connection: Arc<Connection>, limit: Duration) -> IdleIo<T> {
        IdleIo {
            inner,
            connection,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }

    /// After a pending read or write: an error once the connection has been silent for the limit,
    /// else pending, with a wake-up when it would be. The timer is moved only when it fires early
    /// (something moved since it was set), not on every read, which keeps busy connections cheap.
    fn check_idle<R>(&mut self, cx: &mut Context<'_>, reading: bool) -> Poll<io::Result<R>> {
        if reading && self.connection.working() {
            return Poll::Pending;
        }
        loop {
            ready!(self.deadline.as_mut().poll(cx));
            let due = tokio::time::Instant::from_std(
                self.connection.opened + self.connection.since_open(),
            ) + self.limit;
            if tokio::time::Instant::now() >= due {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("nothing moved for {} s", self.limit.as_secs_f32()),
                )));
            }
            self.deadline.as_mut().reset(due);
        }
    }

    /// Passes on a write's outcome, noting movement or checking for silence.
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match outcome {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.connection.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => self.check_idle(cx, false),
            failed => failed,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.connection.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => self.check_idle(cx, true),
            failed => failed,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(cx, outcome)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.check_idle(cx, false),
            done => done,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Pending => self.check_idle(cx, false),
            done => done,
        }
    }
}

/// At most one warning per interval about failed accepts, with a count of the ones not logged.
pub struct AcceptFailures {
    interval: Duration,
    last_logged: Option<Instant>,
    suppressed: usize,
    backoff: Duration,
}

/// First wait after a failed accept; doubled per failure in a row.
const ACCEPT_BACKOFF_START: Duration = Duration::from_millis(5);
/// Longest wait after failed accepts.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

impl AcceptFailures {
    pub fn new(interval: Duration) -> AcceptFailures {
        AcceptFailures {
            interval,
            last_logged: None,
            suppressed: 0,
            backoff: ACCEPT_BACKOFF_START,
        }
    }

    /// Records a failure, logs it if the interval has passed, and returns how long to wait before
    /// accepting again.
    pub fn failed(&mut self, error: &io::Error, open: usize) -> Duration {
        let now = Instant::now();
        if self
            .last_logged
            .is_none_or(|at| now.duration_since(at) >= self.interval)
        {
            let more = match self.suppressed {
                0 => String::new(),
                n => format!(" ({n} more since the last report)"),
            };
            tracing::warn!(
                "accept failed: {error}{more}; {open} connections open, closing idle ones and \
                 slowing down"
            );
            self.last_logged = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF_MAX);
        wait
    }

    /// An accept succeeded.
    pub fn succeeded(&mut self) {
        self.backoff = ACCEPT_BACKOFF_START;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_idlest_connection_without_requests_is_evicted() {
        let connections = Arc::new(Connections::new());
        let old = connections.register();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let busy = connections.register();
        let _request = busy.connection.request();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let young = connections.register();
        assert!(connections.evict_idlest());
        let evicted = tokio::time::timeout(Duration::from_secs(1), old.connection.evict.notified());
        assert!(
            evicted.await.is_ok(),
            "the oldest idle connection goes first"
        );
        drop(old);
        drop(young);
        assert!(!connections.evict_idlest(), "a working connection stays");
        assert_eq!(connections.count(), 1);
    }

    #[tokio::test]
    async fn a_silent_stream_times_out_unless_a_request_is_in_flight() {
        let connections = Arc::new(Connections::new());
        let registered = connections.register();
        let (client, mut server) = tokio::io::duplex(64);
        let mut idle = IdleIo::new(
            client,
            registered.connection.clone(),
            Duration::from_millis(50),
        );
        let mut buf = [0u8; 8];
        let working = registered.connection.request();
        let read = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::io::AsyncReadExt::read(&mut idle, &mut buf),
        );
        assert!(read.await.is_err(), "a busy handler is not silence");
        drop(working);
        tokio::io::AsyncWriteExt::write_all(&mut server, b"x")
            .await
            .unwrap();
        assert_eq!(
            tokio::io::AsyncReadExt::read(&mut idle, &mut buf)
                .await
                .unwrap(),
            1
        );
        let mut buf = [0u8; 8];
        let started = Instant::now();
        let err = tokio::io::AsyncReadExt::read(&mut idle, &mut buf)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn accept_failures_are_logged_rarely_and_backed_off() {
        let mut failures = AcceptFailures::new(Duration::from_secs(60));
        let error = io::Error::other("too many open files");
        let waits: Vec<Duration> = (0..12).map(|_| failures.failed(&error, 3)).collect();
        assert_eq!(waits[0], ACCEPT_BACKOFF_START);
        assert!(waits.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*waits.last().unwrap(), ACCEPT_BACKOFF_MAX);
        assert_eq!(failures.suppressed, 11);
        failures.succeeded();
        assert_eq!(failures.failed(&error, 3), ACCEPT_BACKOFF_START);
    }
}
