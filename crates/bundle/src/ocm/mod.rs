//! Open Component Model component versions.

mod access;
mod descriptor;

pub use access::Access;
pub use descriptor::{
    ComponentDescriptor, ComponentReference, DescriptorError, Resource, canonical_json,
    tag_to_version, validate_name, validate_version, version_to_tag,
};
