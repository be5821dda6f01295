//! The registry's storage: its content as objects in an [`ObjectStore`] (today a local directory,
//! [`Files`]), laid out as below.
//!
//! ```text
//! ROOT/blobs/<alg>/<hex>                         content, shared by every repository
//! ROOT/repositories/<name>/_blobs/<alg>/<hex>    empty link: the blob belongs to the repository
//! ROOT/repositories/<name>/_manifests/<alg>/<hex> link holding the manifest's media type
//! ROOT/repositories/<name>/_tags/<tag>           the digest the tag points at
//! ROOT/repositories/<name>/_referrers/<alg>/<subject-hex>/<alg>-<hex>
//!                                                the referrer's descriptor (JSON)
//! ROOT/uploads/<uuid>                            bytes of an upload in progress
//! ROOT/tmp/                                      temporary files of atomic writes
//! ```
//!
//! Repository path components never start with `_`, so the link directories cannot clash with nested
//! repository names. Content is written before the links that name it, and each file through a
//! temporary name, fsync and rename: after a crash at any point no link names missing or partial
//! content.

mod gc;
mod objects;
mod uploads;
mod writer;

use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use wharf_oci::{Descriptor, Digest, Manifest, ManifestBody, media_type};

use crate::error::{ApiError, ApiResult, Code};
pub use gc::GcReport;
pub use objects::{Files, ObjectStore, ObjectStream};
pub use uploads::{ChunkRange, Session, Uploads};

/// What a manifest read returns.
pub struct StoredManifest {
    /// The manifest's digest.
    pub digest: Digest,
    /// Its media type, as given when it was pushed.
    pub media_type: String,
    /// The exact bytes.
    pub bytes: Bytes,
}

/// The outcome of a manifest push.
pub struct PushedManifest {
    /// The digest of the pushed bytes.
    pub digest: Digest,
    /// The subject the manifest refers to, if any.
    pub subject: Option<Digest>,
    /// The tags now pointing at it.
    pub tags: Vec<String>,
}

/// A registry's content, in an object store.
pub struct Storage {
    objects: Arc<dyn ObjectStore>,
    /// Locks of the upload sessions in progress here.
    uploads: Uploads,
}

impl Storage {
    /// Opens (creating if needed) storage under `root`.
    pub async fn open(root: impl Into<PathBuf>) -> io::Result<Storage> {
        let root = root.into();
        for dir in ["blobs", "repositories", "uploads", "tmp"] {
            tokio::fs::create_dir_all(root.join(dir)).await?;
        }
        Ok(Storage {
            objects: Arc::new(Files::new(root)),
            uploads: Uploads::new(),
        })
    }

    /// Storage in a bucket (or any object store), shared by every instance serving it: nothing of
    /// a registry's state is kept in one instance.
    pub fn on(objects: Arc<dyn ObjectStore>) -> Storage {
        Storage {
            objects,
            uploads: Uploads::new(),
        }
    }

    /// True when the storage can be used (for health checks).
    pub async fn is_available(&self) -> bool {
        self.objects.available().await
    }

    /// Where the storage is, for messages.
    pub fn describe(&self) -> String {
        self.objects.describe()
    }

    /// True if the repository has been pushed to.
    pub async fn repository_exists(&self, repo: &str) -> bool {
        matches!(self.objects.list(&repo_key(repo)).await, Ok(names) if !names.is_empty())
    }

    /// The size of a blob of `repo`, or `None` if the repository does not hold it.
    pub async fn blob_size(&self, repo: &str, digest: &Digest) -> io::Result<Option<u64>> {
        if !self.objects.exists(&blob_link(repo, digest)).await? {
            return Ok(None);
        }
        self.objects.size(&blob_key(digest)).await
    }

    /// `length` bytes of a blob from `start`.
    pub async fn read_blob(
        &self,
        digest: &Digest,
        start: u64,
        length: u64,
    ) -> io::Result<ObjectStream> {
        self.objects
            .read_range(&blob_key(digest), start, length)
            .await
    }

    /// A URL the blob's bytes may be fetched from directly for `valid_for`, where the storage
    /// can sign one (object storage).
    pub fn blob_url(&self, digest: &Digest, valid_for: std::time::Duration) -> Option<url::Url> {
        self.objects.presigned_get(&blob_key(digest), valid_for)
    }

    /// True when blobs can be fetched straight from the storage (for `--redirect`): it signs URLs.
    pub fn can_redirect(&self) -> bool {
        self.objects
            .presigned_get("blobs", std::time::Duration::from_secs(1))
            .is_some()
    }

    /// Records that `repo` holds the (already stored) blob.
    pub async fn link_blob(&self, repo: &str, digest: &Digest) -> io::Result<()> {
        let link = blob_link(repo, digest);
        if self.objects.exists(&link).await? {
            return Ok(());
        }
        self.objects.write(&link, b"").await
    }

    /// Removes the blob from `repo` (its bytes stay until garbage collection).
    pub async fn unlink_blob(&self, repo: &str, digest: &Digest) -> ApiResult<()> {
        if self.blob_size(repo, digest).await?.is_none() {
            return Err(blob_unknown(digest));
        }
        self.objects.remove(&blob_link(repo, digest)).await?;
        Ok(())
    }

    /// Makes a blob of `from` part of `repo` without copying; false if `from` lacks it.
    pub async fn mount(&self, repo: &str, from: &str, digest: &Digest) -> io::Result<bool> {
        if self.blob_size(from, digest).await?.is_none() {
            return Ok(false);
        }
        self.link_blob(repo, digest).await?;
        Ok(true)
    }

    /// Resolves a tag or digest of `repo` to a manifest digest.
    async fn resolve(&self, repo: &str, reference: &str) -> ApiResult<Digest> {
        let unknown = || {
            ApiError::new(
                Code::ManifestUnknown,
                format!("manifest {reference} is not in repository {repo}"),
            )
        };
        if let Ok(digest) = Digest::parse(reference) {
            return if self.objects.exists(&manifest_link(repo, &digest)).await? {
                Ok(digest)
            } else {
                Err(unknown())
            };
        }
        if wharf_oci::validate_tag(reference).is_err() {
            return Err(unknown());
        }
        let text = self
            .objects
            .read(&tag_link(repo, reference))
            .await?
            .ok_or_else(unknown)?;
        Digest::parse(String::from_utf8_lossy(&text).trim())
            .map_err(|e| ApiError::internal("tag link", e))
    }

    /// Reads a manifest by tag or digest.
    pub async fn manifest(&self, repo: &str, reference: &str) -> ApiResult<StoredManifest> {
        let digest = self.resolve(repo, reference).await?;
        let media_type = self
            .objects
            .read(&manifest_link(repo, &digest))
            .await?
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .ok_or_else(|| {
                ApiError::new(
                    Code::ManifestUnknown,
                    format!("manifest {digest} is not in {repo}"),
                )
            })?;
        let bytes = self
            .objects
            .read(&blob_key(&digest))
            .await?
            .ok_or_else(|| {
                ApiError::internal("manifest content", format!("{digest} is missing"))
            })?;
        Ok(StoredManifest {
            digest,
            media_type,
            bytes,
        })
    }

    /// Stores a manifest under `reference` (a tag, or the digest of `bytes`), after checking that
    /// everything it references except its subject is in the repository.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        also_tag: &[String],
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> ApiResult<PushedManifest> {
        for tag in also_tag {
            wharf_oci::validate_tag(tag)
                .map_err(|e| ApiError::new(Code::ManifestInvalid, e.to_string()))?;
        }
        let (tag, digest) = match Digest::parse(reference) {
            Ok(expected) => {
                let actual = expected.algorithm().digest(&bytes);
                if actual != expected {
                    return Err(ApiError::new(
                        Code::DigestInvalid,
                        format!("manifest content has digest {actual}, not {expected}"),
                    ));
                }
                (None, actual)
            }
            Err(_) => {
                wharf_oci::validate_tag(reference)
                    .map_err(|e| ApiError::new(Code::ManifestInvalid, e.to_string()))?;
                let digest = wharf_oci::Algorithm::Sha256.digest(&bytes);
                (Some(reference), digest)
            }
        };
        if let Some(declared) = content_type.map(media_type::essence)
            && !media_type::is_manifest(declared)
        {
            return Err(ApiError::new(
                Code::ManifestInvalid,
                format!(
                    "Content-Type {declared} is not a manifest media type (send the manifest's own \
                     mediaType)"
                ),
            ));
        }
        let manifest = Manifest::parse(bytes.clone(), content_type)
            .map_err(|e| ApiError::new(Code::ManifestInvalid, e.to_string()))?;
        if let Some(declared) = content_type.map(media_type::essence)
            && media_type::is_manifest(declared)
            && declared != manifest.media_type()
        {
            return Err(ApiError::new(
                Code::ManifestInvalid,
                format!(
                    "Content-Type {declared} does not match the manifest's mediaType {}",
                    manifest.media_type()
                ),
            ));
        }
        self.check_references(repo, &manifest).await?;

        let blob = blob_key(&digest);
        if !self.objects.exists(&blob).await? {
            self.objects.write(&blob, &bytes).await?;
        }
        self.objects
            .write(
                &manifest_link(repo, &digest),
                manifest.media_type().as_bytes(),
            )
            .await?;
        let subject = manifest.subject().map(|s| s.digest.clone());
        if let Some(subject) = &subject {
            let mut entry =
                Descriptor::new(manifest.media_type(), digest.clone(), bytes.len() as u64);
            entry.artifact_type = manifest.artifact_type().map(str::to_owned);
            entry.annotations = manifest.annotations().clone();
            let key = format!(
                "{}/{}",
                referrers_key(repo, subject),
                referrer_file(&digest)
            );
            let json = serde_json::to_vec(&entry).expect("descriptor serialises");
            self.objects.write(&key, &json).await?;
        }
        let tags: Vec<String> = tag
            .map(str::to_owned)
            .into_iter()
            .chain(also_tag.iter().cloned())
            .collect();
        for tag in &tags {
            self.objects
                .write(&tag_link(repo, tag), digest.as_str().as_bytes())
                .await?;
        }
        Ok(PushedManifest {
            digest,
            subject,
            tags,
        })
    }

    /// Checks that everything a manifest references is stored: in the repository, or for an index
    /// child that names a nested repository, there (or in the repository).
    async fn check_references(&self, repo: &str, manifest: &Manifest) -> ApiResult<()> {
        let (referenced, is_index): (Vec<&Descriptor>, bool) = match manifest.body() {
            ManifestBody::Image(image) => (
                std::iter::once(&image.config)
                    .chain(&image.layers)
                    .collect(),
                false,
            ),
            ManifestBody::Index(index) => (index.manifests.iter().collect(), true),
        };
        for descriptor in referenced {
            // Foreign layers live elsewhere by design.
            if !descriptor.urls.is_empty() {
                continue;
            }
            let invalid = |message: String| ApiError::new(Code::ManifestInvalid, message);
            let nested = if is_index {
                wharf_oci::nested::nested(descriptor).map_err(|e| invalid(e.to_string()))?
            } else {
                None
            };
            let present = if let Some(nested) = nested {
                let home = wharf_oci::nested::join("", repo, nested.path).map_err(invalid)?;
                wharf_oci::validate_repository(&home).map_err(|e| invalid(e.to_string()))?;
                self.objects
                    .exists(&manifest_link(&home, &descriptor.digest))
                    .await?
                    || self
                        .objects
                        .exists(&manifest_link(repo, &descriptor.digest))
                        .await?
            } else if descriptor.is_manifest() {
                self.objects
                    .exists(&manifest_link(repo, &descriptor.digest))
                    .await?
            } else {
                self.blob_size(repo, &descriptor.digest).await?.is_some()
            };
            if !present {
                return Err(ApiError::new(
                    Code::ManifestBlobUnknown,
                    format!("{} is not in repository {repo}", descriptor.digest),
                ));
            }
        }
        Ok(())
    }

    /// Deletes a manifest by digest (with the tags pointing at it), or just a tag.
    pub async fn delete_manifest(&self, repo: &str, reference: &str) -> ApiResult<()> {
        let digest = self.resolve(repo, reference).await?;
        if Digest::parse(reference).is_err() {
            self.objects.remove(&tag_link(repo, reference)).await?;
            return Ok(());
        }
        let stored = self.manifest(repo, reference).await?;
        // Names first, content link last: a crash in between leaves an untagged manifest, not a tag
        // naming nothing.
        for tag in self.tags(repo).await? {
            let link = tag_link(repo, &tag);
            if self.objects.read(&link).await?.as_deref() == Some(digest.as_str().as_bytes()) {
                self.objects.remove(&link).await?;
            }
        }
        if let Ok(manifest) = Manifest::parse(stored.bytes, Some(&stored.media_type))
            && let Some(subject) = manifest.subject()
        {
            let entry = format!(
                "{}/{}",
                referrers_key(repo, &subject.digest),
                referrer_file(&digest)
            );
            self.objects.remove(&entry).await?;
        }
        self.objects.remove(&manifest_link(repo, &digest)).await?;
        Ok(())
    }

    /// Tags of a repository, sorted.
    pub async fn tags(&self, repo: &str) -> io::Result<Vec<String>> {
        let mut tags = self
            .objects
            .list(&format!("{}/_tags", repo_key(repo)))
            .await?;
        tags.sort();
        Ok(tags)
    }

    /// Descriptors of the manifests whose subject is `subject`, sorted by digest.
    pub async fn referrers(&self, repo: &str, subject: &Digest) -> io::Result<Vec<Descriptor>> {
        let dir = referrers_key(repo, subject);
        let mut names = self.objects.list(&dir).await?;
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let Some(bytes) = self.objects.read(&format!("{dir}/{name}")).await? else {
                continue;
            };
            match serde_json::from_slice::<Descriptor>(&bytes) {
                Ok(descriptor) => out.push(descriptor),
                Err(e) => tracing::warn!("skipping unreadable referrer entry {name}: {e}"),
            }
        }
        Ok(out)
    }

    /// Every repository with at least one manifest, sorted.
    pub async fn repositories(&self) -> io::Result<Vec<String>> {
        let mut found = BTreeSet::new();
        let mut stack = vec![String::new()];
        while let Some(prefix) = stack.pop() {
            for name in self.objects.list(&repo_key(&prefix)).await? {
                if name == "_manifests" && !prefix.is_empty() {
                    found.insert(prefix.clone());
                } else if !name.starts_with(['_', '.']) {
                    stack.push(if prefix.is_empty() {
                        name
                    } else {
                        format!("{prefix}/{name}")
                    });
                }
            }
        }
        Ok(found.into_iter().collect())
    }
}

/// `repositories/<name>` (`repositories` for the empty name).
fn repo_key(repo: &str) -> String {
    if repo.is_empty() {
        "repositories".to_owned()
    } else {
        format!("repositories/{repo}")
    }
}

/// Where a blob's bytes are: `blobs/<alg>/<hex>`.
fn blob_key(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().as_str(), digest.hex())
}

fn blob_link(repo: &str, digest: &Digest) -> String {
    format!(
        "{}/_blobs/{}/{}",
        repo_key(repo),
        digest.algorithm().as_str(),
        digest.hex()
    )
}

fn manifest_link(repo: &str, digest: &Digest) -> String {
    format!(
        "{}/_manifests/{}/{}",
        repo_key(repo),
        digest.algorithm().as_str(),
        digest.hex()
    )
}

fn tag_link(repo: &str, tag: &str) -> String {
    format!("{}/_tags/{tag}", repo_key(repo))
}

fn referrers_key(repo: &str, subject: &Digest) -> String {
    format!(
        "{}/_referrers/{}/{}",
        repo_key(repo),
        subject.algorithm().as_str(),
        subject.hex()
    )
}

fn referrer_file(digest: &Digest) -> String {
    format!("{}-{}", digest.algorithm(), digest.hex())
}

/// The error for a blob the repository does not hold.
pub fn blob_unknown(digest: &Digest) -> ApiError {
    ApiError::new(
        Code::BlobUnknown,
        format!("blob {digest} is not in this repository"),
    )
}
