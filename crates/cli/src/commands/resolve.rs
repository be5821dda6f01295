//! `wharf resolve REFERENCE`.

use crate::output::{out, out_json};
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use wharf_oci::Reference;

use super::registry_args::registries_conf;
use crate::args::{Format, ResolveArgs};

pub fn run(args: ResolveArgs) -> Result<ExitCode> {
    let text = args
        .reference
        .strip_prefix("docker://")
        .unwrap_or(&args.reference);
    let reference = Reference::parse(text).context("reference")?;
    // With --no-registries-conf an empty configuration sends every reference to itself.
    let conf = registries_conf(&args.conf)?.unwrap_or_default();
    let endpoints = conf.pull_endpoints(&reference)?;
    match args.output {
        Format::Json => {
            let endpoints: Vec<_> = endpoints
                .iter()
                .map(|e| {
                    json!({
                        "reference": e.reference.to_string(),
                        "insecure": e.insecure,
                        "blocked": e.blocked,
                        "mirror": e.mirror,
                    })
                })
                .collect();
            out_json(&json!({"reference": reference.to_string(), "endpoints": endpoints}))?;
        }
        Format::Text => {
            for endpoint in &endpoints {
                let mut line = endpoint.reference.to_string();
                if endpoint.insecure {
                    line += " (insecure)";
                }
                if endpoint.blocked {
                    line += " (blocked)";
                }
                out!("{line}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
