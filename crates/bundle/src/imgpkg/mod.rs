//! imgpkg bundles: an image whose config carries the label `dev.carvel.imgpkg.bundle` and whose one
//! layer holds files plus `.imgpkg/images.yml`, the lock of every image the bundle needs.
//!
//! wharf reads and writes them as imgpkg does, so that users can switch tools in either direction:
//! [`push`] builds a bundle from a directory (deterministically), [`copy`] relocates a bundle with
//! everything it locks — nested bundles included — into one repository, each manifest under the tag
//! `sha256-<hex>.imgpkg`, then writes one location record per bundle ([`ImageLocations`]) before any
//! user tag, and [`pull`] writes a bundle's files with a lock that points wherever the images are
//! now ([`Bundle::locate`]). Everything works over every namespace: a registry, `wharf serve`, an OCI
//! layout or archive, a CTF. Copies run on a shared copy [`Job`](wharf_copy::Job), so a sync of
//! bundles, images and component versions moves each blob once.

mod bundle;
mod copy;
mod image;
mod lock;
mod pull;
mod push;
mod record;
mod tar;

use std::path::PathBuf;

pub use bundle::{Bundle, Located, Rule};
pub use copy::{BundleSource, Copied, RecordWritten, copy};
pub use image::BUNDLE_LABEL;
pub use lock::{API_VERSION, BundleLock, ImagesLock, LockedImage};
pub use pull::{PullOptions, Pulled, PulledBundle, pull};
pub use push::{Pushed, push};
pub use record::{ImageLocation, ImageLocations, REPOSITORY_ANNOTATION, read_record};
use wharf_oci::Digest;

/// Where a bundle's lock lives inside it.
pub const IMAGES_LOCK_PATH: &str = ".imgpkg/images.yml";

/// The tag imgpkg gives every manifest it uploads: `sha256-<hex>.imgpkg`.
pub fn upload_tag(digest: &Digest) -> String {
    format!("{}-{}.imgpkg", digest.algorithm(), digest.hex())
}

/// Why an imgpkg operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImgpkgError {
    /// A store operation failed; the error names the store and the content.
    #[error(transparent)]
    Store(#[from] wharf_store::StoreError),
    /// Copying content failed.
    #[error(transparent)]
    Copy(#[from] wharf_copy::CopyError),
    /// A document, image or layer that is not what imgpkg writes.
    #[error("{what}: {message}")]
    Invalid {
        /// What was read.
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// An image that is not a bundle where a bundle is needed.
    #[error(
        "{0} is not an imgpkg bundle (its config has no {BUNDLE_LABEL} label); use wharf copy for plain images"
    )]
    NotABundle(String),
    /// A directory that cannot be pushed or pulled into.
    #[error("{path}: {message}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Some images of a bundle could not be copied; nothing was recorded or tagged.
    #[error(
        "{failed} of {total} images (bundles included) could not be copied, so no location record or tag was written (run the copy again to carry on); first: {image}"
    )]
    Incomplete {
        /// How many failed.
        failed: usize,
        /// How many there were.
        total: usize,
        /// The first that failed.
        image: String,
        /// Why.
        #[source]
        error: Box<wharf_copy::CopyError>,
    },
}
