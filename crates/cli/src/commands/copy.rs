//! `wharf copy SRC DST`.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use wharf_copy::{CopyOptions, copy_image};

use super::parse_address;
use crate::args::{CopyArgs, Format};
use crate::output::human_bytes;

pub async fn run(args: CopyArgs) -> Result<ExitCode> {
    let source = parse_address(&args.source, "source")?;
    let destination = parse_address(&args.destination, "destination")?;
    let options = CopyOptions {
        concurrency: usize::from(args.jobs),
    };
    let report = copy_image(&source, &destination, &options).await?;
    match args.output {
        Format::Json => println!(
            "{}",
            json!({
                "source": source.to_string(),
                "destination": destination.to_string(),
                "digest": report.root.digest,
                "mediaType": report.root.media_type,
                "manifestsCopied": report.manifests_copied,
                "manifestsPresent": report.manifests_present,
                "blobsCopied": report.blobs_copied,
                "blobsPresent": report.blobs_present,
                "bytesCopied": report.bytes_copied,
            })
        ),
        Format::Text => println!(
            "Copied {source} to {destination}\n  digest {}\n  {} manifests and {} blobs ({}) copied, {} manifests and {} blobs already there",
            report.root.digest,
            report.manifests_copied,
            report.blobs_copied,
            human_bytes(report.bytes_copied),
            report.manifests_present,
            report.blobs_present,
        ),
    }
    Ok(ExitCode::SUCCESS)
}
