//! Progress on stderr while content moves, drawn when stderr is a terminal and `--quiet` is not
//! given: one bar of bytes (moved, of those known to move so far, with the rate and an ETA from
//! bytes), the roots done and in flight, and a line per root as it finishes. Failures are said as
//! they happen, drawn or not.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use wharf_copy::Observer;
use wharf_oci::Descriptor;
use wharf_sync::{RootObserver, RootResult, Status};

/// True when progress may be drawn: on a terminal, unless asked for quiet.
fn drawn(enabled: bool) -> bool {
    enabled && std::io::stderr().is_terminal()
}

/// A bar counting items done of a total (`what`: `versions`).
pub fn counter(enabled: bool, what: &str) -> ProgressBar {
    if !drawn(enabled) {
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

/// The display of a copy or a sync.
pub struct Progress {
    shown: bool,
    bar: ProgressBar,
    /// What the roots are called (`images`), for syncs; `None` for a single copy.
    roots: Option<&'static str>,
    planned: AtomicU64,
    started: AtomicU64,
    finished: AtomicU64,
}

impl Progress {
    /// A display for `roots` (`Some("images")` for a sync), drawn when `enabled` on a terminal.
    pub fn new(enabled: bool, roots: Option<&'static str>) -> Progress {
        let shown = drawn(enabled);
        let bar = ProgressBar::with_draw_target(
            Some(0),
            if shown {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} [{bar:30}] {binary_bytes_per_sec} eta {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Progress {
            shown,
            bar,
            roots,
            planned: AtomicU64::new(0),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
        }
    }

    fn message(&self) {
        let Some(roots) = self.roots else {
            return;
        };
        let finished = self.finished.load(Ordering::Relaxed);
        let in_flight = self
            .started
            .load(Ordering::Relaxed)
            .saturating_sub(finished);
        self.bar.set_message(format!(
            "{roots} {finished}/{}, {in_flight} in flight",
            self.planned.load(Ordering::Relaxed)
        ));
    }

    /// A line above the bar (or on stderr when nothing is drawn).
    fn line(&self, text: String) {
        if self.shown {
            self.bar.println(text);
        } else {
            eprintln!("{text}");
        }
    }

    /// Removes the display.
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer for Progress {
    fn blob_started(&self, blob: &Descriptor) {
        self.bar.inc_length(blob.size);
    }

    fn blob_bytes(&self, _blob: &Descriptor, bytes: u64) {
        self.bar.inc(bytes);
    }
}

impl RootObserver for Progress {
    fn planned(&self, roots: usize) {
        self.planned.store(roots as u64, Ordering::Relaxed);
        self.message();
    }

    fn started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.message();
    }

    fn finished(&self, result: &RootResult) {
        self.finished.fetch_add(1, Ordering::Relaxed);
        self.message();
        let route = format!("{} -> {}", result.source, result.destination);
        match result.status {
            Status::Failed => self.line(format!(
                "failed: {route}: {}",
                result.error.as_deref().unwrap_or("")
            )),
            _ if !self.shown => {}
            Status::Skipped => self.line(format!("up to date  {route}")),
            Status::Copied | Status::Planned => {
                let verb = if result.status == Status::Copied {
                    "copied"
                } else {
                    "would copy"
                };
                let mounted = if result.mounted > 0 {
                    format!(", {} mounted", result.mounted)
                } else {
                    String::new()
                };
                self.line(format!(
                    "{verb}  {route}  {} in {} blobs{mounted}, {:.1}s",
                    HumanBytes(result.bytes),
                    result.blobs,
                    result.seconds
                ));
            }
        }
    }
}
