//! Checking a store's content: every manifest and blob below a set of roots is read back and hashed,
//! and every reference in the graph must resolve.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::{StreamExt, stream};
use serde::Serialize;
use wharf_oci::{Descriptor, Digest, ManifestBody};
use wharf_store::{ReadStore, StoreError, chain, verified};

use crate::graph::child_home;

/// Something wrong in a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// The manifest or blob concerned.
    pub digest: Digest,
    /// `manifest` or `blob`.
    pub kind: &'static str,
    /// The manifest that points at it, or `None` for a root.
    pub referenced_by: Option<Digest>,
    /// What is wrong, with the error chain.
    pub error: String,
}

/// What [`verify`] read and found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Roots checked.
    pub roots: usize,
    /// Manifests read and found whole.
    pub manifests: usize,
    /// Blobs read and found whole.
    pub blobs: usize,
    /// Bytes of those blobs.
    pub bytes: u64,
    /// Everything wrong.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Adds another report's counts and problems to this one.
    pub fn add(&mut self, other: VerifyReport) {
        self.roots += other.roots;
        self.manifests += other.manifests;
        self.blobs += other.blobs;
        self.bytes += other.bytes;
        self.problems.extend(other.problems);
    }
}

/// Reads every manifest and blob below `roots` in `store` (their referrers too, with `referrers`),
/// checking sizes and digests, `concurrency` blobs at a time. An index child that names a nested
/// repository is read from there (else from the index's repository), with everything below it.
/// Problems are collected, not raised.
pub async fn verify(
    store: &dyn ReadStore,
    roots: &[Descriptor],
    referrers: bool,
    concurrency: usize,
) -> VerifyReport {
    let mut report = VerifyReport {
        roots: roots.len(),
        ..VerifyReport::default()
    };
    let mut seen: HashSet<Digest> = HashSet::new();
    // Each item carries the repository it is read from; `None` is `store` itself.
    let mut manifests: Vec<(Descriptor, Option<Digest>, Place)> = roots
        .iter()
        .filter(|root| seen.insert(root.digest.clone()))
        .map(|root| (root.clone(), None, None))
        .collect();
    let mut blobs: Vec<(Descriptor, Digest, Place)> = Vec::new();
    let problem = |descriptor: &Descriptor, kind, parent: &Option<Digest>, error: String| Problem {
        digest: descriptor.digest.clone(),
        kind,
        referenced_by: parent.clone(),
        error,
    };
    while let Some((descriptor, parent, place)) = manifests.pop() {
        let here: &dyn ReadStore = place.as_deref().unwrap_or(store);
        let manifest = match here.fetch_manifest(&descriptor).await {
            Ok(manifest) => manifest,
            Err(e) => {
                report
                    .problems
                    .push(problem(&descriptor, "manifest", &parent, chain(&e)));
                continue;
            }
        };
        report.manifests += 1;
        let is_index = matches!(manifest.body(), ManifestBody::Index(_));
        let mut successors: Vec<Descriptor> = manifest.successors().into_iter().cloned().collect();
        if referrers {
            match here.referrers(&descriptor, None).await {
                Ok(found) => successors.extend(found),
                Err(e) => {
                    report
                        .problems
                        .push(problem(&descriptor, "manifest", &parent, chain(&e)))
                }
            }
        }
        for successor in successors {
            if !seen.insert(successor.digest.clone()) {
                continue;
            }
            let parent = Some(descriptor.digest.clone());
            let home = if is_index && successor.is_manifest() {
                match child_home(here, &successor).await {
                    Ok(home) => home.or_else(|| place.clone()),
                    Err(e) => {
                        report
                            .problems
                            .push(problem(&successor, "manifest", &parent, chain(&e)));
                        continue;
                    }
                }
            } else {
                place.clone()
            };
            if successor.is_manifest() {
                manifests.push((successor, parent, home));
            } else {
                blobs.push((successor, descriptor.digest.clone(), home));
            }
        }
    }
    let mut checked = stream::iter(blobs)
        .map(|(blob, parent, place)| async move {
            let result = read_whole(place.as_deref().unwrap_or(store), &blob).await;
            (blob, parent, result)
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((blob, parent, result)) = checked.next().await {
        match result {
            Ok(()) => {
                report.blobs += 1;
                report.bytes += blob.size;
            }
            Err(e) => report
                .problems
                .push(problem(&blob, "blob", &Some(parent), chain(&e))),
        }
    }
    report
}

/// The repository an item is read from: `None` for the store verified, else a nested one.
type Place = Option<Arc<dyn ReadStore>>;

/// Reads a blob to its end through a verifying stream.
async fn read_whole(store: &dyn ReadStore, blob: &Descriptor) -> Result<(), StoreError> {
    let target = format!("{} blob {}", store.location(), blob.digest);
    let mut body = verified(
        blob,
        wharf_store::Op::Fetch,
        target,
        store.fetch(blob).await?,
    );
    while let Some(chunk) = body.next().await {
        chunk?;
    }
    Ok(())
}
