//! The referrers tag schema (distribution spec 1.1), for stores without a referrers API: the
//! referrers of a subject are listed in an image index tagged `<alg>-<hex of the subject>`, kept up to
//! date by whoever pushes a referrer. Registries without the API and CTFs (as OCM keeps them) both
//! use it, through this one implementation.
//!
//! The index is shared by every writer of the repository, so updating it is a read, a write and a
//! second read: an entry another writer's update replaced is added again, with a jittered pause, and
//! nobody's entries are ever dropped. Within one process, writers of the same index queue their
//! entries and whoever updates next adds all of them at once, so they never race each other.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use wharf_oci::{Descriptor, Digest, ImageIndex, Manifest, ManifestBody, media_type};

use crate::{ErrorKind, Op, Result, StoreError};

/// Updates of one index tried before giving up on a contended one.
const ATTEMPTS: u32 = 5;

/// Reading and writing tagged manifests, as the tag schema needs them.
#[async_trait]
pub(crate) trait TaggedIndexes: Send + Sync {
    /// The store, for messages.
    fn location(&self) -> String;

    /// The manifest tagged `tag`, if there is one.
    async fn tagged(&self, tag: &str) -> Result<Option<Manifest>>;

    /// Stores `manifest` and tags it `tag`.
    async fn put_tagged(&self, tag: &str, manifest: &Manifest) -> Result<()>;
}

/// `<alg>-<hex>`: the tag of `subject`'s referrers index.
pub(crate) fn fallback_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm(), subject.hex())
}

/// The referrers index of `subject`, if the store has a usable one: an index, and not the subject
/// itself (some registries resolve such a tag to the subject).
async fn index_of(store: &dyn TaggedIndexes, subject: &Digest) -> Result<Option<ImageIndex>> {
    let Some(manifest) = store.tagged(&fallback_tag(subject)).await? else {
        return Ok(None);
    };
    if manifest.media_type() != media_type::OCI_INDEX || manifest.descriptor().digest == *subject {
        tracing::debug!(tag = %fallback_tag(subject), "fallback tag is not a referrers index; ignored");
        return Ok(None);
    }
    match manifest.body() {
        ManifestBody::Index(index) => Ok(Some((**index).clone())),
        ManifestBody::Image(_) => Ok(None),
    }
}

/// The referrers the tag schema lists for `subject`, optionally only those of one artifact type.
pub(crate) async fn listed(
    store: &dyn TaggedIndexes,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> Result<Vec<Descriptor>> {
    let mut found = index_of(store, subject)
        .await?
        .map(|index| index.manifests)
        .unwrap_or_default();
    if let Some(wanted) = artifact_type {
        found.retain(|d| d.artifact_type.as_deref() == Some(wanted));
    }
    Ok(found)
}

/// The index entry for a referrer: its descriptor with its artifact type and annotations.
pub(crate) fn entry(descriptor: &Descriptor, manifest: &Manifest) -> Descriptor {
    let mut entry = Descriptor::new(
        &descriptor.media_type,
        descriptor.digest.clone(),
        descriptor.size,
    );
    entry.artifact_type = manifest.artifact_type().map(str::to_owned);
    entry.annotations = manifest.annotations().clone();
    entry
}

/// The writers of one index in this process: entries waiting to be added, and a lock held while
/// the index is updated.
#[derive(Default)]
struct Merge {
    waiting: Mutex<Vec<Descriptor>>,
    updating: tokio::sync::Mutex<HashSet<Digest>>,
}

/// Per store and tag, the writers of this process.
static MERGES: LazyLock<Mutex<HashMap<String, Arc<Merge>>>> = LazyLock::new(Default::default);

/// Adds `referrer` to the referrers index of `subject`, keeping every entry there, and checks that it
/// is listed afterwards.
pub(crate) async fn add(
    store: &dyn TaggedIndexes,
    subject: &Digest,
    referrer: Descriptor,
) -> Result<()> {
    let tag = fallback_tag(subject);
    let merge = MERGES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(format!("{} {tag}", store.location()))
        .or_default()
        .clone();
    let digest = referrer.digest.clone();
    merge
        .waiting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(referrer);
    let mut added = merge.updating.lock().await;
    if added.remove(&digest) {
        // Another writer's update added it along with its own.
        return Ok(());
    }
    let batch: Vec<Descriptor> =
        std::mem::take(&mut *merge.waiting.lock().unwrap_or_else(|e| e.into_inner()));
    let others = batch
        .iter()
        .map(|d| d.digest.clone())
        .filter(|d| *d != digest);
    match update(store, subject, &batch).await {
        Ok(()) => {
            added.extend(others);
            Ok(())
        }
        Err(e) => {
            // The others' entries wait for the next writer, who tries again.
            let mut waiting = merge.waiting.lock().unwrap_or_else(|e| e.into_inner());
            waiting.extend(batch.into_iter().filter(|d| d.digest != digest));
            Err(e)
        }
    }
}

/// Adds `batch` to the referrers index of `subject` in one read, write and check, again while
/// another writer's update replaces it.
async fn update(store: &dyn TaggedIndexes, subject: &Digest, batch: &[Descriptor]) -> Result<()> {
    let tag = fallback_tag(subject);
    for attempt in 1..=ATTEMPTS {
        let mut index = index_of(store, subject).await?.unwrap_or_default();
        let missing = |index: &ImageIndex| -> Vec<Descriptor> {
            batch
                .iter()
                .filter(|r| !index.manifests.iter().any(|d| d.digest == r.digest))
                .cloned()
                .collect()
        };
        let absent = missing(&index);
        if absent.is_empty() {
            return Ok(());
        }
        index.manifests.extend(absent);
        store
            .put_tagged(&tag, &Manifest::from_index(&index))
            .await?;
        // Another writer may have replaced the index between our read and our write.
        if index_of(store, subject)
            .await?
            .is_some_and(|now| missing(&now).is_empty())
        {
            return Ok(());
        }
        let pause = Duration::from_millis(20 * u64::from(attempt) + jitter());
        tracing::debug!(%tag, attempt, "the referrers index changed under us; adding again in {pause:?}");
        tokio::time::sleep(pause).await;
    }
    Err(StoreError::new(
        Op::Push,
        format!("{} {tag}", store.location()),
        ErrorKind::Busy(format!(
            "the referrers index kept changing under {ATTEMPTS} updates; try again"
        )),
    ))
}

/// Up to 50 ms, from the clock's low bits: enough to spread writers that collided.
pub(crate) fn jitter() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()) % 50)
}
