//! The formats wharf moves on top of plain OCI content: the Open Component Model ([`ocm`]) —
//! component descriptors, how component versions are stored in registries and CTFs, constructor
//! files, and transfers that keep every resource reference valid under any URL — and imgpkg bundles
//! ([`imgpkg`]) — lock files, bundles found by their config label, location records, and copies that
//! keep every image findable wherever the bundle lands — indexes grouping children from [`nested`]
//! repositories, and the [`catalog`] that lists what a registry holds in a few requests.

pub mod catalog;
pub mod imgpkg;
pub mod nested;
pub mod ocm;
pub mod staged;
pub mod yaml;
