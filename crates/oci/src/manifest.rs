//! Descriptors, image manifests and indexes.
//!
//! A [`Manifest`] always keeps the exact bytes it was parsed from: a copy pushes those bytes, never a
//! re-serialisation, so digests survive every hop.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::digest::{Algorithm, Digest};
use crate::media_type::{self, Kind};

/// The limit the distribution spec lets registries enforce on manifests; wharf reads no larger ones.
pub const MANIFEST_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Annotation naming a tag in an OCI layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Points at content by media type, digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes of the referenced content.
    pub size: u64,
    /// Alternative download locations (foreign layers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Artifact type of the referenced manifest (referrers listings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Embedded content, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl Descriptor {
    /// Describes `bytes` with the given media type.
    pub fn for_bytes(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor::new(
            media_type,
            Algorithm::Sha256.digest(bytes),
            bytes.len() as u64,
        )
    }

    /// A descriptor with only the required fields.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
            data: None,
        }
    }

    /// True if this points at a manifest or index rather than a plain blob.
    pub fn is_manifest(&self) -> bool {
        media_type::is_manifest(&self.media_type)
    }
}

impl fmt::Display for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {} bytes)",
            self.digest, self.media_type, self.size
        )
    }
}

/// The platform an image runs on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, …).
    pub architecture: String,
    /// Operating system (`linux`, `windows`, …).
    pub os: String,
    /// Operating system version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// Required operating system features.
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v7`, `v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Reserved by the spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

impl Platform {
    /// A platform with only OS, architecture and optional variant.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            architecture: architecture.to_owned(),
            os: os.to_owned(),
            os_version: None,
            os_features: Vec::new(),
            variant: variant.map(str::to_owned),
            features: Vec::new(),
        }
    }
}

/// A platform that is not `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {0:?}: expected os/arch or os/arch/variant, e.g. linux/arm64/v8")]
pub struct PlatformError(pub String);

impl Platform {
    /// Parses `os/arch[/variant]` (`linux/arm64/v8`).
    pub fn parse(text: &str) -> Result<Platform, PlatformError> {
        let parts: Vec<&str> = text.split('/').collect();
        let valid = parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        });
        match parts.as_slice() {
            [os, arch] if valid => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] if valid => Ok(Platform::new(os, arch, Some(variant))),
            _ => Err(PlatformError(text.to_owned())),
        }
    }

    /// True if this (an index entry's platform) is what `wanted` asks for; a `wanted` without variant
    /// accepts any variant.
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        self.os == wanted.os
            && self.architecture == wanted.architecture
            && (wanted.variant.is_none() || self.variant == wanted.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// An image or artifact manifest (OCI image manifest or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type, if it states one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Artifact type (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// Layer blobs, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type, if it states one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Artifact type (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Child manifests.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageIndex {
    /// An empty OCI index.
    pub fn new() -> ImageIndex {
        ImageIndex {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.to_owned()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: BTreeMap::new(),
        }
    }
}

impl Default for ImageIndex {
    fn default() -> Self {
        ImageIndex::new()
    }
}

/// Why bytes are not a manifest wharf can handle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Docker schema 1, deprecated since 2017 and unsupported.
    #[error(
        "Docker schema 1 manifests are not supported (deprecated since 2017); \
         convert the image to schema 2 or OCI first"
    )]
    Schema1,
    /// Not valid JSON, or JSON of the wrong shape.
    #[error("invalid manifest JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Valid JSON that is neither an image manifest nor an index.
    #[error("unknown manifest media type {0:?}")]
    UnknownMediaType(String),
    /// Larger than [`MANIFEST_MAX_BYTES`].
    #[error("manifest of {0} bytes exceeds the {MANIFEST_MAX_BYTES}-byte limit")]
    TooLarge(usize),
}

/// A parsed manifest together with the exact bytes it came from.
#[derive(Debug, Clone)]
pub struct Manifest {
    raw: Bytes,
    media_type: String,
    body: ManifestBody,
}

/// The parsed form of a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestBody {
    /// An image or artifact manifest.
    Image(Box<ImageManifest>),
    /// An index or manifest list.
    Index(Box<ImageIndex>),
}

/// Just enough of any manifest to tell what it is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<serde::de::IgnoredAny>,
    config: Option<serde::de::IgnoredAny>,
}

impl Manifest {
    /// Parses `raw`, using `declared` (the descriptor's or server's media type) when the body does not
    /// state its own.
    pub fn parse(raw: Bytes, declared: Option<&str>) -> Result<Manifest, ManifestError> {
        if raw.len() > MANIFEST_MAX_BYTES {
            return Err(ManifestError::TooLarge(raw.len()));
        }
        let probe: Probe = serde_json::from_slice(&raw)?;
        if probe.schema_version == Some(1) {
            return Err(ManifestError::Schema1);
        }
        let media_type = probe
            .media_type
            .or_else(|| declared.map(|d| media_type::essence(d).to_owned()))
            .unwrap_or_else(|| {
                // OCI allows omitting mediaType; the shape decides.
                if probe.manifests.is_some() {
                    media_type::OCI_INDEX.to_owned()
                } else if probe.config.is_some() {
                    media_type::OCI_MANIFEST.to_owned()
                } else {
                    String::new()
                }
            });
        let body = match media_type::kind(&media_type) {
            Kind::Index => ManifestBody::Index(Box::new(serde_json::from_slice(&raw)?)),
            Kind::Manifest => ManifestBody::Image(Box::new(serde_json::from_slice(&raw)?)),
            Kind::Schema1 => return Err(ManifestError::Schema1),
            Kind::Blob => return Err(ManifestError::UnknownMediaType(media_type)),
        };
        Ok(Manifest {
            raw,
            media_type,
            body,
        })
    }

    /// Serialises a new image manifest (for content wharf creates itself).
    pub fn from_image(image: &ImageManifest) -> Manifest {
        let media_type = image
            .media_type
            .clone()
            .unwrap_or_else(|| media_type::OCI_MANIFEST.to_owned());
        Manifest {
            raw: to_json(image),
            media_type,
            body: ManifestBody::Image(Box::new(image.clone())),
        }
    }

    /// Serialises a new index (for content wharf creates itself).
    pub fn from_index(index: &ImageIndex) -> Manifest {
        let media_type = index
            .media_type
            .clone()
            .unwrap_or_else(|| media_type::OCI_INDEX.to_owned());
        Manifest {
            raw: to_json(index),
            media_type,
            body: ManifestBody::Index(Box::new(index.clone())),
        }
    }

    /// The exact bytes.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The manifest's media type.
    pub fn media_type(&self) -> &str {
        &self.media_type
    }

    /// The parsed body.
    pub fn body(&self) -> &ManifestBody {
        &self.body
    }

    /// A descriptor for these exact bytes.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::for_bytes(&self.media_type, &self.raw)
    }

    /// The subject this manifest refers to, if any.
    pub fn subject(&self) -> Option<&Descriptor> {
        match &self.body {
            ManifestBody::Image(m) => m.subject.as_ref(),
            ManifestBody::Index(i) => i.subject.as_ref(),
        }
    }

    /// The artifact type: explicit, or (for image manifests) the config's media type, as the
    /// referrers API defines it.
    pub fn artifact_type(&self) -> Option<&str> {
        match &self.body {
            ManifestBody::Image(m) => m
                .artifact_type
                .as_deref()
                .or(Some(m.config.media_type.as_str())),
            ManifestBody::Index(i) => i.artifact_type.as_deref(),
        }
    }

    /// Annotations of the manifest itself.
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        match &self.body {
            ManifestBody::Image(m) => &m.annotations,
            ManifestBody::Index(i) => &i.annotations,
        }
    }

    /// Everything this manifest points at that a complete copy needs: child manifests of an index, or
    /// the config and layers of an image, and the subject.
    pub fn successors(&self) -> Vec<&Descriptor> {
        let mut out: Vec<&Descriptor> = match &self.body {
            ManifestBody::Image(m) => std::iter::once(&m.config).chain(&m.layers).collect(),
            ManifestBody::Index(i) => i.manifests.iter().collect(),
        };
        out.extend(self.subject());
        out
    }
}

fn to_json<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("manifest types always serialise"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYER: &str = "sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0";
    const CONFIG: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    fn image_json() -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{CONFIG}","size":2}},
            "layers":[{{"mediaType":"{}","digest":"{LAYER}","size":5,"extra":true}}],"unknown":{{"kept":1}}}}"#,
            media_type::OCI_MANIFEST,
            media_type::OCI_CONFIG,
            media_type::OCI_LAYER_GZIP
        )
    }

    #[test]
    fn keeps_raw_bytes_and_finds_successors() {
        let raw = Bytes::from(image_json());
        let m = Manifest::parse(raw.clone(), None).unwrap();
        assert_eq!(m.raw(), &raw, "bytes are never re-serialised");
        assert_eq!(m.media_type(), media_type::OCI_MANIFEST);
        let digests: Vec<_> = m.successors().iter().map(|d| d.digest.as_str()).collect();
        assert_eq!(digests, [CONFIG, LAYER]);
        assert_eq!(m.artifact_type(), Some(media_type::OCI_CONFIG));
        assert_eq!(m.descriptor().digest, Algorithm::Sha256.digest(&raw));
    }

    #[test]
    fn infers_type_from_shape_or_declaration() {
        let index = Bytes::from_static(br#"{"schemaVersion":2,"manifests":[]}"#);
        let m = Manifest::parse(index, None).unwrap();
        assert!(matches!(m.body(), ManifestBody::Index(_)));
        let list = Bytes::from_static(br#"{"schemaVersion":2,"manifests":[]}"#);
        let m = Manifest::parse(list, Some(media_type::DOCKER_MANIFEST_LIST)).unwrap();
        assert_eq!(m.media_type(), media_type::DOCKER_MANIFEST_LIST);
    }

    #[test]
    fn subject_is_a_successor() {
        let with_subject = image_json().replacen(
            r#""schemaVersion":2,"#,
            &format!(
                r#""schemaVersion":2,"artifactType":"application/x-sig","subject":{{"mediaType":"{}","digest":"{LAYER}","size":9}},"#,
                media_type::OCI_MANIFEST
            ),
            1,
        );
        let m = Manifest::parse(Bytes::from(with_subject), None).unwrap();
        assert_eq!(m.subject().unwrap().size, 9);
        assert_eq!(m.successors().len(), 3);
        assert_eq!(m.artifact_type(), Some("application/x-sig"));
    }

    #[test]
    fn rejects_schema1_garbage_and_oversize() {
        let schema1 = Bytes::from_static(br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#);
        let err = Manifest::parse(schema1, None).unwrap_err();
        assert!(err.to_string().contains("schema 1"), "{err}");
        let signed = Bytes::from_static(br#"{"schemaVersion":2}"#);
        assert!(matches!(
            Manifest::parse(signed, Some(media_type::DOCKER_SCHEMA1_SIGNED)),
            Err(ManifestError::Schema1)
        ));
        let truncated = Bytes::from(image_json()[..40].to_owned());
        assert!(matches!(
            Manifest::parse(truncated, None),
            Err(ManifestError::Json(_))
        ));
        let mystery = Bytes::from_static(br#"{"schemaVersion":2,"mediaType":"text/plain"}"#);
        assert!(matches!(
            Manifest::parse(mystery, None),
            Err(ManifestError::UnknownMediaType(_))
        ));
        let huge = Bytes::from(vec![b' '; MANIFEST_MAX_BYTES + 1]);
        assert!(matches!(
            Manifest::parse(huge, None),
            Err(ManifestError::TooLarge(_))
        ));
    }

    #[test]
    fn platform_round_trips_with_dotted_fields() {
        let json = r#"{"architecture":"amd64","os":"windows","os.version":"10.0.17763.1879"}"#;
        let p: Platform = serde_json::from_str(json).unwrap();
        assert_eq!(p.os_version.as_deref(), Some("10.0.17763.1879"));
        assert_eq!(serde_json::to_string(&p).unwrap(), json);
        assert_eq!(
            Platform::new("linux", "arm", Some("v7")).to_string(),
            "linux/arm/v7"
        );
    }
}
