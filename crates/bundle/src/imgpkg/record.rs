//! imgpkg's location records ("ImageLocations"): after a copy into a repository, an image tagged
//! `sha256-<bundle hex>.image-locations.imgpkg` beside each bundle says that every image of the
//! bundle's lock is in that repository, and which of them are bundles. Readers then find every image
//! at `<bundle repository>@<digest>` without probing each one.
//!
//! Written exactly as imgpkg writes it (YAML bytes, tar, config, Docker manifest, and a second tag
//! `sha256-<record hex>.imgpkg`) and read as tolerantly as imgpkg reads it. wharf also writes the
//! same YAML as an OCI artifact whose subject is the bundle, so referrers-aware tools find it.

use std::collections::HashMap;

use bytes::Bytes;
use serde::Deserialize;
use wharf_oci::media_type::{OCI_EMPTY, OCI_MANIFEST, WHARF_IMAGE_LOCATIONS};
use wharf_oci::{Descriptor, Digest, ImageManifest, Manifest, ManifestBody};
use wharf_store::ReadStore;

use super::ImgpkgError;
use super::image::{LayerFiles, LayerWriter, read_layer, single_layer, stage};
use super::lock::{API_VERSION, LockedImage};
use crate::staged::Staged;
use crate::yaml;

/// The file a record's layer holds.
pub const RECORD_FILE: &str = "image-locations.yml";
const KIND: &str = "ImageLocations";

/// The annotation on wharf's record artifact naming the repository it describes.
pub const REPOSITORY_ANNOTATION: &str = "dev.wharf.image-locations.repository";
/// The annotation giving the artifact's file a name, as oras does.
const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";

/// One entry: an image of the bundle's lock, by its canonical name, and whether it is a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLocation {
    /// The canonical lock reference (`index.docker.io/library/ubuntu@sha256:…`), not its new place.
    pub image: String,
    /// Whether the image is an imgpkg bundle itself.
    pub is_bundle: bool,
}

/// A bundle's record: its lock's images, each once, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageLocations {
    /// The entries, sorted by image.
    pub images: Vec<ImageLocation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordFile {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    images: Option<Vec<EntryFile>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryFile {
    #[serde(default)]
    image: String,
    #[serde(default)]
    is_bundle: bool,
}

impl ImageLocations {
    /// The record for a bundle whose lock holds `images`: one entry per digest, sorted by name, as
    /// imgpkg writes it. Of two names for one digest the later in the lock is kept, as imgpkg keeps
    /// it (its cache of lock entries is keyed by digest).
    pub fn new<'a>(images: impl IntoIterator<Item = (&'a LockedImage, bool)>) -> ImageLocations {
        let by_digest: HashMap<&Digest, (&LockedImage, bool)> = images
            .into_iter()
            .map(|(image, is_bundle)| (image.digest(), (image, is_bundle)))
            .collect();
        let mut entries: Vec<ImageLocation> = by_digest
            .into_values()
            .map(|(image, is_bundle)| ImageLocation {
                image: image.image.clone(),
                is_bundle,
            })
            .collect();
        entries.sort_by(|a, b| a.image.cmp(&b.image));
        ImageLocations { images: entries }
    }

    /// The tag of the record of bundle `bundle`.
    pub fn tag(bundle: &Digest) -> String {
        format!(
            "{}-{}.image-locations.imgpkg",
            bundle.algorithm(),
            bundle.hex()
        )
    }

    /// The YAML imgpkg writes, byte for byte: `---`, keys sorted, sequences not indented.
    pub fn to_yaml(&self) -> String {
        let mut out = format!("---\napiVersion: {API_VERSION}\n");
        if self.images.is_empty() {
            out += "images: null\n";
        } else {
            out += "images:\n";
            for entry in &self.images {
                out += &format!(
                    "- image: {}\n  isBundle: {}\n",
                    entry.image, entry.is_bundle
                );
            }
        }
        out + &format!("kind: {KIND}\n")
    }

    /// Reads a record: unknown fields are accepted, the version and kind must be imgpkg's.
    pub fn parse(text: &str) -> Result<ImageLocations, String> {
        let file: RecordFile = yaml::from_str(text).map_err(|e| e.to_string())?;
        if file.api_version != API_VERSION {
            return Err(format!(
                "apiVersion {:?} is unknown (known: {API_VERSION})",
                file.api_version
            ));
        }
        if file.kind != KIND {
            return Err(format!("kind {:?} is not {KIND}", file.kind));
        }
        Ok(ImageLocations {
            images: file
                .images
                .unwrap_or_default()
                .into_iter()
                .map(|e| ImageLocation {
                    image: e.image,
                    is_bundle: e.is_bundle,
                })
                .collect(),
        })
    }

    /// Whether the record says `image` (a canonical name) is a bundle; `None` if it does not list it.
    pub fn is_bundle(&self, image: &str) -> Option<bool> {
        self.images
            .iter()
            .find(|e| e.image == image)
            .map(|e| e.is_bundle)
    }

    /// The uncompressed layer imgpkg writes for this record: `.` and `image-locations.yml`.
    fn stage_image(&self, staged: &mut Staged) -> Descriptor {
        let yaml = self.to_yaml();
        let mut layer = LayerWriter::new(Vec::new());
        let tar = layer.tar();
        let written = tar
            .directory(".", 0o700)
            .and_then(|()| tar.file(RECORD_FILE, 0o600, yaml.len() as u64, yaml.as_bytes()));
        written.expect("writing to memory cannot fail");
        let (gzip, diff_id, descriptor) = layer.finish().expect("writing to memory cannot fail");
        let layer = staged.add_bytes(&descriptor.media_type, Bytes::from(gzip));
        stage(staged, &layer, &diff_id, &Default::default())
    }

    /// wharf's artifact for this record: the YAML as one layer, `subject` the bundle, annotated
    /// with the repository it describes. Nothing in it depends on time, so writing it again is a
    /// no-op.
    fn stage_artifact(
        &self,
        staged: &mut Staged,
        bundle: &Descriptor,
        repository: &str,
    ) -> Descriptor {
        let config = staged.add_bytes(OCI_EMPTY, Bytes::from_static(b"{}"));
        let mut layer = staged.add_bytes(WHARF_IMAGE_LOCATIONS, Bytes::from(self.to_yaml()));
        layer
            .annotations
            .insert(TITLE_ANNOTATION.into(), RECORD_FILE.into());
        let subject = Descriptor::new(&bundle.media_type, bundle.digest.clone(), bundle.size);
        let manifest = Manifest::from_image(&ImageManifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.into()),
            artifact_type: Some(WHARF_IMAGE_LOCATIONS.into()),
            config,
            layers: vec![layer],
            subject: Some(subject),
            annotations: [(REPOSITORY_ANNOTATION.to_owned(), repository.to_owned())].into(),
        });
        staged.add_bytes(OCI_MANIFEST, manifest.raw().clone())
    }
}

/// A record and its artifact, staged for pushing.
pub(crate) struct StagedRecord {
    /// The record image (imgpkg's).
    pub image: Descriptor,
    /// The artifact whose subject is the bundle (wharf's).
    pub artifact: Descriptor,
}

/// Stages `record` for the bundle `bundle` in `repository`.
pub(crate) fn stage_record(
    staged: &mut Staged,
    record: &ImageLocations,
    bundle: &Descriptor,
    repository: &str,
) -> StagedRecord {
    StagedRecord {
        image: record.stage_image(staged),
        artifact: record.stage_artifact(staged, bundle, repository),
    }
}

/// The record of bundle `bundle` in `store`, as imgpkg reads it: a missing or forbidden tag means
/// there is none; anything else that is wrong with it is an error.
pub async fn read_record(
    store: &dyn ReadStore,
    bundle: &Digest,
) -> Result<Option<ImageLocations>, ImgpkgError> {
    let tag = ImageLocations::tag(bundle);
    let descriptor = match store.resolve(&tag).await {
        Ok(descriptor) => descriptor,
        Err(e) if e.is_not_found() || e.is_denied() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let what = format!("location record {}:{tag}", store.location());
    let invalid = |message: String| ImgpkgError::Invalid {
        what: what.clone(),
        message,
    };
    let manifest = store.fetch_manifest(&descriptor).await?;
    let ManifestBody::Image(image) = manifest.body() else {
        return Err(invalid("is an index, not an image".into()));
    };
    let layer = single_layer(image, "the record").map_err(invalid)?;
    let content = read_layer(store, layer, LayerFiles::FindName(RECORD_FILE))
        .await?
        .ok_or_else(|| invalid(format!("its layer has no {RECORD_FILE}")))?;
    let text = String::from_utf8(content).map_err(|_| invalid("is not UTF-8".into()))?;
    ImageLocations::parse(&text).map(Some).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_oci::Algorithm;

    const DIGEST: &str = "sha256:4c8b96d4fffdfae29258d94a22ae4ad1fe36139d47288b8960d9958d1e63a9d0";

    fn locked(text: &str) -> LockedImage {
        LockedImage::parse(text).unwrap()
    }

    /// The pinned output of imgpkg's own test.
    #[test]
    fn writes_imgpkgs_bytes() {
        let a = locked(&format!("a.example/a@{DIGEST}"));
        let z = locked(&format!("z.example/z@{}", Algorithm::Sha256.digest(b"z")));
        let record = ImageLocations::new([(&z, false), (&a, true)]);
        assert_eq!(
            record.to_yaml(),
            format!(
                "---\napiVersion: imgpkg.carvel.dev/v1alpha1\nimages:\n- image: a.example/a@{DIGEST}\n  isBundle: true\n- image: z.example/z@{}\n  isBundle: false\nkind: ImageLocations\n",
                Algorithm::Sha256.digest(b"z")
            )
        );
        assert_eq!(
            ImageLocations::default().to_yaml(),
            "---\napiVersion: imgpkg.carvel.dev/v1alpha1\nimages: null\nkind: ImageLocations\n"
        );
    }

    #[test]
    fn one_entry_per_digest_the_later_name() {
        let a = locked(&format!("a.example/a@{DIGEST}"));
        let b = locked(&format!("b.example/b@{DIGEST}"));
        let record = ImageLocations::new([(&b, false), (&a, false)]);
        assert_eq!(record.images.len(), 1);
        assert_eq!(record.images[0].image, a.image);
    }

    /// The computed vector: YAML, tar (diff_id) and config digests.
    #[test]
    fn reproduces_the_computed_vector() {
        let image = locked(&format!("docker.io/dkalinin/k8s-simple-app@{DIGEST}"));
        let record = ImageLocations::new([(&image, false)]);
        let yaml = record.to_yaml();
        assert_eq!(yaml.len(), 211);
        assert_eq!(
            yaml,
            format!(
                "---\napiVersion: imgpkg.carvel.dev/v1alpha1\nimages:\n- image: index.docker.io/dkalinin/k8s-simple-app@{DIGEST}\n  isBundle: false\nkind: ImageLocations\n"
            )
        );
        let mut staged = Staged::default();
        let manifest = record.stage_image(&mut staged);
        assert_eq!(manifest.media_type, wharf_oci::media_type::DOCKER_MANIFEST);
        let mut tar = super::super::tar::GoTar::new(Vec::new());
        tar.directory(".", 0o700).unwrap();
        tar.file(RECORD_FILE, 0o600, 211, yaml.as_bytes()).unwrap();
        let tar = tar.finish().unwrap();
        assert_eq!(tar.len(), 2560);
        let diff_id = Algorithm::Sha256.digest(&tar);
        assert_eq!(
            diff_id.as_str(),
            "sha256:9a45401faf038dc48d8daf2356110c6f0392b7ec91b1a0821263b4d274515017"
        );
        let config = super::super::image::config(&diff_id, &Default::default());
        assert_eq!(config.len(), 273);
        assert_eq!(
            Algorithm::Sha256.digest(&config).as_str(),
            "sha256:95056ca595f11d299c3718fc11e4cd2c48b3db1a42aa7fd9cf5fcccf7d25c96f"
        );
    }

    #[test]
    fn reads_as_tolerantly_as_imgpkg() {
        let text = format!(
            "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImageLocations\nextra: 1\nimages:\n- image: a.example/a@{DIGEST}\n  isBundle: true\n  note: x\n"
        );
        let record = ImageLocations::parse(&text).unwrap();
        assert_eq!(
            record.is_bundle(&format!("a.example/a@{DIGEST}")),
            Some(true)
        );
        assert_eq!(
            ImageLocations::parse("apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\n")
                .unwrap_err(),
            "kind \"ImagesLock\" is not ImageLocations"
        );
        assert!(
            ImageLocations::parse("apiVersion: v2\nkind: ImageLocations\n")
                .unwrap_err()
                .contains("apiVersion")
        );
        assert_eq!(
            ImageLocations::parse(
                "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImageLocations\nimages: null\n"
            )
            .unwrap(),
            ImageLocations::default()
        );
    }

    #[test]
    fn tags_records_as_imgpkg_does() {
        let digest = Digest::parse(DIGEST).unwrap();
        assert_eq!(
            ImageLocations::tag(&digest),
            "sha256-4c8b96d4fffdfae29258d94a22ae4ad1fe36139d47288b8960d9958d1e63a9d0.image-locations.imgpkg"
        );
    }
}
