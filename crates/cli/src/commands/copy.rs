//! `wharf copy SRC DST`.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use std::sync::Arc;

use wharf_copy::{CopyOptions, Job};

use super::parse_image_address;
use super::registry_args::sessions;
use crate::args::{CopyArgs, Format};
use crate::output::{copy_counts, human_bytes, out, out_json};
use crate::progress::Progress;

pub async fn run(args: CopyArgs) -> Result<ExitCode> {
    if args.bundle {
        return super::bundle::copy(&args.source, &args.destination, None, false, &args.flags)
            .await;
    }
    let source = parse_image_address(&args.source, "source")?;
    let destination = parse_image_address(&args.destination, "destination")?;
    let (sources, destinations) = sessions(&args.flags.sides)?;
    let options = CopyOptions {
        concurrency: usize::from(args.flags.jobs),
        referrers: !args.flags.no_referrers,
        platforms: args.platform,
        ..CopyOptions::default()
    };
    let started = std::time::Instant::now();
    let progress = Arc::new(Progress::new(!args.flags.quiet, None));
    let job = Job::new(options.clone(), progress.clone());
    let copied = job
        .copy_image(
            &source,
            &destination,
            &sources,
            &destinations,
            &options.platforms,
        )
        .await;
    progress.clear();
    let report = copied?;
    destinations.finish().await?;
    match args.flags.output {
        Format::Json => {
            let mut document = json!({
                "source": source.to_string(),
                "destination": destination.to_string(),
                "digest": report.root.digest,
                "mediaType": report.root.media_type,
            });
            document
                .as_object_mut()
                .expect("a JSON object literal")
                .extend(copy_counts(&report));
            out_json(&document)?;
        }
        Format::Text if args.flags.quiet => {}
        Format::Text => {
            out!(
                "Copied {source} to {destination} in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            out!("  digest {}", report.root.digest);
            out!(
                "  {} manifests and {} blobs ({}) copied, {} manifests and {} blobs already there",
                report.manifests_copied,
                report.blobs_copied,
                human_bytes(report.bytes_copied),
                report.manifests_present,
                report.blobs_present,
            );
            if report.blobs_mounted > 0 {
                out!(
                    "  {} blobs mounted from other repositories of the destination registry",
                    report.blobs_mounted
                );
            }
            if report.referrers_copied > 0 {
                out!("  {} referrers copied along", report.referrers_copied);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
