//! Turning registry flags into the library's sessions.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use wharf_cache::BlobCache;
use wharf_registries_conf::{Discovery, RegistriesConf};
use wharf_store::registry::{CredentialSource, Credentials};
use wharf_store::{Recall, Session, SessionOptions, WhenLocked};

use crate::args::{RegistriesConfArgs, RegistryArgs, TwoSidedArgs};

/// The registries.conf in effect, or `None` with `--no-registries-conf`.
pub fn registries_conf(args: &RegistriesConfArgs) -> Result<Option<Arc<RegistriesConf>>> {
    if args.no_registries_conf {
        return Ok(None);
    }
    let discovery = Discovery::from_env(
        args.registries_conf.clone(),
        args.registries_conf_dir.clone(),
    );
    let conf = RegistriesConf::load(&discovery)?;
    tracing::debug!(files = ?conf.files(), "registries.conf loaded");
    Ok(Some(Arc::new(conf)))
}

/// The cache of where blobs were seen and what registries support, unless `--no-cache`.
fn recall(args: &RegistryArgs) -> Option<Arc<dyn Recall>> {
    if args.no_cache {
        return None;
    }
    wharf_cache::default_path().map(|path| Arc::new(BlobCache::at(path)) as Arc<dyn Recall>)
}

/// What one side of a two-sided command sets for itself (`--src-*`, `--dest-*`).
#[derive(Default)]
struct Side<'a> {
    creds: Option<&'a str>,
    tls_verify: Option<bool>,
    authfile: Option<&'a Path>,
}

/// A session for a command that works in one place.
pub fn session(args: &RegistryArgs) -> Result<Session> {
    session_with(args, Side::default(), recall(args))
}

fn session_with(
    args: &RegistryArgs,
    side: Side<'_>,
    recall: Option<Arc<dyn Recall>>,
) -> Result<Session> {
    let authfile = side.authfile.or(args.authfile.as_deref());
    if let Some(file) = authfile
        && !file.is_file()
    {
        bail!(
            "--authfile {}: no such file (wharf login --authfile FILE HOST writes one)",
            file.display()
        );
    }
    let credentials = side
        .creds
        .or(args.creds.as_deref())
        .map(|text| {
            Credentials::from_user_pass(text).context("credentials must be given as USER:PASSWORD")
        })
        .transpose()?;
    let options = SessionOptions {
        credentials,
        source: CredentialSource {
            authfile: authfile.map(Path::to_path_buf),
        },
        tls_verify: side.tls_verify.unwrap_or(args.tls_verify),
        cert_dir: args.cert_dir.clone(),
        insecure_hosts: args.insecure_registry.clone(),
        chunk_size: args.chunk_size,
        registries_conf: registries_conf(&args.conf)?,
        idle_timeout: std::time::Duration::from_secs(args.idle_timeout),
        when_locked: if args.no_wait {
            WhenLocked::Fail
        } else {
            WhenLocked::Wait
        },
        recall,
    };
    Ok(Session::new(options)?)
}

/// The sessions of the source side and of the destination side.
pub fn sessions(args: &TwoSidedArgs) -> Result<(Session, Session)> {
    let recall = recall(&args.registry);
    let source = Side {
        creds: args.src_creds.as_deref(),
        tls_verify: args.src_tls_verify,
        authfile: args.src_authfile.as_deref(),
    };
    let destination = Side {
        creds: args.dest_creds.as_deref(),
        tls_verify: args.dest_tls_verify,
        authfile: args.dest_authfile.as_deref(),
    };
    Ok((
        session_with(&args.registry, source, recall.clone())?,
        session_with(&args.registry, destination, recall)?,
    ))
}
