//! Open Component Model component versions: descriptors, where they are stored, how constructors
//! build them, how transfers copy them, and how their resources are found under any URL.

mod access;
mod address;
mod constructor;
mod descriptor;
mod repository;
mod resolve;
mod transfer;

use std::path::PathBuf;

pub use access::Access;
pub use address::ComponentAddress;
pub use constructor::build;
pub use descriptor::{
    ComponentDescriptor, ComponentReference, DescriptorError, Resource, canonical_json,
    tag_to_version, validate_name, validate_version, version_to_tag,
};
pub use repository::{COMPONENT_REPOSITORIES, ComponentVersion, OcmRepository};
pub use resolve::{Located, locate};
pub use transfer::{ResourceMode, TransferOptions, Transferred, resolve_image, transfer};

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
    #[error("invalid component version: {0}")]
    Invalid(String),
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
    /// A constructor file that cannot be built.
    #[error("constructor {path}: {message}")]
    Constructor {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}
