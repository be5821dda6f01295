//! `wharf inspect LOCATION`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use wharf_oci::{Descriptor, ManifestBody};

use super::parse_image_address;
use super::registry_args::session;
use crate::args::{Format, InspectArgs};
use crate::output::{human_bytes, out};

pub async fn run(args: InspectArgs) -> Result<ExitCode> {
    let location = parse_image_address(&args.location, "inspected")?;
    let store = session(&args.registry, None)?.read(&location).await?;
    let descriptor = location.resolve_in(store.as_ref()).await?;
    let manifest = store.fetch_manifest(&descriptor).await?;
    if args.raw {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(manifest.raw())
            .context("writing to stdout")?;
        stdout.flush().context("writing to stdout")?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.output == Format::Json {
        let body: serde_json::Value =
            serde_json::from_slice(manifest.raw()).context("manifest is not JSON")?;
        out!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "location": location.to_string(),
                "descriptor": descriptor,
                "manifest": body,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    out!("{location}");
    out!("Digest:      {}", descriptor.digest);
    out!("Media type:  {}", manifest.media_type());
    out!("Size:        {} bytes", descriptor.size);
    match manifest.body() {
        ManifestBody::Index(index) => {
            out!("Manifests:");
            for entry in &index.manifests {
                let platform = entry
                    .platform
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "-".into());
                out!("  {platform:<16} {}", line(entry));
            }
        }
        ManifestBody::Image(image) => {
            if let Some(artifact_type) = &image.artifact_type {
                out!("Artifact:    {artifact_type}");
            }
            out!("Config:      {}", line(&image.config));
            out!("Layers:");
            for layer in &image.layers {
                out!("  {}", line(layer));
            }
        }
    }
    if let Some(subject) = manifest.subject() {
        out!("Subject:     {}", line(subject));
    }
    if !manifest.annotations().is_empty() {
        out!("Annotations:");
        for (key, value) in manifest.annotations() {
            out!("  {key}: {value}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn line(d: &Descriptor) -> String {
    format!("{}  {}  {}", d.digest, d.media_type, human_bytes(d.size))
}
