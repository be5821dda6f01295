//! OCI image layout directories: `oci-layout`, `index.json` and `blobs/<alg>/<hex>`.
//!
//! Tags are `org.opencontainers.image.ref.name` annotations on `index.json` entries, as skopeo and umoci
//! write them. Every file is written to a temporary name in the layout, synced and renamed into place, and
//! the directory synced after, so a crash never leaves a partial blob or an `index.json` naming content
//! that is not there.

use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, OnceCell};
use tokio_util::io::ReaderStream;
use wharf_oci::{
    ANNOTATION_REF_NAME, Descriptor, Digest, ImageIndex, MANIFEST_MAX_BYTES, Manifest,
};

use crate::fsutil;
use crate::{
    ByteStream, ErrorKind, ManifestRole, Op, ReadStore, Result, Store, StoreError, check_bytes,
    referrers_among, verified,
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

/// An OCI image layout directory.
pub struct Layout {
    root: PathBuf,
    /// Serialises read-modify-write cycles of `index.json` within this process.
    index_lock: Mutex<()>,
    /// Set once `oci-layout`, `index.json` and `blobs/` exist; a layout opened for writing is only
    /// created on its first write, so a copy that fails early leaves nothing behind.
    initialised: OnceCell<()>,
}

impl Layout {
    /// Opens an existing layout for reading (and writing).
    pub async fn open(path: impl Into<PathBuf>) -> Result<Layout> {
        let layout = Layout::new(path.into());
        match tokio::fs::read(layout.root.join(LAYOUT_FILE)).await {
            Ok(bytes) => layout.check_layout_file(&bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let kind = if tokio::fs::metadata(&layout.root).await.is_ok() {
                    ErrorKind::Invalid("not an OCI image layout: it has no oci-layout file".into())
                } else {
                    ErrorKind::NotFound(Some("no such directory".into()))
                };
                return Err(layout.error(Op::Open, "", kind));
            }
            Err(e) => return Err(layout.error(Op::Open, "", e.into())),
        }
        layout.initialised.set(()).expect("fresh cell");
        Ok(layout)
    }

    /// Opens a layout for writing: an existing layout, an empty directory, or a path that does not exist
    /// yet (created, with its parents, on the first write).
    pub async fn create(path: impl Into<PathBuf>) -> Result<Layout> {
        let path = path.into();
        match tokio::fs::metadata(&path).await {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Layout::new(path)),
            Err(e) => Err(Layout::new(path).error(Op::Open, "", e.into())),
            Ok(meta) if !meta.is_dir() => Err(Layout::new(path).error(
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
                let layout = Layout::new(path);
                let mut entries = tokio::fs::read_dir(&layout.root)
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

    fn new(root: PathBuf) -> Layout {
        Layout {
            root,
            index_lock: Mutex::new(()),
            initialised: OnceCell::new(),
        }
    }

    /// The layout's directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `oci:PATH` followed by what is acted on, for messages.
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

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// The layout's `index.json`; a layout not created yet has an empty one.
    async fn read_index(&self) -> Result<ImageIndex> {
        let bytes = match tokio::fs::read(self.root.join(INDEX_FILE)).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.initialised.get().is_none() => {
                return Ok(ImageIndex::new());
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
        fsutil::write_atomic(&self.root, &self.root.join(INDEX_FILE), &bytes)
            .await
            .map_err(|e| self.error(Op::Tag, INDEX_FILE, e.into()))
    }

    async fn ensure_initialised(&self) -> Result<()> {
        self.initialised
            .get_or_try_init(|| async {
                let fail = |e: io::Error| self.error(Op::Open, "", e.into());
                tokio::fs::create_dir_all(self.root.join("blobs"))
                    .await
                    .map_err(fail)?;
                let layout = serde_json::to_vec(&LayoutFile {
                    image_layout_version: LAYOUT_VERSION.into(),
                })
                .expect("serialises");
                if !tokio::fs::try_exists(self.root.join(LAYOUT_FILE))
                    .await
                    .map_err(fail)?
                {
                    fsutil::write_atomic(&self.root, &self.root.join(LAYOUT_FILE), &layout)
                        .await
                        .map_err(fail)?;
                }
                if !tokio::fs::try_exists(self.root.join(INDEX_FILE))
                    .await
                    .map_err(fail)?
                {
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
        let path = self.blob_path(digest);
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| self.error(Op::Resolve, digest.as_str(), not_found_or_io(e)))?;
        if meta.len() > MANIFEST_MAX_BYTES as u64 {
            return Err(self.error(
                Op::Resolve,
                digest.as_str(),
                wharf_oci::ManifestError::TooLarge(meta.len() as usize).into(),
            ));
        }
        let raw = tokio::fs::read(&path)
            .await
            .map_err(|e| self.error(Op::Resolve, digest.as_str(), e.into()))?;
        let manifest = Manifest::parse(Bytes::from(raw), None)
            .map_err(|e| self.error(Op::Resolve, digest.as_str(), e.into()))?;
        let descriptor = manifest.descriptor();
        if descriptor.digest != *digest {
            return Err(self.error(
                Op::Resolve,
                digest.as_str(),
                ErrorKind::DigestMismatch {
                    expected: digest.clone(),
                    actual: descriptor.digest,
                },
            ));
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

fn ref_name(descriptor: &Descriptor) -> Option<&str> {
    descriptor
        .annotations
        .get(ANNOTATION_REF_NAME)
        .map(String::as_str)
}

fn not_found_or_io(e: io::Error) -> ErrorKind {
    if e.kind() == io::ErrorKind::NotFound {
        ErrorKind::NotFound(None)
    } else {
        e.into()
    }
}

/// An `index.json` entry as a plain descriptor, without the layout's own naming annotation.
fn without_ref_name(descriptor: &Descriptor) -> Descriptor {
    let mut d = descriptor.clone();
    d.annotations.remove(ANNOTATION_REF_NAME);
    d
}

#[async_trait]
impl ReadStore for Layout {
    fn location(&self) -> String {
        format!("oci:{}", self.root.display())
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
        let file = tokio::fs::File::open(self.blob_path(&descriptor.digest))
            .await
            .map_err(|e| self.error(Op::Fetch, &what, not_found_or_io(e)))?;
        let target = self.target(&what);
        let stream = ReaderStream::with_capacity(file, READ_CHUNK).map(move |chunk| {
            chunk.map_err(|e| StoreError::new(Op::Fetch, target.clone(), e.into()))
        });
        Ok(Box::pin(stream))
    }

    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        match tokio::fs::metadata(self.blob_path(&descriptor.digest)).await {
            // A blob of the wrong size is damaged: report it missing so it is written again.
            Ok(meta) => Ok(meta.is_file() && meta.len() == descriptor.size),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.error(Op::Exists, descriptor.digest.as_str(), e.into())),
        }
    }

    async fn tags(&self) -> Result<Vec<String>> {
        Ok(Layout::tag_list(&self.read_index().await?))
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
        let fail = |e: io::Error| self.error(Op::Push, &what, e.into());
        let target = self.blob_path(&descriptor.digest);
        let (mut file, temp) = fsutil::temp_file(&self.root).await.map_err(fail)?;
        let mut body = verified(descriptor, Op::Push, self.target(&what), body);
        while let Some(chunk) = body.next().await {
            file.write_all(&chunk?).await.map_err(fail)?;
        }
        fsutil::persist(file, temp, &target).await.map_err(fail)
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
            fsutil::write_atomic(&self.root, &self.blob_path(&descriptor.digest), &raw)
                .await
                .map_err(|e| self.error(Op::Push, &what, e.into()))?;
        }
        match role {
            ManifestRole::Child => Ok(()),
            ManifestRole::Root => self.record_root(descriptor, None).await,
            ManifestRole::Tag(tag) => self.record_root(descriptor, Some(tag)).await,
        }
    }
}
