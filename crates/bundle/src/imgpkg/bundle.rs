//! A bundle where it was found, its lock and record, and where each image of its lock can be pulled
//! from now.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt, stream};
use wharf_oci::{Descriptor, Digest};
use wharf_store::{Address, Location, ReadStore, Session};

use super::image::{LayerFiles, image_and_labels, read_layer, single_layer};
use super::lock::{ImagesLock, LockedImage, repository_name};
use super::record::{ImageLocations, read_record};
use super::{BUNDLE_LABEL, IMAGES_LOCK_PATH, ImgpkgError};

/// Probes sent at once when looking for a bundle's images.
const PROBES_AT_ONCE: usize = 16;

/// An imgpkg bundle in a repository.
pub struct Bundle {
    /// The repository it was read from, with the bundle's digest.
    pub address: Address,
    /// The tag it was found by, if any.
    pub tag: Option<String>,
    /// That repository.
    pub store: Arc<dyn ReadStore>,
    /// The bundle's manifest.
    pub descriptor: Descriptor,
    /// Its config's labels (the bundle label among them).
    pub labels: BTreeMap<String, String>,
    /// Its one layer.
    layer: Descriptor,
}

/// Which of imgpkg's rules decided where an image is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The bundle's repository holds a location record: every image is there, unprobed.
    Record,
    /// No record, but the bundle's repository holds every image.
    BundleRepository,
    /// Neither: the lock's own references.
    Original,
}

impl Rule {
    /// The rule's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Record => "record",
            Rule::BundleRepository => "bundle-repository",
            Rule::Original => "original",
        }
    }
}

/// Where one image of a bundle's lock is.
#[derive(Debug, Clone)]
pub struct Located {
    /// The lock's entry.
    pub image: LockedImage,
    /// Where to read it now.
    pub address: Address,
    /// Whether it is a bundle, when the record says.
    pub is_bundle: Option<bool>,
}

impl Bundle {
    /// The bundle `address` names, read through `session`. An address naming neither tag nor
    /// digest means `latest` in a registry; in a layout, archive or CTF it means the one bundle
    /// tagged there, or the one bundle no other bundle there nests.
    pub async fn open(session: &Session, address: &Address) -> Result<Bundle, ImgpkgError> {
        let store = session.read(address).await?;
        let (descriptor, tag) = match (&address.location, address.tag(), address.digest()) {
            (Location::Registry { .. }, _, _) | (_, Some(_), _) | (_, _, Some(_)) => (
                address.resolve_in(store.as_ref()).await?,
                address.tag.clone(),
            ),
            _ => root_bundle(store.as_ref(), address).await?,
        };
        let mut bundle = Bundle::at(store, address, descriptor)
            .await?
            .ok_or_else(|| ImgpkgError::NotABundle(address.to_string()))?;
        bundle.tag = tag;
        Ok(bundle)
    }

    /// The image `descriptor` in `store` (the repository `repository` names), if it is a bundle:
    /// an image whose config has the bundle label. A bundle must have imgpkg's one layer; an
    /// image whose config is no image config (an artifact's) is no bundle.
    pub async fn at(
        store: Arc<dyn ReadStore>,
        repository: &Address,
        descriptor: Descriptor,
    ) -> Result<Option<Bundle>, ImgpkgError> {
        let Some((image, labels)) = image_and_labels(store.as_ref(), &descriptor).await? else {
            return Ok(None);
        };
        if !labels.contains_key(BUNDLE_LABEL) {
            return Ok(None);
        }
        let address = repository.with(None, Some(descriptor.digest.clone()));
        let layer = single_layer(&image, "the bundle")
            .map_err(|message| ImgpkgError::Invalid {
                what: address.to_string(),
                message,
            })?
            .clone();
        Ok(Some(Bundle {
            address,
            tag: None,
            store,
            descriptor,
            labels,
            layer,
        }))
    }

    /// The bundle's digest.
    pub fn digest(&self) -> &Digest {
        &self.descriptor.digest
    }

    /// The repository the bundle is in, without tag or digest.
    pub fn repository(&self) -> Address {
        self.address.with(None, None)
    }

    /// The repository as imgpkg names it in references (`index.docker.io/…` for Docker Hub), for
    /// registries; `None` elsewhere.
    pub fn registry_repository(&self) -> Option<String> {
        let host = self.address.location.host()?;
        Some(repository_name(host, &self.address.registry_path()?))
    }

    /// The bundle's ImagesLock.
    pub async fn lock(&self) -> Result<ImagesLock, ImgpkgError> {
        let content = read_layer(
            self.store.as_ref(),
            &self.layer,
            LayerFiles::FindPath(IMAGES_LOCK_PATH),
        )
        .await?
        .ok_or_else(|| self.invalid(format!("has no {IMAGES_LOCK_PATH}")))?;
        let text = String::from_utf8(content)
            .map_err(|_| self.invalid(format!("{IMAGES_LOCK_PATH} is not UTF-8")))?;
        ImagesLock::parse(&text).map_err(|e| self.invalid(format!("{IMAGES_LOCK_PATH}: {e}")))
    }

    /// Writes the bundle's files below `dir`.
    pub async fn extract(&self, dir: &Path) -> Result<(), ImgpkgError> {
        read_layer(
            self.store.as_ref(),
            &self.layer,
            LayerFiles::ExtractTo(dir.to_owned()),
        )
        .await?;
        Ok(())
    }

    /// The location record beside the bundle, if there is one.
    pub async fn record(&self) -> Result<Option<ImageLocations>, ImgpkgError> {
        read_record(self.store.as_ref(), self.digest()).await
    }

    /// The manifest `digest` names in the bundle's repository, if it is there (a refusal counts as
    /// absent, as imgpkg counts it).
    pub async fn holds(&self, digest: &Digest) -> Result<Option<Descriptor>, ImgpkgError> {
        match self.store.resolve(digest.as_str()).await {
            Ok(descriptor) => Ok(Some(descriptor)),
            Err(e) if e.is_not_found() || e.is_denied() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Where each image of `lock` can be pulled from now, and the rule that decided it, by imgpkg's
    /// rules: with a `record`, every image is in the bundle's repository, unprobed; without, the
    /// repository is probed for each, and only if it holds them all are they found there;
    /// otherwise the lock's references stand.
    pub async fn locate(
        &self,
        lock: &ImagesLock,
        record: Option<&ImageLocations>,
    ) -> Result<(Rule, Vec<Located>), ImgpkgError> {
        let rule = match record {
            Some(_) => Rule::Record,
            None => {
                let held: Vec<bool> = stream::iter(&lock.images)
                    .map(|image| async move {
                        Ok::<_, ImgpkgError>(self.holds(image.digest()).await?.is_some())
                    })
                    .buffered(PROBES_AT_ONCE)
                    .try_collect()
                    .await?;
                if held.iter().all(|&h| h) {
                    Rule::BundleRepository
                } else {
                    Rule::Original
                }
            }
        };
        let located = lock
            .images
            .iter()
            .map(|image| Located {
                address: match rule {
                    Rule::Original => Address::from_reference(image.reference()),
                    _ => self.address.with(None, Some(image.digest().clone())),
                },
                is_bundle: record.and_then(|r| r.is_bundle(&image.image)),
                image: image.clone(),
            })
            .collect();
        Ok((rule, located))
    }

    fn invalid(&self, message: String) -> ImgpkgError {
        ImgpkgError::Invalid {
            what: format!("bundle {}", self.address),
            message,
        }
    }
}

/// The bundle a layout, archive or CTF repository holds when the user names none, and its tag: the
/// one its user tags name, else the one its location records list that no other record nests.
async fn root_bundle(
    store: &dyn ReadStore,
    address: &Address,
) -> Result<(Descriptor, Option<String>), ImgpkgError> {
    let roots = store.roots().await?;
    let named: Vec<(&String, &Descriptor)> = roots
        .iter()
        .filter_map(|(tag, d)| Some((tag.as_ref().filter(|t| is_user_tag(t))?, d)))
        .collect();
    if let Some((tag, first)) = named.first()
        && named.iter().all(|(_, d)| d.digest == first.digest)
    {
        return Ok(((*first).clone(), Some((*tag).clone())));
    }
    let mut bundles = Vec::new();
    let mut nested = Vec::new();
    for (tag, _) in &roots {
        let Some(hex) = tag
            .as_deref()
            .and_then(|t| t.strip_suffix(".image-locations.imgpkg"))
        else {
            continue;
        };
        let Ok(digest) = Digest::parse(&hex.replacen('-', ":", 1)) else {
            continue;
        };
        if let Some(record) = read_record(store, &digest).await? {
            nested.extend(
                record
                    .images
                    .iter()
                    .filter(|e| e.is_bundle)
                    .filter_map(|e| e.image.rsplit_once('@'))
                    .filter_map(|(_, d)| Digest::parse(d).ok()),
            );
        }
        bundles.push(digest);
    }
    bundles.retain(|b| !nested.contains(b));
    match bundles.as_slice() {
        [only] => Ok((store.resolve(only.as_str()).await?, None)),
        _ => Err(ImgpkgError::Invalid {
            what: address.to_string(),
            message: "holds no single bundle to copy; name it as LOCATION:TAG or LOCATION@DIGEST"
                .into(),
        }),
    }
}

/// A tag a user gave, rather than one a tool derived from a digest: imgpkg's `sha256-<hex>.imgpkg`
/// and records, the referrers tag schema's `sha256-<hex>`, cosign's `.sig`, `.att` and `.sbom`.
fn is_user_tag(tag: &str) -> bool {
    let stem = tag.split('.').next().unwrap_or(tag);
    let derived = stem
        .split_once('-')
        .is_some_and(|(alg, hex)| Digest::parse(&format!("{alg}:{hex}")).is_ok());
    !derived
}
