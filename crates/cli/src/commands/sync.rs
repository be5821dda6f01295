//! `wharf sync`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use wharf_copy::{CopyOptions, Job};
use wharf_sync::{ImageSpec, Shard, Status, SyncOptions, SyncReport, SyncSpec};

use super::UsageError;
use super::registry_args::sessions;
use crate::args::{Format, ReportMergeArgs, SyncAction, SyncArgs, SyncReportCommand};
use crate::output::{human_bytes, out, out_json};
use crate::progress::Progress;

pub async fn run(args: SyncArgs) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    if let Some(SyncAction::Report(SyncReportCommand::Merge(merge))) = &args.action {
        return merge_reports(merge);
    }
    let mut spec = match (&args.retry_failed, &args.file) {
        (Some(report), _) => SyncSpec::failed_in(report)?,
        (None, Some(file)) => SyncSpec::read(file)?,
        (None, None) => SyncSpec::default(),
    };
    for source in &args.sources {
        // A source typed on the command line that cannot be read is a usage error, found before
        // anything else happens.
        if let Err(e) = wharf_store::Address::parse(source) {
            return Err(UsageError(e.to_string()).into());
        }
        spec.images.push(ImageSpec {
            source: source.clone(),
            platforms: args.platform.clone(),
            ..ImageSpec::default()
        });
    }
    if spec.images.is_empty() && spec.components.is_empty() && spec.bundles.is_empty() {
        return Err(
            UsageError("nothing to sync: give sources, --file or --retry-failed".into()).into(),
        );
    }
    if args.to.is_none() {
        let images = spec.images.iter().map(|i| (&i.source, &i.destination));
        let components = spec.components.iter().map(|c| (&c.source, &c.destination));
        let bundles = spec.bundles.iter().map(|b| (&b.source, &b.destination));
        if let Some((source, _)) = images
            .chain(components)
            .chain(bundles)
            .find(|(_, d)| d.is_none())
        {
            return Err(UsageError(format!(
                "{source} has no destination: give --to PREFIX, or a destination in the sync file"
            ))
            .into());
        }
    }
    let (sources, destinations) = sessions(&args.sides)?;
    let options = SyncOptions {
        to: args.to.clone(),
        repo_map: args.repo_map.clone(),
        roots_at_once: usize::from(args.images_at_once),
        catalog: args.catalog.repository().map(str::to_owned),
        shard: args.shard,
    };
    let progress = Arc::new(Progress::new(!args.quiet, Some("images")));
    let copy = CopyOptions {
        concurrency: usize::from(args.jobs),
        referrers: !args.no_referrers,
        dry_run: args.dry_run,
        ..CopyOptions::default()
    };
    let job = Arc::new(Job::new(copy, progress.clone()));
    let expanded = wharf_sync::expand(&spec, &options, &sources).await;
    let mut report = wharf_sync::run(
        expanded,
        &options,
        job,
        &sources,
        &destinations,
        progress.as_ref(),
    )
    .await;
    progress.clear();
    report.seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    if !args.dry_run && report.failures() == 0 {
        destinations.finish().await?;
    } else if !args.dry_run {
        // Archives stay unfinished, so that nothing incomplete passes for a whole export; their
        // partial files keep what was written for the next run.
        match destinations.checkpoint().await {
            Ok(archives) => {
                for archive in archives {
                    eprintln!(
                        "note: {} is not written because some images failed; what was copied is kept and the next sync to it carries on",
                        archive.display()
                    );
                }
            }
            // The report below still says what happened to each image.
            Err(e) => eprintln!(
                "note: what was copied could not be kept for the next run ({e:#}); it starts over"
            ),
        }
    }

    match args.output {
        Format::Json => out_json(&report)?,
        // Quiet means nothing on success; failures were said as they happened.
        Format::Text if args.quiet && report.failures() == 0 => {}
        Format::Text => print_summary(&report, args.dry_run),
    }
    Ok(if report.failures() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_summary(report: &SyncReport, dry_run: bool) {
    let results = &report.roots;
    let count = |status: Status| results.iter().filter(|r| r.status == status).count();
    let bytes: u64 = results.iter().map(|r| r.bytes).sum();
    let blobs: usize = results.iter().map(|r| r.blobs).sum();
    if dry_run {
        for r in results.iter().filter(|r| r.status != Status::Failed) {
            let what = if r.status == Status::Planned {
                format!("would copy {} blobs ({})", r.blobs, human_bytes(r.bytes))
            } else {
                "up to date".to_owned()
            };
            out!("{} -> {}: {what}", r.source, r.destination);
        }
        out!(
            "plan: {} to copy, {} up to date, {} failed; {blobs} blobs, {} to move",
            count(Status::Planned),
            count(Status::Skipped),
            count(Status::Failed),
            human_bytes(bytes)
        );
    } else {
        let moved = &report.moved;
        let share = report
            .shard
            .map(|shard| format!(" (share {shard})"))
            .unwrap_or_default();
        out!(
            "synced {} images{share} in {:.1}s: {} copied, {} already there, {} failed; {} blobs ({} mounted), {} moved",
            results.len(),
            report.seconds,
            count(Status::Copied),
            count(Status::Skipped),
            count(Status::Failed),
            moved.blobs_uploaded + moved.blobs_mounted,
            moved.blobs_mounted,
            human_bytes(moved.bytes_uploaded)
        );
    }
    if count(Status::Failed) > 0 {
        out!(
            "hint: run with --output json > report.json, then --retry-failed report.json reruns only the failures"
        );
    }
}

/// `wharf sync report merge`: one report from the shares' reports, on stdout.
fn merge_reports(args: &ReportMergeArgs) -> Result<ExitCode> {
    let reports = args
        .reports
        .iter()
        .map(|path| Ok((path.clone(), SyncReport::read(path)?)))
        .collect::<Result<Vec<_>>>()?;
    let shards: Vec<Shard> = reports.iter().filter_map(|(_, r)| r.shard).collect();
    let merged = SyncReport::merge(reports)?;
    if let Some(count) = shards.first().map(|s| s.count) {
        let missing: Vec<String> = (0..count)
            .filter(|index| !shards.iter().any(|s| s.index == *index && s.count == count))
            .map(|index| index.to_string())
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "note: share {} of {count} missing: the merged report covers only the shares given",
                missing.join(", ")
            );
        }
    }
    if merged.failures() > 0 {
        eprintln!(
            "note: {} failed; wharf sync --retry-failed on the merged report reruns them",
            merged.failures()
        );
    }
    out_json(&merged)?;
    Ok(ExitCode::SUCCESS)
}
