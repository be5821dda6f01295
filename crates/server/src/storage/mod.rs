//! The registry's filesystem storage.
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
mod uploads;
mod writer;

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use wharf_oci::{Descriptor, Digest, Manifest, ManifestBody, media_type};
use wharf_store::durable;

use crate::error::{ApiError, ApiResult, Code};
pub use gc::GcReport;
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

/// A registry's content on disk.
pub struct Storage {
    root: PathBuf,
    /// Upload sessions in progress.
    pub uploads: Uploads,
}

impl Storage {
    /// Opens (creating if needed) storage under `root`.
    pub async fn open(root: impl Into<PathBuf>) -> io::Result<Storage> {
        let root = root.into();
        for dir in ["blobs", "repositories", "uploads", "tmp"] {
            tokio::fs::create_dir_all(root.join(dir)).await?;
        }
        Ok(Storage {
            uploads: Uploads::new(root.join("uploads")),
            root,
        })
    }

    /// True when the storage directory is still there (for health checks).
    pub fn is_available(&self) -> bool {
        self.root.join("repositories").is_dir()
    }

    /// The storage root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root.join("repositories").join(repo)
    }

    /// Where a blob's bytes live.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    fn blob_link(&self, repo: &str, digest: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    fn manifest_link(&self, repo: &str, digest: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_manifests")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    fn tag_link(&self, repo: &str, tag: &str) -> PathBuf {
        self.repo_dir(repo).join("_tags").join(tag)
    }

    fn referrers_dir(&self, repo: &str, subject: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_referrers")
            .join(subject.algorithm().as_str())
            .join(subject.hex())
    }

    /// True if the repository has been pushed to.
    pub async fn repository_exists(&self, repo: &str) -> bool {
        tokio::fs::try_exists(self.repo_dir(repo))
            .await
            .unwrap_or(false)
    }

    /// The size of a blob of `repo`, or `None` if the repository does not hold it.
    pub async fn blob_size(&self, repo: &str, digest: &Digest) -> io::Result<Option<u64>> {
        if !tokio::fs::try_exists(self.blob_link(repo, digest)).await? {
            return Ok(None);
        }
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Records that `repo` holds the (already stored) blob.
    pub async fn link_blob(&self, repo: &str, digest: &Digest) -> io::Result<()> {
        let link = self.blob_link(repo, digest);
        if tokio::fs::try_exists(&link).await? {
            return Ok(());
        }
        durable::write_atomic(&self.tmp(), &link, b"").await
    }

    /// Removes the blob from `repo` (its bytes stay until garbage collection).
    pub async fn unlink_blob(&self, repo: &str, digest: &Digest) -> ApiResult<()> {
        if self.blob_size(repo, digest).await?.is_none() {
            return Err(blob_unknown(digest));
        }
        durable::remove_if_present(&self.blob_link(repo, digest)).await?;
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
            return if tokio::fs::try_exists(self.manifest_link(repo, &digest)).await? {
                Ok(digest)
            } else {
                Err(unknown())
            };
        }
        if wharf_oci::validate_tag(reference).is_err() {
            return Err(unknown());
        }
        let text = durable::read_optional(&self.tag_link(repo, reference))
            .await?
            .ok_or_else(unknown)?;
        Digest::parse(String::from_utf8_lossy(&text).trim())
            .map_err(|e| ApiError::internal("tag link", e))
    }

    /// Reads a manifest by tag or digest.
    pub async fn manifest(&self, repo: &str, reference: &str) -> ApiResult<StoredManifest> {
        let digest = self.resolve(repo, reference).await?;
        let media_type = durable::read_optional(&self.manifest_link(repo, &digest))
            .await?
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .ok_or_else(|| {
                ApiError::new(
                    Code::ManifestUnknown,
                    format!("manifest {digest} is not in {repo}"),
                )
            })?;
        let bytes = tokio::fs::read(self.blob_path(&digest)).await?;
        Ok(StoredManifest {
            digest,
            media_type,
            bytes: Bytes::from(bytes),
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

        let blob = self.blob_path(&digest);
        if !tokio::fs::try_exists(&blob).await? {
            durable::write_atomic(&self.tmp(), &blob, &bytes).await?;
        }
        durable::write_atomic(
            &self.tmp(),
            &self.manifest_link(repo, &digest),
            manifest.media_type().as_bytes(),
        )
        .await?;
        let subject = manifest.subject().map(|s| s.digest.clone());
        if let Some(subject) = &subject {
            let mut entry =
                Descriptor::new(manifest.media_type(), digest.clone(), bytes.len() as u64);
            entry.artifact_type = manifest.artifact_type().map(str::to_owned);
            entry.annotations = manifest.annotations().clone();
            let path = self
                .referrers_dir(repo, subject)
                .join(referrer_file(&digest));
            let json = serde_json::to_vec(&entry).expect("descriptor serialises");
            durable::write_atomic(&self.tmp(), &path, &json).await?;
        }
        let tags: Vec<String> = tag
            .map(str::to_owned)
            .into_iter()
            .chain(also_tag.iter().cloned())
            .collect();
        for tag in &tags {
            durable::write_atomic(
                &self.tmp(),
                &self.tag_link(repo, tag),
                digest.as_str().as_bytes(),
            )
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
                tokio::fs::try_exists(self.manifest_link(&home, &descriptor.digest)).await?
                    || tokio::fs::try_exists(self.manifest_link(repo, &descriptor.digest)).await?
            } else if descriptor.is_manifest() {
                tokio::fs::try_exists(self.manifest_link(repo, &descriptor.digest)).await?
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
            durable::remove_if_present(&self.tag_link(repo, reference)).await?;
            return Ok(());
        }
        let stored = self.manifest(repo, reference).await?;
        // Names first, content link last: a crash in between leaves an untagged manifest, not a tag
        // naming nothing.
        for tag in self.tags(repo).await? {
            let link = self.tag_link(repo, &tag);
            if durable::read_optional(&link).await?.as_deref() == Some(digest.as_str().as_bytes()) {
                durable::remove_if_present(&link).await?;
            }
        }
        if let Ok(manifest) = Manifest::parse(stored.bytes, Some(&stored.media_type))
            && let Some(subject) = manifest.subject()
        {
            let entry = self
                .referrers_dir(repo, &subject.digest)
                .join(referrer_file(&digest));
            durable::remove_if_present(&entry).await?;
        }
        durable::remove_if_present(&self.manifest_link(repo, &digest)).await?;
        Ok(())
    }

    /// Tags of a repository, sorted.
    pub async fn tags(&self, repo: &str) -> io::Result<Vec<String>> {
        let mut tags = durable::list_dir(&self.repo_dir(repo).join("_tags")).await?;
        tags.sort();
        Ok(tags)
    }

    /// Descriptors of the manifests whose subject is `subject`, sorted by digest.
    pub async fn referrers(&self, repo: &str, subject: &Digest) -> io::Result<Vec<Descriptor>> {
        let dir = self.referrers_dir(repo, subject);
        let mut names = durable::list_dir(&dir).await?;
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let Some(bytes) = durable::read_optional(&dir.join(&name)).await? else {
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
        let base = self.root.join("repositories");
        let mut found = BTreeSet::new();
        let mut stack = vec![String::new()];
        while let Some(prefix) = stack.pop() {
            for name in durable::list_dir(&base.join(&prefix)).await? {
                if name == "_manifests" && !prefix.is_empty() {
                    found.insert(prefix.clone());
                } else if !name.starts_with(['_', '.']) {
                    let path = if prefix.is_empty() {
                        name
                    } else {
                        format!("{prefix}/{name}")
                    };
                    if tokio::fs::metadata(base.join(&path)).await?.is_dir() {
                        stack.push(path);
                    }
                }
            }
        }
        Ok(found.into_iter().collect())
    }
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
