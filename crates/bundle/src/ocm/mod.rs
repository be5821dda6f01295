//! Open Component Model component versions: descriptors, where they are stored, how constructors
//! build them, how transfers copy them, and how their resources are found under any URL.
//!
//! An [`OcmRepository`] is a registry base or a CTF, opened through a session's namespaces. Builds and
//! transfers copy everything (local blobs, resources, artifacts) through a copy [`Job`](wharf_copy::Job)
//! shared with whatever else the caller copies, so a blob an image and a component version share
//! moves once.

mod access;
mod address;
mod constructor;
mod descriptor;
mod repository;
mod resolve;
mod scan;
mod transfer;

use std::path::PathBuf;

pub use access::{Access, AccessError};
pub use address::ComponentAddress;
pub use constructor::build;
pub use descriptor::{
    ComponentDescriptor, ComponentReference, DescriptorError, InvalidName, InvalidVersion,
    Resource, canonical_json, tag_to_version, validate_name, validate_version, version_to_tag,
};
pub use repository::{
    COMPONENT_INDEX, COMPONENT_REPOSITORIES, ComponentVersion, DESCRIPTOR_ARTIFACT_TYPE,
    OcmRepository, component_index,
};
pub use resolve::{Located, locate};
pub use scan::{ListOptions, Listed, Source};
pub use transfer::{ResourceMode, TransferOptions, Transferred, resolve_image, transfer};

/// What is wrong with a stored component version.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoredError {
    /// Its index lists nothing.
    #[error("an empty component index")]
    EmptyIndex,
    /// Its index marks more than one descriptor manifest.
    #[error("an index with several descriptor manifests")]
    SeveralDescriptors,
    /// The descriptor manifest is an index itself.
    #[error("the descriptor manifest is an index")]
    DescriptorIsIndex,
    /// The config is not OCM's.
    #[error("config media type {0} is not OCM's")]
    ForeignConfig(String),
    /// The config cannot be read.
    #[error("config is not JSON: {0}")]
    ConfigNotJson(serde_json::Error),
    /// The config does not name the descriptor layer.
    #[error("config has no usable componentDescriptorLayer: {0}")]
    NoDescriptorLayer(serde_json::Error),
    /// The descriptor layer is of an unknown kind.
    #[error("descriptor layer media type {0} is unknown")]
    UnknownDescriptorType(String),
    /// The descriptor is of another component version.
    #[error("its descriptor describes {0}")]
    DescribesOther(String),
    /// A config or descriptor over the size limit.
    #[error("{0} is {1} bytes, over the descriptor limit")]
    TooLarge(wharf_oci::Digest, u64),
    /// The descriptor tar cannot be read.
    #[error("descriptor tar: {0}")]
    Tar(std::io::Error),
    /// The descriptor tar lacks the descriptor.
    #[error("the descriptor tar has no component-descriptor.yaml")]
    NoDescriptorFile,
}

/// What is wrong with a resource.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceError {
    /// It has no access.
    #[error("has no access")]
    NoAccess,
    /// Its local reference is not a digest.
    #[error("local reference: {0}")]
    LocalReference(wharf_oci::DigestError),
    /// Its image reference cannot be parsed.
    #[error("reference {reference:?}: {error}")]
    Reference {
        /// The reference as written.
        reference: String,
        /// Why it cannot be parsed.
        #[source]
        error: wharf_oci::ReferenceError,
    },
    /// An access type wharf cannot follow.
    #[error("access type {0} is not one wharf can read")]
    UnknownAccess(String),
    /// A local blob the component version does not hold.
    #[error("local blob {0} is not in the component version")]
    MissingBlob(wharf_oci::Digest),
    /// The copied artifact is not what the descriptor records.
    #[error("the artifact's digest is {actual}, but the descriptor records {recorded}")]
    DigestMismatch {
        /// What was copied.
        actual: wharf_oci::Digest,
        /// What the descriptor records.
        recorded: wharf_oci::Digest,
    },
    /// A recorded digest that cannot be read.
    #[error("recorded digest {0} cannot be read")]
    RecordedDigest(String),
}

/// Why an OCM operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OcmError {
    /// A descriptor that cannot be used.
    #[error(transparent)]
    Descriptor(#[from] DescriptorError),
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] wharf_store::StoreError),
    /// Copying an artifact failed.
    #[error(transparent)]
    Copy(#[from] wharf_copy::CopyError),
    /// Stored content that does not form a valid component version.
    #[error("invalid component version {component} in {location}")]
    Stored {
        /// `name:version`.
        component: String,
        /// The OCM repository.
        location: String,
        /// What is wrong.
        #[source]
        error: Box<StoredError>,
    },
    /// A resource that cannot be used.
    #[error("resource {name:?}")]
    Resource {
        /// The resource's name.
        name: String,
        /// What is wrong.
        #[source]
        error: Box<ResourceError>,
    },
    /// A local blob asked for as an OCI artifact.
    #[error("{0} is a blob, not an OCI artifact")]
    NotAnArtifact(wharf_oci::Digest),
    /// A location that cannot be parsed.
    #[error("invalid location {0}")]
    Location(String),
    /// No such component.
    #[error("component {0} not found in {1}")]
    UnknownComponent(String, String),
    /// No such version.
    #[error("component version {0} not found in {1}")]
    UnknownVersion(String, String),
    /// The destination has the version with other content.
    #[error("{0} already exists in {1} with different content; use --overwrite to replace it")]
    Conflict(String, String),
    /// The catalog could not be written.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    /// A constructor file that cannot be built.
    #[error("constructor {path}: {message}")]
    Constructor {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}
