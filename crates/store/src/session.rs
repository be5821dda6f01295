//! A run's connection settings and the namespaces it has opened.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
use wharf_registries_conf::RegistriesConf;

use crate::ctf::{Ctf, CtfNamespace};
use crate::layout::{Layout, LayoutNamespace};
use crate::registry::{Clients, CredentialSource, Credentials, DEFAULT_IDLE_TIMEOUT};
use crate::{Address, Location, Namespace, ReadStore, Recall, Result, Store, WhenLocked};

/// How a session reaches registries and treats local stores.
#[derive(Clone)]
pub struct SessionOptions {
    /// Credentials for every registry (`--creds`), instead of the auth files.
    pub credentials: Option<Credentials>,
    /// Where to look up credentials.
    pub source: CredentialSource,
    /// Verify TLS certificates (`--tls-verify=false` turns this off).
    pub tls_verify: bool,
    /// Extra CA certificates (`*.crt`, `*.pem`) to trust.
    pub cert_dir: Option<PathBuf>,
    /// Hosts that may be reached over plain HTTP (loopback hosts always may).
    pub insecure_hosts: Vec<String>,
    /// Upload blobs in chunks of at most this many bytes (for proxies that limit request bodies).
    pub chunk_size: Option<usize>,
    /// Mirrors, rewrites, `insecure` and `blocked` from registries.conf; reads try its endpoints.
    pub registries_conf: Option<Arc<RegistriesConf>>,
    /// A request on which no byte moves in either direction for this long fails, and is retried
    /// like any network failure.
    pub idle_timeout: Duration,
    /// What to do when another process is writing a layout, archive or CTF this run writes.
    pub when_locked: WhenLocked,
    /// Where blobs were seen and what registries support, kept between runs (`None`: nothing kept).
    pub recall: Option<Arc<dyn Recall>>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            credentials: None,
            source: CredentialSource::default(),
            tls_verify: true,
            cert_dir: None,
            insecure_hosts: Vec::new(),
            chunk_size: None,
            registries_conf: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            when_locked: WhenLocked::Wait,
            recall: None,
        }
    }
}

/// Whether a namespace is opened to read it or to write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// It must exist; nothing is locked.
    Read,
    /// It is created on the first write if missing, and locked against other writers.
    Write,
}

type Opened = Arc<OnceCell<Arc<dyn Namespace>>>;

/// Connection settings, per-host state (schemes, tokens, detected capabilities) and every namespace
/// opened in a run, each opened once: concurrent copies into one archive share it, and an archive is
/// indexed once however many images are read from it. Cheap to clone.
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionInner>,
}

struct SessionInner {
    options: SessionOptions,
    clients: Clients,
    /// Opened namespaces. The map is locked only to find a namespace's cell; opening happens in the
    /// cell, so one slow open (a large `.tgz`) holds up only those waiting for the same namespace.
    opened: Mutex<HashMap<(Location, Mode), Opened>>,
}

impl Session {
    /// A session for `options`; fails if the CA directory cannot be read.
    pub fn new(options: SessionOptions) -> Result<Session> {
        let clients = Clients::new(&options)?;
        Ok(Session {
            inner: Arc::new(SessionInner {
                options,
                clients,
                opened: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The options this session was made with.
    pub fn options(&self) -> &SessionOptions {
        &self.inner.options
    }

    /// The namespace at `location`, opened in `mode` the first time it is asked for.
    pub async fn namespace(&self, location: &Location, mode: Mode) -> Result<Arc<dyn Namespace>> {
        let cell = self
            .inner
            .opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((location.clone(), mode))
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.open(location, mode))
            .await
            .cloned()
    }

    async fn open(&self, location: &Location, mode: Mode) -> Result<Arc<dyn Namespace>> {
        let when = self.inner.options.when_locked;
        let write = mode == Mode::Write;
        Ok(match location {
            Location::Registry { host, base } => self.inner.clients.namespace(host, base),
            Location::Layout { path, archive } => {
                let layout = match (archive, write) {
                    (false, false) => Layout::open(path.clone()).await?,
                    (false, true) => Layout::create_with(path.clone(), when).await?,
                    (true, false) => Layout::open_archive(path.clone()).await?,
                    (true, true) => Layout::create_archive(path.clone(), when).await?,
                };
                Arc::new(LayoutNamespace::new(Arc::new(layout), write))
            }
            Location::Ctf(path) => {
                let ctf = if write {
                    Ctf::create(path.clone(), when).await?
                } else {
                    Ctf::open(path.clone()).await?
                };
                Arc::new(CtfNamespace::new(ctf, write))
            }
        })
    }

    /// The repository `address` names, to read from.
    pub async fn read(&self, address: &Address) -> Result<Arc<dyn ReadStore>> {
        self.namespace(&address.location, Mode::Read)
            .await?
            .read(&address.repository)
    }

    /// The repository `address` names, to write to.
    pub async fn write(&self, address: &Address) -> Result<Arc<dyn Store>> {
        self.namespace(&address.location, Mode::Write)
            .await?
            .write(&address.repository)
    }

    fn written(&self) -> Vec<Opened> {
        self.inner
            .opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|((_, mode), _)| *mode == Mode::Write)
            .map(|(_, cell)| cell.clone())
            .collect()
    }

    /// Finishes every namespace opened for writing: archives are written out; the rest need
    /// nothing. Call once, after the last write.
    pub async fn finish(&self) -> Result<()> {
        for cell in self.written() {
            if let Some(namespace) = cell.get() {
                namespace.finish().await?;
            }
        }
        Ok(())
    }

    /// Leaves every archive written to unfinished but resumable (see [`Namespace::checkpoint`]); for
    /// runs that failed in part. Returns the archives left so.
    pub async fn checkpoint(&self) -> Result<Vec<PathBuf>> {
        let mut unfinished = Vec::new();
        for cell in self.written() {
            if let Some(namespace) = cell.get()
                && let Some(path) = namespace.checkpoint().await?
            {
                unfinished.push(path);
            }
        }
        Ok(unfinished)
    }

    /// Checks that registry `host` accepts this session's credentials (`wharf login`).
    pub async fn check_credentials(&self, host: &str) -> Result<()> {
        self.inner.clients.check_credentials(host).await
    }
}
