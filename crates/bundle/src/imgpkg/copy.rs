//! Copying a bundle with everything it locks into one repository: imgpkg's `--to-repo` placement.
//!
//! Discovery reads the bundle's lock and finds each image the way imgpkg does: in the bundle's own
//! repository first (where a previous copy put it), else at the lock's reference. Images that are
//! bundles (by their config label, or by a record at the source or the destination) are read in
//! turn, a level of nesting at a time; a bundle several others nest is read once. Every manifest is
//! copied through the job as soon as it is found, under the tag `sha256-<hex>.imgpkg`, digests
//! unchanged. Only when every one of them is there: one location
//! record per bundle (imgpkg's tag and its second tag, plus wharf's artifact whose subject is the
//! bundle), and last the user's tag. A copy that fails part-way leaves no record and no user tag;
//! running it again sends only what is missing.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures_util::{StreamExt, TryStreamExt, stream};
use tokio::sync::{OnceCell, mpsc};
use wharf_copy::{CopyError, CopyReport, Job};
use wharf_oci::{Descriptor, Digest};
use wharf_store::{Address, ManifestRole, ReadStore, Session, Store, chain};

use super::bundle::Bundle;
use super::lock::{BundleLock, ImagesLock, LockedImage, repository_name};
use super::record::{ImageLocations, read_record, stage_record};
use super::{ImgpkgError, upload_tag};
use crate::staged::Staged;

/// Images found, checked or copied at once.
const IMAGES_AT_ONCE: usize = 16;

/// Where a copy reads a bundle from.
#[derive(Debug, Clone)]
pub struct BundleSource {
    /// The bundle.
    pub address: Address,
    /// The tag a BundleLock gives it (a location's own tag is the address's).
    pub tag: Option<String>,
}

impl BundleSource {
    /// A bundle location, or a BundleLock file naming one.
    pub fn parse(text: &str) -> Result<BundleSource, ImgpkgError> {
        let path = Path::new(text);
        if path.is_file() {
            let invalid = |message: String| ImgpkgError::Invalid {
                what: text.to_owned(),
                message,
            };
            let content = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
            if !BundleLock::is_bundle_lock(&content) {
                return Err(invalid(
                    "is a file but not a BundleLock (kind: BundleLock); give a bundle location or a lock file".into(),
                ));
            }
            let lock = BundleLock::parse(&content).map_err(invalid)?;
            let address = Address::parse(&lock.image)
                .map_err(|e| invalid(format!("bundle image: {}", e.reason)))?;
            return Ok(BundleSource {
                address,
                tag: lock.tag,
            });
        }
        let address = Address::parse(text).map_err(|e| ImgpkgError::Invalid {
            what: text.to_owned(),
            message: e.reason,
        })?;
        Ok(BundleSource { address, tag: None })
    }
}

/// One location record written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordWritten {
    /// The bundle it describes.
    pub bundle: Digest,
    /// Its tag.
    pub tag: String,
    /// The record image's digest.
    pub digest: Digest,
    /// The images it lists.
    pub images: usize,
    /// The destination refused to overwrite an immutable tag, and the record already there was kept.
    pub kept: bool,
}

/// What a bundle copy did.
#[derive(Debug, Clone)]
pub struct Copied {
    /// The root bundle.
    pub bundle: Descriptor,
    /// Where it is now: the destination repository, with the tag it was given.
    pub destination: Address,
    /// Bundles copied: the root and every nested one.
    pub bundles: usize,
    /// Images copied that are not bundles.
    pub images: usize,
    /// The records written (none in a dry run).
    pub records: Vec<RecordWritten>,
    /// What the copies moved, all manifests together.
    pub report: CopyReport,
}

/// A manifest to copy, and where from.
struct Item {
    descriptor: Descriptor,
    store: Arc<dyn ReadStore>,
    /// How to name it in messages.
    name: String,
}

/// A bundle copied, and the record to write for it.
struct Planned {
    bundle: Descriptor,
    record: ImageLocations,
}

/// Copies the bundle `source` names, everything it locks and every nested bundle into the
/// repository `destination` names, as part of `job`; see the module documentation. The destination's
/// tag, else the source's, names the bundle there. The root bundle and its lock are read before
/// anything is written; images are copied as they are found. Archives written to are not finished
/// here: see [`Session::finish`].
pub async fn copy(
    source: &BundleSource,
    destination: &Address,
    sources: &Session,
    destinations: &Session,
    job: &Job,
) -> Result<Copied, ImgpkgError> {
    let root = Bundle::open(sources, &source.address).await?;
    if let Some(wanted) = destination.digest()
        && wanted != root.digest()
    {
        return Err(CopyError::DigestConflict {
            destination: destination.to_string(),
            wanted: wanted.clone(),
            actual: root.digest().clone(),
        }
        .into());
    }
    let tag = destination
        .tag()
        .or(root.tag.as_deref())
        .or(source.tag.as_deref())
        .map(str::to_owned);
    let root_lock = root.lock().await?;
    let root_record = root.record().await?;
    let repository = destination.with(None, None);
    let dst = destinations.write(&repository).await?;

    let (sink, found) = mpsc::unbounded_channel();
    let discovery = Discovery {
        sources,
        destination: dst.clone(),
        sink,
        seen: Mutex::new(HashSet::new()),
        kinds: Mutex::new(HashMap::new()),
    };
    let root_descriptor = root.descriptor.clone();
    let root_store = root.store.clone();
    let explore = async move {
        let explored = discovery.run(root, root_lock, root_record).await;
        // The sink closes here, so that the copies end with the last image found.
        drop(discovery);
        explored
    };
    let copies = stream::unfold(found, |mut found| async move {
        found.recv().await.map(|item| (item, found))
    })
    .map(|item: Item| {
        let dst = dst.clone();
        async move {
            let tag = upload_tag(&item.descriptor.digest);
            let copied = job
                .copy(
                    item.store.as_ref(),
                    dst.as_ref(),
                    &item.descriptor,
                    ManifestRole::Tag(&tag),
                )
                .await;
            (item.name, copied)
        }
    })
    .buffer_unordered(IMAGES_AT_ONCE)
    .collect::<Vec<_>>();
    let (explored, results) = tokio::join!(explore, copies);
    let planned = explored?;

    let total = results.len();
    let mut report = CopyReport::empty(root_descriptor.clone());
    let mut failures = Vec::new();
    for (name, result) in results {
        match result {
            Ok(part) => report.add(&part),
            Err(e) => failures.push((name, e)),
        }
    }
    failures.sort_by(|a, b| a.0.cmp(&b.0));
    let failed = failures.len();
    if let Some((image, error)) = failures.into_iter().next() {
        return Err(ImgpkgError::Incomplete {
            failed,
            total,
            image,
            error: Box::new(error),
        });
    }

    let bundles = planned.len();
    let mut copied = Copied {
        bundle: root_descriptor.clone(),
        destination: repository.with(tag.as_deref(), None),
        bundles,
        images: total - bundles,
        records: Vec::new(),
        report,
    };
    if job.options().dry_run {
        return Ok(copied);
    }
    let described = match repository.registry_path() {
        Some(path) => repository_name(repository.location.host().unwrap_or_default(), &path),
        None => repository.to_string(),
    };
    for plan in &planned {
        copied
            .records
            .push(write_record(plan, dst.as_ref(), &described, job).await?);
    }
    if let Some(tag) = &tag {
        job.copy(
            root_store.as_ref(),
            dst.as_ref(),
            &root_descriptor,
            ManifestRole::Tag(tag),
        )
        .await?;
    }
    Ok(copied)
}

/// A bundle whose kind is being or has been checked.
type Kind = Arc<OnceCell<Option<Arc<Bundle>>>>;

/// Reads every bundle below a root, a level of nesting at a time and the bundles of a level at
/// once, and hands every image it finds to the copies, each once.
struct Discovery<'a> {
    sources: &'a Session,
    /// Where the copy goes: its records, from an earlier copy, say which images are bundles.
    destination: Arc<dyn Store>,
    sink: mpsc::UnboundedSender<Item>,
    /// Digests handed to the copies.
    seen: Mutex<HashSet<Digest>>,
    /// Per digest, whether it is a bundle: each image is checked once, however many bundles lock it.
    kinds: Mutex<HashMap<Digest, Kind>>,
}

impl Discovery<'_> {
    /// Every bundle below `root` (whose lock and record are read already), in the order found,
    /// with the record to write for each.
    async fn run(
        &self,
        root: Bundle,
        lock: ImagesLock,
        record: Option<ImageLocations>,
    ) -> Result<Vec<Planned>, ImgpkgError> {
        self.hand_over(&root.descriptor, &root.store, || {
            format!("bundle {}", root.address)
        });
        let root = Arc::new(root);
        let (first, mut level) = self.explore(&root, lock, record).await?;
        let mut planned = vec![first];
        let mut explored = HashSet::from([root.digest().clone()]);
        level.retain(|b| explored.insert(b.digest().clone()));
        while !level.is_empty() {
            let results: Vec<(Planned, Vec<Arc<Bundle>>)> = stream::iter(&level)
                .map(|bundle| async move {
                    let lock = bundle.lock().await?;
                    let record = bundle.record().await?;
                    self.explore(bundle, lock, record).await
                })
                .buffered(IMAGES_AT_ONCE)
                .try_collect()
                .await?;
            level = Vec::new();
            for (plan, nested) in results {
                planned.push(plan);
                level.extend(
                    nested
                        .into_iter()
                        .filter(|b| explored.insert(b.digest().clone())),
                );
            }
        }
        Ok(planned)
    }

    /// Finds every image `bundle` locks, hands each to the copies, and checks which are bundles:
    /// returns the record to write for it and the bundles it nests.
    async fn explore(
        &self,
        bundle: &Bundle,
        lock: ImagesLock,
        record: Option<ImageLocations>,
    ) -> Result<(Planned, Vec<Arc<Bundle>>), ImgpkgError> {
        let record = match record {
            Some(record) => Some(record),
            // A record an earlier copy left at the destination is as good a witness.
            None => read_record(&self.destination, bundle.digest())
                .await
                .ok()
                .flatten(),
        };
        let entries: Vec<(LockedImage, Option<Arc<Bundle>>)> = stream::iter(lock.images)
            .map(|image| {
                let record = &record;
                async move {
                    let found = find(bundle, &image, self.sources).await?;
                    self.hand_over(&found.descriptor, &found.store, || image.image.clone());
                    let nested = match record.as_ref().and_then(|r| r.is_bundle(&image.image)) {
                        Some(false) => None,
                        _ => self.kind(found).await?,
                    };
                    Ok::<_, ImgpkgError>((image, nested))
                }
            })
            .buffered(IMAGES_AT_ONCE)
            .try_collect()
            .await?;
        let record = ImageLocations::new(entries.iter().map(|(i, n)| (i, n.is_some())));
        let nested = entries.into_iter().filter_map(|(_, n)| n).collect();
        let plan = Planned {
            bundle: bundle.descriptor.clone(),
            record,
        };
        Ok((plan, nested))
    }

    /// Hands a manifest to the copies, unless it was handed over before.
    fn hand_over(
        &self,
        descriptor: &Descriptor,
        store: &Arc<dyn ReadStore>,
        name: impl Fn() -> String,
    ) {
        let first = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(descriptor.digest.clone());
        if first {
            // The receiving end lives until discovery has ended: sending cannot fail.
            let _ = self.sink.send(Item {
                descriptor: descriptor.clone(),
                store: store.clone(),
                name: name(),
            });
        }
    }

    /// The bundle `found` is, if it is one; checked once per digest.
    async fn kind(&self, found: Found) -> Result<Option<Arc<Bundle>>, ImgpkgError> {
        let cell = self
            .kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(found.descriptor.digest.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async move {
            let bundle = Bundle::at(found.store, &found.repository, found.descriptor).await?;
            Ok::<_, ImgpkgError>(bundle.map(Arc::new))
        })
        .await
        .cloned()
    }
}

/// An image of a lock, where it was found.
struct Found {
    store: Arc<dyn ReadStore>,
    repository: Address,
    descriptor: Descriptor,
}

/// Finds `image` in the bundle's repository, else at its own reference.
async fn find(
    bundle: &Bundle,
    image: &LockedImage,
    sources: &Session,
) -> Result<Found, ImgpkgError> {
    if let Some(descriptor) = bundle.holds(image.digest()).await? {
        return Ok(Found {
            store: bundle.store.clone(),
            repository: bundle.repository(),
            descriptor,
        });
    }
    let address = Address::from_reference(image.reference());
    let missing = |e: wharf_store::StoreError| ImgpkgError::Invalid {
        what: format!("image {} of bundle {}", image.image, bundle.address),
        message: format!(
            "not in the bundle's repository, and not at its own location: {}",
            chain(&e)
        ),
    };
    let store = sources.read(&address).await.map_err(missing)?;
    let descriptor = store
        .resolve(image.digest().as_str())
        .await
        .map_err(missing)?;
    Ok(Found {
        store,
        repository: address.with(None, None),
        descriptor,
    })
}

/// Writes the record of one bundle (imgpkg's image under its two tags, then wharf's artifact).
/// A destination that refuses to overwrite an immutable tag is fine when it already holds a
/// readable record: records are a cache, as imgpkg treats them.
async fn write_record(
    plan: &Planned,
    dst: &dyn Store,
    repository: &str,
    job: &Job,
) -> Result<RecordWritten, ImgpkgError> {
    let bundle = &plan.bundle;
    let tag = ImageLocations::tag(&bundle.digest);
    let mut staged = Staged::default();
    let record = stage_record(&mut staged, &plan.record, bundle, repository);
    let mut written = RecordWritten {
        bundle: bundle.digest.clone(),
        tag: tag.clone(),
        digest: record.image.digest.clone(),
        images: plan.record.images.len(),
        kept: false,
    };
    let artifact = match job
        .copy(&staged, dst, &record.image, ManifestRole::Tag(&tag))
        .await
    {
        Ok(_) => {
            let second = upload_tag(&record.image.digest);
            job.copy(&staged, dst, &record.image, ManifestRole::Tag(&second))
                .await?;
            record.artifact
        }
        Err(e) if chain(&e).to_lowercase().contains("immutable") => {
            let Ok(Some(existing)) = read_record(dst, &bundle.digest).await else {
                return Err(e.into());
            };
            tracing::warn!(
                "{tag} is immutable at {}; keeping the record there ({})",
                dst.location(),
                chain(&e)
            );
            // The artifact tells what the record there says.
            written.kept = true;
            written.digest = dst.resolve(&tag).await?.digest;
            written.images = existing.images.len();
            stage_record(&mut staged, &existing, bundle, repository).artifact
        }
        Err(e) => return Err(e.into()),
    };
    job.copy(&staged, dst, &artifact, ManifestRole::Root)
        .await?;
    Ok(written)
}
