//! Media types of the manifests and blobs wharf moves.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip-compressed layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// The config of an artifact that has none of its own (OCI 1.1).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip-compressed layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker schema 1, unsigned: rejected.
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema 1, signed: rejected.
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// wharf's copy of an imgpkg location record, attached to the bundle it describes (its artifact type
/// and its one layer's media type).
pub const WHARF_IMAGE_LOCATIONS: &str = "application/vnd.wharf.imgpkg.image-locations.v1+yaml";

/// Artifact types that describe where their subject is stored rather than the subject itself:
/// referrers of these types stay behind when their subject is copied, and the copy writes its own.
pub const LOCATION_BOUND: [&str; 1] = [WHARF_IMAGE_LOCATIONS];

/// Every manifest media type wharf reads, in the order it prefers them (for `Accept` headers).
pub const MANIFEST_TYPES: [&str; 4] = [
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
];

/// What kind of node a media type makes in a content graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An index or manifest list: its children are manifests.
    Index,
    /// An image or artifact manifest: its children are a config and layers.
    Manifest,
    /// Docker schema 1, which wharf refuses.
    Schema1,
    /// Anything else: an opaque blob.
    Blob,
}

/// Classifies a media type (parameters such as `; charset=utf-8` are ignored).
pub fn kind(media_type: &str) -> Kind {
    match essence(media_type) {
        OCI_INDEX | DOCKER_MANIFEST_LIST => Kind::Index,
        OCI_MANIFEST | DOCKER_MANIFEST => Kind::Manifest,
        DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => Kind::Schema1,
        _ => Kind::Blob,
    }
}

/// True for index and manifest media types: content that is fetched and pushed as a manifest.
pub fn is_manifest(media_type: &str) -> bool {
    matches!(kind(media_type), Kind::Index | Kind::Manifest)
}

/// The media type without parameters or surrounding whitespace.
pub fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        assert_eq!(kind(OCI_INDEX), Kind::Index);
        assert_eq!(kind(DOCKER_MANIFEST_LIST), Kind::Index);
        assert_eq!(
            kind(" application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
            Kind::Manifest
        );
        assert_eq!(kind(DOCKER_SCHEMA1_SIGNED), Kind::Schema1);
        assert_eq!(kind(OCI_LAYER_GZIP), Kind::Blob);
        assert!(is_manifest(DOCKER_MANIFEST));
        assert!(!is_manifest(OCI_CONFIG));
    }
}
