//! Progress on stderr while content moves: an aggregate bar and one line per large blob in flight.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use wharf_copy::Observer;
use wharf_oci::{Descriptor, Digest};
use wharf_sync::{RootObserver, RootResult, Status};

/// Blobs at least this large get a progress line of their own.
const LARGE_BLOB: u64 = 16 * 1024 * 1024;

/// A bar counting items done of a total (`what`: `versions`), on a terminal and `enabled` only.
pub fn counter(enabled: bool, what: &str) -> ProgressBar {
    if !(enabled && std::io::stderr().is_terminal() && std::io::stdout().is_terminal()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} {{pos}}/{{len}} [{{bar:30}}] {{elapsed_precise}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// An aggregate bar (roots done, blobs, bytes, rate) plus one line per large blob in flight.
pub struct Progress {
    /// The display is drawn (a terminal, not --quiet).
    shown: bool,
    multi: MultiProgress,
    total: ProgressBar,
    large: Mutex<HashMap<Digest, ProgressBar>>,
    bytes: std::sync::atomic::AtomicU64,
    blobs: std::sync::atomic::AtomicU64,
}

impl Progress {
    /// A display, shown when `enabled` and both stderr and stdout are terminals; `roots` names
    /// what the bar counts (`images`), or it is a spinner over blobs alone.
    pub fn new(enabled: bool, roots: Option<&str>) -> Progress {
        let show = enabled && std::io::stderr().is_terminal() && std::io::stdout().is_terminal();
        let target = if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template(&match roots {
                Some(roots) => format!(
                    "{{spinner}} {roots} {{pos}}/{{len}} [{{bar:30}}] {{msg}} {{elapsed_precise}} eta {{eta}}"
                ),
                None => "{spinner} {msg} {elapsed_precise}".to_owned(),
            })
            .expect("valid template")
            .progress_chars("=> "),
        );
        total.enable_steady_tick(std::time::Duration::from_millis(200));
        Progress {
            shown: show,
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

    /// Removes the display.
    pub fn clear(&self) {
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
            // Said once, as it happens, drawn or not; the closing summary only counts it.
            let line = format!(
                "failed: {} -> {}: {}",
                result.source,
                result.destination,
                result.error.as_deref().unwrap_or("")
            );
            if self.shown {
                let _ = self.multi.println(line);
            } else {
                eprintln!("{line}");
            }
        }
    }
}
