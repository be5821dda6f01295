//! The copy engine: moves a manifest graph (index → manifests → config and layers, plus `subject`, plus
//! the referrers of every manifest) from one store to another.
//!
//! It knows stores only through [`ReadStore`] and [`Store`], so every format copies to every other. A copy
//! runs in two phases: **discover** fetches and verifies every manifest the destination lacks (an existing
//! manifest means its whole graph is there, so its subtree is skipped), then **transfer** moves the
//! missing blobs, largest first and several at a time (a cross-repository mount when source and
//! destination share a registry, else a verified stream, retried when the failure is transient), and
//! pushes the manifests children-first with the root last. A failure in discovery writes nothing; a
//! failure during transfer leaves at most complete, verified blobs, never a manifest or tag above
//! missing content. Referrers follow, each copied the same way.
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
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};
use wharf_oci::{Descriptor, Digest, ImageIndex, Manifest, ManifestBody, Platform};
use wharf_store::registry::Registries;
use wharf_store::{Address, ManifestRole, ReadStore, Store, StoreError};

/// How a copy runs. `CopyOptions::default()`: 8 blobs at a time, referrers included, every platform,
/// 3 attempts per blob.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Blobs transferred at once (at least 1).
    pub concurrency: usize,
    /// Copy the referrers (signatures, SBOMs, attestations) of every manifest copied.
    pub referrers: bool,
    /// Only these platforms of a multi-platform image (empty: all). The destination gets a new index
    /// listing just them.
    pub platforms: Vec<Platform>,
    /// Attempts per blob when a transfer fails for a reason that may pass (network, 5xx, 429).
    pub attempts: u32,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            concurrency: 8,
            referrers: true,
            platforms: Vec::new(),
            attempts: 3,
        }
    }
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The root manifest at the destination.
    pub root: Descriptor,
    /// Manifests written to the destination (the root counts when it was new).
    pub manifests_copied: usize,
    /// Manifests the destination already had (their subtrees were skipped).
    pub manifests_present: usize,
    /// Blobs written to the destination (streamed or mounted).
    pub blobs_copied: usize,
    /// Of those, blobs mounted from another repository of the same registry.
    pub blobs_mounted: usize,
    /// Blobs the destination already had.
    pub blobs_present: usize,
    /// Bytes of blobs streamed (mounted blobs move no bytes).
    pub bytes_copied: u64,
    /// Referrers copied along (each with its own graph).
    pub referrers_copied: usize,
}

impl CopyReport {
    fn empty(root: Descriptor) -> CopyReport {
        CopyReport {
            root,
            manifests_copied: 0,
            manifests_present: 0,
            blobs_copied: 0,
            blobs_mounted: 0,
            blobs_present: 0,
            bytes_copied: 0,
            referrers_copied: 0,
        }
    }

    fn add(&mut self, other: &CopyReport) {
        self.manifests_copied += other.manifests_copied;
        self.manifests_present += other.manifests_present;
        self.blobs_copied += other.blobs_copied;
        self.blobs_mounted += other.blobs_mounted;
        self.blobs_present += other.blobs_present;
        self.bytes_copied += other.bytes_copied;
        self.referrers_copied += other.referrers_copied;
    }
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
    /// `--platform` asked for platforms the source does not have.
    #[error("{source_location} has no manifest for {wanted} (it has: {available})")]
    MissingPlatform {
        /// The source.
        source_location: String,
        /// The platforms asked for that are missing.
        wanted: String,
        /// The platforms the index lists.
        available: String,
    },
}

impl CopyError {
    fn is_retryable(&self) -> bool {
        match self {
            CopyError::Store(e) | CopyError::Transfer { error: e, .. } => e.is_retryable(),
            _ => false,
        }
    }
}

/// Copies the image one location names to another: `wharf copy SRC DST`.
///
/// The destination is named by its own tag, else by the source's tag, else listed as an untagged root.
/// `sources` and `destinations` carry the registry settings (credentials, TLS) of each side.
pub async fn copy_image(
    source: &Address,
    destination: &Address,
    sources: &Registries,
    destinations: &Registries,
    options: &CopyOptions,
) -> Result<CopyReport, CopyError> {
    let src = source.open_read(sources).await?;
    let mut root = source.resolve_in(src.as_ref()).await?;
    let mut chosen = None;
    if !options.platforms.is_empty() {
        let manifest = src.fetch_manifest(&root).await?;
        if let ManifestBody::Index(index) = manifest.body() {
            let selected = select_platforms(index, &options.platforms, &src.location())?;
            root = selected.descriptor();
            chosen = Some(selected);
        }
    }
    if let Some(wanted) = destination.digest()
        && *wanted != root.digest
    {
        return Err(CopyError::DigestConflict {
            destination: destination.to_string(),
            wanted: wanted.clone(),
            actual: root.digest,
        });
    }
    let dst = destination.open_write(destinations).await?;
    let role = match destination.tag().or(source.tag()) {
        Some(tag) => ManifestRole::Tag(tag),
        None => ManifestRole::Root,
    };
    let Some(index) = chosen else {
        return copy_graph(src.as_ref(), dst.as_ref(), &root, role, options).await;
    };
    // A new index of just the chosen platforms: each child graph first, then the index itself, so the
    // destination never holds an index naming manifests it lacks.
    let mut report = CopyReport::empty(root.clone());
    let ManifestBody::Index(body) = index.body() else {
        unreachable!("select_platforms builds an index")
    };
    for child in &body.manifests {
        let part = copy_graph(
            src.as_ref(),
            dst.as_ref(),
            child,
            ManifestRole::Child,
            options,
        )
        .await?;
        report.add(&part);
    }
    let present = dst.exists(&root).await?;
    dst.push_manifest(&root, index.raw().clone(), role).await?;
    if present {
        report.manifests_present += 1;
    } else {
        report.manifests_copied += 1;
    }
    Ok(report)
}

/// The entries of `index` matching `wanted`, as a new index with the same media type and annotations.
fn select_platforms(
    index: &ImageIndex,
    wanted: &[Platform],
    location: &str,
) -> Result<Manifest, CopyError> {
    let mut selected = index.clone();
    selected.manifests.retain(|entry| {
        entry
            .platform
            .as_ref()
            .is_some_and(|p| wanted.iter().any(|w| p.satisfies(w)))
    });
    let missing: Vec<String> = wanted
        .iter()
        .filter(|w| {
            !selected
                .manifests
                .iter()
                .any(|e| e.platform.as_ref().is_some_and(|p| p.satisfies(w)))
        })
        .map(ToString::to_string)
        .collect();
    if !missing.is_empty() {
        let available: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|e| e.platform.as_ref().map(ToString::to_string))
            .collect();
        return Err(CopyError::MissingPlatform {
            source_location: location.to_owned(),
            wanted: missing.join(", "),
            available: available.join(", "),
        });
    }
    Ok(Manifest::from_index(&selected))
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

/// Copies the graph below `root` from `src` to `dst`, names the root as `role` says, then (unless
/// turned off) copies the referrers of every manifest in the graph.
pub async fn copy_graph(
    src: &dyn ReadStore,
    dst: &dyn Store,
    root: &Descriptor,
    role: ManifestRole<'_>,
    options: &CopyOptions,
) -> Result<CopyReport, CopyError> {
    let (mut report, manifests) = copy_one_graph(src, dst, root, role, options).await?;
    if options.referrers {
        let mut visited: HashSet<Digest> = manifests.iter().map(|d| d.digest.clone()).collect();
        let mut subjects = manifests;
        while let Some(subject) = subjects.pop() {
            for referrer in src.referrers(&subject, None).await? {
                if !visited.insert(referrer.digest.clone()) {
                    continue;
                }
                tracing::info!(subject = %subject.digest, referrer = %referrer.digest, "copying referrer");
                let (part, found) =
                    copy_one_graph(src, dst, &referrer, ManifestRole::Root, options).await?;
                report.add(&part);
                report.referrers_copied += 1;
                // Referrers can have referrers of their own (a signature on an SBOM).
                for manifest in found {
                    if manifest.digest == referrer.digest || visited.insert(manifest.digest.clone())
                    {
                        subjects.push(manifest);
                    }
                }
            }
        }
    }
    Ok(report)
}

/// One graph, without referrers; also returns the manifests known to be in it (to look for referrers).
async fn copy_one_graph(
    src: &dyn ReadStore,
    dst: &dyn Store,
    root: &Descriptor,
    role: ManifestRole<'_>,
    options: &CopyOptions,
) -> Result<(CopyReport, Vec<Descriptor>), CopyError> {
    let concurrency = options.concurrency.max(1);
    let root_manifest = src.fetch_manifest(root).await?;
    let root_present = dst.exists(root).await?;
    let mut plan = Plan::default();
    let mut manifests = vec![root.clone()];
    if root_present {
        plan.manifests_present += 1;
        // The subtree is there; its direct child manifests may still have referrers to copy.
        manifests.extend(
            root_manifest
                .successors()
                .into_iter()
                .filter(|d| d.is_manifest())
                .cloned(),
        );
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
        manifests.extend(
            plan.nodes
                .values()
                .map(|n| n.descriptor.clone())
                .filter(|d| d.digest != root.digest),
        );
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
    let mount_source = src.mount_source();
    let outcomes: Vec<Transfer> = stream::iter(blobs)
        .map(|blob| {
            let mount_source = mount_source.clone();
            async move {
                if let Some(from) = &mount_source
                    && dst.mount(&blob, from).await?
                {
                    tracing::info!(digest = %blob.digest, from = %from.repository, "mounted blob");
                    return Ok(Transfer::Mounted);
                }
                copy_blob(src, dst, &blob, options.attempts).await?;
                Ok::<_, CopyError>(Transfer::Streamed(blob.size))
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;

    let mut order = Vec::new();
    if !root_present {
        push_order(&plan, &root.digest, &mut order);
    }
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
    if !root_present || !already_named(dst, root, role).await? {
        dst.push_manifest(root, root_manifest.raw().clone(), role)
            .await?;
    }
    let report = CopyReport {
        root: root.clone(),
        manifests_copied: order.len(),
        manifests_present: plan.manifests_present,
        blobs_copied: outcomes.len(),
        blobs_mounted: outcomes
            .iter()
            .filter(|o| matches!(o, Transfer::Mounted))
            .count(),
        blobs_present: plan.blobs_present,
        bytes_copied: outcomes
            .iter()
            .map(|o| match o {
                Transfer::Streamed(size) => *size,
                Transfer::Mounted => 0,
            })
            .sum(),
        referrers_copied: 0,
    };
    Ok((report, manifests))
}

/// True if a present root needs no push: untagged, or its tag already points at it.
async fn already_named(
    dst: &dyn Store,
    root: &Descriptor,
    role: ManifestRole<'_>,
) -> Result<bool, StoreError> {
    match role {
        ManifestRole::Tag(tag) => match dst.resolve(tag).await {
            Ok(current) => Ok(current.digest == root.digest),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        },
        ManifestRole::Child | ManifestRole::Root => Ok(true),
    }
}

/// How one blob reached the destination.
enum Transfer {
    Streamed(u64),
    Mounted,
}

/// Streams one blob, starting over (with a fresh read of the source) when the failure may pass.
async fn copy_blob(
    src: &dyn ReadStore,
    dst: &dyn Store,
    blob: &Descriptor,
    attempts: u32,
) -> Result<(), CopyError> {
    let mut attempt = 1;
    loop {
        tracing::debug!(digest = %blob.digest, size = blob.size, attempt, "copying blob");
        let result = async {
            let body = src.fetch(blob).await?;
            dst.push(blob, body)
                .await
                .map_err(|error| CopyError::Transfer {
                    source_location: src.location(),
                    error,
                })
        }
        .await;
        match result {
            Ok(()) => {
                tracing::info!(digest = %blob.digest, size = blob.size, "copied blob");
                return Ok(());
            }
            Err(e) if e.is_retryable() && attempt < attempts.max(1) => {
                let wait = Duration::from_millis(500 << attempt.min(6));
                tracing::warn!(digest = %blob.digest, "blob transfer failed ({e}); trying again in {wait:?}");
                tokio::time::sleep(wait).await;
                attempt += 1;
                // The failed upload may have completed after all; look before sending it again.
                if dst.exists(blob).await? {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    }
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
