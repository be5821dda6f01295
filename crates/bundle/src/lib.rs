//! The formats wharf moves on top of plain OCI content. Today: the Open Component Model ([`ocm`]) —
//! component descriptors, how component versions are stored in registries and CTFs, constructor files,
//! and transfers that keep every resource reference valid under any URL.

pub mod ocm;
pub mod yaml;
