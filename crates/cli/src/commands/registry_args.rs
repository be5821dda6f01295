//! Turning registry flags into the library's connection settings.

use anyhow::{Context, Result};
use wharf_store::registry::{CredentialSource, Credentials, Registries, RegistryOptions};

use crate::args::RegistryArgs;

/// Settings for one side of an operation; `creds` overrides `--creds` (for `--src-creds`/`--dest-creds`).
pub fn registries(args: &RegistryArgs, creds: Option<&str>) -> Result<Registries> {
    let credentials = creds
        .or(args.creds.as_deref())
        .map(|text| {
            Credentials::from_user_pass(text).context("credentials must be given as USER:PASSWORD")
        })
        .transpose()?;
    let options = RegistryOptions {
        credentials,
        source: CredentialSource {
            authfile: args.authfile.clone(),
        },
        tls_verify: args.tls_verify,
        cert_dir: args.cert_dir.clone(),
        insecure_hosts: args.insecure_registry.clone(),
        chunk_size: args.chunk_size,
    };
    Ok(Registries::new(options)?)
}
