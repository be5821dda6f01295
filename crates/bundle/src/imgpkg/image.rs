//! imgpkg's one-layer images, which bundles and location records both are: a Docker schema 2
//! manifest, a Docker config with imgpkg's fixed history and zero times, and one gzip layer holding
//! a tar. Writing reproduces imgpkg's config bytes; reading checks what imgpkg checks (one layer, of
//! the Docker layer media type) and takes any compression.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use wharf_oci::media_type::{DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_CONFIG};
use wharf_oci::{Algorithm, Descriptor, Digest, Digester, ImageManifest, ManifestBody};
use wharf_store::{Op, ReadStore, verified};

use super::ImgpkgError;
use super::tar::{GoTar, decompressed};
use crate::staged::Staged;

/// The config label that makes an image a bundle.
pub const BUNDLE_LABEL: &str = "dev.carvel.imgpkg.bundle";

/// The largest config or lock file wharf reads into memory.
const DOCUMENT_LIMIT: u64 = 16 * 1024 * 1024;

/// A tar being written into a gzip layer, hashed on both sides: the tar's digest is the layer's
/// `diff_id`, the compressed bytes' digest and size make its descriptor.
pub(crate) struct LayerWriter<W: Write> {
    tar: GoTar<Hashing<flate2::write::GzEncoder<Hashing<W>>>>,
}

impl<W: Write> LayerWriter<W> {
    pub fn new(out: W) -> LayerWriter<W> {
        // imgpkg's registry library compresses at the fastest level.
        let gzip = flate2::write::GzEncoder::new(Hashing::new(out), flate2::Compression::fast());
        LayerWriter {
            tar: GoTar::new(Hashing::new(gzip)),
        }
    }

    pub fn tar(&mut self) -> &mut GoTar<Hashing<flate2::write::GzEncoder<Hashing<W>>>> {
        &mut self.tar
    }

    /// Ends the tar and the gzip stream; returns the writer, the tar's digest and the layer's
    /// descriptor.
    pub fn finish(self) -> io::Result<(W, Digest, Descriptor)> {
        let tar = self.tar.finish()?;
        let diff_id = tar.digester.finish();
        let compressed = tar.inner.finish()?;
        let size = compressed.digester.bytes();
        let layer = Descriptor::new(DOCKER_LAYER_GZIP, compressed.digester.finish(), size);
        Ok((compressed.inner, diff_id, layer))
    }
}

/// A writer that hashes what passes through it.
pub(crate) struct Hashing<W> {
    inner: W,
    digester: Digester,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            digester: Digester::new(Algorithm::Sha256),
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The config imgpkg writes for a layer whose tar has digest `diff_id`, byte for byte (Go's field
/// order, zero times, imgpkg's history entry, and Go's escaping of `<`, `>` and `&`).
pub(crate) fn config(diff_id: &Digest, labels: &BTreeMap<String, String>) -> Vec<u8> {
    let labels = if labels.is_empty() {
        "{}".to_owned()
    } else {
        format!(
            "{{\"Labels\":{}}}",
            serde_json::to_string(labels).expect("strings serialise")
        )
    };
    let json = format!(
        "{{\"architecture\":\"\",\"created\":\"0001-01-01T00:00:00Z\",\"history\":[{{\"author\":\"imgpkg\",\"created\":\"0001-01-01T00:00:00Z\",\"created_by\":\"imgpkg\"}}],\"os\":\"\",\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[\"{diff_id}\"]}},\"config\":{labels}}}"
    );
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
        .into_bytes()
}

/// A descriptor as imgpkg's registry library writes it: media type, size, digest.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GoDescriptor<'a> {
    media_type: &'a str,
    size: u64,
    digest: &'a Digest,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DockerManifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: GoDescriptor<'a>,
    layers: [GoDescriptor<'a>; 1],
}

fn go_descriptor(d: &Descriptor) -> GoDescriptor<'_> {
    GoDescriptor {
        media_type: &d.media_type,
        size: d.size,
        digest: &d.digest,
    }
}

/// Stages a one-layer image for `layer` (already staged, its tar's digest `diff_id`) with `labels`:
/// its config and manifest. Returns the manifest's descriptor.
pub(crate) fn stage(
    staged: &mut Staged,
    layer: &Descriptor,
    diff_id: &Digest,
    labels: &BTreeMap<String, String>,
) -> Descriptor {
    let config = staged.add_bytes(DOCKER_CONFIG, Bytes::from(config(diff_id, labels)));
    let manifest = DockerManifest {
        schema_version: 2,
        media_type: DOCKER_MANIFEST,
        config: go_descriptor(&config),
        layers: [go_descriptor(layer)],
    };
    let raw = serde_json::to_vec(&manifest).expect("manifests serialise");
    staged.add_bytes(DOCKER_MANIFEST, Bytes::from(raw))
}

/// The one layer of an imgpkg image, checked as imgpkg checks it.
pub(crate) fn single_layer<'a>(
    image: &'a ImageManifest,
    what: &str,
) -> Result<&'a Descriptor, String> {
    match image.layers.as_slice() {
        [layer] if wharf_oci::media_type::essence(&layer.media_type) == DOCKER_LAYER_GZIP => {
            Ok(layer)
        }
        [layer] => Err(format!(
            "{what} layer has media type {}, not the Docker layer type {DOCKER_LAYER_GZIP}",
            layer.media_type
        )),
        layers => Err(format!(
            "{what} has {} layers; imgpkg images have exactly one",
            layers.len()
        )),
    }
}

/// Just the labels of an image config.
#[derive(Deserialize)]
struct ConfigLabels {
    #[serde(default)]
    config: Option<LabelsOnly>,
}

#[derive(Deserialize)]
struct LabelsOnly {
    #[serde(default, rename = "Labels")]
    labels: Option<BTreeMap<String, String>>,
}

/// The image manifest at `descriptor` and its config's labels; `None` for an index. A config that
/// is not an image config (an artifact's, of another media type or not JSON) has no labels.
pub(crate) async fn image_and_labels(
    store: &dyn ReadStore,
    descriptor: &Descriptor,
) -> Result<Option<(ImageManifest, BTreeMap<String, String>)>, ImgpkgError> {
    let manifest = store.fetch_manifest(descriptor).await?;
    let ManifestBody::Image(image) = manifest.body() else {
        return Ok(None);
    };
    let config = &image.config;
    let is_image_config = matches!(
        wharf_oci::media_type::essence(&config.media_type),
        DOCKER_CONFIG | OCI_CONFIG
    );
    let mut labels = BTreeMap::new();
    if is_image_config && config.size <= DOCUMENT_LIMIT {
        let raw = read_blob(store, config).await?;
        if let Ok(ConfigLabels {
            config: Some(LabelsOnly {
                labels: Some(found),
            }),
        }) = serde_json::from_slice(&raw)
        {
            labels = found;
        }
    }
    Ok(Some((*image.clone(), labels)))
}

/// A small blob, verified, into memory.
async fn read_blob(store: &dyn ReadStore, blob: &Descriptor) -> Result<Bytes, ImgpkgError> {
    let target = format!("{} blob {}", store.location(), blob.digest);
    let stream = verified(blob, Op::Fetch, target, store.fetch(blob).await?);
    let chunks: Vec<Bytes> = stream.try_collect().await?;
    Ok(chunks.concat().into())
}

/// What to do with a layer's files.
pub(crate) enum LayerFiles {
    /// The content of the first regular file at this path (a leading `./` ignored).
    FindPath(&'static str),
    /// The content of the first regular file of this name, in any directory.
    FindName(&'static str),
    /// Every entry written below this directory.
    ExtractTo(PathBuf),
}

impl LayerFiles {
    fn wants(&self, path: &Path) -> bool {
        match self {
            LayerFiles::FindPath(wanted) => {
                path.strip_prefix(".").unwrap_or(path) == Path::new(wanted)
            }
            LayerFiles::FindName(wanted) => path.file_name().is_some_and(|n| n == *wanted),
            LayerFiles::ExtractTo(_) => false,
        }
    }
}

/// Reads the tar in `layer` from `store`, whatever its compression, as `files` says. The layer is
/// downloaded and verified against its digest first: nothing it holds is used unverified.
pub(crate) async fn read_layer(
    store: &dyn ReadStore,
    layer: &Descriptor,
    files: LayerFiles,
) -> Result<Option<Vec<u8>>, ImgpkgError> {
    let target = format!("{} layer {}", store.location(), layer.digest);
    let spool = |e: io::Error| ImgpkgError::Directory {
        path: std::env::temp_dir(),
        message: format!("keeping {target} while it is read: {e}"),
    };
    let mut file = tokio::fs::File::from_std(tempfile::tempfile().map_err(spool)?);
    let mut stream = verified(layer, Op::Fetch, target.clone(), store.fetch(layer).await?);
    while let Some(chunk) = stream.try_next().await? {
        file.write_all(&chunk).await.map_err(spool)?;
    }
    let mut file = file.into_std().await;
    file.seek(io::SeekFrom::Start(0)).map_err(spool)?;
    let walked = tokio::task::spawn_blocking(move || walk_layer(BufReader::new(file), &files))
        .await
        .map_err(|e| LayerError::Content(e.to_string()))
        .and_then(|walked| walked);
    walked.map_err(|e| match e {
        LayerError::Content(message) => ImgpkgError::Invalid {
            what: target,
            message,
        },
        LayerError::Write(path, error) => ImgpkgError::Directory {
            path,
            message: error.to_string(),
        },
    })
}

/// Why a layer could not be read or written out.
enum LayerError {
    /// What it holds is not a bundle's tar.
    Content(String),
    /// A file could not be written.
    Write(PathBuf, io::Error),
}

/// A tar reader's error on one short line: its messages can quote the bytes it choked on.
fn unreadable(error: io::Error) -> LayerError {
    const LIMIT: usize = 100;
    let message = error.to_string();
    let mut line: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(LIMIT)
        .collect();
    if message.chars().count() > LIMIT {
        line.push('…');
    }
    LayerError::Content(format!("not a readable tar: {line}"))
}

fn walk_layer(raw: impl BufRead, files: &LayerFiles) -> Result<Option<Vec<u8>>, LayerError> {
    let mut archive = tar::Archive::new(decompressed(raw).map_err(unreadable)?);
    archive.set_preserve_mtime(false);
    let mut found = None;
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        let path = entry.path().map_err(unreadable)?.into_owned();
        if let LayerFiles::ExtractTo(dir) = files {
            extract(&mut entry, &path, dir)?;
        } else if found.is_none() && entry.header().entry_type().is_file() && files.wants(&path) {
            let mut content = Vec::new();
            (&mut entry)
                .take(DOCUMENT_LIMIT + 1)
                .read_to_end(&mut content)
                .map_err(unreadable)?;
            if content.len() as u64 > DOCUMENT_LIMIT {
                return Err(LayerError::Content(format!(
                    "{} is larger than {DOCUMENT_LIMIT} bytes",
                    path.display()
                )));
            }
            found = Some(content);
        }
    }
    Ok(found)
}

/// Writes one entry below `dir`: directories and regular files only, never outside `dir`.
fn extract(
    entry: &mut tar::Entry<'_, impl Read>,
    path: &Path,
    dir: &Path,
) -> Result<(), LayerError> {
    let refuse = |why: &str| {
        Err(LayerError::Content(format!(
            "entry {}: {why}",
            path.display()
        )))
    };
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return refuse("its path leaves the bundle directory");
    }
    let kind = entry.header().entry_type();
    if !(kind.is_dir() || kind.is_file()) {
        return refuse("only directories and regular files belong in a bundle");
    }
    let written = std::fs::create_dir_all(dir).and_then(|()| entry.unpack_in(dir));
    match written {
        Ok(true) => {}
        Ok(false) => return refuse("its path leaves the bundle directory"),
        Err(e) => return Err(LayerError::Write(dir.join(path), e)),
    }
    // The owner can always read and write what was pulled (and enter its directories), whatever
    // modes the tar asks for, as imgpkg's own bundles have them.
    let target = dir.join(path);
    let owner = if kind.is_dir() { 0o700 } else { 0o600 };
    std::fs::metadata(&target)
        .and_then(|meta| {
            let mode = meta.permissions().mode() | owner;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
        })
        .map_err(|e| LayerError::Write(target.clone(), e))
}
