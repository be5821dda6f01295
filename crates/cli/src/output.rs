//! Formatting results for people.

/// `1536` → `1.5 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Writes a JSON document to stdout, indented as every command prints JSON.
pub fn out_json(document: &impl serde::Serialize) -> anyhow::Result<()> {
    write_line(format_args!("{}", serde_json::to_string_pretty(document)?));
    Ok(())
}

/// What a copy moved, as the JSON fields every copying command reports.
pub fn copy_counts(report: &wharf_copy::CopyReport) -> serde_json::Map<String, serde_json::Value> {
    [
        ("manifestsCopied", report.manifests_copied as u64),
        ("manifestsPresent", report.manifests_present as u64),
        ("blobsCopied", report.blobs_copied as u64),
        ("blobsMounted", report.blobs_mounted as u64),
        ("blobsPresent", report.blobs_present as u64),
        ("bytesCopied", report.bytes_copied),
        ("referrersCopied", report.referrers_copied as u64),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.into()))
    .collect()
}

/// Writes a line to stdout. When the reader has gone away (`wharf … | head`), exits quietly instead
/// of panicking, as command-line tools do.
pub fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{args}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` for command output; see [`write_line`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}
pub(crate) use out;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
