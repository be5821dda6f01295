//! `wharf serve` and `wharf serve gc`.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use wharf_server::storage::Storage;
use wharf_server::{Registry, ServeOptions};

use crate::args::{GcArgs, ServeAction, ServeArgs};
use crate::output::{human_bytes, out};

pub async fn run(args: ServeArgs) -> Result<ExitCode> {
    if let Some(ServeAction::Gc(gc_args)) = args.action {
        return gc(gc_args).await;
    }
    let run = args.run;
    let root = run.root.context("--root is required")?;
    let mut listen = Vec::new();
    for text in &run.listen {
        listen.push(resolve_listen(text)?);
    }
    let options = ServeOptions {
        listen,
        htpasswd: run.htpasswd,
        anonymous_read: run.anonymous_read,
        tls: run.tls_cert.zip(run.tls_key),
        read_only: run.read_only,
        access_log: run.access_log,
        chunk_min_length: run.chunk_min_length,
        idle_timeout: std::time::Duration::from_secs(run.idle_timeout),
        upload_expiry: run.upload_expiry,
    };
    let registry = Registry::bind(&root, options).await?;
    {
        let mut stdout = std::io::stdout().lock();
        for addr in registry.local_addrs() {
            writeln!(stdout, "listening on {}://{addr}", registry.scheme())?;
        }
        stdout.flush()?;
    }
    registry.run(shutdown_signal()).await;
    Ok(ExitCode::SUCCESS)
}

/// `HOST:PORT` to the first address it resolves to.
fn resolve_listen(text: &str) -> Result<SocketAddr> {
    let mut addrs = text
        .to_socket_addrs()
        .with_context(|| format!("listen address {text:?} (expected HOST:PORT)"))?;
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
    if !args.root.join("repositories").is_dir() {
        bail!(
            "{} is not a wharf registry storage directory",
            args.root.display()
        );
    }
    let storage = Storage::open(&args.root)
        .await
        .with_context(|| format!("storage {}", args.root.display()))?;
    let report = storage
        .gc(args.grace)
        .await
        .with_context(|| format!("garbage collection in {}", args.root.display()))?;
    out!(
        "removed {} blobs ({}) and {} abandoned uploads; kept {} blobs",
        report.blobs_removed,
        human_bytes(report.bytes_removed),
        report.uploads_removed,
        report.blobs_kept
    );
    Ok(ExitCode::SUCCESS)
}
