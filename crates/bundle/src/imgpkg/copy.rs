//! Copying a bundle with everything it locks into one repository: imgpkg's `--to-repo` placement.
//!
//! Discovery reads the bundle's lock and finds each image the way imgpkg does: in the bundle's own
//! repository first (where a previous copy put it), else at the lock's reference. Images that are
//! bundles (by their config label, or by the source's record) are read in turn; a bundle several
//! others nest is read once. Then every manifest is copied through the job under the tag
//! `sha256-<hex>.imgpkg`, digests unchanged. Only when every one of them is there: one location
//! record per bundle (imgpkg's tag and its second tag, plus wharf's artifact whose subject is the
//! bundle), and last the user's tag. A copy that fails part-way leaves no record and no user tag;
//! running it again sends only what is missing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt, stream};
use wharf_copy::{CopyError, CopyReport, Job};
use wharf_oci::{Descriptor, Digest};
use wharf_store::{Address, ManifestRole, ReadStore, Session, Store, chain};

use super::bundle::Bundle;
use super::lock::{BundleLock, LockedImage, repository_name};
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
    /// The tag it goes by: the address's, or the BundleLock's.
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
        Ok(BundleSource {
            tag: address.tag.clone(),
            address,
        })
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

/// A bundle to copy and the record to write for it.
struct Planned {
    bundle: Bundle,
    record: ImageLocations,
}

/// Copies the bundle `source` names, everything it locks and every nested bundle into the
/// repository `destination` names, as part of `job`; see the module documentation. The destination's
/// tag, else the source's, names the bundle there. Archives written to are not finished here: see
/// [`Session::finish`].
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
        .or(source.tag.as_deref())
        .or(root.tag.as_deref())
        .map(str::to_owned);
    let root_descriptor = root.descriptor.clone();
    let root_store = root.store.clone();
    let (planned, items) = discover(root, sources).await?;
    let repository = destination.with(None, None);
    let dst = destinations.write(&repository).await?;

    let results: Vec<(usize, Result<CopyReport, CopyError>)> =
        stream::iter(items.iter().enumerate())
            .map(|(i, item)| {
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
                    (i, copied)
                }
            })
            .buffer_unordered(IMAGES_AT_ONCE)
            .collect()
            .await;
    let mut report = CopyReport::empty(root_descriptor.clone());
    let mut failures = Vec::new();
    for (i, result) in results {
        match result {
            Ok(part) => report.add(&part),
            Err(e) => failures.push((i, e)),
        }
    }
    failures.sort_by_key(|(i, _)| *i);
    let failed = failures.len();
    if let Some((i, error)) = failures.into_iter().next() {
        return Err(ImgpkgError::Incomplete {
            failed,
            total: items.len(),
            image: items[i].name.clone(),
            error: Box::new(error),
        });
    }

    let bundles = planned.len();
    let mut copied = Copied {
        bundle: root_descriptor.clone(),
        destination: repository.with(tag.as_deref(), None),
        bundles,
        images: items.len() - bundles,
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
            .push(write_record(plan, dst.as_ref(), &dst, &described, job).await?);
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

/// Reads every bundle below `root` and finds every image they lock: the bundles in the order
/// found (root first), each with the record to write for it, and every manifest to copy, each
/// once, root first.
async fn discover(
    root: Bundle,
    sources: &Session,
) -> Result<(Vec<Planned>, Vec<Item>), ImgpkgError> {
    let mut items = vec![Item {
        descriptor: root.descriptor.clone(),
        store: root.store.clone(),
        name: format!("bundle {}", root.address),
    }];
    let mut seen: HashSet<Digest> = HashSet::from([root.digest().clone()]);
    let mut is_bundle: HashMap<Digest, bool> = HashMap::from([(root.digest().clone(), true)]);
    let mut planned = Vec::new();
    let mut queue = VecDeque::from([root]);
    while let Some(bundle) = queue.pop_front() {
        let lock = bundle.lock().await?;
        let record = bundle.record().await?;
        let found: Vec<Found> = stream::iter(&lock.images)
            .map(|image| find(&bundle, image, sources))
            .buffered(IMAGES_AT_ONCE)
            .try_collect()
            .await?;
        // Each image's kind is checked once, however many bundles lock it; the record's word that an
        // image is no bundle is taken, as imgpkg takes it.
        let unchecked: Vec<&Found> = {
            let mut batch = HashSet::new();
            found
                .iter()
                .filter(|f| !is_bundle.contains_key(&f.descriptor.digest))
                .filter(|f| {
                    record.as_ref().and_then(|r| r.is_bundle(&f.image.image)) != Some(false)
                })
                .filter(|f| batch.insert(f.descriptor.digest.clone()))
                .collect()
        };
        let nested: Vec<Option<Bundle>> = stream::iter(unchecked.iter())
            .map(|f| Bundle::at(f.store.clone(), &f.repository, f.descriptor.clone()))
            .buffered(IMAGES_AT_ONCE)
            .try_collect()
            .await?;
        for (f, nested) in unchecked.iter().zip(nested) {
            is_bundle.insert(f.descriptor.digest.clone(), nested.is_some());
            if let Some(nested) = nested {
                queue.push_back(nested);
            }
        }
        for f in &found {
            is_bundle
                .entry(f.descriptor.digest.clone())
                .or_insert(false);
            if seen.insert(f.descriptor.digest.clone()) {
                items.push(Item {
                    descriptor: f.descriptor.clone(),
                    store: f.store.clone(),
                    name: f.image.image.clone(),
                });
            }
        }
        let record = ImageLocations::new(
            found
                .iter()
                .map(|f| (&f.image, is_bundle[&f.descriptor.digest])),
        );
        planned.push(Planned { bundle, record });
    }
    Ok((planned, items))
}

/// An image of a lock, where it was found.
struct Found {
    image: LockedImage,
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
            image: image.clone(),
            store: bundle.store.clone(),
            repository: bundle.repository(),
            descriptor,
        });
    }
    let address = Address::from_reference(&image.reference);
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
        image: image.clone(),
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
    reader: &Arc<dyn Store>,
    repository: &str,
    job: &Job,
) -> Result<RecordWritten, ImgpkgError> {
    let mut staged = Staged::default();
    let bundle = &plan.bundle.descriptor;
    let record = stage_record(&mut staged, &plan.record, bundle, repository);
    let tag = ImageLocations::tag(&bundle.digest);
    let mut written = RecordWritten {
        bundle: bundle.digest.clone(),
        tag: tag.clone(),
        digest: record.image.digest.clone(),
        images: plan.record.images.len(),
        kept: false,
    };
    match job
        .copy(&staged, dst, &record.image, ManifestRole::Tag(&tag))
        .await
    {
        Ok(_) => {
            let second = upload_tag(&record.image.digest);
            job.copy(&staged, dst, &record.image, ManifestRole::Tag(&second))
                .await?;
        }
        Err(e)
            if chain(&e).to_lowercase().contains("immutable")
                && read_record(reader, &bundle.digest)
                    .await
                    .is_ok_and(|r| r.is_some()) =>
        {
            tracing::warn!(
                "{tag} is immutable at {}; keeping the record there ({})",
                dst.location(),
                chain(&e)
            );
            written.kept = true;
        }
        Err(e) => return Err(e.into()),
    }
    job.copy(&staged, dst, &record.artifact, ManifestRole::Root)
        .await?;
    Ok(written)
}
