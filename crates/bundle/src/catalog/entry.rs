//! One catalog entry: an empty artifact whose annotations say what is stored where, and whose
//! `subject` is the catalog's anchor. Its bytes are a function of what it describes alone, so two
//! writers describing the same thing write the same entry.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use bytes::Bytes;
use wharf_oci::media_type::{OCI_EMPTY, OCI_MANIFEST};
use wharf_oci::{Descriptor, Digest, ImageManifest, Manifest, ManifestBody};

use super::{ANCHOR, EMPTY_JSON, ENTRY_ARTIFACT_TYPE};

/// The annotation keys of an entry.
pub mod keys {
    /// The repository, relative to the catalog's base path.
    pub const REPOSITORY: &str = "dev.wharf.catalog.repository";
    /// The digest of the manifest or index stored there.
    pub const DIGEST: &str = "dev.wharf.catalog.digest";
    /// The tag it goes by, if any.
    pub const TAG: &str = "dev.wharf.catalog.tag";
    /// What it is: one of [`super::Kind`].
    pub const KIND: &str = "dev.wharf.catalog.kind";
    /// A component version's provider (OCM defines no key for it).
    pub const PROVIDER: &str = "dev.wharf.ocm.provider";
    /// OCM's own keys for a component version's name and version (exact descriptor strings).
    pub const OCM_NAME: &str = "software.ocm.component.name";
    /// See [`OCM_NAME`].
    pub const OCM_VERSION: &str = "software.ocm.component.version";
    /// OCM's older `name:version` key, which its libraries still write and read.
    pub const OCM_COMPONENT_VERSION: &str = "software.ocm.componentversion";
}

/// What an entry describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An OCM component version.
    ComponentVersion,
    /// An imgpkg bundle.
    ImgpkgBundle,
    /// Any other image or artifact.
    Oci,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::ComponentVersion => "ocm-component-version",
            Kind::ImgpkgBundle => "imgpkg-bundle",
            Kind::Oci => "oci",
        }
    }

    fn parse(text: &str) -> Option<Kind> {
        [Kind::ComponentVersion, Kind::ImgpkgBundle, Kind::Oci]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// A catalog entry, held as its annotations (checked when made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    annotations: BTreeMap<String, String>,
    digest: Digest,
    kind: Kind,
}

impl Entry {
    /// The entry of a component version stored in `repository` (relative to the base) as `root`
    /// under `tag`.
    pub fn component_version(
        repository: &str,
        root: &Digest,
        tag: &str,
        name: &str,
        version: &str,
        provider: &str,
    ) -> Entry {
        let annotations: BTreeMap<String, String> = [
            (keys::REPOSITORY, repository),
            (keys::DIGEST, root.as_str()),
            (keys::TAG, tag),
            (keys::KIND, Kind::ComponentVersion.as_str()),
            (keys::OCM_NAME, name),
            (keys::OCM_VERSION, version),
            (keys::OCM_COMPONENT_VERSION, &format!("{name}:{version}")),
            (keys::PROVIDER, provider),
        ]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        Entry {
            annotations,
            digest: root.clone(),
            kind: Kind::ComponentVersion,
        }
    }

    /// An entry from annotations read back, if they make one: a repository, a digest and a kind,
    /// and for a component version its name and version.
    pub fn from_annotations(annotations: BTreeMap<String, String>) -> Result<Entry, String> {
        let get = |key: &str| annotations.get(key).filter(|v| !v.is_empty());
        let missing = |key: &str| format!("no {key} annotation");
        let repository = get(keys::REPOSITORY).ok_or_else(|| missing(keys::REPOSITORY))?;
        wharf_oci::validate_repository(repository)
            .map_err(|e| format!("{}: {e}", keys::REPOSITORY))?;
        let digest = get(keys::DIGEST).ok_or_else(|| missing(keys::DIGEST))?;
        let digest = Digest::parse(digest).map_err(|e| format!("{}: {e}", keys::DIGEST))?;
        let kind_text = get(keys::KIND).ok_or_else(|| missing(keys::KIND))?;
        let kind = Kind::parse(kind_text)
            .ok_or_else(|| format!("{} {kind_text:?} is not one wharf knows", keys::KIND))?;
        if kind == Kind::ComponentVersion {
            get(keys::OCM_NAME).ok_or_else(|| missing(keys::OCM_NAME))?;
            get(keys::OCM_VERSION).ok_or_else(|| missing(keys::OCM_VERSION))?;
        }
        Ok(Entry {
            annotations,
            digest,
            kind,
        })
    }

    /// The entry an entry manifest holds, if it is one of this catalog's: an artifact of the entry
    /// type whose subject is the anchor.
    pub fn from_manifest(manifest: &Manifest) -> Result<Entry, String> {
        let ManifestBody::Image(image) = manifest.body() else {
            return Err("is an index, not an entry".into());
        };
        if image.artifact_type.as_deref() != Some(ENTRY_ARTIFACT_TYPE) {
            return Err(format!(
                "artifact type {:?} is not a catalog entry's",
                image.artifact_type.as_deref().unwrap_or("")
            ));
        }
        if image.subject.as_ref().map(|s| &s.digest) != Some(&super::anchor().digest) {
            return Err("its subject is not the catalog's anchor".into());
        }
        Entry::from_annotations(image.annotations.clone())
    }

    /// The entry's manifest: an empty artifact, subject the anchor, annotated.
    pub fn manifest(&self) -> Manifest {
        let empty = Descriptor::for_bytes(OCI_EMPTY, EMPTY_JSON);
        let anchor = super::anchor();
        Manifest::from_image(&ImageManifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.into()),
            artifact_type: Some(ENTRY_ARTIFACT_TYPE.into()),
            config: empty.clone(),
            layers: vec![empty],
            subject: Some(Descriptor::new(
                OCI_MANIFEST,
                anchor.digest,
                ANCHOR.len() as u64,
            )),
            annotations: self.annotations.clone(),
        })
    }

    /// The tag the entry is stored under, the ground truth when the referrers index loses it:
    /// `wharf-<hex of the entry manifest>`.
    pub fn tag(&self) -> String {
        tag_of(&self.manifest().descriptor().digest)
    }

    /// All its annotations.
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.annotations
    }

    /// An annotation's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }

    /// The repository, relative to the catalog's base path.
    pub fn repository(&self) -> &str {
        self.get(keys::REPOSITORY).unwrap_or_default()
    }

    /// The digest of what is stored there.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// What it is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// A component version's name and version.
    pub fn component(&self) -> Option<(&str, &str)> {
        Some((self.get(keys::OCM_NAME)?, self.get(keys::OCM_VERSION)?))
    }
}

/// The tag of the entry whose manifest has digest `entry`.
pub(super) fn tag_of(entry: &Digest) -> String {
    format!("wharf-{}", entry.hex())
}

/// The entry digest a `wharf-<hex>` tag names.
pub(super) fn digest_of_tag(tag: &str) -> Option<Digest> {
    Digest::parse(&format!("sha256:{}", tag.strip_prefix("wharf-")?)).ok()
}

/// Versions compared as loose semantic versions: a leading `v` ignored, numeric parts as numbers,
/// a pre-release below its release, build metadata only to break ties; what is not a version
/// compares as text, below every version.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn parts(version: &str) -> Option<(Vec<u64>, Option<&str>, &str)> {
        let version = version.strip_prefix('v').unwrap_or(version);
        let (version, build) = version.split_once('+').unwrap_or((version, ""));
        let (core, pre) = match version.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (version, None),
        };
        let numbers = core
            .split('.')
            .map(|n| n.parse().ok())
            .collect::<Option<Vec<u64>>>()?;
        Some((numbers, pre, build))
    }
    match (parts(a), parts(b)) {
        (Some((na, pa, ba)), Some((nb, pb, bb))) => na
            .cmp(&nb)
            .then_with(|| match (pa, pb) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(x), Some(y)) => compare_prerelease(x, y),
            })
            .then_with(|| ba.cmp(bb)),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => a.cmp(b),
    }
}

/// Semantic versioning's pre-release order: dot-separated, numbers below words, numbers by value.
fn compare_prerelease(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// The empty JSON blob, for pushing.
pub(super) fn empty_blob() -> (Descriptor, Bytes) {
    (
        Descriptor::for_bytes(OCI_EMPTY, EMPTY_JSON),
        Bytes::from_static(EMPTY_JSON),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        let digest = wharf_oci::Algorithm::Sha256.digest(b"cv");
        Entry::component_version(
            "component-descriptors/acme.org/app",
            &digest,
            "1.2.3",
            "acme.org/app",
            "1.2.3",
            "acme",
        )
    }

    #[test]
    fn entries_are_a_function_of_what_they_describe() {
        let a = entry().manifest();
        let b = entry().manifest();
        assert_eq!(a.raw(), b.raw());
        let back = Entry::from_manifest(&Manifest::parse(a.raw().clone(), None).unwrap()).unwrap();
        assert_eq!(back, entry());
        assert_eq!(back.component(), Some(("acme.org/app", "1.2.3")));
        assert!(entry().tag().starts_with("wharf-") && entry().tag().len() == 70);
        assert_eq!(digest_of_tag(&entry().tag()), Some(a.descriptor().digest));
    }

    #[test]
    fn refuses_entries_that_describe_nothing() {
        let mut annotations = entry().annotations().clone();
        annotations.remove(keys::DIGEST);
        assert!(
            Entry::from_annotations(annotations)
                .unwrap_err()
                .contains(keys::DIGEST)
        );
        let mut annotations = entry().annotations().clone();
        annotations.remove(keys::OCM_VERSION);
        assert!(Entry::from_annotations(annotations).is_err());
        let mut annotations = entry().annotations().clone();
        annotations.insert(keys::DIGEST.into(), "sha256:short".into());
        assert!(Entry::from_annotations(annotations).is_err());
        let mut annotations = entry().annotations().clone();
        annotations.insert(keys::REPOSITORY.into(), "../up".into());
        assert!(Entry::from_annotations(annotations).is_err());
    }

    #[test]
    fn orders_versions_loosely() {
        let mut versions = vec![
            "1.10.0",
            "1.2.0",
            "v1.9.1",
            "1.10.0-rc.1",
            "1.10.0-rc.10",
            "1.10.0-alpha",
            "nightly",
            "1.10.0+build.2",
            "2",
        ];
        versions.sort_by(|a, b| compare_versions(b, a));
        assert_eq!(
            versions,
            [
                "2",
                "1.10.0+build.2",
                "1.10.0",
                "1.10.0-rc.10",
                "1.10.0-rc.1",
                "1.10.0-alpha",
                "v1.9.1",
                "1.2.0",
                "nightly"
            ]
        );
    }
}
