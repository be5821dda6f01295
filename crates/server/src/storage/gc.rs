//! Garbage collection: removes blobs no manifest references and uploads nobody finished.

use std::collections::HashSet;
use std::io;
use std::time::{Duration, SystemTime};

use wharf_oci::{Digest, Manifest};

use super::{Storage, blob_key, blob_link, repo_key};

/// What a collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted.
    pub blobs_removed: usize,
    /// Their total size.
    pub bytes_removed: u64,
    /// Blobs still referenced (or too young to judge).
    pub blobs_kept: usize,
    /// Abandoned upload sessions, temporary files and unfinished multipart uploads deleted.
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
            let manifests = format!("{}/_manifests", repo_key(repo));
            for digest in self.linked(&manifests).await? {
                let Some(bytes) = self.objects.read(&blob_key(&digest)).await? else {
                    continue;
                };
                if let Ok(manifest) = Manifest::parse(bytes, None) {
                    marked.extend(manifest.successors().into_iter().map(|d| d.digest.clone()));
                }
                marked.insert(digest);
            }
        }

        let mut report = GcReport::default();
        let mut removed = Vec::new();
        for digest in self.linked("blobs").await? {
            let key = blob_key(&digest);
            let young = self
                .objects
                .modified(&key)
                .await?
                .is_none_or(|m| m > cutoff);
            if marked.contains(&digest) || young {
                report.blobs_kept += 1;
                continue;
            }
            let size = self.objects.size(&key).await?.unwrap_or(0);
            self.objects.remove(&key).await?;
            report.blobs_removed += 1;
            report.bytes_removed += size;
            removed.push(digest);
        }
        for repo in &repositories {
            for digest in &removed {
                self.objects.remove(&blob_link(repo, digest)).await?;
            }
        }
        report.uploads_removed += self.expire_uploads(grace).await?;
        // What is removed above is reported even when the store cannot list unfinished writes
        // (a bucket policy without ListBucketMultipartUploads).
        match self.objects.remove_unfinished(cutoff).await {
            Ok(removed) => report.uploads_removed += removed,
            Err(e) => tracing::warn!("unfinished writes in {} left: {e}", self.describe()),
        }
        Ok(report)
    }

    /// Digests named by `<prefix>/<alg>/<hex>` objects.
    async fn linked(&self, prefix: &str) -> io::Result<Vec<Digest>> {
        let mut out = Vec::new();
        for algorithm in ALGORITHMS {
            for hex in self.objects.list(&format!("{prefix}/{algorithm}")).await? {
                if let Ok(digest) = Digest::parse(&format!("{algorithm}:{hex}")) {
                    out.push(digest);
                }
            }
        }
        Ok(out)
    }
}
