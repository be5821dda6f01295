//! The OCI vocabulary every other wharf crate speaks: image [`Reference`]s with the distribution grammar
//! and Docker Hub normalisation, validated [`Digest`]s with a streaming [`Digester`], media types, and
//! [`Descriptor`], [`ImageManifest`] and [`ImageIndex`] types.
//!
//! Types only: no I/O. A [`Manifest`] keeps the exact bytes it was parsed from, so content that wharf copies
//! is never re-serialised and its digest never changes.
//!
//! ```
//! use wharf_oci::Reference;
//! let r = Reference::parse("busybox").unwrap();
//! assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
//! ```

pub mod digest;
pub mod manifest;
pub mod media_type;
pub mod nested;
pub mod reference;

pub use digest::{Algorithm, Digest, DigestError, Digester};
pub use manifest::{
    ANNOTATION_REF_NAME, Descriptor, ImageIndex, ImageManifest, MANIFEST_MAX_BYTES, Manifest,
    ManifestBody, ManifestError, Platform, PlatformError,
};
pub use reference::{
    Reference, ReferenceError, is_valid_domain, validate_ref_name, validate_repository,
    validate_tag,
};
