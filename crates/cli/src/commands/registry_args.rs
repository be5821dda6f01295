//! Turning registry flags into the library's sessions.

use std::sync::Arc;

use anyhow::{Context, Result};
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

/// A session for one side of an operation; `creds` overrides `--creds` (for `--src-creds` and
/// `--dest-creds`).
pub fn session(args: &RegistryArgs, creds: Option<&str>) -> Result<Session> {
    session_with(args, creds, recall(args))
}

fn session_with(
    args: &RegistryArgs,
    creds: Option<&str>,
    recall: Option<Arc<dyn Recall>>,
) -> Result<Session> {
    let credentials = creds
        .or(args.creds.as_deref())
        .map(|text| {
            Credentials::from_user_pass(text).context("credentials must be given as USER:PASSWORD")
        })
        .transpose()?;
    let options = SessionOptions {
        credentials,
        source: CredentialSource {
            authfile: args.authfile.clone(),
        },
        tls_verify: args.tls_verify,
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
    Ok((
        session_with(&args.registry, args.src_creds.as_deref(), recall.clone())?,
        session_with(&args.registry, args.dest_creds.as_deref(), recall)?,
    ))
}
