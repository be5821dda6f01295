//! Listening sockets, TLS and graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use hyper::Request;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::{Htpasswd, HtpasswdError};
use crate::connections::{AcceptFailures, Connections, IdleIo, InFlight, Registered};
use crate::storage::Storage;
use crate::{AppState, ServeOptions, access_log::AccessLog, router};

/// How long open requests may run on after shutdown is asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest time a request's headers may take to arrive (the idle timeout, if shorter).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// At most one warning about failed accepts per this long.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Longest time between sweeps for expired upload sessions.
const SWEEP_INTERVAL_MAX: Duration = Duration::from_secs(300);

/// Why the registry cannot start or keep serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The storage directory cannot be used.
    #[error("storage {path}")]
    Storage {
        /// The storage root.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// An address cannot be bound.
    #[error("listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The failure.
        source: io::Error,
    },
    /// The object storage cannot be used.
    #[error(transparent)]
    ObjectStorage(#[from] crate::s3::S3Error),
    /// The htpasswd file is unusable.
    #[error(transparent)]
    Htpasswd(#[from] HtpasswdError),
    /// The certificate or key is unusable.
    #[error("TLS {path}: {reason}")]
    Tls {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The access log cannot be opened.
    #[error("access log {path}")]
    AccessLog {
        /// The log file.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
}

/// A registry bound to its addresses, ready to serve.
pub struct Registry {
    listeners: Vec<TcpListener>,
    addrs: Vec<SocketAddr>,
    state: Arc<AppState>,
    tls: Option<TlsAcceptor>,
}

impl Registry {
    /// Opens the storage under `root` and binds every address of `options`.
    pub async fn bind(
        root: impl Into<PathBuf>,
        options: ServeOptions,
    ) -> Result<Registry, ServeError> {
        let root = root.into();
        let storage = Storage::open(&root)
            .await
            .map_err(|source| ServeError::Storage {
                path: root.clone(),
                source,
            })?;
        Registry::bind_storage(storage, options).await
    }

    /// Serves `storage` (a directory, or a bucket shared with other instances) on every address
    /// of `options`.
    pub async fn bind_storage(
        storage: Storage,
        options: ServeOptions,
    ) -> Result<Registry, ServeError> {
        let htpasswd = options
            .htpasswd
            .as_deref()
            .map(Htpasswd::load)
            .transpose()?;
        let tls = options
            .tls
            .as_ref()
            .map(|(cert, key)| tls_acceptor(cert, key))
            .transpose()?;
        let access_log = options
            .access_log
            .as_deref()
            .map(|path| {
                AccessLog::open(path).map_err(|source| ServeError::AccessLog {
                    path: path.to_owned(),
                    source,
                })
            })
            .transpose()?;
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for addr in &options.listen {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: *addr,
                    source,
                })?;
            addrs.push(listener.local_addr().map_err(|source| ServeError::Bind {
                addr: *addr,
                source,
            })?);
            listeners.push(listener);
        }
        let state = Arc::new(AppState {
            storage,
            options,
            htpasswd,
            access_log,
            metrics: Default::default(),
        });
        Ok(Registry {
            listeners,
            addrs,
            state,
            tls,
        })
    }

    /// The bound addresses, in the order given (with real ports where port 0 was asked for).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The URL scheme clients use.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Serves until `shutdown` completes, then lets open requests finish (up to 10 s).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let router = router(self.state.clone());
        let connections = Arc::new(Connections::new());
        let idle = self.state.options.idle_timeout;
        let graceful = Arc::new(GracefulShutdown::new());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let sweeper = tokio::spawn(sweep_uploads(self.state.clone(), stop_rx.clone()));
        let mut accept_loops = Vec::new();
        for listener in self.listeners {
            let router = router.clone();
            let tls = self.tls.clone();
            let graceful = graceful.clone();
            let connections = connections.clone();
            let mut stop = stop_rx.clone();
            accept_loops.push(tokio::spawn(async move {
                let mut failures = AcceptFailures::new(ACCEPT_LOG_INTERVAL);
                loop {
                    tokio::select! {
                        () = connections.make_room() => {}
                        _ = stop.changed() => break,
                    }
                    let (stream, peer) = tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok(accepted) => {
                                failures.succeeded();
                                accepted
                            }
                            Err(e) => {
                                // Out of descriptors, most often: free one and slow down.
                                connections.evict_idlest();
                                let wait = failures.failed(&e, connections.count());
                                tokio::select! {
                                    () = tokio::time::sleep(wait) => continue,
                                    _ = stop.changed() => break,
                                }
                            }
                        },
                        _ = stop.changed() => break,
                    };
                    let connection = Served {
                        registered: connections.register(),
                        router: router.clone(),
                        tls: tls.clone(),
                        idle,
                    };
                    let watcher = graceful.watcher();
                    tokio::spawn(async move { connection.serve(stream, peer, watcher).await });
                }
            }));
        }
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        for accept_loop in accept_loops {
            let _ = accept_loop.await;
        }
        let _ = sweeper.await;
        let graceful = Arc::try_unwrap(graceful).expect("accept loops have ended");
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("requests still open after {DRAIN_TIMEOUT:?}; closing them");
        }
        if let Some(log) = &self.state.access_log {
            log.flush().await;
        }
    }
}

/// One accepted connection and what serving it needs.
struct Served {
    registered: Registered,
    router: Router,
    tls: Option<TlsAcceptor>,
    idle: Duration,
}

impl Served {
    /// Serves the connection until it ends, is idle too long, or is evicted to make room.
    async fn serve(self, stream: TcpStream, peer: SocketAddr, watcher: Watcher) {
        let connection = self.registered.connection.clone();
        let io = IdleIo::new(stream, connection.clone(), self.idle);
        let tracked = connection.clone();
        let router = self.router;
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let in_flight = tracked.request();
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await?;
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(Tracked {
                        body,
                        _in_flight: in_flight,
                    })
                }))
            }
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT.min(self.idle));
        let served = async {
            match self.tls {
                Some(tls) => match tls.accept(io).await {
                    Ok(stream) => {
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        watcher.watch(conn.into_owned()).await
                    }
                    Err(e) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        Ok(())
                    }
                },
                None => {
                    let conn = builder.serve_connection(TokioIo::new(io), service);
                    watcher.watch(conn.into_owned()).await
                }
            }
        };
        tokio::select! {
            result = served => if let Err(e) = result {
                tracing::debug!(%peer, "connection ended: {e}");
            },
            () = connection.evict.notified() => {
                tracing::debug!(%peer, "idle connection closed to make room for a new one");
            }
        }
        drop(self.registered);
    }
}

/// A response body that keeps its request counted as in flight until it is sent.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Removes upload sessions idle for longer than the expiry, every so often, until told to stop.
async fn sweep_uploads(state: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let expiry = state.options.upload_expiry;
    let every = (expiry / 4).clamp(Duration::from_secs(1), SWEEP_INTERVAL_MAX);
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        match state.storage.expire_uploads(expiry).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed expired upload sessions"),
            Err(e) => tracing::warn!("cannot remove expired upload sessions: {e}"),
        }
    }
}

fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, ServeError> {
    let fail = |path: &Path, reason: String| ServeError::Tls {
        path: path.to_owned(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| fail(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| fail(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(fail(cert, "no certificate found".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| fail(key, e.to_string()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| fail(cert, e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .map_err(|e| fail(key, e.to_string()))?;
    let mut config = config;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
