//! The copy engine: moves a manifest graph (index → manifests → config and layers, plus `subject`) from
//! one store to another.
//!
//! It knows stores only through [`ReadStore`] and [`Store`], so every format copies to every other. A copy
//! runs in two phases: **discover** fetches and verifies every manifest the destination lacks (an existing
//! manifest means its whole graph is there, so its subtree is skipped), then **transfer** streams the
//! missing blobs, largest first and several at a time, and pushes the manifests children-first with the
//! root last. A failure in discovery writes nothing; a failure during transfer leaves at most complete,
//! verified blobs, never a manifest or tag above missing content.
//!
//! ```no_run
//! # async fn demo(src: &dyn wharf_store::ReadStore, dst: &dyn wharf_store::Store) -> Result<(), wharf_copy::CopyError> {
//! use wharf_copy::{CopyOptions, copy_graph};
//! use wharf_store::ManifestRole;
//! let root = src.resolve("v1").await?;
//! let report = copy_graph(src, dst, &root, ManifestRole::Tag("v1"), &CopyOptions::default()).await?;
//! println!("copied {} blobs", report.blobs_copied);
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};

use futures_util::{StreamExt, TryStreamExt, stream};
use wharf_oci::{Descriptor, Digest, Manifest};
use wharf_store::{Address, ManifestRole, ReadStore, Store, StoreError};

/// How a copy runs. `CopyOptions::default()` transfers 8 blobs at a time.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Blobs transferred at once (at least 1).
    pub concurrency: usize,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions { concurrency: 8 }
    }
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The root manifest copied.
    pub root: Descriptor,
    /// Manifests written to the destination (the root counts when it was new).
    pub manifests_copied: usize,
    /// Manifests the destination already had (their subtrees were skipped).
    pub manifests_present: usize,
    /// Blobs written to the destination.
    pub blobs_copied: usize,
    /// Blobs the destination already had.
    pub blobs_present: usize,
    /// Bytes of blobs written.
    pub bytes_copied: u64,
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    /// A store operation failed; the error names the store and the content.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The destination refused a blob, most often because the source's bytes do not match their digest.
    #[error("copy from {source_location}")]
    Transfer {
        /// Where the bytes came from.
        source_location: String,
        /// The destination's error, naming the blob.
        #[source]
        error: StoreError,
    },
    /// The destination names a digest other than the source's.
    #[error(
        "destination {destination} names digest {wanted}, but the source resolves to {actual}; \
         drop the digest from the destination or fix it"
    )]
    DigestConflict {
        /// The destination as given.
        destination: String,
        /// The digest the destination names.
        wanted: Digest,
        /// The digest of the source's root.
        actual: Digest,
    },
}

/// Copies the image one location names to another: `wharf copy SRC DST`.
///
/// The destination is named by its own tag, else by the source's tag, else listed as an untagged root.
pub async fn copy_image(
    source: &Address,
    destination: &Address,
    options: &CopyOptions,
) -> Result<CopyReport, CopyError> {
    let src = source.open_read().await?;
    let root = source.resolve_in(src.as_ref()).await?;
    if let Some(wanted) = destination.digest()
        && *wanted != root.digest
    {
        return Err(CopyError::DigestConflict {
            destination: destination.to_string(),
            wanted: wanted.clone(),
            actual: root.digest,
        });
    }
    let dst = destination.open_write().await?;
    let role = match destination.tag().or(source.tag()) {
        Some(tag) => ManifestRole::Tag(tag),
        None => ManifestRole::Root,
    };
    copy_graph(src.as_ref(), dst.as_ref(), &root, role, options).await
}

/// A manifest found during discovery, with the successors the destination lacks.
struct Node {
    descriptor: Descriptor,
    manifest: Manifest,
    /// Child manifests to push before this one.
    children: Vec<Digest>,
}

/// Everything discovery learned.
#[derive(Default)]
struct Plan {
    /// Every digest already looked at, so shared content is considered once.
    seen: HashSet<Digest>,
    nodes: HashMap<Digest, Node>,
    blobs: HashMap<Digest, Descriptor>,
    manifests_present: usize,
    blobs_present: usize,
}

/// Copies the graph below `root` from `src` to `dst`, then names the root as `role` says.
pub async fn copy_graph(
    src: &dyn ReadStore,
    dst: &dyn Store,
    root: &Descriptor,
    role: ManifestRole<'_>,
    options: &CopyOptions,
) -> Result<CopyReport, CopyError> {
    let concurrency = options.concurrency.max(1);
    let root_manifest = src.fetch_manifest(root).await?;
    let root_present = dst.exists(root).await?;
    let mut plan = Plan::default();
    if root_present {
        plan.manifests_present += 1;
    } else {
        discover(
            src,
            dst,
            root.clone(),
            root_manifest.clone(),
            &mut plan,
            concurrency,
        )
        .await?;
    }

    tracing::info!(
        manifests = plan.nodes.len(),
        blobs = plan.blobs.len(),
        manifests_present = plan.manifests_present,
        blobs_present = plan.blobs_present,
        "discovered what to copy"
    );
    let mut blobs: Vec<Descriptor> = plan.blobs.values().cloned().collect();
    blobs.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.digest.cmp(&b.digest)));
    let bytes_copied = blobs.iter().map(|b| b.size).sum();
    let blobs_copied = blobs.len();
    stream::iter(blobs)
        .map(|blob| async move {
            tracing::debug!(digest = %blob.digest, size = blob.size, "copying blob");
            let body = src.fetch(&blob).await?;
            dst.push(&blob, body)
                .await
                .map_err(|error| CopyError::Transfer {
                    source_location: src.location(),
                    error,
                })?;
            tracing::info!(digest = %blob.digest, size = blob.size, "copied blob");
            Ok::<_, CopyError>(())
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;

    let mut order = Vec::new();
    if !root_present {
        push_order(&plan, &root.digest, &mut order);
    }
    let manifests_copied = order.len();
    for digest in order.iter().filter(|d| **d != root.digest) {
        let node = &plan.nodes[digest];
        tracing::info!(digest = %digest, "pushing manifest");
        dst.push_manifest(
            &node.descriptor,
            node.manifest.raw().clone(),
            ManifestRole::Child,
        )
        .await?;
    }
    dst.push_manifest(root, root_manifest.raw().clone(), role)
        .await?;
    Ok(CopyReport {
        root: root.clone(),
        manifests_copied,
        manifests_present: plan.manifests_present,
        blobs_copied,
        blobs_present: plan.blobs_present,
        bytes_copied,
    })
}

/// Walks the graph level by level, fetching each level's manifests concurrently.
async fn discover(
    src: &dyn ReadStore,
    dst: &dyn Store,
    root: Descriptor,
    root_manifest: Manifest,
    plan: &mut Plan,
    concurrency: usize,
) -> Result<(), StoreError> {
    plan.seen.insert(root.digest.clone());
    let mut level = vec![(root, root_manifest)];
    while !level.is_empty() {
        let mut wanted: Vec<Descriptor> = Vec::new();
        for (descriptor, manifest) in level {
            let mut children = Vec::new();
            for successor in manifest.successors() {
                let digest = &successor.digest;
                // The subject is copied along when the source has it; a referrer may outlive its subject.
                if manifest.subject() == Some(successor) && !src.exists(successor).await? {
                    tracing::debug!(subject = %digest, "subject not in the source; not copied");
                    continue;
                }
                if successor.is_manifest() {
                    children.push(digest.clone());
                }
                if !plan.seen.insert(digest.clone()) {
                    continue;
                }
                if successor.is_manifest() {
                    wanted.push(successor.clone());
                } else if dst.exists(successor).await? {
                    plan.blobs_present += 1;
                } else {
                    plan.blobs.insert(digest.clone(), successor.clone());
                }
            }
            plan.nodes.insert(
                descriptor.digest.clone(),
                Node {
                    descriptor,
                    manifest,
                    children,
                },
            );
        }
        let fetched: Vec<Option<(Descriptor, Manifest)>> = stream::iter(wanted)
            .map(|descriptor| async move {
                if dst.exists(&descriptor).await? {
                    return Ok(None);
                }
                let manifest = src.fetch_manifest(&descriptor).await?;
                Ok::<_, StoreError>(Some((descriptor, manifest)))
            })
            .buffered(concurrency)
            .try_collect()
            .await?;
        plan.manifests_present += fetched.iter().filter(|f| f.is_none()).count();
        level = fetched.into_iter().flatten().collect();
    }
    Ok(())
}

/// Children before parents: the order in which manifests may be pushed.
fn push_order(plan: &Plan, digest: &Digest, order: &mut Vec<Digest>) {
    let Some(node) = plan.nodes.get(digest) else {
        return; // present in the destination already, or an absent subject
    };
    if order.contains(digest) {
        return; // reached through another parent; graphs are small enough for a linear check
    }
    for child in &node.children {
        push_order(plan, child, order);
    }
    order.push(digest.clone());
}
