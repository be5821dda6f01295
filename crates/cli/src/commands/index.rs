//! `wharf index create`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use serde_json::json;
use wharf_bundle::nested::{self, IndexOptions};
use wharf_copy::{CopyOptions, Job, Silent};

use super::parse_image_address;
use super::registry_args::session;
use crate::args::{Format, ImageIndexCommand, IndexCreateArgs};
use crate::output::{out, out_json};

pub async fn run(command: ImageIndexCommand) -> Result<ExitCode> {
    match command {
        ImageIndexCommand::Create(args) => create(args).await,
    }
}

async fn create(args: IndexCreateArgs) -> Result<ExitCode> {
    let target = parse_image_address(&args.reference, "index")?;
    let session = session(&args.registry)?;
    let options = IndexOptions {
        artifact_type: args.artifact_type,
        annotations: args.annotation.into_iter().collect(),
    };
    let job = Job::new(CopyOptions::default(), Arc::new(Silent));
    let created = nested::create(&target, &args.children, &options, &session, &job).await?;
    session.finish().await?;
    let children: Vec<serde_json::Value> = created
        .children
        .iter()
        .map(|child| {
            json!({
                "digest": child.digest,
                "mediaType": child.media_type,
                "repository": child.annotations.get(wharf_oci::nested::REPOSITORY_ANNOTATION),
                "tag": child.annotations.get(wharf_oci::nested::TAG_ANNOTATION),
            })
        })
        .collect();
    match args.output {
        Format::Json => out_json(&json!({
            "index": created.address.to_string(),
            "digest": created.descriptor.digest,
            "children": children,
            "blobsCopied": created.report.blobs_copied,
            "manifestsCopied": created.report.manifests_copied,
        }))?,
        Format::Text => {
            out!("Created index {}", created.address);
            out!("  digest {}", created.descriptor.digest);
            for child in &created.children {
                let home = child
                    .annotations
                    .get(wharf_oci::nested::REPOSITORY_ANNOTATION)
                    .map_or_else(|| "(here)".to_owned(), |p| format!("{p}/"));
                out!("  {home} {}", child.digest);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
