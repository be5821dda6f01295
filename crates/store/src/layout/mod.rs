//! OCI image layouts: `oci-layout`, `index.json` and `blobs/<alg>/<hex>`, as a directory (`oci:`) or a
//! tar archive of one (`oci-archive:`).
//!
//! Tags are `org.opencontainers.image.ref.name` annotations on `index.json` entries, as skopeo and umoci
//! write them. In a directory every file is written to a temporary name, synced and renamed into place,
//! and the directory synced after, so a crash never leaves a partial blob or an `index.json` naming
//! content that is not there. An archive is written as [`crate::archive`] describes: it appears,
//! complete, at [`Store::finish`], and an interrupted write is resumed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, OnceCell};
use tokio_util::io::ReaderStream;
use wharf_oci::{
    ANNOTATION_REF_NAME, Descriptor, Digest, ImageIndex, MANIFEST_MAX_BYTES, Manifest,
};

use crate::archive::Archive;
use crate::files::Files;
use crate::lock::{WhenLocked, WriteLock};
use crate::namespace::sorted_unique;
use crate::{
    ByteStream, ErrorKind, ManifestRole, Namespace, Op, ReadStore, Result, Store, StoreError,
    check_bytes, referrers_among, verified,
};

const LAYOUT_FILE: &str = "oci-layout";
const INDEX_FILE: &str = "index.json";
const LAYOUT_VERSION: &str = "1.0.0";
/// Read buffer for streaming blobs out of the layout.
const READ_CHUNK: usize = 256 * 1024;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutFile {
    image_layout_version: String,
}

/// An OCI image layout, in a directory or a tar archive.
pub struct Layout {
    files: Files,
    /// Serialises read-modify-write cycles of `index.json` within this process.
    index_lock: Mutex<()>,
    /// Set once `oci-layout` and `index.json` exist; a layout opened for writing is only created on its
    /// first write, so a copy that fails early leaves nothing behind.
    initialised: OnceCell<()>,
    /// Held while the layout is open for writing: one writing process at a time.
    _lock: Option<WriteLock>,
    /// The layout itself, once it is shared as a namespace: its nested repositories are views of it.
    this: std::sync::OnceLock<std::sync::Weak<Layout>>,
}

impl Layout {
    /// Opens an existing layout directory for reading (and writing).
    pub async fn open(path: impl Into<PathBuf>) -> Result<Layout> {
        let layout = Layout::new(Files::Dir(path.into()));
        layout.check_existing().await?;
        Ok(layout)
    }

    /// Opens a layout directory for writing: an existing layout, an empty directory, or a path that does
    /// not exist yet (created, with its parents, on the first write). Waits while another process
    /// writes it.
    pub async fn create(path: impl Into<PathBuf>) -> Result<Layout> {
        Layout::create_with(path, WhenLocked::Wait).await
    }

    /// [`Layout::create`], doing `when` if another process writes the layout.
    pub async fn create_with(path: impl Into<PathBuf>, when: WhenLocked) -> Result<Layout> {
        let path = path.into();
        let lock = WriteLock::acquire(&path, &format!("oci:{}", path.display()), when).await?;
        let mut layout = Layout::create_unlocked(path).await?;
        layout.take_lock(lock).await?;
        Ok(layout)
    }

    async fn create_unlocked(path: PathBuf) -> Result<Layout> {
        let layout = Layout::new(Files::Dir(path.clone()));
        match tokio::fs::metadata(&path).await {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(layout),
            Err(e) => Err(layout.error(Op::Open, "", e.into())),
            Ok(meta) if !meta.is_dir() => Err(layout.error(
                Op::Open,
                "",
                ErrorKind::Invalid("exists and is not a directory".into()),
            )),
            Ok(_)
                if tokio::fs::try_exists(path.join(LAYOUT_FILE))
                    .await
                    .unwrap_or(false) =>
            {
                Layout::open(path).await
            }
            Ok(_) => {
                let mut entries = tokio::fs::read_dir(&path)
                    .await
                    .map_err(|e| layout.error(Op::Open, "", e.into()))?;
                if entries.next_entry().await.ok().flatten().is_some() {
                    return Err(layout.error(
                        Op::Open,
                        "",
                        ErrorKind::Invalid(
                            "directory is not empty and not an OCI image layout; refusing to write into it"
                                .into(),
                        ),
                    ));
                }
                Ok(layout)
            }
        }
    }

    /// Opens an existing `oci-archive:` (a tar of a layout) for reading.
    pub async fn open_archive(path: impl Into<PathBuf>) -> Result<Layout> {
        let path = path.into();
        if !path.is_file() {
            return Err(archive_error(&path, Op::Open, not_a_file(&path)));
        }
        let archive = Archive::open(&path, false)
            .await
            .map_err(|e| archive_error(&path, Op::Open, e.into()))?;
        let layout = Layout::new(Files::Archive(Box::new(archive)));
        layout.check_existing().await?;
        Ok(layout)
    }

    /// Opens an `oci-archive:` for writing: an existing archive (rewritten with what is added when the
    /// copy finishes), a partial one left by an interrupted copy (resumed), or a new one. Does `when`
    /// if another process writes it.
    pub async fn create_archive(path: impl Into<PathBuf>, when: WhenLocked) -> Result<Layout> {
        let path = path.into();
        if path.is_dir() {
            return Err(archive_error(&path, Op::Open, not_a_file(&path)));
        }
        let lock =
            WriteLock::acquire(&path, &format!("oci-archive:{}", path.display()), when).await?;
        let archive = Archive::open_for_write(&path, false, blob_digest)
            .await
            .map_err(|e| archive_error(&path, Op::Open, e.into()))?;
        let finished = archive.finished_before();
        let mut layout = Layout::new(Files::Archive(Box::new(archive)));
        if finished || layout.files.len(LAYOUT_FILE).await.ok().flatten().is_some() {
            layout.check_existing().await?;
        }
        layout.take_lock(lock).await?;
        Ok(layout)
    }

    /// Keeps the write lock, and as the only writer removes what killed writers left.
    async fn take_lock(&mut self, lock: WriteLock) -> Result<()> {
        self._lock = Some(lock);
        self.files
            .remove_stale_temporaries()
            .await
            .map_err(|e| self.error(Op::Open, "", e.into()))
    }

    /// Makes an unfinished archive's partial file durable with its `index.json`, so a later run resumes
    /// it; see [`Store::finish`] for finishing. The archive's path when there was one.
    pub async fn checkpoint(&self) -> Result<Option<PathBuf>> {
        self.files
            .checkpoint()
            .await
            .map_err(|e| self.error(Op::Push, "", e.into()))
    }

    fn new(files: Files) -> Layout {
        Layout {
            files,
            index_lock: Mutex::new(()),
            initialised: OnceCell::new(),
            _lock: None,
            this: std::sync::OnceLock::new(),
        }
    }

    /// A view of the repository `repository` (an image-name prefix) of this layout, if the layout
    /// is shared as a namespace.
    fn view(&self, repository: &str) -> Result<Option<Arc<LayoutRepository>>> {
        let Some(layout) = self.this.get().and_then(std::sync::Weak::upgrade) else {
            return Ok(None);
        };
        Ok(Some(Arc::new(LayoutRepository {
            layout,
            repository: repository.to_owned(),
        })))
    }

    /// The layout's directory or archive.
    pub fn path(&self) -> &Path {
        self.files.path()
    }

    /// `oci:PATH` or `oci-archive:PATH` followed by what is acted on, for messages.
    fn target(&self, what: &str) -> String {
        if what.is_empty() {
            self.location()
        } else {
            format!("{} {what}", self.location())
        }
    }

    fn error(&self, op: Op, what: &str, kind: ErrorKind) -> StoreError {
        StoreError::new(op, self.target(what), kind)
    }

    /// Checks the `oci-layout` file of a layout that should exist.
    async fn check_existing(&self) -> Result<()> {
        match self.files.read(LAYOUT_FILE).await {
            Ok(Some(bytes)) => self.check_layout_file(&bytes)?,
            Ok(None) => {
                let kind = if tokio::fs::metadata(self.path()).await.is_ok() {
                    ErrorKind::Invalid("not an OCI image layout: it has no oci-layout file".into())
                } else {
                    ErrorKind::NotFound(Some("no such directory".into()))
                };
                return Err(self.error(Op::Open, "", kind));
            }
            Err(e) => return Err(self.error(Op::Open, "", e.into())),
        }
        self.initialised.set(()).expect("fresh cell");
        Ok(())
    }

    fn check_layout_file(&self, bytes: &[u8]) -> Result<()> {
        let invalid = |why: String| self.error(Op::Open, LAYOUT_FILE, ErrorKind::Invalid(why));
        let file: LayoutFile =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("invalid JSON: {e}")))?;
        if file.image_layout_version != LAYOUT_VERSION {
            return Err(invalid(format!(
                "unsupported imageLayoutVersion {:?} (wharf reads {LAYOUT_VERSION})",
                file.image_layout_version
            )));
        }
        Ok(())
    }

    /// The layout's `index.json`; a layout not created yet has an empty one.
    async fn read_index(&self) -> Result<ImageIndex> {
        let bytes = match self.files.read(INDEX_FILE).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) if self.initialised.get().is_none() => return Ok(ImageIndex::new()),
            Ok(None) => {
                return Err(self.error(Op::Open, INDEX_FILE, ErrorKind::NotFound(None)));
            }
            Err(e) => return Err(self.error(Op::Open, INDEX_FILE, e.into())),
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            self.error(
                Op::Open,
                INDEX_FILE,
                ErrorKind::Invalid(format!("invalid index: {e}")),
            )
        })
    }

    async fn write_index(&self, index: &ImageIndex) -> Result<()> {
        let bytes = serde_json::to_vec(index).expect("index serialises");
        self.files
            .replace(INDEX_FILE, Bytes::from(bytes))
            .await
            .map_err(|e| self.error(Op::Tag, INDEX_FILE, e.into()))
    }

    async fn ensure_initialised(&self) -> Result<()> {
        self.initialised
            .get_or_try_init(|| async {
                let fail = |e: io::Error| self.error(Op::Open, "", e.into());
                if let Files::Dir(dir) = &self.files {
                    tokio::fs::create_dir_all(dir.join("blobs"))
                        .await
                        .map_err(fail)?;
                }
                if self.files.len(LAYOUT_FILE).await.map_err(fail)?.is_none() {
                    let layout = serde_json::to_vec(&LayoutFile {
                        image_layout_version: LAYOUT_VERSION.into(),
                    })
                    .expect("serialises");
                    self.files
                        .replace(LAYOUT_FILE, Bytes::from(layout))
                        .await
                        .map_err(fail)?;
                }
                if self.files.len(INDEX_FILE).await.map_err(fail)?.is_none() {
                    self.write_index(&ImageIndex::new()).await?;
                }
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// Updates `index.json` for a pushed root manifest.
    async fn record_root(&self, descriptor: &Descriptor, tag: Option<&str>) -> Result<()> {
        let _guard = self.index_lock.lock().await;
        let mut index = self.read_index().await?;
        let mut entry = Descriptor::new(
            &descriptor.media_type,
            descriptor.digest.clone(),
            descriptor.size,
        );
        entry.artifact_type = descriptor.artifact_type.clone();
        match tag {
            Some(tag) => {
                index.manifests.retain(|m| ref_name(m) != Some(tag));
                entry
                    .annotations
                    .insert(ANNOTATION_REF_NAME.to_owned(), tag.to_owned());
            }
            None => {
                let listed = index
                    .manifests
                    .iter()
                    .any(|m| m.digest == descriptor.digest && ref_name(m).is_none());
                if listed {
                    return Ok(());
                }
            }
        }
        index.manifests.push(entry);
        self.write_index(&index).await
    }

    /// Reads a manifest blob by digest alone, to learn its media type.
    async fn describe_manifest(&self, digest: &Digest) -> Result<Descriptor> {
        let name = blob_name(digest);
        let fail = |kind| self.error(Op::Resolve, digest.as_str(), kind);
        let size = self
            .files
            .len(&name)
            .await
            .map_err(|e| fail(e.into()))?
            .ok_or_else(|| fail(ErrorKind::NotFound(None)))?;
        if size > MANIFEST_MAX_BYTES as u64 {
            return Err(fail(
                wharf_oci::ManifestError::TooLarge(size as usize).into(),
            ));
        }
        let raw = self
            .files
            .read(&name)
            .await
            .map_err(|e| fail(e.into()))?
            .ok_or_else(|| fail(ErrorKind::NotFound(None)))?;
        let manifest = Manifest::parse(raw, None).map_err(|e| fail(e.into()))?;
        let descriptor = manifest.descriptor();
        if descriptor.digest != *digest {
            return Err(fail(ErrorKind::DigestMismatch {
                expected: digest.clone(),
                actual: descriptor.digest,
            }));
        }
        Ok(descriptor)
    }

    fn tag_list(index: &ImageIndex) -> Vec<String> {
        let mut tags: Vec<String> = Vec::new();
        for name in index.manifests.iter().filter_map(ref_name) {
            if !tags.iter().any(|t| t == name) {
                tags.push(name.to_owned());
            }
        }
        tags
    }
}

/// `blobs/<alg>/<hex>`.
fn blob_name(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().as_str(), digest.hex())
}

/// The digest a blob's name carries.
fn blob_digest(name: &str) -> Option<Digest> {
    let rest = name.strip_prefix("blobs/")?;
    let (algorithm, hex) = rest.split_once('/')?;
    Digest::parse(&format!("{algorithm}:{hex}")).ok()
}

fn archive_error(path: &Path, op: Op, kind: ErrorKind) -> StoreError {
    StoreError::new(op, format!("oci-archive:{}", path.display()), kind)
}

fn not_a_file(path: &Path) -> ErrorKind {
    if path.exists() {
        ErrorKind::Invalid(
            "not a file: an oci-archive is a tar file (use oci: for a directory)".into(),
        )
    } else {
        ErrorKind::NotFound(Some("no such file".into()))
    }
}

fn ref_name(descriptor: &Descriptor) -> Option<&str> {
    descriptor
        .annotations
        .get(ANNOTATION_REF_NAME)
        .map(String::as_str)
}

/// An `index.json` entry as a plain descriptor, without the layout's own naming annotation.
fn without_ref_name(descriptor: &Descriptor) -> Descriptor {
    let mut d = descriptor.clone();
    d.annotations.remove(ANNOTATION_REF_NAME);
    d
}

#[async_trait]
impl ReadStore for Layout {
    fn nested(&self, path: &str) -> Result<Option<Arc<dyn ReadStore>>> {
        let name = crate::namespace::nested_name(&self.location(), "", "", path)?;
        Ok(self.view(&name)?.map(|view| view as Arc<dyn ReadStore>))
    }

    fn location(&self) -> String {
        match &self.files {
            Files::Dir(dir) => format!("oci:{}", dir.display()),
            Files::Archive(archive) => format!("oci-archive:{}", archive.path().display()),
        }
    }

    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        let index = self.read_index().await?;
        if let Ok(digest) = Digest::parse(reference) {
            if let Some(entry) = index.manifests.iter().find(|m| m.digest == digest) {
                return Ok(without_ref_name(entry));
            }
            return self.describe_manifest(&digest).await;
        }
        if let Some(entry) = index
            .manifests
            .iter()
            .rev()
            .find(|m| ref_name(m) == Some(reference))
        {
            return Ok(without_ref_name(entry));
        }
        let tags = Layout::tag_list(&index);
        let hint = if tags.is_empty() {
            "the layout has no tags".to_owned()
        } else {
            format!("tags here: {}", tags.join(", "))
        };
        Err(self.error(
            Op::Resolve,
            &format!("tag {reference:?}"),
            ErrorKind::NotFound(Some(hint)),
        ))
    }

    async fn resolve_default(&self) -> Result<Descriptor> {
        let index = self.read_index().await?;
        match index.manifests.as_slice() {
            [only] => Ok(without_ref_name(only)),
            [] => Err(self.error(
                Op::Resolve,
                "",
                ErrorKind::NotFound(Some("the layout holds no images".into())),
            )),
            many => {
                let tags = Layout::tag_list(&index);
                Err(self.error(
                    Op::Resolve,
                    "",
                    ErrorKind::Invalid(format!(
                        "the layout holds {} images; name one as {}:TAG (tags: {})",
                        many.len(),
                        self.location(),
                        tags.join(", ")
                    )),
                ))
            }
        }
    }

    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        let what = format!("blob {}", descriptor.digest);
        let reader = self
            .files
            .reader(&blob_name(&descriptor.digest))
            .await
            .map_err(|e| self.error(Op::Fetch, &what, e.into()))?
            .ok_or_else(|| self.error(Op::Fetch, &what, ErrorKind::NotFound(None)))?;
        let target = self.target(&what);
        let stream = ReaderStream::with_capacity(reader, READ_CHUNK).map(move |chunk| {
            chunk.map_err(|e| StoreError::new(Op::Fetch, target.clone(), e.into()))
        });
        Ok(Box::pin(stream))
    }

    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        // A blob of the wrong size is damaged: report it missing so it is written again.
        match self.files.len(&blob_name(&descriptor.digest)).await {
            Ok(size) => Ok(size == Some(descriptor.size)),
            Err(e) => Err(self.error(Op::Exists, descriptor.digest.as_str(), e.into())),
        }
    }

    async fn tags(&self) -> Result<Vec<String>> {
        Ok(Layout::tag_list(&self.read_index().await?))
    }

    async fn roots(&self) -> Result<Vec<(Option<String>, Descriptor)>> {
        let index = self.read_index().await?;
        Ok(index
            .manifests
            .iter()
            .map(|entry| (ref_name(entry).map(str::to_owned), without_ref_name(entry)))
            .collect())
    }

    /// Referrers are roots in `index.json` (as oras writes them) whose manifest names the subject.
    async fn referrers(
        &self,
        subject: &Descriptor,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let index = self.read_index().await?;
        let candidates = index.manifests.iter().map(without_ref_name).collect();
        referrers_among(self, candidates, subject, artifact_type).await
    }
}

#[async_trait]
impl Store for Layout {
    async fn push(&self, descriptor: &Descriptor, body: ByteStream) -> Result<()> {
        self.ensure_initialised().await?;
        let what = format!("blob {}", descriptor.digest);
        let body = verified(descriptor, Op::Push, self.target(&what), body);
        self.files
            .write_stream(&blob_name(&descriptor.digest), descriptor.size, body, |e| {
                self.error(Op::Push, &what, e.into())
            })
            .await
    }

    async fn push_manifest(
        &self,
        descriptor: &Descriptor,
        raw: Bytes,
        role: ManifestRole<'_>,
    ) -> Result<()> {
        let what = format!("manifest {}", descriptor.digest);
        check_bytes(descriptor, &raw, &self.target(&what))?;
        self.ensure_initialised().await?;
        if !self.exists(descriptor).await? {
            self.files
                .write(&blob_name(&descriptor.digest), raw, |e| {
                    self.error(Op::Push, &what, e.into())
                })
                .await?;
        }
        match role {
            ManifestRole::Child => Ok(()),
            ManifestRole::Root => self.record_root(descriptor, None).await,
            ManifestRole::Tag(tag) => self.record_root(descriptor, Some(tag)).await,
        }
    }

    async fn finish(&self) -> Result<()> {
        self.files
            .finish()
            .await
            .map_err(|e| self.error(Op::Push, "", e.into()))
    }

    fn nested_mut(&self, path: &str) -> Result<Option<Arc<dyn Store>>> {
        let name = crate::namespace::nested_name(&self.location(), "", "", path)?;
        Ok(self.view(&name)?.map(|view| view as Arc<dyn Store>))
    }
}

/// A layout as a set of repositories: image names `team/app:1.0` are tag `1.0` of repository
/// `team/app`; the empty repository is the layout itself, with every name as it is.
pub(crate) struct LayoutNamespace {
    layout: Arc<Layout>,
    writable: bool,
}

impl LayoutNamespace {
    pub fn new(layout: Arc<Layout>, writable: bool) -> LayoutNamespace {
        let _ = layout.this.set(Arc::downgrade(&layout));
        LayoutNamespace { layout, writable }
    }

    fn view(&self, repository: &str) -> Arc<LayoutRepository> {
        Arc::new(LayoutRepository {
            layout: self.layout.clone(),
            repository: repository.to_owned(),
        })
    }
}

#[async_trait]
impl Namespace for LayoutNamespace {
    fn location(&self) -> String {
        self.layout.location()
    }

    fn read(&self, repository: &str) -> Result<Arc<dyn ReadStore>> {
        Ok(if repository.is_empty() {
            self.layout.clone()
        } else {
            self.view(repository)
        })
    }

    fn write(&self, repository: &str) -> Result<Arc<dyn Store>> {
        if !self.writable {
            return Err(self.layout.error(
                Op::Open,
                "",
                ErrorKind::Unsupported("opened for reading, not writing".into()),
            ));
        }
        Ok(if repository.is_empty() {
            self.layout.clone()
        } else {
            self.view(repository)
        })
    }

    async fn repositories(&self) -> Result<Vec<String>> {
        Ok(sorted_unique(self.layout.tags().await?.iter().map(
            |name| {
                name.rsplit_once(':')
                    .map_or(String::new(), |(repository, _)| repository.to_owned())
            },
        )))
    }

    async fn finish(&self) -> Result<()> {
        self.layout.finish().await
    }

    async fn checkpoint(&self) -> Result<Option<PathBuf>> {
        self.layout.checkpoint().await
    }
}

/// One repository of a layout: its tags are the image names `REPOSITORY:TAG`.
struct LayoutRepository {
    layout: Arc<Layout>,
    repository: String,
}

impl LayoutRepository {
    /// The repository `path` below this one.
    fn nested_view(&self, path: &str) -> Result<Arc<LayoutRepository>> {
        let name =
            crate::namespace::nested_name(&ReadStore::location(self), "", &self.repository, path)?;
        Ok(Arc::new(LayoutRepository {
            layout: self.layout.clone(),
            repository: name,
        }))
    }

    fn name(&self, tag: &str) -> String {
        format!("{}:{tag}", self.repository)
    }

    fn own_tag<'a>(&self, name: &'a str) -> Option<&'a str> {
        name.strip_prefix(self.repository.as_str())?
            .strip_prefix(':')
    }
}

#[async_trait]
impl ReadStore for LayoutRepository {
    fn nested(&self, path: &str) -> Result<Option<Arc<dyn ReadStore>>> {
        Ok(Some(self.nested_view(path)?))
    }

    fn location(&self) -> String {
        format!("{}:{}", self.layout.location(), self.repository)
    }

    fn blob_scope(&self) -> String {
        self.layout.blob_scope()
    }

    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        if Digest::parse(reference).is_ok() {
            return self.layout.resolve(reference).await;
        }
        self.layout.resolve(&self.name(reference)).await
    }

    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        self.layout.fetch(descriptor).await
    }

    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        self.layout.exists(descriptor).await
    }

    async fn tags(&self) -> Result<Vec<String>> {
        Ok(self
            .layout
            .tags()
            .await?
            .iter()
            .filter_map(|name| self.own_tag(name).map(str::to_owned))
            .collect())
    }

    async fn roots(&self) -> Result<Vec<(Option<String>, Descriptor)>> {
        Ok(self
            .layout
            .roots()
            .await?
            .into_iter()
            .filter_map(|(name, descriptor)| {
                let tag = self.own_tag(name.as_deref()?)?.to_owned();
                Some((Some(tag), descriptor))
            })
            .collect())
    }

    async fn referrers(
        &self,
        subject: &Descriptor,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        self.layout.referrers(subject, artifact_type).await
    }
}

#[async_trait]
impl Store for LayoutRepository {
    async fn push(&self, descriptor: &Descriptor, body: ByteStream) -> Result<()> {
        self.layout.push(descriptor, body).await
    }

    async fn push_manifest(
        &self,
        descriptor: &Descriptor,
        raw: Bytes,
        role: ManifestRole<'_>,
    ) -> Result<()> {
        match role {
            ManifestRole::Tag(tag) => {
                let name = self.name(tag);
                self.layout
                    .push_manifest(descriptor, raw, ManifestRole::Tag(&name))
                    .await
            }
            other => self.layout.push_manifest(descriptor, raw, other).await,
        }
    }

    async fn finish(&self) -> Result<()> {
        self.layout.finish().await
    }

    fn nested_mut(&self, path: &str) -> Result<Option<Arc<dyn Store>>> {
        Ok(Some(self.nested_view(path)?))
    }
}
