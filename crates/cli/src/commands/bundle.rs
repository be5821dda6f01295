//! `wharf bundle push | copy | pull | locations`, and `wharf copy --bundle`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use serde_json::json;
use wharf_bundle::imgpkg::{self, Bundle, BundleLock, BundleSource, PullOptions, Rule};
use wharf_copy::{CopyOptions, Job};
use wharf_store::chain;

use super::parse_image_address;
use super::registry_args::{session, sessions};
use crate::args::{
    BundleCommand, BundleLocationsArgs, BundlePullArgs, BundlePushArgs, CopyFlags, Format,
};
use crate::output::{copy_counts, human_bytes, out, out_json};
use crate::progress::Progress;

pub async fn run(command: BundleCommand) -> Result<ExitCode> {
    match command {
        BundleCommand::Push(args) => push(args).await,
        BundleCommand::Copy(args) => {
            copy(
                &args.source,
                &args.destination,
                args.lock_output.as_deref(),
                args.dry_run,
                &args.flags,
            )
            .await
        }
        BundleCommand::Pull(args) => pull(args).await,
        BundleCommand::Locations(args) => locations(args).await,
    }
}

async fn push(args: BundlePushArgs) -> Result<ExitCode> {
    let destination = parse_image_address(&args.destination, "destination")?;
    let session = session(&args.registry)?;
    let progress = Arc::new(Progress::new(!args.quiet, None));
    let job = Job::new(CopyOptions::default(), progress.clone());
    let labels: BTreeMap<String, String> = args.label.into_iter().collect();
    let pushed = imgpkg::push(&args.dir, &destination, &labels, &session, &job).await;
    progress.clear();
    let pushed = pushed?;
    session.finish().await?;
    if let Some(path) = &args.lock_output {
        write_lock(path, &pushed.lock)?;
    }
    match args.output {
        Format::Json => out_json(&json!({
            "destination": pushed.destination.to_string(),
            "digest": pushed.descriptor.digest,
            "images": pushed.images,
            "lock": pushed.lock.image,
        }))?,
        Format::Text => {
            out!("Pushed bundle {}", pushed.lock.image);
            out!("  tag {}", pushed.destination);
            out!("  {} images locked in .imgpkg/images.yml", pushed.images);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Copies a bundle with everything it locks; shared by `bundle copy` and `copy --bundle`.
pub async fn copy(
    source: &str,
    destination: &str,
    lock_output: Option<&Path>,
    dry_run: bool,
    flags: &CopyFlags,
) -> Result<ExitCode> {
    let source = BundleSource::parse(source)?;
    let destination = parse_image_address(destination, "destination")?;
    let (sources, destinations) = sessions(&flags.sides)?;
    let options = CopyOptions {
        concurrency: usize::from(flags.jobs),
        referrers: !flags.no_referrers,
        dry_run,
        ..CopyOptions::default()
    };
    let progress = Arc::new(Progress::new(!flags.quiet, None));
    let job = Job::new(options, progress.clone());
    let outcome = imgpkg::copy(&source, &destination, &sources, &destinations, &job).await;
    progress.clear();
    let copied = match outcome {
        Ok(copied) => copied,
        Err(e) if !dry_run => {
            // An archive keeps what was copied for the next run, as `wharf sync` leaves it.
            let kept = destinations.checkpoint().await.unwrap_or_default();
            return Err(match kept.first() {
                Some(path) => anyhow!(
                    "{}; what was copied is kept beside {} for the next run",
                    chain(&e),
                    path.display()
                ),
                None => e.into(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    if !dry_run {
        destinations.finish().await?;
        if let Some(path) = lock_output {
            let tag = copied.destination.tag();
            write_lock(
                path,
                &BundleLock::at(&copied.destination, &copied.bundle.digest, tag),
            )?;
        }
    }
    let report = &copied.report;
    match flags.output {
        Format::Json => {
            let mut document = json!({
                "source": source.address.to_string(),
                "destination": copied.destination.to_string(),
                "digest": copied.bundle.digest,
                "dryRun": dry_run,
                "bundles": copied.bundles,
                "images": copied.images,
                "records": copied.records.iter().map(|r| json!({
                    "bundle": r.bundle,
                    "tag": r.tag,
                    "digest": r.digest,
                    "images": r.images,
                    "kept": r.kept,
                })).collect::<Vec<_>>(),
            });
            document
                .as_object_mut()
                .expect("a JSON object literal")
                .extend(copy_counts(report));
            out_json(&document)?;
        }
        Format::Text => {
            let verb = if dry_run { "Would copy" } else { "Copied" };
            out!("{verb} bundle {} to {}", source.address, copied.destination);
            out!("  digest {}", copied.bundle.digest);
            out!(
                "  {} bundles and {} images: {} manifests and {} blobs ({}) {}, {} manifests and {} blobs already there",
                copied.bundles,
                copied.images,
                report.manifests_copied,
                report.blobs_copied,
                human_bytes(report.bytes_copied),
                if dry_run { "to copy" } else { "copied" },
                report.manifests_present,
                report.blobs_present,
            );
            if report.blobs_mounted > 0 {
                out!("  {} blobs mounted", report.blobs_mounted);
            }
            if dry_run {
                out!("  {} location records would be written", copied.bundles);
            }
            for record in &copied.records {
                let kept = if record.kept {
                    " (immutable there: the existing record was kept)"
                } else {
                    ""
                };
                out!(
                    "  location record {} lists {} images{kept}",
                    record.tag,
                    record.images
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn pull(args: BundlePullArgs) -> Result<ExitCode> {
    let source = BundleSource::parse(&args.bundle)?;
    let session = session(&args.registry)?;
    let options = PullOptions {
        recursive: args.recursive,
        replace: args.replace,
    };
    let pulled = imgpkg::pull(&session, &source.address, &args.dir, options).await?;
    for bundle in &pulled.bundles {
        let (dir, nested) = if bundle.path.as_os_str().is_empty() {
            (args.dir.clone(), "")
        } else {
            (args.dir.join(&bundle.path), "nested ")
        };
        out!(
            "Pulled {nested}bundle {} into {}",
            bundle.source,
            dir.display()
        );
        let lock = match (bundle.rule, bundle.rewritten) {
            (Rule::Original, _) => {
                "not every image is in the bundle's repository: images.yml keeps its references"
            }
            (Rule::Record, true) => {
                "the bundle's location record says every image is in its repository: images.yml points there"
            }
            (Rule::BundleRepository, true) => {
                "every image was found in the bundle's repository: images.yml points there"
            }
            (_, false) => {
                "every image is in the bundle's repository, which is no registry: images.yml keeps its references"
            }
        };
        out!("  {} images; {lock}", bundle.images);
    }
    Ok(ExitCode::SUCCESS)
}

async fn locations(args: BundleLocationsArgs) -> Result<ExitCode> {
    let source = BundleSource::parse(&args.bundle)?;
    let session = session(&args.registry)?;
    let bundle = Bundle::open(&session, &source.address).await?;
    let lock = bundle.lock().await?;
    let record = bundle.record().await?;
    let (rule, located) = bundle.locate(&lock, record.as_ref()).await?;
    let record_tag = record
        .as_ref()
        .map(|_| imgpkg::ImageLocations::tag(bundle.digest()));
    match args.output {
        Format::Json => out_json(&json!({
            "bundle": bundle.address.to_string(),
            "digest": bundle.digest(),
            "rule": rule.as_str(),
            "record": record_tag,
            "images": located.iter().map(|l| json!({
                "image": l.image.image,
                "location": l.address.to_string(),
                "isBundle": l.is_bundle,
                "annotations": l.image.annotations,
            })).collect::<Vec<_>>(),
        }))?,
        Format::Text => {
            out!("Bundle {}", bundle.address);
            match &record_tag {
                Some(tag) => {
                    out!("  location record {tag}: every image is in the bundle's repository")
                }
                None if rule == Rule::BundleRepository => {
                    out!("  no location record; every image was found in the bundle's repository")
                }
                None => out!(
                    "  no location record, and not every image is in the bundle's repository: the lock's references stand"
                ),
            }
            for l in &located {
                let kind = if l.is_bundle == Some(true) {
                    "  (bundle)"
                } else {
                    ""
                };
                out!("{}\n  -> {}{kind}", l.image.image, l.address);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_lock(path: &Path, lock: &BundleLock) -> Result<()> {
    std::fs::write(path, lock.to_yaml()).with_context(|| format!("writing {}", path.display()))
}
