//! Turning registry flags into the library's sessions.

use std::sync::Arc;

use anyhow::{Context, Result};
use wharf_registries_conf::{Discovery, RegistriesConf};
use wharf_store::registry::{CredentialSource, Credentials};
use wharf_store::{Session, SessionOptions, WhenLocked};

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

/// A session for one side of an operation; `creds` overrides `--creds` (for `--src-creds` and
/// `--dest-creds`).
pub fn session(args: &RegistryArgs, creds: Option<&str>) -> Result<Session> {
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
    };
    Ok(Session::new(options)?)
}

/// The sessions of the source side and of the destination side.
pub fn sessions(args: &TwoSidedArgs) -> Result<(Session, Session)> {
    Ok((
        session(&args.registry, args.src_creds.as_deref())?,
        session(&args.registry, args.dest_creds.as_deref())?,
    ))
}
