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
//! missing content. Referrers follow, each copied the same way. A [`Job`] runs many such copies at
//! once: a blob several of them need moves once per destination repository and is uploaded once per
//! registry (mounted elsewhere); a transfer that fails or is cancelled hands its work to those
//! waiting for it. [`verify()`] walks the same graphs to read a store's content back and check it.
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

mod flight;
mod graph;
mod job;
mod tree;
mod verify;

use std::sync::Arc;

pub use job::{Job, Observer, Silent, Totals};
pub use tree::{TreeNode, tree};
pub use verify::{Problem, VerifyReport, verify};
use wharf_oci::{Descriptor, Digest, ImageIndex, Manifest, Platform};
use wharf_store::{ManifestRole, ReadStore, Store, StoreError};

/// How a copy runs. `CopyOptions::default()`: 8 blobs at a time, referrers included, every platform,
/// 3 attempts per blob, for real.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Blobs transferred at once (at least 1).
    pub concurrency: usize,
    /// Copy the referrers (signatures, SBOMs, attestations) of every manifest copied. Referrers that
    /// describe where their subject is stored ([`wharf_oci::media_type::LOCATION_BOUND`]) never
    /// travel.
    pub referrers: bool,
    /// Only these platforms of a multi-platform image (empty: all). The destination gets a new index
    /// listing just them.
    pub platforms: Vec<Platform>,
    /// Attempts per blob when a transfer fails for a reason that may pass (network, 5xx, 429).
    pub attempts: u32,
    /// Only discover: report what would be copied, write nothing.
    pub dry_run: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            concurrency: 8,
            referrers: true,
            platforms: Vec::new(),
            attempts: 3,
            dry_run: false,
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
    /// A report of nothing done yet, for `root`.
    pub fn empty(root: Descriptor) -> CopyReport {
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

    /// Adds another report's counts to this one.
    pub fn add(&mut self, other: &CopyReport) {
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
    /// An index names a nested repository for a child that is no repository below its own.
    #[error("index {index}")]
    Nested {
        /// The index.
        index: Digest,
        /// What is wrong with the child's repository.
        #[source]
        error: wharf_oci::nested::NestedError,
    },
    /// The destination refused an index whose children live in nested repositories, even with
    /// copies of them beside it.
    #[error("{destination} refused index {index} even with its nested children copied beside it")]
    NestedRefused {
        /// The destination repository.
        destination: String,
        /// The index.
        index: Digest,
        /// The registry's answer.
        #[source]
        error: StoreError,
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
    fn store_error(&self) -> Option<&StoreError> {
        match self {
            CopyError::Store(e) | CopyError::Transfer { error: e, .. } => Some(e),
            _ => None,
        }
    }

    fn is_retryable(&self) -> bool {
        self.store_error().is_some_and(StoreError::is_retryable)
    }

    /// Failures that starting the transfer over once may cure: bytes damaged in transit, an upload
    /// session the registry lost, a body refused as too large.
    fn is_worth_one_more_upload(&self) -> bool {
        self.store_error()
            .is_some_and(|e| e.is_content_mismatch() || e.is_upload_to_start_over())
    }
}

/// The entries of `index` matching `wanted`, as a new index with the same media type and annotations.
pub(crate) fn select_platforms(
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

/// Copies the graph below `root` from `src` to `dst` as a job of its own; see [`Job::copy`].
pub async fn copy_graph(
    src: &dyn ReadStore,
    dst: &dyn Store,
    root: &Descriptor,
    role: ManifestRole<'_>,
    options: &CopyOptions,
) -> Result<CopyReport, CopyError> {
    Job::new(options.clone(), Arc::new(Silent))
        .copy(src, dst, root, role)
        .await
}
