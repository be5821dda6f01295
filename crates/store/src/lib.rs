//! Where OCI content lives, behind one interface.
//!
//! A store is one repository: a content-addressed graph of blobs and manifests plus names (tags) for
//! some of its manifests. [`ReadStore`] reads it, [`Store`] also writes it. A [`Namespace`] is a set of
//! repositories in one place, which opens, lists, finishes and checkpoints them: a registry host below
//! a base path (its repositories read through registries.conf mirrors), an OCI image layout directory
//! or archive ([`layout`]; its repositories are the prefixes of image names), an OCM Common Transport
//! Format ([`ctf`]), or memory ([`memory`], for tests). A [`Session`] holds a run's connection
//! settings, credentials and per-host state, and opens each namespace once; the registry client itself
//! is private to this crate. [`Location`] and [`Address`] parse and print the command-line notations
//! (`host/repo:tag`, `oci:PATH[:TAG]`, `ctf:PATH//REPO`, …) through one table.
//!
//! A layout, archive or CTF is written by one process at a time: opening it for writing takes a lock
//! beside it, and a second writer waits or fails as [`WhenLocked`] says. Files are written crash-safe
//! ([`durable`]).
//!
//! Verification is a store's job on the way in: [`Store::push`] must check size and digest while the bytes
//! stream and make nothing visible unless they match. [`ReadStore::fetch`] does not verify; consumers that
//! keep bytes wrap the stream with [`verified`]. A manifest is pushed only after everything it points at, so
//! a present manifest means a complete graph below it.
//!
//! ```no_run
//! # async fn demo() -> wharf_store::Result<()> {
//! use wharf_store::{Address, Session, SessionOptions};
//! let session = Session::new(SessionOptions::default())?;
//! let address = Address::parse("oci:./images:v1").expect("a valid address");
//! let store = session.read(&address).await?;
//! let root = address.resolve_in(store.as_ref()).await?;
//! let manifest = store.fetch_manifest(&root).await?;
//! println!("{} points at {} blobs", root.digest, manifest.successors().len());
//! # Ok(()) }
//! ```

mod address;
mod archive;
pub mod ctf;
pub mod durable;
mod error;
mod files;
pub mod layout;
mod lock;
pub mod memory;
mod namespace;
mod recall;
mod referrers;
pub mod registry;
mod session;
mod verify;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::sync::Arc;
use wharf_oci::{Descriptor, MANIFEST_MAX_BYTES, Manifest};

pub use address::{Address, AddressError, Location};
pub use error::{ErrorKind, Op, Result, StoreError, chain};
pub use lock::WhenLocked;
pub use namespace::Namespace;
pub use recall::Recall;
pub use session::{Mode, Session, SessionOptions};
pub use verify::verified;

/// A stream of blob bytes.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// How a pushed manifest is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestRole<'a> {
    /// Part of a larger graph (an index's child): stored by digest only.
    Child,
    /// The top of a copied graph, without a tag: stored by digest, and listed as a root by stores that
    /// keep a list of roots (an OCI layout's `index.json`).
    Root,
    /// The top of a copied graph, under this tag.
    Tag(&'a str),
}

/// Where a blob could be mounted from: a repository on a registry host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSource {
    /// The registry host as references name it.
    pub host: String,
    /// The repository path.
    pub repository: String,
    /// The blob is known to be there (the repository it is being read from, or where this job
    /// put it), not merely remembered from an earlier run: a refused mount from here says the
    /// registry does not mount.
    pub vouched: bool,
}

/// Reading content from a store.
#[async_trait]
pub trait ReadStore: Send + Sync {
    /// The location in the notation users type (`oci:./images`), for messages.
    fn location(&self) -> String;

    /// Finds the manifest a tag or digest names.
    async fn resolve(&self, reference: &str) -> Result<Descriptor>;

    /// What the location means when the user names no tag: `latest` unless the store knows better.
    async fn resolve_default(&self) -> Result<Descriptor> {
        self.resolve("latest").await
    }

    /// Streams the bytes of a blob or manifest, unverified.
    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream>;

    /// True if the store holds this content.
    async fn exists(&self, descriptor: &Descriptor) -> Result<bool>;

    /// Fetches, verifies and parses a manifest, refusing anything over the 4 MiB manifest limit.
    async fn fetch_manifest(&self, descriptor: &Descriptor) -> Result<Manifest> {
        let target = format!("{} manifest {}", self.location(), descriptor.digest);
        let fail = |kind| StoreError::new(Op::Fetch, target.clone(), kind);
        if descriptor.size > MANIFEST_MAX_BYTES as u64 {
            return Err(fail(ErrorKind::Manifest(
                wharf_oci::ManifestError::TooLarge(descriptor.size as usize),
            )));
        }
        let mut stream = verified(
            descriptor,
            Op::Fetch,
            target.clone(),
            self.fetch(descriptor).await?,
        );
        let mut raw = BytesMut::with_capacity(descriptor.size as usize);
        while let Some(chunk) = stream.next().await {
            raw.extend_from_slice(&chunk?);
        }
        Manifest::parse(raw.freeze(), Some(&descriptor.media_type)).map_err(|e| fail(e.into()))
    }

    /// Finds the manifest a tag or digest names and reads it: one request where the store can (a
    /// registry's `GET`, instead of a `HEAD` and a `GET`).
    async fn resolve_manifest(&self, reference: &str) -> Result<(Descriptor, Manifest)> {
        let descriptor = self.resolve(reference).await?;
        let manifest = self.fetch_manifest(&descriptor).await?;
        Ok((descriptor, manifest))
    }

    /// Tags in this repository, in the store's order.
    async fn tags(&self) -> Result<Vec<String>> {
        Err(StoreError::new(
            Op::ListTags,
            self.location(),
            ErrorKind::Unsupported("this store has no tags".into()),
        ))
    }

    /// Every manifest the store names: each tag (with its name), and untagged roots where the store
    /// keeps a list of roots.
    async fn roots(&self) -> Result<Vec<(Option<String>, Descriptor)>> {
        let mut roots = Vec::new();
        for tag in self.tags().await? {
            let descriptor = self.resolve(&tag).await?;
            roots.push((Some(tag), descriptor));
        }
        Ok(roots)
    }

    /// Manifests whose `subject` is `subject`, optionally only those of one artifact type.
    async fn referrers(
        &self,
        _subject: &Descriptor,
        _artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        Ok(Vec::new())
    }

    /// The repository at `path` below this one, to read: the home of an index child that names a
    /// nested repository (see [`wharf_oci::nested`]). `None` where the store has no repositories
    /// below it; readers then look for the child here.
    fn nested(&self, _path: &str) -> Result<Option<Arc<dyn ReadStore>>> {
        Ok(None)
    }

    /// Where a destination on the same registry could mount this store's blobs from.
    fn mount_source(&self) -> Option<MountSource> {
        None
    }

    /// Where this store keeps its blobs, for deduplication: stores with one scope hold a blob at most
    /// once between them (the repositories of a CTF share its blobs; those of a registry host can
    /// mount each other's). Distinct stores by default.
    fn blob_scope(&self) -> String {
        self.location()
    }
}

/// Writing content to a store.
#[async_trait]
pub trait Store: ReadStore {
    /// Stores a blob. Implementations verify size and digest while streaming and make the blob visible
    /// only if both match.
    async fn push(&self, descriptor: &Descriptor, body: ByteStream) -> Result<()>;

    /// Stores manifest bytes, exactly as given, once everything they point at is present.
    async fn push_manifest(
        &self,
        descriptor: &Descriptor,
        raw: Bytes,
        role: ManifestRole<'_>,
    ) -> Result<()>;

    /// Other repositories of this store's registry where earlier runs saw `descriptor`, most recent
    /// first: places to [`Store::mount`] it from. Empty for stores that cannot mount.
    fn mount_candidates(&self, _descriptor: &Descriptor) -> Vec<MountSource> {
        Vec::new()
    }

    /// Makes a blob from another repository of the same registry available here without copying
    /// bytes. Returns false when the store cannot, and the caller copies instead.
    async fn mount(&self, _descriptor: &Descriptor, _from: &MountSource) -> Result<bool> {
        Ok(false)
    }

    /// Makes everything pushed so far durable where the store needs a final step (archives write
    /// their tar here). Called once after a successful operation; a no-op for most stores.
    async fn finish(&self) -> Result<()> {
        Ok(())
    }

    /// The repository at `path` below this one, to write (see [`ReadStore::nested`]). `None`
    /// where the store has no repositories below it; writers then put the child here.
    fn nested_mut(&self, _path: &str) -> Result<Option<Arc<dyn Store>>> {
        Ok(None)
    }
}

/// A shared store is a store: every method forwards, provided ones included.
#[async_trait]
impl<T: ReadStore + ?Sized> ReadStore for std::sync::Arc<T> {
    fn location(&self) -> String {
        (**self).location()
    }
    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        (**self).resolve(reference).await
    }
    async fn resolve_default(&self) -> Result<Descriptor> {
        (**self).resolve_default().await
    }
    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        (**self).fetch(descriptor).await
    }
    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        (**self).exists(descriptor).await
    }
    async fn fetch_manifest(&self, descriptor: &Descriptor) -> Result<Manifest> {
        (**self).fetch_manifest(descriptor).await
    }
    async fn resolve_manifest(&self, reference: &str) -> Result<(Descriptor, Manifest)> {
        (**self).resolve_manifest(reference).await
    }
    async fn tags(&self) -> Result<Vec<String>> {
        (**self).tags().await
    }
    async fn roots(&self) -> Result<Vec<(Option<String>, Descriptor)>> {
        (**self).roots().await
    }
    async fn referrers(
        &self,
        subject: &Descriptor,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        (**self).referrers(subject, artifact_type).await
    }
    fn nested(&self, path: &str) -> Result<Option<Arc<dyn ReadStore>>> {
        (**self).nested(path)
    }
    fn mount_source(&self) -> Option<MountSource> {
        (**self).mount_source()
    }
    fn blob_scope(&self) -> String {
        (**self).blob_scope()
    }
}

#[async_trait]
impl<T: Store + ?Sized> Store for std::sync::Arc<T> {
    async fn push(&self, descriptor: &Descriptor, body: ByteStream) -> Result<()> {
        (**self).push(descriptor, body).await
    }
    async fn push_manifest(
        &self,
        descriptor: &Descriptor,
        raw: Bytes,
        role: ManifestRole<'_>,
    ) -> Result<()> {
        (**self).push_manifest(descriptor, raw, role).await
    }
    fn mount_candidates(&self, descriptor: &Descriptor) -> Vec<MountSource> {
        (**self).mount_candidates(descriptor)
    }
    async fn mount(&self, descriptor: &Descriptor, from: &MountSource) -> Result<bool> {
        (**self).mount(descriptor, from).await
    }
    async fn finish(&self) -> Result<()> {
        (**self).finish().await
    }
    fn nested_mut(&self, path: &str) -> Result<Option<Arc<dyn Store>>> {
        (**self).nested_mut(path)
    }
}

/// The manifests among `candidates` whose subject is `subject`, for stores that find referrers by
/// looking at their manifests.
pub(crate) async fn referrers_among(
    store: &dyn ReadStore,
    candidates: Vec<Descriptor>,
    subject: &Descriptor,
    artifact_type: Option<&str>,
) -> Result<Vec<Descriptor>> {
    let mut out = Vec::new();
    for candidate in candidates.into_iter().filter(Descriptor::is_manifest) {
        let manifest = store.fetch_manifest(&candidate).await?;
        if manifest
            .subject()
            .is_none_or(|s| s.digest != subject.digest)
        {
            continue;
        }
        let kind = manifest.artifact_type().map(str::to_owned);
        if artifact_type.is_some_and(|wanted| kind.as_deref() != Some(wanted)) {
            continue;
        }
        let mut descriptor =
            Descriptor::new(&candidate.media_type, candidate.digest, candidate.size);
        descriptor.artifact_type = kind;
        descriptor.annotations = manifest.annotations().clone();
        if !out
            .iter()
            .any(|d: &Descriptor| d.digest == descriptor.digest)
        {
            out.push(descriptor);
        }
    }
    Ok(out)
}

/// Checks that `raw` is what `descriptor` promises, for manifest pushes.
pub(crate) fn check_bytes(descriptor: &Descriptor, raw: &[u8], target: &str) -> Result<()> {
    let fail = |kind| Err(StoreError::new(Op::Push, target, kind));
    if raw.len() as u64 != descriptor.size {
        return fail(ErrorKind::SizeMismatch {
            expected: descriptor.size,
            actual: raw.len() as u64,
            truncated: false,
        });
    }
    let actual = descriptor.digest.algorithm().digest(raw);
    if actual != descriptor.digest {
        return fail(ErrorKind::DigestMismatch {
            expected: descriptor.digest.clone(),
            actual,
        });
    }
    Ok(())
}
