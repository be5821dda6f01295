//! imgpkg's lock files: the ImagesLock a bundle carries as `.imgpkg/images.yml`, and the BundleLock
//! `push --lock-output` writes. Both are read strictly, as imgpkg reads them (unknown fields are
//! errors, every reference must name a digest), and image names are made canonical the way imgpkg's
//! registry library does, so that names compare equal however the lock spells them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wharf_oci::{Digest, Reference};

use crate::yaml;

/// The `apiVersion` of every imgpkg document.
pub const API_VERSION: &str = "imgpkg.carvel.dev/v1alpha1";
const IMAGES_LOCK_KIND: &str = "ImagesLock";
const BUNDLE_LOCK_KIND: &str = "BundleLock";

/// Docker Hub as imgpkg names it.
const DOCKER_HUB: &str = "index.docker.io";

/// An image reference locked to a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedImage {
    /// The canonical name imgpkg compares and records: `index.docker.io/library/ubuntu@sha256:…`.
    pub image: String,
    /// The same reference, parsed; it always has a digest.
    reference: Reference,
    /// The entry's annotations, kept as they are (kbld writes `kbld.carvel.dev/id`).
    pub annotations: BTreeMap<String, String>,
}

impl LockedImage {
    /// Parses a digest reference and makes its name canonical.
    pub fn parse(text: &str) -> Result<LockedImage, String> {
        let (image, reference) = canonical(text)?;
        Ok(LockedImage {
            image,
            reference,
            annotations: BTreeMap::new(),
        })
    }

    /// The reference, parsed.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// The digest the entry is locked to.
    pub fn digest(&self) -> &Digest {
        self.reference
            .digest()
            .expect("locked images are parsed with a digest")
    }
}

/// `text` as imgpkg's registry library names it, and parsed. As that library does, the first path
/// component is a registry only if it contains `.` or `:`; Docker Hub is `index.docker.io`, and its
/// single-component names are below `library/`. A tag beside the digest is dropped.
fn canonical(text: &str) -> Result<(String, Reference), String> {
    let named = text.split('@').next().unwrap_or(text);
    let has_registry = named
        .split_once('/')
        .is_some_and(|(first, _)| first.contains(['.', ':']));
    let full = if has_registry {
        text.to_owned()
    } else {
        format!("{DOCKER_HUB}/{text}")
    };
    let parsed = Reference::parse(&full).map_err(|e| e.reason.to_string())?;
    let Some(digest) = parsed.digest() else {
        return Err("not locked to a digest (write it as REPOSITORY@sha256:…)".into());
    };
    let domain = match parsed.domain() {
        wharf_oci::reference::DOCKER_HUB => DOCKER_HUB,
        other => other,
    };
    let image = format!("{domain}/{}@{digest}", parsed.path());
    let reference = Reference::parse(&image).map_err(|e| e.reason.to_string())?;
    Ok((image, reference))
}

/// `.imgpkg/images.yml`: the images a bundle needs, each locked to a digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImagesLock {
    /// The entries, in the file's order.
    pub images: Vec<LockedImage>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ImagesLockFile {
    api_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    images: Vec<ImageRefFile>,
    kind: String,
}

/// Fields in the order imgpkg writes them (sorted keys).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageRefFile {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    image: String,
}

impl ImagesLock {
    /// Reads an ImagesLock: unknown fields, another kind or version, and references without a
    /// digest are errors.
    pub fn parse(text: &str) -> Result<ImagesLock, String> {
        let file: ImagesLockFile = yaml::from_str(text).map_err(|e| e.to_string())?;
        check_header(&file.api_version, &file.kind, IMAGES_LOCK_KIND)?;
        let images = file
            .images
            .into_iter()
            .map(|entry| {
                let mut locked = LockedImage::parse(&entry.image)
                    .map_err(|why| format!("image {:?}: {why}", entry.image))?;
                locked.annotations = entry.annotations;
                Ok(locked)
            })
            .collect::<Result<_, String>>()?;
        Ok(ImagesLock { images })
    }

    /// The lock as imgpkg writes it: `---`, then keys in sorted order, entries in their order.
    pub fn to_yaml(&self) -> String {
        let file = ImagesLockFile {
            api_version: API_VERSION.to_owned(),
            images: self
                .images
                .iter()
                .map(|entry| ImageRefFile {
                    annotations: entry.annotations.clone(),
                    image: entry.image.clone(),
                })
                .collect(),
            kind: IMAGES_LOCK_KIND.to_owned(),
        };
        document(&yaml::to_string(&file))
    }
}

/// The BundleLock: which bundle, by digest, and the tag it was pushed or copied under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleLock {
    /// `REPOSITORY@sha256:…`: a registry reference, or a wharf location for bundles elsewhere.
    pub image: String,
    /// The tag, if any.
    pub tag: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BundleLockFile {
    api_version: String,
    bundle: BundleRefFile,
    kind: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleRefFile {
    #[serde(default)]
    image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
}

impl BundleLock {
    /// The lock for bundle `digest` in `repository` under `tag`: a registry repository named as
    /// imgpkg names it, any other in wharf's notation.
    pub fn at(repository: &wharf_store::Address, digest: &Digest, tag: Option<&str>) -> BundleLock {
        let image = match (repository.location.host(), repository.registry_path()) {
            (Some(host), Some(path)) => format!("{}@{digest}", repository_name(host, &path)),
            _ => repository.with(None, Some(digest.clone())).to_string(),
        };
        BundleLock {
            image,
            tag: tag.map(str::to_owned),
        }
    }

    /// Reads a BundleLock; the reference must name a digest.
    pub fn parse(text: &str) -> Result<BundleLock, String> {
        let file: BundleLockFile = yaml::from_str(text).map_err(|e| e.to_string())?;
        check_header(&file.api_version, &file.kind, BUNDLE_LOCK_KIND)?;
        if !file.bundle.image.contains('@') {
            return Err(format!(
                "bundle image {:?} is not locked to a digest",
                file.bundle.image
            ));
        }
        Ok(BundleLock {
            image: file.bundle.image,
            tag: file.bundle.tag.filter(|t| !t.is_empty()),
        })
    }

    /// True when `text` looks like a BundleLock (its `kind`), for telling lock files from other
    /// sources.
    pub fn is_bundle_lock(text: &str) -> bool {
        #[derive(Deserialize)]
        struct Kind {
            kind: Option<String>,
        }
        yaml::from_str::<Kind>(text).is_ok_and(|k| k.kind.as_deref() == Some(BUNDLE_LOCK_KIND))
    }

    /// The lock as imgpkg writes it.
    pub fn to_yaml(&self) -> String {
        let file = BundleLockFile {
            api_version: API_VERSION.to_owned(),
            bundle: BundleRefFile {
                image: self.image.clone(),
                tag: self.tag.clone(),
            },
            kind: BUNDLE_LOCK_KIND.to_owned(),
        };
        document(&yaml::to_string(&file))
    }
}

fn check_header(api_version: &str, kind: &str, expected: &str) -> Result<(), String> {
    if api_version != API_VERSION {
        return Err(format!(
            "apiVersion {api_version:?} is unknown (known: {API_VERSION})"
        ));
    }
    if kind != expected {
        return Err(format!("kind {kind:?} is not {expected}"));
    }
    Ok(())
}

/// A YAML document with imgpkg's `---` start marker.
fn document(body: &str) -> String {
    let body = body.strip_prefix("---\n").unwrap_or(body);
    format!("---\n{body}")
}

/// The name imgpkg gives a registry repository: Docker Hub as `index.docker.io`.
pub(crate) fn repository_name(host: &str, path: &str) -> String {
    let host = if host == wharf_oci::reference::DOCKER_HUB {
        DOCKER_HUB
    } else {
        host
    };
    format!("{host}/{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:4c8b96d4fffdfae29258d94a22ae4ad1fe36139d47288b8960d9958d1e63a9d0";

    #[test]
    fn names_images_as_imgpkg_does() {
        let name = |text: String| LockedImage::parse(&text).unwrap().image;
        assert_eq!(
            name(format!("ubuntu@{DIGEST}")),
            format!("index.docker.io/library/ubuntu@{DIGEST}")
        );
        assert_eq!(
            name(format!("docker.io/dkalinin/app@{DIGEST}")),
            format!("index.docker.io/dkalinin/app@{DIGEST}")
        );
        assert_eq!(
            name(format!("registry.example.com:5000/a/b:1.0@{DIGEST}")),
            format!("registry.example.com:5000/a/b@{DIGEST}")
        );
        // imgpkg's registry library takes a first component as a registry only with '.' or ':'.
        assert_eq!(
            name(format!("localhost/app@{DIGEST}")),
            format!("index.docker.io/localhost/app@{DIGEST}")
        );
        let err = LockedImage::parse("nginx:1.27").unwrap_err();
        assert!(err.contains("not locked to a digest"), "{err}");
    }

    #[test]
    fn reads_and_writes_images_locks() {
        let text = format!(
            "---\napiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages:\n- image: nginx@{DIGEST}\n  annotations:\n    kbld.carvel.dev/id: nginx:1.27\n- image: quay.io/org/tool@{DIGEST}\n"
        );
        let lock = ImagesLock::parse(&text).unwrap();
        assert_eq!(lock.images.len(), 2);
        assert_eq!(
            lock.images[0].annotations["kbld.carvel.dev/id"],
            "nginx:1.27"
        );
        let written = lock.to_yaml();
        assert!(
            written.starts_with(
                "---\napiVersion: imgpkg.carvel.dev/v1alpha1\nimages:\n- annotations:\n"
            ),
            "{written}"
        );
        assert!(written.ends_with("kind: ImagesLock\n"), "{written}");
        assert_eq!(ImagesLock::parse(&written).unwrap(), lock);
    }

    #[test]
    fn refuses_what_imgpkg_refuses() {
        let bad = |text: &str, needle: &str| {
            let err = ImagesLock::parse(text).unwrap_err();
            assert!(err.contains(needle), "{err}");
        };
        bad(
            "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages:\n- image: nginx:1.27\n",
            "not locked to a digest",
        );
        bad(
            "apiVersion: imgpkg.carvel.dev/v1alpha2\nkind: ImagesLock\n",
            "apiVersion",
        );
        bad(
            "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImageLocations\n",
            "kind",
        );
        bad(
            "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimagez: []\n",
            "imagez",
        );
    }

    #[test]
    fn bundle_locks_round_trip() {
        let lock = BundleLock {
            image: format!("127.0.0.1:5000/bundle@{DIGEST}"),
            tag: Some("1.0".into()),
        };
        let text = lock.to_yaml();
        assert!(text.starts_with("---\napiVersion: imgpkg.carvel.dev/v1alpha1\nbundle:\n"));
        assert!(BundleLock::is_bundle_lock(&text));
        assert_eq!(BundleLock::parse(&text).unwrap(), lock);
        let err = BundleLock::parse(
            "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: BundleLock\nbundle:\n  image: r.example/b:1\n",
        )
        .unwrap_err();
        assert!(err.contains("digest"), "{err}");
    }
}
