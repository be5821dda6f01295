//! The OCM Common Transport Format: an OCI registry serialised to a directory, `.tar` or `.tgz`.
//!
//! ```text
//! artifact-index.json   {"schemaVersion":1,"artifacts":[{"repository","tag","digest","mediaType"}]}
//! blobs/sha256.<hex>    every manifest, config and layer, flat
//! ```
//!
//! A [`Ctf`] holds many repositories; [`Ctf::repository`] gives a [`Store`] for one. Archives are read
//! by extracting them (checked entry by entry) into a temporary directory and written at
//! [`Store::finish`]: `artifact-index.json` first, then the blobs, with fixed times and modes, as OCM
//! writes them. Referrers use the `sha256-<hex>` tag schema, as OCM's own CTF store does.

mod archive;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
use tokio_util::io::ReaderStream;
use wharf_oci::{Descriptor, Digest, ImageIndex, Manifest};

pub use archive::ArchiveError;

use crate::fsutil;
use crate::{
    ByteStream, ErrorKind, ManifestRole, Op, ReadStore, Result, Store, StoreError, check_bytes,
    verified,
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

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArtifactIndex {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    artifacts: Option<Vec<ArtifactEntry>>,
}

/// A Common Transport Format archive or directory.
pub struct Ctf {
    path: PathBuf,
    format: CtfFormat,
    /// Where the files are: the directory itself, or a temporary copy of an archive's content.
    dir: PathBuf,
    _unpacked: Option<tempfile::TempDir>,
    entries: Mutex<Vec<ArtifactEntry>>,
}

impl Ctf {
    /// Opens an existing CTF for reading (and writing).
    pub async fn open(path: impl Into<PathBuf>) -> Result<Arc<Ctf>> {
        let path = path.into();
        let format = CtfFormat::for_path(&path);
        let location = format!("ctf:{}", path.display());
        let fail = |kind| StoreError::new(Op::Open, location.clone(), kind);
        if !path.exists() {
            return Err(fail(ErrorKind::NotFound(Some(
                "no such file or directory".into(),
            ))));
        }
        let (dir, unpacked) = match format {
            CtfFormat::Directory => (path.clone(), None),
            CtfFormat::Tar | CtfFormat::Tgz => {
                let temp = tempfile::tempdir().map_err(|e| fail(e.into()))?;
                let (archive, target) = (path.clone(), temp.path().to_owned());
                let gzip = format == CtfFormat::Tgz;
                tokio::task::spawn_blocking(move || archive::extract(&archive, gzip, &target))
                    .await
                    .map_err(|e| fail(ErrorKind::Io(std::io::Error::other(e))))?
                    .map_err(|e| fail(ErrorKind::Invalid(e.to_string())))?;
                (temp.path().to_owned(), Some(temp))
            }
        };
        let text = tokio::fs::read(dir.join(INDEX_FILE)).await.map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                ErrorKind::Invalid(format!("not a Common Transport Format: no {INDEX_FILE}"))
            } else {
                e.into()
            };
            StoreError::new(Op::Open, location.clone(), kind)
        })?;
        let index: ArtifactIndex = serde_json::from_slice(&text).map_err(|e| {
            StoreError::new(
                Op::Open,
                format!("{location} {INDEX_FILE}"),
                ErrorKind::Invalid(e.to_string()),
            )
        })?;
        if index.schema_version != 1 {
            return Err(fail(ErrorKind::Invalid(format!(
                "{INDEX_FILE} has schemaVersion {}, only 1 is known",
                index.schema_version
            ))));
        }
        Ok(Arc::new(Ctf {
            path,
            format,
            dir,
            _unpacked: unpacked,
            entries: Mutex::new(index.artifacts.unwrap_or_default()),
        }))
    }

    /// Opens a CTF for writing: an existing one, or a new one made on the first write (a directory) or
    /// at [`Store::finish`] (an archive).
    pub async fn create(path: impl Into<PathBuf>) -> Result<Arc<Ctf>> {
        let path = path.into();
        if path.exists() {
            return Ctf::open(path).await;
        }
        let format = CtfFormat::for_path(&path);
        let (dir, unpacked) = match format {
            CtfFormat::Directory => (path.clone(), None),
            _ => {
                let temp = tempfile::tempdir().map_err(|e| {
                    StoreError::new(Op::Open, format!("ctf:{}", path.display()), e.into())
                })?;
                (temp.path().to_owned(), Some(temp))
            }
        };
        Ok(Arc::new(Ctf {
            path,
            format,
            dir,
            _unpacked: unpacked,
            entries: Mutex::new(Vec::new()),
        }))
    }

    /// `ctf:PATH`.
    pub fn location(&self) -> String {
        format!("ctf:{}", self.path.display())
    }

    /// The CTF's path.
    pub fn path(&self) -> &Path {
        &self.path
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

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(format!("{}.{}", digest.algorithm(), digest.hex()))
    }

    fn error(&self, op: Op, what: &str, kind: ErrorKind) -> StoreError {
        StoreError::new(op, format!("{} {what}", self.location()), kind)
    }

    /// Sorted as OCM writes it: by repository, then tag.
    fn index_bytes(entries: &[ArtifactEntry]) -> Vec<u8> {
        let mut sorted = entries.to_vec();
        sorted.sort_by(|a, b| {
            a.repository
                .cmp(&b.repository)
                .then_with(|| a.tag.cmp(&b.tag))
        });
        serde_json::to_vec(&ArtifactIndex {
            schema_version: 1,
            artifacts: Some(sorted),
        })
        .expect("index serialises")
    }

    /// Writes `artifact-index.json` (directories keep it current after every change).
    async fn save_index(&self, entries: &[ArtifactEntry]) -> Result<()> {
        if self.format != CtfFormat::Directory {
            return Ok(());
        }
        fsutil::write_atomic(
            &self.dir,
            &self.dir.join(INDEX_FILE),
            &Self::index_bytes(entries),
        )
        .await
        .map_err(|e| self.error(Op::Tag, INDEX_FILE, e.into()))
    }

    async fn ensure_dir(&self) -> Result<()> {
        tokio::fs::create_dir_all(self.dir.join("blobs"))
            .await
            .map_err(|e| self.error(Op::Push, "blobs", e.into()))
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

    async fn write_archive(&self) -> Result<()> {
        let entries = self.entries.lock().await.clone();
        self.ensure_dir().await?;
        tokio::fs::write(self.dir.join(INDEX_FILE), Self::index_bytes(&entries))
            .await
            .map_err(|e| self.error(Op::Push, INDEX_FILE, e.into()))?;
        let mut files = vec![PathBuf::from(INDEX_FILE)];
        let mut blobs: Vec<PathBuf> = std::fs::read_dir(self.dir.join("blobs"))
            .map_err(|e| self.error(Op::Push, "blobs", e.into()))?
            .filter_map(|e| e.ok())
            .map(|e| PathBuf::from("blobs").join(e.file_name()))
            .filter(|p| !p.to_string_lossy().contains(".wharf-tmp"))
            .collect();
        blobs.sort();
        files.extend(blobs);
        let parent = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let temp = tempfile::Builder::new()
            .prefix(".wharf-tmp-")
            .tempfile_in(parent)
            .map_err(|e| self.error(Op::Push, "", e.into()))?
            .into_temp_path();
        let (dir, output, gzip) = (
            self.dir.clone(),
            temp.to_path_buf(),
            self.format == CtfFormat::Tgz,
        );
        tokio::task::spawn_blocking(move || archive::write(&dir, &files, gzip, &output))
            .await
            .map_err(|e| self.error(Op::Push, "", ErrorKind::Io(std::io::Error::other(e))))?
            .map_err(|e| self.error(Op::Push, "", e.into()))?;
        temp.persist(&self.path)
            .map_err(|e| self.error(Op::Push, "", e.error.into()))
    }
}

/// One repository of a CTF.
pub struct CtfRepository {
    ctf: Arc<Ctf>,
    name: String,
}

impl CtfRepository {
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
        let path = self.ctf.blob_path(digest);
        let size = tokio::fs::metadata(&path).await.map_err(|e| {
            self.ctf
                .error(Op::Resolve, &self.what(digest.as_str()), not_found_or(e))
        })?;
        let media_type = match media_type {
            Some(m) => m,
            None => {
                let raw = tokio::fs::read(&path).await.map_err(|e| {
                    self.ctf
                        .error(Op::Resolve, &self.what(digest.as_str()), e.into())
                })?;
                Manifest::parse(Bytes::from(raw), None)
                    .map_err(|e| {
                        self.ctf
                            .error(Op::Resolve, &self.what(digest.as_str()), e.into())
                    })?
                    .media_type()
                    .to_owned()
            }
        };
        Ok(Descriptor::new(&media_type, digest.clone(), size.len()))
    }
}

fn not_found_or(e: std::io::Error) -> ErrorKind {
    if e.kind() == std::io::ErrorKind::NotFound {
        ErrorKind::NotFound(None)
    } else {
        e.into()
    }
}

fn fallback_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm(), subject.hex())
}

#[async_trait]
impl ReadStore for CtfRepository {
    fn location(&self) -> String {
        format!("{}//{}", self.ctf.location(), self.name)
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
        let file = tokio::fs::File::open(self.ctf.blob_path(&descriptor.digest))
            .await
            .map_err(|e| self.ctf.error(Op::Fetch, &what, not_found_or(e)))?;
        let target = format!("{} {what}", self.ctf.location());
        Ok(Box::pin(ReaderStream::with_capacity(file, READ_CHUNK).map(
            move |chunk| chunk.map_err(|e| StoreError::new(Op::Fetch, target.clone(), e.into())),
        )))
    }

    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        match tokio::fs::metadata(self.ctf.blob_path(&descriptor.digest)).await {
            Ok(meta) => Ok(meta.len() == descriptor.size),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
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

    async fn referrers(
        &self,
        subject: &Descriptor,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let Some(entry) = self.entry(&fallback_tag(&subject.digest)).await else {
            return Ok(Vec::new());
        };
        let descriptor = self.descriptor_of(&entry.digest, entry.media_type).await?;
        let manifest = self.fetch_manifest(&descriptor).await?;
        let wharf_oci::ManifestBody::Index(index) = manifest.body() else {
            return Ok(Vec::new());
        };
        Ok(index
            .manifests
            .iter()
            .filter(|d| {
                artifact_type.is_none_or(|wanted| d.artifact_type.as_deref() == Some(wanted))
            })
            .cloned()
            .collect())
    }
}

#[async_trait]
impl Store for CtfRepository {
    async fn push(&self, descriptor: &Descriptor, body: ByteStream) -> Result<()> {
        let what = self.what(descriptor.digest.as_str());
        let fail = |e: std::io::Error| self.ctf.error(Op::Push, &what, e.into());
        self.ctf.ensure_dir().await?;
        let (mut file, temp) = fsutil::temp_file(&self.ctf.dir).await.map_err(fail)?;
        let mut body = verified(
            descriptor,
            Op::Push,
            format!("{} {what}", self.ctf.location()),
            body,
        );
        while let Some(chunk) = body.next().await {
            file.write_all(&chunk?).await.map_err(fail)?;
        }
        fsutil::persist(file, temp, &self.ctf.blob_path(&descriptor.digest))
            .await
            .map_err(fail)
    }

    async fn push_manifest(
        &self,
        descriptor: &Descriptor,
        raw: Bytes,
        role: ManifestRole<'_>,
    ) -> Result<()> {
        let what = self.what(descriptor.digest.as_str());
        check_bytes(descriptor, &raw, &format!("{} {what}", self.ctf.location()))?;
        self.ctf.ensure_dir().await?;
        if !self.exists(descriptor).await? {
            fsutil::write_atomic(&self.ctf.dir, &self.ctf.blob_path(&descriptor.digest), &raw)
                .await
                .map_err(|e| self.ctf.error(Op::Push, &what, e.into()))?;
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
            let mut index = match self.entry(&fallback_tag(&subject.digest)).await {
                Some(entry) => {
                    let existing = self.descriptor_of(&entry.digest, entry.media_type).await?;
                    match self.fetch_manifest(&existing).await?.body() {
                        wharf_oci::ManifestBody::Index(index) => (**index).clone(),
                        wharf_oci::ManifestBody::Image(_) => ImageIndex::new(),
                    }
                }
                None => ImageIndex::new(),
            };
            if !index
                .manifests
                .iter()
                .any(|d| d.digest == descriptor.digest)
            {
                let mut entry = Descriptor::new(
                    &descriptor.media_type,
                    descriptor.digest.clone(),
                    descriptor.size,
                );
                entry.artifact_type = manifest.artifact_type().map(str::to_owned);
                entry.annotations = manifest.annotations().clone();
                index.manifests.push(entry);
                let index = Manifest::from_index(&index);
                let index_descriptor = index.descriptor();
                fsutil::write_atomic(
                    &self.ctf.dir,
                    &self.ctf.blob_path(&index_descriptor.digest),
                    index.raw(),
                )
                .await
                .map_err(|e| self.ctf.error(Op::Push, &what, e.into()))?;
                self.ctf
                    .record(
                        &self.name,
                        &index_descriptor,
                        Some(&fallback_tag(&subject.digest)),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn finish(&self) -> Result<()> {
        match self.ctf.format {
            CtfFormat::Directory => Ok(()),
            CtfFormat::Tar | CtfFormat::Tgz => self.ctf.write_archive().await,
        }
    }
}
