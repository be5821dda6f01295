//! The OCM Common Transport Format: an OCI registry serialised to a directory, `.tar` or `.tgz`.
//!
//! ```text
//! artifact-index.json   {"schemaVersion":1,"artifacts":[{"repository","tag","digest","mediaType"}]}
//! blobs/sha256.<hex>    every manifest, config and layer, flat
//! ```
//!
//! A [`Ctf`] holds many repositories; [`Ctf::repository`] gives a [`Store`] for one. Archives are read
//! in place and written as [`crate::archive`] describes, with fixed times and modes as OCM writes them;
//! they appear, complete, at [`Store::finish`]. Referrers use the `sha256-<hex>` tag schema, as OCM's
//! own CTF store does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio_util::io::ReaderStream;
use wharf_oci::{Descriptor, Digest, Manifest};

pub use crate::archive::ArchiveError;

use crate::archive::Archive;
use crate::files::Files;
use crate::lock::{WhenLocked, WriteLock};
use crate::namespace::sorted_unique;
use crate::referrers::{self, TaggedIndexes};
use crate::{
    ByteStream, ErrorKind, ManifestRole, Namespace, Op, ReadStore, Result, Store, StoreError,
    check_bytes, verified,
};

const INDEX_FILE: &str = "artifact-index.json";
const READ_CHUNK: usize = 256 * 1024;

/// How a CTF is kept on disk, chosen by its path as OCM does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtfFormat {
    /// A directory.
    Directory,
    /// `.tar`.
    Tar,
    /// `.tgz` or `.tar.gz`.
    Tgz,
}

impl CtfFormat {
    /// The format a path names.
    pub fn for_path(path: &Path) -> CtfFormat {
        let name = path.to_string_lossy();
        if name.ends_with(".tgz") || name.ends_with(".tar.gz") {
            CtfFormat::Tgz
        } else if name.ends_with(".tar") {
            CtfFormat::Tar
        } else {
            CtfFormat::Directory
        }
    }
}

/// One `artifact-index.json` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactEntry {
    /// Repository path, without host.
    pub repository: String,
    /// Tag, if the artifact has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's media type.
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

impl ArtifactEntry {
    /// Refuses names that are not repository names or tags: they become paths and `ref.name`s
    /// wherever the artifact is copied.
    fn validate(&self) -> Result<(), String> {
        wharf_oci::validate_repository(&self.repository).map_err(|e| {
            format!(
                "artifact {}: repository {:?} is not a repository name: {e}",
                self.digest, self.repository
            )
        })?;
        if let Some(tag) = &self.tag {
            wharf_oci::validate_tag(tag).map_err(|e| {
                format!(
                    "artifact {} in {}: tag {tag:?} is not a tag: {e}",
                    self.digest, self.repository
                )
            })?;
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArtifactIndex {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    artifacts: Option<Vec<ArtifactEntry>>,
}

/// A Common Transport Format archive or directory.
pub struct Ctf {
    files: Files,
    entries: Mutex<Vec<ArtifactEntry>>,
    /// Held while the CTF is open for writing: one writing process at a time.
    _lock: Option<WriteLock>,
}

impl Ctf {
    /// Opens an existing CTF for reading.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Arc<Ctf>> {
        let path = path.into();
        let fail = |kind| StoreError::new(Op::Open, format!("ctf:{}", path.display()), kind);
        if !path.exists() {
            return Err(fail(ErrorKind::NotFound(Some(
                "no such file or directory".into(),
            ))));
        }
        let files = match CtfFormat::for_path(&path) {
            CtfFormat::Directory => Files::Dir(path.clone()),
            format => Files::Archive(Box::new(
                Archive::open(&path, format == CtfFormat::Tgz)
                    .await
                    .map_err(|e| fail(e.into()))?,
            )),
        };
        Ctf::with_files(files, true, None).await
    }

    /// Opens a CTF for writing: an existing one, a partial archive left by an interrupted write
    /// (resumed), or a new one made on the first write (a directory) or at [`Store::finish`] (an
    /// archive). Does `when` if another process writes it.
    pub async fn create(path: impl Into<PathBuf>, when: WhenLocked) -> Result<Arc<Ctf>> {
        let path = path.into();
        let lock = WriteLock::acquire(&path, &format!("ctf:{}", path.display()), when).await?;
        let files = match CtfFormat::for_path(&path) {
            CtfFormat::Directory => Files::Dir(path.clone()),
            format => Files::Archive(Box::new(
                Archive::open_for_write(&path, format == CtfFormat::Tgz, blob_digest)
                    .await
                    .map_err(|e| {
                        StoreError::new(Op::Open, format!("ctf:{}", path.display()), e.into())
                    })?,
            )),
        };
        let exists = match &files {
            Files::Dir(dir) => dir.exists(),
            Files::Archive(archive) => {
                archive.finished_before() || archive.len(INDEX_FILE).is_some()
            }
        };
        // The only writer removes what killed writers left.
        files
            .remove_stale_temporaries()
            .await
            .map_err(|e| StoreError::new(Op::Open, format!("ctf:{}", path.display()), e.into()))?;
        Ctf::with_files(files, exists, Some(lock)).await
    }

    /// A CTF over `files`, whose `artifact-index.json` must be there when `existing`.
    async fn with_files(files: Files, existing: bool, lock: Option<WriteLock>) -> Result<Arc<Ctf>> {
        let location = format!("ctf:{}", files.path().display());
        let entries = if existing {
            let text = files
                .read(INDEX_FILE)
                .await
                .map_err(|e| StoreError::new(Op::Open, location.clone(), e.into()))?
                .ok_or_else(|| {
                    StoreError::new(
                        Op::Open,
                        location.clone(),
                        ErrorKind::Invalid(format!(
                            "not a Common Transport Format: no {INDEX_FILE}"
                        )),
                    )
                })?;
            let index: ArtifactIndex = serde_json::from_slice(&text).map_err(|e| {
                StoreError::new(
                    Op::Open,
                    format!("{location} {INDEX_FILE}"),
                    ErrorKind::Invalid(e.to_string()),
                )
            })?;
            if index.schema_version != 1 {
                return Err(StoreError::new(
                    Op::Open,
                    location,
                    ErrorKind::Invalid(format!(
                        "{INDEX_FILE} has schemaVersion {}, only 1 is known",
                        index.schema_version
                    )),
                ));
            }
            let artifacts = index.artifacts.unwrap_or_default();
            for entry in &artifacts {
                entry.validate().map_err(|reason| {
                    StoreError::new(
                        Op::Open,
                        format!("{location} {INDEX_FILE}"),
                        ErrorKind::Invalid(reason),
                    )
                })?;
            }
            artifacts
        } else {
            Vec::new()
        };
        Ok(Arc::new(Ctf {
            files,
            entries: Mutex::new(entries),
            _lock: lock,
        }))
    }

    /// `ctf:PATH`.
    pub fn location(&self) -> String {
        format!("ctf:{}", self.files.path().display())
    }

    /// The CTF's path.
    pub fn path(&self) -> &Path {
        self.files.path()
    }

    /// The store for one repository of the CTF.
    pub fn repository(self: &Arc<Self>, name: &str) -> CtfRepository {
        CtfRepository {
            ctf: self.clone(),
            name: name.to_owned(),
        }
    }

    /// Every entry of `artifact-index.json`.
    pub async fn artifacts(&self) -> Vec<ArtifactEntry> {
        self.entries.lock().await.clone()
    }

    fn error(&self, op: Op, what: &str, kind: ErrorKind) -> StoreError {
        StoreError::new(op, format!("{} {what}", self.location()), kind)
    }

    /// Sorted as OCM writes it: by repository, then tag.
    fn index_bytes(entries: &[ArtifactEntry]) -> Bytes {
        let mut sorted = entries.to_vec();
        sorted.sort_by(|a, b| {
            a.repository
                .cmp(&b.repository)
                .then_with(|| a.tag.cmp(&b.tag))
        });
        Bytes::from(
            serde_json::to_vec(&ArtifactIndex {
                schema_version: 1,
                artifacts: Some(sorted),
            })
            .expect("index serialises"),
        )
    }

    /// Writes `artifact-index.json` (a directory keeps it current after every change, an archive at
    /// the end).
    async fn save_index(&self, entries: &[ArtifactEntry]) -> Result<()> {
        self.files
            .replace(INDEX_FILE, Self::index_bytes(entries))
            .await
            .map_err(|e| self.error(Op::Tag, INDEX_FILE, e.into()))
    }

    /// Records a pushed root: a tag moves to it (clearing the tag on the entry that had it), an
    /// untagged root is listed once.
    async fn record(
        &self,
        repository: &str,
        descriptor: &Descriptor,
        tag: Option<&str>,
    ) -> Result<()> {
        let mut entries = self.entries.lock().await;
        if let Some(tag) = tag {
            for entry in entries.iter_mut() {
                if entry.repository == repository && entry.tag.as_deref() == Some(tag) {
                    entry.tag = None;
                }
            }
            entries.retain(|e| {
                e.tag.is_some() || !(e.repository == repository && e.digest == descriptor.digest)
            });
        } else if entries
            .iter()
            .any(|e| e.repository == repository && e.digest == descriptor.digest)
        {
            return Ok(());
        }
        entries.push(ArtifactEntry {
            repository: repository.to_owned(),
            tag: tag.map(str::to_owned),
            digest: descriptor.digest.clone(),
            media_type: Some(descriptor.media_type.clone()),
        });
        self.save_index(&entries).await
    }

    /// Writes an archive written to out, its index included; a directory is always current.
    pub async fn finish(&self) -> Result<()> {
        self.save_unfinished_index().await?;
        self.files
            .finish()
            .await
            .map_err(|e| self.error(Op::Push, "", e.into()))
    }

    /// Makes an unfinished archive's partial file durable with its index, so a later run resumes it.
    /// The archive's path when there was one.
    pub async fn checkpoint(&self) -> Result<Option<PathBuf>> {
        self.save_unfinished_index().await?;
        self.files
            .checkpoint()
            .await
            .map_err(|e| self.error(Op::Push, "", e.into()))
    }

    /// An archive that was written to gets an index even when no root was recorded.
    async fn save_unfinished_index(&self) -> Result<()> {
        if self.files.unfinished() && self.files.len(INDEX_FILE).await.ok().flatten().is_none() {
            let entries = self.entries.lock().await;
            self.save_index(&entries).await?;
        }
        Ok(())
    }
}

/// `blobs/<alg>.<hex>`, OCM's flat naming.
fn blob_name(digest: &Digest) -> String {
    format!("blobs/{}.{}", digest.algorithm().as_str(), digest.hex())
}

/// The digest a blob's name carries.
fn blob_digest(name: &str) -> Option<Digest> {
    let (algorithm, hex) = name.strip_prefix("blobs/")?.split_once('.')?;
    Digest::parse(&format!("{algorithm}:{hex}")).ok()
}

/// One repository of a CTF.
pub struct CtfRepository {
    ctf: Arc<Ctf>,
    name: String,
}

impl CtfRepository {
    /// The repository `path` below this one.
    fn nested_repository(&self, path: &str) -> Result<CtfRepository> {
        let location = ReadStore::location(self);
        let name = crate::namespace::nested_name(&location, "", &self.name, path)?;
        Ok(self.ctf.repository(&name))
    }

    fn what(&self, what: &str) -> String {
        format!("{} {what}", self.name)
    }

    async fn entry(&self, reference: &str) -> Option<ArtifactEntry> {
        let entries = self.ctf.entries.lock().await;
        let digest = Digest::parse(reference).ok();
        entries
            .iter()
            .find(|e| {
                e.repository == self.name
                    && match &digest {
                        Some(d) => &e.digest == d,
                        None => e.tag.as_deref() == Some(reference),
                    }
            })
            .cloned()
    }

    async fn descriptor_of(
        &self,
        digest: &Digest,
        media_type: Option<String>,
    ) -> Result<Descriptor> {
        let name = blob_name(digest);
        let fail = |kind| {
            self.ctf
                .error(Op::Resolve, &self.what(digest.as_str()), kind)
        };
        let size = self
            .ctf
            .files
            .len(&name)
            .await
            .map_err(|e| fail(e.into()))?
            .ok_or_else(|| fail(ErrorKind::NotFound(None)))?;
        let media_type = match media_type {
            Some(m) => m,
            None => {
                let raw = self
                    .ctf
                    .files
                    .read(&name)
                    .await
                    .map_err(|e| fail(e.into()))?
                    .ok_or_else(|| fail(ErrorKind::NotFound(None)))?;
                Manifest::parse(raw, None)
                    .map_err(|e| fail(e.into()))?
                    .media_type()
                    .to_owned()
            }
        };
        Ok(Descriptor::new(&media_type, digest.clone(), size))
    }
}

#[async_trait]
impl ReadStore for CtfRepository {
    fn nested(&self, path: &str) -> Result<Option<Arc<dyn ReadStore>>> {
        Ok(Some(Arc::new(self.nested_repository(path)?)))
    }

    fn location(&self) -> String {
        format!("{}//{}", self.ctf.location(), self.name)
    }

    fn blob_scope(&self) -> String {
        self.ctf.location()
    }

    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        if let Some(entry) = self.entry(reference).await {
            return self.descriptor_of(&entry.digest, entry.media_type).await;
        }
        match Digest::parse(reference) {
            Ok(digest) => self.descriptor_of(&digest, None).await,
            Err(_) => Err(self.ctf.error(
                Op::Resolve,
                &self.what(&format!("tag {reference:?}")),
                ErrorKind::NotFound(None),
            )),
        }
    }

    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        let what = self.what(descriptor.digest.as_str());
        let reader = self
            .ctf
            .files
            .reader(&blob_name(&descriptor.digest))
            .await
            .map_err(|e| self.ctf.error(Op::Fetch, &what, e.into()))?
            .ok_or_else(|| self.ctf.error(Op::Fetch, &what, ErrorKind::NotFound(None)))?;
        let target = format!("{} {what}", self.ctf.location());
        Ok(Box::pin(
            ReaderStream::with_capacity(reader, READ_CHUNK).map(move |chunk| {
                chunk.map_err(|e| StoreError::new(Op::Fetch, target.clone(), e.into()))
            }),
        ))
    }

    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        match self.ctf.files.len(&blob_name(&descriptor.digest)).await {
            Ok(size) => Ok(size == Some(descriptor.size)),
            Err(e) => {
                Err(self
                    .ctf
                    .error(Op::Exists, &self.what(descriptor.digest.as_str()), e.into()))
            }
        }
    }

    async fn tags(&self) -> Result<Vec<String>> {
        let entries = self.ctf.entries.lock().await;
        Ok(entries
            .iter()
            .filter(|e| e.repository == self.name)
            .filter_map(|e| e.tag.clone())
            .collect())
    }

    async fn roots(&self) -> Result<Vec<(Option<String>, Descriptor)>> {
        let entries: Vec<ArtifactEntry> = self
            .ctf
            .entries
            .lock()
            .await
            .iter()
            .filter(|e| e.repository == self.name)
            .cloned()
            .collect();
        let mut roots = Vec::new();
        for entry in entries {
            let descriptor = self.descriptor_of(&entry.digest, entry.media_type).await?;
            roots.push((entry.tag, descriptor));
        }
        Ok(roots)
    }

    async fn referrers(
        &self,
        subject: &Descriptor,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        referrers::listed(self, &subject.digest, artifact_type).await
    }
}

#[async_trait]
impl Store for CtfRepository {
    async fn push(&self, descriptor: &Descriptor, body: ByteStream) -> Result<()> {
        let what = self.what(descriptor.digest.as_str());
        let body = verified(
            descriptor,
            Op::Push,
            format!("{} {what}", self.ctf.location()),
            body,
        );
        self.ctf
            .files
            .write_stream(&blob_name(&descriptor.digest), descriptor.size, body, |e| {
                self.ctf.error(Op::Push, &what, e.into())
            })
            .await
    }

    async fn push_manifest(
        &self,
        descriptor: &Descriptor,
        raw: Bytes,
        role: ManifestRole<'_>,
    ) -> Result<()> {
        let what = self.what(descriptor.digest.as_str());
        check_bytes(descriptor, &raw, &format!("{} {what}", self.ctf.location()))?;
        if !self.exists(descriptor).await? {
            self.ctf
                .files
                .write(&blob_name(&descriptor.digest), raw.clone(), |e| {
                    self.ctf.error(Op::Push, &what, e.into())
                })
                .await?;
        }
        match role {
            ManifestRole::Child => {}
            ManifestRole::Root => self.ctf.record(&self.name, descriptor, None).await?,
            ManifestRole::Tag(tag) => self.ctf.record(&self.name, descriptor, Some(tag)).await?,
        }
        // No referrers API here: keep the tag schema's index, as OCM's CTF store does.
        let manifest = Manifest::parse(raw, Some(&descriptor.media_type))
            .map_err(|e| self.ctf.error(Op::Push, &what, e.into()))?;
        if let Some(subject) = manifest.subject() {
            referrers::add(
                self,
                &subject.digest,
                referrers::entry(descriptor, &manifest),
            )
            .await?;
        }
        Ok(())
    }

    async fn finish(&self) -> Result<()> {
        self.ctf.finish().await
    }

    fn nested_mut(&self, path: &str) -> Result<Option<Arc<dyn Store>>> {
        Ok(Some(Arc::new(self.nested_repository(path)?)))
    }
}

/// A CTF as a set of repositories.
pub(crate) struct CtfNamespace {
    ctf: Arc<Ctf>,
    writable: bool,
}

impl CtfNamespace {
    pub fn new(ctf: Arc<Ctf>, writable: bool) -> CtfNamespace {
        CtfNamespace { ctf, writable }
    }
}

#[async_trait]
impl Namespace for CtfNamespace {
    fn location(&self) -> String {
        self.ctf.location()
    }

    fn read(&self, repository: &str) -> Result<Arc<dyn ReadStore>> {
        Ok(Arc::new(self.ctf.repository(repository)))
    }

    fn write(&self, repository: &str) -> Result<Arc<dyn Store>> {
        if !self.writable {
            return Err(self.ctf.error(
                Op::Open,
                repository,
                ErrorKind::Unsupported("opened for reading, not writing".into()),
            ));
        }
        Ok(Arc::new(self.ctf.repository(repository)))
    }

    async fn repositories(&self) -> Result<Vec<String>> {
        let artifacts = self.ctf.artifacts().await;
        Ok(sorted_unique(artifacts.into_iter().map(|a| a.repository)))
    }

    async fn finish(&self) -> Result<()> {
        self.ctf.finish().await
    }

    async fn checkpoint(&self) -> Result<Option<PathBuf>> {
        self.ctf.checkpoint().await
    }
}

#[async_trait]
impl TaggedIndexes for CtfRepository {
    fn location(&self) -> String {
        ReadStore::location(self)
    }

    async fn tagged(&self, tag: &str) -> Result<Option<Manifest>> {
        let Some(entry) = self.entry(tag).await else {
            return Ok(None);
        };
        let descriptor = self.descriptor_of(&entry.digest, entry.media_type).await?;
        self.fetch_manifest(&descriptor).await.map(Some)
    }

    async fn put_tagged(&self, tag: &str, manifest: &Manifest) -> Result<()> {
        let descriptor = manifest.descriptor();
        let what = self.what(descriptor.digest.as_str());
        if !self.exists(&descriptor).await? {
            self.ctf
                .files
                .write(
                    &blob_name(&descriptor.digest),
                    manifest.raw().clone(),
                    |e| self.ctf.error(Op::Push, &what, e.into()),
                )
                .await?;
        }
        self.ctf.record(&self.name, &descriptor, Some(tag)).await
    }
}
