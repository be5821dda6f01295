//! `wharf sync`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Result, bail};
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use wharf_copy::{CopyOptions, Job, Observer};
use wharf_oci::{Descriptor, Digest};
use wharf_sync::{ImageSpec, RootObserver, RootResult, Status, SyncOptions, SyncReport, SyncSpec};

use super::registry_args::sessions;
use crate::args::{Format, SyncArgs};
use crate::output::{human_bytes, out};

/// Blobs at least this large get a progress line of their own.
const LARGE_BLOB: u64 = 16 * 1024 * 1024;

pub async fn run(args: SyncArgs) -> Result<ExitCode> {
    let mut spec = match (&args.retry_failed, &args.file) {
        (Some(report), _) => SyncSpec::failed_in(report)?,
        (None, Some(file)) => SyncSpec::read(file)?,
        (None, None) => SyncSpec::default(),
    };
    for source in &args.sources {
        spec.images.push(ImageSpec {
            source: source.clone(),
            platforms: args.platform.clone(),
            ..ImageSpec::default()
        });
    }
    if spec.images.is_empty() && spec.components.is_empty() && spec.bundles.is_empty() {
        bail!("nothing to sync: give sources, --file or --retry-failed");
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
            bail!(
                "{source} has no destination: give --to PREFIX, or a destination in the sync file"
            );
        }
    }
    let (sources, destinations) = sessions(&args.sides)?;
    let options = SyncOptions {
        to: args.to.clone(),
        repo_map: args.repo_map.clone(),
        roots_at_once: usize::from(args.images_at_once),
    };
    let show = !args.quiet && std::io::stderr().is_terminal() && std::io::stdout().is_terminal();
    let progress = Arc::new(Progress::new(show));
    let copy = CopyOptions {
        concurrency: usize::from(args.jobs),
        referrers: !args.no_referrers,
        dry_run: args.dry_run,
        ..CopyOptions::default()
    };
    let job = Arc::new(Job::new(copy, progress.clone()));
    let expanded = wharf_sync::expand(&spec, &options, &sources).await;
    let report = wharf_sync::run(
        expanded,
        &options,
        job,
        &sources,
        &destinations,
        progress.as_ref(),
    )
    .await;
    progress.clear();
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
        Format::Json => out!("{}", serde_json::to_string_pretty(&report)?),
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
        out!(
            "synced {} images: {} copied, {} already there, {} failed; {} blobs ({} mounted), {} moved",
            results.len(),
            count(Status::Copied),
            count(Status::Skipped),
            count(Status::Failed),
            moved.blobs_uploaded + moved.blobs_mounted,
            moved.blobs_mounted,
            human_bytes(moved.bytes_uploaded)
        );
    }
    for failed in results.iter().filter(|r| r.status == Status::Failed) {
        out!(
            "failed: {} -> {}: {}",
            failed.source,
            failed.destination,
            failed.error.as_deref().unwrap_or("")
        );
    }
    if count(Status::Failed) > 0 {
        out!(
            "hint: run with --output json > report.json, then --retry-failed report.json reruns only the failures"
        );
    }
}

/// An aggregate bar (images, bytes, rate) plus one line per large blob in flight, on stderr.
struct Progress {
    multi: MultiProgress,
    total: ProgressBar,
    large: Mutex<HashMap<Digest, ProgressBar>>,
    bytes: std::sync::atomic::AtomicU64,
    blobs: std::sync::atomic::AtomicU64,
}

impl Progress {
    fn new(show: bool) -> Progress {
        let target = if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template(
                "{spinner} images {pos}/{len} [{bar:30}] {msg} {elapsed_precise} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        total.enable_steady_tick(std::time::Duration::from_millis(200));
        Progress {
            multi,
            total,
            large: Mutex::new(HashMap::new()),
            bytes: Default::default(),
            blobs: Default::default(),
        }
    }

    fn message(&self) {
        use std::sync::atomic::Ordering;
        let bytes = self.bytes.load(Ordering::Relaxed);
        let elapsed = self.total.elapsed().as_secs_f64().max(0.001);
        self.total.set_message(format!(
            "{} blobs, {} ({}/s)",
            self.blobs.load(Ordering::Relaxed),
            HumanBytes(bytes),
            HumanBytes((bytes as f64 / elapsed) as u64)
        ));
    }

    fn clear(&self) {
        self.total.finish_and_clear();
        let _ = self.multi.clear();
    }
}

impl Observer for Progress {
    fn blob_started(&self, blob: &Descriptor) {
        if blob.size >= LARGE_BLOB {
            let bar = self.multi.add(ProgressBar::new(blob.size));
            bar.set_style(
                ProgressStyle::with_template(
                    "  {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(blob.digest.short().to_owned());
            self.large
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(blob.digest.clone(), bar);
        }
    }

    fn blob_bytes(&self, blob: &Descriptor, bytes: u64) {
        self.bytes
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        if let Some(bar) = self
            .large
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&blob.digest)
        {
            bar.inc(bytes);
        }
        self.message();
    }

    fn blob_finished(&self, blob: &Descriptor) {
        self.blobs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(bar) = self
            .large
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&blob.digest)
        {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        self.message();
    }
}

impl RootObserver for Progress {
    fn planned(&self, roots: usize) {
        self.total.set_length(roots as u64);
    }

    fn finished(&self, result: &RootResult) {
        self.total.inc(1);
        if result.status == Status::Failed {
            let _ = self.multi.println(format!(
                "failed: {}: {}",
                result.source,
                result.error.as_deref().unwrap_or("")
            ));
        }
    }
}
