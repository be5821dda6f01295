//! The referrers tag schema (distribution spec 1.1), for stores without a referrers API: the
//! referrers of a subject are listed in an image index tagged `<alg>-<hex of the subject>`, kept up to
//! date by whoever pushes a referrer. Registries without the API and CTFs (as OCM keeps them) both
//! use it, through this one implementation.
//!
//! The index is shared by every writer of the repository, so updating it is a read, a write and a
//! second read: an entry another writer's update replaced is added again, with a jittered pause, and
//! nobody's entries are ever dropped.

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

/// Adds `referrer` to the referrers index of `subject`, keeping every entry there, and checks that it
/// is listed afterwards.
pub(crate) async fn add(
    store: &dyn TaggedIndexes,
    subject: &Digest,
    referrer: Descriptor,
) -> Result<()> {
    let tag = fallback_tag(subject);
    for attempt in 1..=ATTEMPTS {
        let mut index = index_of(store, subject).await?.unwrap_or_default();
        let listed =
            |index: &ImageIndex| index.manifests.iter().any(|d| d.digest == referrer.digest);
        if listed(&index) {
            return Ok(());
        }
        index.manifests.push(referrer.clone());
        store
            .put_tagged(&tag, &Manifest::from_index(&index))
            .await?;
        // Another writer may have replaced the index between our read and our write.
        if index_of(store, subject)
            .await?
            .is_some_and(|now| listed(&now))
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
fn jitter() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()) % 50)
}
