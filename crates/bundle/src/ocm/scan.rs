//! Finding component versions without a catalog, the slow way, and checking catalog entries
//! against what is stored.

use futures_util::{StreamExt, TryStreamExt, stream};

use super::repository::{COMPONENT_REPOSITORIES, OcmRepository};
use super::{OcmError, version_to_tag};
use crate::catalog::{Entry, Filter, Kind, Listing, compare_versions, distinct};

/// Requests in flight while scanning or verifying.
const AT_ONCE: usize = 16;

/// How to list component versions.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// The catalog repository to read; `None` scans without one.
    pub catalog: Option<String>,
    /// Only entries that meet every one of these.
    pub filters: Vec<Filter>,
    /// Drop entries whose component version is no longer stored.
    pub verify: bool,
}

/// Where a listing came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The catalog repository at this path.
    Catalog(String),
    /// A scan of the repositories, because there was no catalog (or none was asked for).
    Scan,
}

/// Component versions found.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The component versions, by name, newest version first.
    pub entries: Vec<Entry>,
    /// Where they were found.
    pub source: Source,
    /// Entries or versions that could not be used, each with why.
    pub skipped: Vec<String>,
    /// Entries dropped by verification: their component version is gone.
    pub gone: Vec<Entry>,
}

impl OcmRepository {
    /// The component versions stored here: from a registry's catalog when there is one (a few
    /// requests), else by [`scan`](OcmRepository::scan)ning (a CTF always: its index is local).
    pub async fn list(
        &self,
        options: &ListOptions,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Listed, OcmError> {
        let read = match &options.catalog {
            Some(name) if self.host().is_some() => {
                let catalog = self.catalog(name);
                catalog
                    .read()
                    .await?
                    .map(|listing| (listing, Source::Catalog(catalog.path().to_owned())))
            }
            _ => None,
        };
        let (listing, source) = match read {
            Some(found) => found,
            None => (self.scan(progress).await?, Source::Scan),
        };
        let mut entries: Vec<Entry> = distinct(listing.entries)
            .into_iter()
            .filter(|e| e.kind() == Kind::ComponentVersion)
            .filter(|e| options.filters.iter().all(|f| f.matches(e)))
            .collect();
        let mut gone = Vec::new();
        if options.verify {
            (entries, gone) = self.verify(entries).await?;
        }
        entries.sort_by(|a, b| {
            let (an, av) = a.component().unwrap_or_default();
            let (bn, bv) = b.component().unwrap_or_default();
            an.cmp(bn).then_with(|| compare_versions(bv, av))
        });
        Ok(Listed {
            entries,
            source,
            skipped: listing.skipped,
            gone,
        })
    }

    /// Every component version stored here, found by listing the repositories below
    /// `component-descriptors/` (a registry's catalog API, a CTF's index), their tags, and reading
    /// each version's descriptor for its provider. `progress` hears how many versions are read of
    /// how many. Versions that cannot be read are skipped and said so.
    pub async fn scan(
        &self,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Listing, OcmError> {
        let prefix = self.path(COMPONENT_REPOSITORIES);
        let repositories = self.root_namespace().repositories().await?;
        let names: Vec<String> = repositories
            .iter()
            .filter_map(|r| r.strip_prefix(prefix.as_str()))
            .map(str::to_owned)
            .collect();
        let versions: Vec<Vec<(String, String)>> = stream::iter(&names)
            .map(|name| async move {
                let versions = self.versions(name).await?;
                Ok::<_, OcmError>(versions.into_iter().map(|v| (name.clone(), v)).collect())
            })
            .buffered(AT_ONCE)
            .try_collect()
            .await?;
        let versions: Vec<(String, String)> = versions.into_iter().flatten().collect();
        let total = versions.len();
        progress(0, total);
        let done = std::sync::atomic::AtomicUsize::new(0);
        let read: Vec<Result<Entry, String>> = stream::iter(versions)
            .map(|(name, version)| {
                let done = &done;
                async move {
                    let read = self.read(&name, &version).await;
                    progress(
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                        total,
                    );
                    let cv =
                        read.map_err(|e| format!("{name}:{version}: {}", wharf_store::chain(&e)))?;
                    Ok(Entry::component_version(
                        &format!("{COMPONENT_REPOSITORIES}{name}"),
                        &cv.root.digest,
                        &version_to_tag(&version),
                        &name,
                        &version,
                        &cv.descriptor.provider(),
                    ))
                }
            })
            .buffer_unordered(AT_ONCE)
            .collect()
            .await;
        let mut listing = Listing::default();
        for entry in read {
            match entry {
                Ok(entry) => listing.entries.push(entry),
                Err(why) => listing.skipped.push(why),
            }
        }
        Ok(listing)
    }

    /// Writes into the catalog repository `name` an entry for every component version a scan finds
    /// that it lacks (for registries other tools filled); returns the scan and how many entries
    /// were added.
    pub async fn rebuild_catalog(
        &self,
        name: &str,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<(Listing, usize), OcmError> {
        let listing = self.scan(progress).await?;
        let added = self.catalog(name).record(&listing.entries).await?;
        Ok((listing, added))
    }

    /// The entries whose content is still stored where they say, and those whose is not.
    pub async fn verify(&self, entries: Vec<Entry>) -> Result<(Vec<Entry>, Vec<Entry>), OcmError> {
        let checked: Vec<(Entry, bool)> = stream::iter(entries)
            .map(|entry| async move {
                let store = self.read_store(&self.path(entry.repository()))?;
                let present = match store.resolve(entry.digest().as_str()).await {
                    Ok(found) => found.digest == *entry.digest(),
                    Err(e) if e.is_not_found() || e.is_denied() => false,
                    Err(e) => return Err(OcmError::from(e)),
                };
                Ok((entry, present))
            })
            .buffered(AT_ONCE)
            .try_collect()
            .await?;
        let mut kept = Vec::new();
        let mut gone = Vec::new();
        for (entry, present) in checked {
            if present {
                kept.push(entry);
            } else {
                gone.push(entry);
            }
        }
        Ok((kept, gone))
    }
}
