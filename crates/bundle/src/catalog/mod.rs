//! A catalog of what a registry holds below a base path, readable in a few requests: OCI
//! registries cannot list their content, and listing the component versions of one component
//! already takes a request per version. (A CTF needs none: its index lists everything.)
//!
//! The catalog is a repository, `<base>/wharf-catalog` by default, holding a fixed anchor manifest
//! (tagged `anchor-v1`) and one small entry artifact per stored thing (repository and digest), whose
//! `subject` is the anchor and whose annotations say what it is: for a component version OCM's own
//! name and version keys, and the provider under wharf's prefix. Listing is one referrers request
//! for the anchor. Every entry is also tagged `wharf-<entry hex>`: on registries without the
//! referrers API the shared fallback index can lose an entry to concurrent writers, the tags
//! cannot, and the reader merges both. Entries are a pure function of what they describe, so
//! concurrent writers of the same component version write identical bytes. The catalog never lives
//! under `component-descriptors/` and never uses OCM's component-index anchor as its subject, so OCM
//! never takes its entries for component versions.

mod entry;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};

use futures_util::{StreamExt, TryStreamExt, stream};
use tokio::sync::OnceCell;
use wharf_oci::{Descriptor, Digest, Manifest, media_type};
use wharf_store::{ErrorKind, ManifestRole, Namespace, ReadStore, Store, StoreError};

pub use entry::{Entry, Kind, compare_versions, keys};

/// The catalog repository's name below the base path, unless configured otherwise.
pub const DEFAULT_REPOSITORY: &str = "wharf-catalog";
/// The anchor's tag.
pub const ANCHOR_TAG: &str = "anchor-v1";
/// The anchor's artifact type.
pub const ANCHOR_ARTIFACT_TYPE: &str = "application/vnd.wharf.catalog.anchor.v1+json";
/// The artifact type of entries.
pub const ENTRY_ARTIFACT_TYPE: &str = "application/vnd.wharf.catalog.entry.v1+json";
/// The anchor, byte for byte (517 bytes): an empty artifact every entry refers to.
pub const ANCHOR: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.wharf.catalog.anchor.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}],"annotations":{"org.opencontainers.image.title":"wharf catalog anchor v1"}}"#;
/// The empty JSON object, config and layer of every empty artifact.
const EMPTY_JSON: &[u8] = b"{}";
/// Entries fetched at once when the listing lacks them.
const FETCHES_AT_ONCE: usize = 16;

/// The anchor's descriptor.
pub fn anchor() -> Descriptor {
    Descriptor::for_bytes(media_type::OCI_MANIFEST, ANCHOR.as_bytes())
}

/// Why the catalog could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The anchor tag names something else.
    #[error("{0}:{ANCHOR_TAG} is not a wharf catalog anchor; choose another catalog repository")]
    ForeignAnchor(String),
}

/// What a catalog read found.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The entries, each once.
    pub entries: Vec<Entry>,
    /// Entries that could not be used, each with why.
    pub skipped: Vec<String>,
}

/// The catalog of a registry base or a CTF.
pub struct Catalog {
    /// The registry host's (or the CTF's) repositories.
    root: Arc<dyn Namespace>,
    /// The catalog repository's path from the root.
    path: String,
    /// Set once the anchor is known to be there, shared by every writer of this catalog in the
    /// process: it is checked (and written) once.
    anchored: Arc<OnceCell<()>>,
}

/// Per catalog repository, whether this process has made sure of its anchor.
static ANCHORED: LazyLock<Mutex<HashMap<String, Arc<OnceCell<()>>>>> =
    LazyLock::new(Default::default);

impl Catalog {
    /// The catalog repository `name` below `base` in `root`.
    pub fn new(root: Arc<dyn Namespace>, base: &str, name: &str) -> Catalog {
        let path = match base {
            "" => name.to_owned(),
            base => format!("{base}/{name}"),
        };
        let anchored = ANCHORED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(format!("{} {path}", root.location()))
            .or_default()
            .clone();
        Catalog {
            root,
            path,
            anchored,
        }
    }

    /// The catalog repository, for messages.
    pub fn location(&self) -> String {
        format!("{} repository {}", self.root.location(), self.path)
    }

    /// Its path from the root (base included).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Adds `entries` (the anchor first, if it is missing); returns how many were not there. An
    /// entry already there costs one request.
    pub async fn record(&self, entries: &[Entry]) -> Result<usize, CatalogError> {
        let store = self.root.write(&self.path)?;
        self.anchored
            .get_or_try_init(|| ensure_anchor(store.as_ref(), &self.path))
            .await?;
        let mut added = 0;
        for entry in entries {
            let manifest = entry.manifest();
            let descriptor = manifest.descriptor();
            let tag = entry.tag();
            match store.resolve(&tag).await {
                Ok(found) if found.digest == descriptor.digest => continue,
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            match store
                .push_manifest(&descriptor, manifest.raw().clone(), ManifestRole::Tag(&tag))
                .await
            {
                Ok(()) => {}
                // The entry and its tag are stored; only the shared fallback index stayed
                // contended, and readers merge the tags with it.
                Err(e) if matches!(*e.kind, ErrorKind::Busy(_)) => {
                    tracing::warn!("{}: {}", self.location(), wharf_store::chain(&e));
                }
                Err(e) => return Err(e.into()),
            }
            added += 1;
        }
        Ok(added)
    }

    /// Every entry, or `None` when there is no catalog: the referrers of the anchor, merged with
    /// the entries only their tags still name. Entries that do not describe anything are skipped
    /// and said so, never listed.
    pub async fn read(&self) -> Result<Option<Listing>, CatalogError> {
        let store = self.root.read(&self.path)?;
        let anchor = anchor();
        match store.resolve(ANCHOR_TAG).await {
            Ok(found) if found.digest == anchor.digest => {}
            Ok(_) => return Err(CatalogError::ForeignAnchor(self.path.clone())),
            Err(e) if e.is_not_found() || e.is_denied() => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let mut listing = Listing::default();
        let mut seen = HashSet::new();
        let mut unread = Vec::new();
        for referrer in store.referrers(&anchor, Some(ENTRY_ARTIFACT_TYPE)).await? {
            if !seen.insert(referrer.digest.clone()) {
                continue;
            }
            // Writers that keep no annotations in the index (some do not) are read in full.
            match Entry::from_annotations(referrer.annotations.clone()) {
                Ok(entry) => listing.entries.push(entry),
                Err(_) => unread.push(referrer),
            }
        }
        let tags = match store.tags().await {
            Ok(tags) => tags,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        for tag in tags {
            if let Some(digest) = entry::digest_of_tag(&tag)
                && seen.insert(digest.clone())
            {
                unread.push(Descriptor::new(media_type::OCI_MANIFEST, digest, 0));
            }
        }
        let fetched: Vec<(Digest, Result<Entry, String>)> = stream::iter(unread)
            .map(|descriptor| {
                let store = store.clone();
                async move { fetch_entry(store.as_ref(), descriptor).await }
            })
            .buffered(FETCHES_AT_ONCE)
            .try_collect()
            .await?;
        for (digest, entry) in fetched {
            match entry {
                Ok(entry) => listing.entries.push(entry),
                Err(why) => listing.skipped.push(format!("entry {digest}: {why}")),
            }
        }
        Ok(Some(listing))
    }
}

/// Pushes the empty blob and the anchor under its tag, unless the tag already names the anchor.
async fn ensure_anchor(store: &dyn Store, path: &str) -> Result<(), CatalogError> {
    let anchor = anchor();
    match store.resolve(ANCHOR_TAG).await {
        Ok(found) if found.digest == anchor.digest => return Ok(()),
        Ok(_) => return Err(CatalogError::ForeignAnchor(path.to_owned())),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let (empty, bytes) = entry::empty_blob();
    if !store.exists(&empty).await? {
        store
            .push(&empty, Box::pin(stream::once(async { Ok(bytes) })))
            .await?;
    }
    store
        .push_manifest(
            &anchor,
            bytes::Bytes::from_static(ANCHOR.as_bytes()),
            ManifestRole::Tag(ANCHOR_TAG),
        )
        .await?;
    Ok(())
}

/// The entry manifest `descriptor` names (by digest), read and checked.
async fn fetch_entry(
    store: &dyn ReadStore,
    descriptor: Descriptor,
) -> Result<(Digest, Result<Entry, String>), CatalogError> {
    let digest = descriptor.digest.clone();
    let found = match store.resolve(digest.as_str()).await {
        Ok(found) => found,
        Err(e) if e.is_not_found() => {
            return Ok((digest, Err("listed, but not in the repository".into())));
        }
        Err(e) => return Err(e.into()),
    };
    let manifest: Manifest = match store.fetch_manifest(&found).await {
        Ok(manifest) => manifest,
        Err(e) => return Ok((digest, Err(wharf_store::chain(&e)))),
    };
    Ok((digest, Entry::from_manifest(&manifest)))
}

/// A `KEY=VALUE` condition on entries. KEY is `name`, `version`, `provider`, `repository`, `kind` or
/// any annotation key; a VALUE ending in `*` matches values that start with the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    key: String,
    value: String,
}

impl Filter {
    /// Parses `KEY=VALUE`.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let (key, value) = text
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
        let key = match key {
            "name" => keys::OCM_NAME,
            "version" => keys::OCM_VERSION,
            "provider" => keys::PROVIDER,
            "repository" => keys::REPOSITORY,
            "kind" => keys::KIND,
            other => other,
        };
        Ok(Filter {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }

    /// True if `entry` meets the condition.
    pub fn matches(&self, entry: &Entry) -> bool {
        let Some(actual) = entry.get(&self.key) else {
            return false;
        };
        match self.value.strip_suffix('*') {
            Some(prefix) => actual.starts_with(prefix),
            None => actual == self.value,
        }
    }
}

/// Entries by repository and digest, each once (two writers' entries for one thing may differ in
/// their tag hint).
pub fn distinct(entries: Vec<Entry>) -> Vec<Entry> {
    let mut by_place: BTreeMap<(String, Digest), Entry> = BTreeMap::new();
    for entry in entries {
        by_place
            .entry((entry.repository().to_owned(), entry.digest().clone()))
            .or_insert(entry);
    }
    by_place.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_name_prefix_provider_and_any_key() {
        let digest = wharf_oci::Algorithm::Sha256.digest(b"x");
        let entry = Entry::component_version(
            "component-descriptors/acme.org/app",
            &digest,
            "1.0",
            "acme.org/app",
            "1.0",
            "acme",
        );
        let matches = |text: &str| Filter::parse(text).unwrap().matches(&entry);
        assert!(matches("name=acme.org/app"));
        assert!(matches("name=acme.org/*"));
        assert!(!matches("name=acme.org"));
        assert!(matches("provider=acme"));
        assert!(!matches("provider=other"));
        assert!(matches("dev.wharf.catalog.kind=ocm-component-version"));
        assert!(!matches("no.such.key=x"));
        assert!(Filter::parse("=x").is_err() && Filter::parse("name").is_err());
    }

    #[test]
    fn the_anchor_is_the_designed_bytes() {
        assert_eq!(ANCHOR.len(), 517);
        assert_eq!(
            anchor().digest.as_str(),
            "sha256:bde1b37bff4f7a8115e0956ae911e1cb4c062fd13d61fe438ccc74dd6e3c4dd0"
        );
        let parsed = Manifest::parse(bytes::Bytes::from_static(ANCHOR.as_bytes()), None).unwrap();
        assert_eq!(parsed.artifact_type(), Some(ANCHOR_ARTIFACT_TYPE));
    }
}
