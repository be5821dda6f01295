//! Listening sockets, TLS and graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::auth::{Htpasswd, HtpasswdError};
use crate::storage::Storage;
use crate::{AppState, ServeOptions, access_log::AccessLog, router};

/// How long open requests may run on after shutdown is asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the registry cannot start or keep serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The storage directory cannot be used.
    #[error("storage {path}: {source}")]
    Storage {
        /// The storage root.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// An address cannot be bound.
    #[error("listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The failure.
        source: io::Error,
    },
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
    #[error("access log {path}: {source}")]
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
        let service = TowerToHyperService::new(router(self.state.clone()));
        let graceful = Arc::new(GracefulShutdown::new());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut accept_loops = Vec::new();
        for listener in self.listeners {
            let service = service.clone();
            let tls = self.tls.clone();
            let graceful = graceful.clone();
            let mut stop = stop_rx.clone();
            accept_loops.push(tokio::spawn(async move {
                loop {
                    let (stream, peer) = tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok(accepted) => accepted,
                            Err(e) => {
                                tracing::warn!("accept failed: {e}");
                                continue;
                            }
                        },
                        _ = stop.changed() => break,
                    };
                    let service = service.clone();
                    let tls = tls.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let builder = auto::Builder::new(TokioExecutor::new());
                        let result = match tls {
                            Some(tls) => match tls.accept(stream).await {
                                Ok(stream) => {
                                    let conn =
                                        builder.serve_connection(TokioIo::new(stream), service);
                                    watcher.watch(conn.into_owned()).await
                                }
                                Err(e) => {
                                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                                    return;
                                }
                            },
                            None => {
                                let conn = builder.serve_connection(TokioIo::new(stream), service);
                                watcher.watch(conn.into_owned()).await
                            }
                        };
                        if let Err(e) = result {
                            tracing::debug!(%peer, "connection ended: {e}");
                        }
                    });
                }
            }));
        }
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        for accept_loop in accept_loops {
            let _ = accept_loop.await;
        }
        let graceful = Arc::try_unwrap(graceful).expect("accept loops have ended");
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("requests still open after {DRAIN_TIMEOUT:?}; closing them");
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
