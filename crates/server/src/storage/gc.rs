//! Garbage collection: removes blobs no manifest references and uploads nobody finished.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use wharf_oci::{Digest, Manifest};

use super::Storage;
use wharf_store::durable;

/// What a collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted.
    pub blobs_removed: usize,
    /// Their total size.
    pub bytes_removed: u64,
    /// Blobs still referenced (or too young to judge).
    pub blobs_kept: usize,
    /// Abandoned uploads and temporary files deleted.
    pub uploads_removed: usize,
}

const ALGORITHMS: [&str; 2] = ["sha256", "sha512"];

impl Storage {
    /// Deletes every blob that no manifest of any repository references, and every upload or temporary
    /// file, provided it is older than `grace` (so content of a push in progress survives).
    pub async fn gc(&self, grace: Duration) -> io::Result<GcReport> {
        let cutoff = SystemTime::now() - grace;
        let mut marked: HashSet<Digest> = HashSet::new();
        let repositories = self.repositories().await?;
        for repo in &repositories {
            for digest in linked(&self.repo_dir(repo).join("_manifests")).await? {
                let Some(bytes) = durable::read_optional(&self.blob_path(&digest)).await? else {
                    continue;
                };
                if let Ok(manifest) = Manifest::parse(Bytes::from(bytes), None) {
                    marked.extend(manifest.successors().into_iter().map(|d| d.digest.clone()));
                }
                marked.insert(digest);
            }
        }

        let mut report = GcReport::default();
        let mut removed = Vec::new();
        for digest in linked(&self.root.join("blobs")).await? {
            let path = self.blob_path(&digest);
            let meta = tokio::fs::metadata(&path).await?;
            if marked.contains(&digest) || meta.modified()? > cutoff {
                report.blobs_kept += 1;
                continue;
            }
            durable::remove_if_present(&path).await?;
            report.blobs_removed += 1;
            report.bytes_removed += meta.len();
            removed.push(digest);
        }
        for repo in &repositories {
            for digest in &removed {
                durable::remove_if_present(&self.blob_link(repo, digest)).await?;
            }
        }
        for dir in [self.root.join("uploads"), self.tmp()] {
            report.uploads_removed += remove_older_than(&dir, cutoff).await?;
        }
        Ok(report)
    }
}

/// Digests named by `<dir>/<alg>/<hex>` files.
async fn linked(dir: &Path) -> io::Result<Vec<Digest>> {
    let mut out = Vec::new();
    for algorithm in ALGORITHMS {
        for hex in durable::list_dir(&dir.join(algorithm)).await? {
            if let Ok(digest) = Digest::parse(&format!("{algorithm}:{hex}")) {
                out.push(digest);
            }
        }
    }
    Ok(out)
}

async fn remove_older_than(dir: &Path, cutoff: SystemTime) -> io::Result<usize> {
    let mut removed = 0;
    for name in durable::list_dir(dir).await? {
        let path = dir.join(name);
        if tokio::fs::metadata(&path).await?.modified()? < cutoff {
            durable::remove_if_present(&path).await?;
            removed += 1;
        }
    }
    Ok(removed)
}
