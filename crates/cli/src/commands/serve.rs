//! `wharf serve` and `wharf serve gc`.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use wharf_server::s3::Bucket;
use wharf_server::storage::Storage;
use wharf_server::{DEFAULT_IDLE_TIMEOUT, DEFAULT_UPLOAD_EXPIRY, Registry, ServeOptions};

use crate::args::{
    GcArgs, LogFormat, ServeAction, ServeArgs, ServeRunArgs, parse_positive_duration,
};
use crate::output::{human_bytes, out};

pub async fn run(args: ServeArgs) -> Result<ExitCode> {
    if let Some(ServeAction::Gc(gc_args)) = args.action {
        return gc(gc_args).await;
    }
    let settings = Settings::load(&args.run)?;
    let mut listen = Vec::new();
    for text in &settings.listen {
        listen.push(resolve_listen(text)?);
    }
    let options = ServeOptions {
        listen,
        htpasswd: settings.htpasswd.clone(),
        anonymous_read: settings.anonymous_read,
        tls: settings.tls_cert.clone().zip(settings.tls_key.clone()),
        read_only: settings.read_only,
        access_log: settings.access_log.clone(),
        chunk_min_length: settings.chunk_min_length,
        idle_timeout: std::time::Duration::from_secs(settings.idle_timeout),
        upload_expiry: settings.upload_expiry,
        redirect: settings.redirect.then_some(REDIRECT_VALIDITY),
    };
    let storage = open_storage(&settings.storage).await?;
    if settings.redirect && !storage.can_redirect() {
        bail!("--redirect needs object storage (--storage s3://BUCKET[/PREFIX])");
    }
    let described = storage.describe();
    let registry = Registry::bind_storage(storage, options).await?;
    // The addresses on stdout, for scripts; the rest of the summary on stderr, with the log.
    {
        let mut stdout = std::io::stdout().lock();
        for addr in registry.local_addrs() {
            writeln!(stdout, "listening on {}://{addr}", registry.scheme())?;
        }
        stdout.flush()?;
    }
    let auth = match (&settings.htpasswd, settings.anonymous_read) {
        (None, _) => "none (anyone may push and pull)".to_owned(),
        (Some(file), false) => format!("htpasswd {}", file.display()),
        (Some(file), true) => format!("htpasswd {} (pulls need none)", file.display()),
    };
    let mode = if settings.read_only {
        "read-only"
    } else {
        "read-write"
    };
    eprintln!("storage: {described}");
    eprintln!("authentication: {auth}");
    eprintln!("mode: {mode}; health at /healthz, metrics at /metrics");
    registry.run(shutdown_signal()).await;
    Ok(ExitCode::SUCCESS)
}

/// `wharf serve`'s settings: the configuration file's, overridden by the flags given.
pub struct Settings {
    storage: Place,
    listen: Vec<String>,
    htpasswd: Option<PathBuf>,
    anonymous_read: bool,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    read_only: bool,
    access_log: Option<PathBuf>,
    chunk_min_length: Option<u64>,
    idle_timeout: u64,
    upload_expiry: Duration,
    redirect: bool,
    pub log_format: LogFormat,
}

/// The configuration file: the flags' names as keys.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ConfigFile {
    root: Option<PathBuf>,
    storage: Option<String>,
    #[serde(default)]
    listen: Vec<String>,
    htpasswd: Option<PathBuf>,
    #[serde(default)]
    anonymous_read: bool,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    read_only: bool,
    access_log: Option<PathBuf>,
    chunk_min_length: Option<u64>,
    idle_timeout: Option<u64>,
    upload_expiry: Option<String>,
    log_format: Option<LogFormat>,
    #[serde(default)]
    redirect: bool,
}

impl Settings {
    /// Reads `--config` (if given) and lays the flags over it.
    pub fn load(args: &ServeRunArgs) -> Result<Settings> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--config {}", path.display()))?;
                toml::from_str::<ConfigFile>(&text)
                    .map_err(|e| anyhow!("--config {}: {}", path.display(), e.message()))?
            }
            None => ConfigFile::default(),
        };
        let upload_expiry = match (args.upload_expiry, &file.upload_expiry) {
            (Some(expiry), _) => expiry,
            (None, Some(text)) => parse_positive_duration(text)
                .map_err(|e| anyhow!("--config: upload-expiry: {e}"))?,
            (None, None) => DEFAULT_UPLOAD_EXPIRY,
        };
        let listen = if !args.listen.is_empty() {
            args.listen.clone()
        } else if !file.listen.is_empty() {
            file.listen
        } else {
            vec!["127.0.0.1:5000".to_owned()]
        };
        let storage = match Place::chosen(args.root.clone(), args.storage.as_deref())? {
            Some(place) => place,
            None => Place::chosen(file.root, file.storage.as_deref())?.context(
                "give the storage: --root DIR or --storage LOCATION, or root or storage in the --config file",
            )?,
        };
        let settings = Settings {
            storage,
            listen,
            htpasswd: args.htpasswd.clone().or(file.htpasswd),
            anonymous_read: args.anonymous_read || file.anonymous_read,
            tls_cert: args.tls_cert.clone().or(file.tls_cert),
            tls_key: args.tls_key.clone().or(file.tls_key),
            read_only: args.read_only || file.read_only,
            access_log: args.access_log.clone().or(file.access_log),
            chunk_min_length: args.chunk_min_length.or(file.chunk_min_length),
            idle_timeout: args
                .idle_timeout
                .or(file.idle_timeout)
                .unwrap_or(DEFAULT_IDLE_TIMEOUT.as_secs()),
            upload_expiry,
            redirect: args.redirect || file.redirect,
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
        };
        if settings.anonymous_read && settings.htpasswd.is_none() {
            bail!("anonymous reads only mean something with --htpasswd");
        }
        if settings.tls_cert.is_some() != settings.tls_key.is_some() {
            bail!("give both --tls-cert and --tls-key, or neither");
        }
        if settings.idle_timeout == 0 {
            bail!("--config: idle-timeout must be at least 1 second");
        }
        Ok(settings)
    }
}

/// How long a blob redirect's presigned URL is valid (distribution's default).
const REDIRECT_VALIDITY: Duration = Duration::from_secs(20 * 60);

/// Where a registry is kept.
enum Place {
    /// A local directory.
    Directory(PathBuf),
    /// `s3://BUCKET[/PREFIX]`.
    Bucket(String),
}

impl Place {
    /// The storage a `root` directory or a `storage` location names (`root` first), if either.
    fn chosen(root: Option<PathBuf>, storage: Option<&str>) -> Result<Option<Place>> {
        match (root, storage) {
            (Some(root), _) => Ok(Some(Place::Directory(root))),
            (None, Some(location)) => Place::parse(location).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// A directory, or `s3://BUCKET[/PREFIX]`; other URLs are refused.
    fn parse(text: &str) -> Result<Place> {
        if text.starts_with("s3://") {
            return Ok(Place::Bucket(text.to_owned()));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            bail!(
                "storage {text:?}: unknown scheme {scheme:?}; give a directory or s3://BUCKET[/PREFIX]"
            );
        }
        Ok(Place::Directory(PathBuf::from(text)))
    }
}

/// Opens the storage: a directory (created if missing), or a bucket, checked before anything is
/// served (it exists, the credentials may use it).
async fn open_storage(place: &Place) -> Result<Storage> {
    match place {
        Place::Directory(root) => Storage::open(root)
            .await
            .with_context(|| format!("storage {}", root.display())),
        Place::Bucket(url) => {
            let bucket = Bucket::open(url, &|name| std::env::var(name).ok())?;
            bucket.check().await?;
            Ok(Storage::on(std::sync::Arc::new(bucket)))
        }
    }
}

/// `HOST:PORT` to the first address it resolves to; `:PORT` is every interface.
fn resolve_listen(text: &str) -> Result<SocketAddr> {
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_owned(),
    };
    let mut addrs = full
        .to_socket_addrs()
        .with_context(|| format!("listen address {text:?} (expected HOST:PORT or :PORT)"))?;
    match addrs.next() {
        Some(addr) => Ok(addr),
        None => bail!("listen address {text:?} resolves to nothing"),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn gc(args: GcArgs) -> Result<ExitCode> {
    let place = Place::chosen(args.root.clone(), args.storage.as_deref())?
        .context("give the storage: --root DIR or --storage LOCATION")?;
    if let Place::Directory(root) = &place
        && !root.join("repositories").is_dir()
    {
        bail!(
            "{} is not a wharf registry storage directory",
            root.display()
        );
    }
    let storage = open_storage(&place).await?;
    let report = storage
        .gc(args.grace)
        .await
        .with_context(|| format!("garbage collection in {}", storage.describe()))?;
    out!(
        "removed {} blobs ({}) and {} abandoned uploads; kept {} blobs",
        report.blobs_removed,
        human_bytes(report.bytes_removed),
        report.uploads_removed,
        report.blobs_kept
    );
    Ok(ExitCode::SUCCESS)
}
