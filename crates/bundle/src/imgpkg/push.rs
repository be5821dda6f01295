//! Building a bundle from a directory and pushing it, as `imgpkg push -b` does: the files in
//! lexical order with owner-only modes and zero times, so the same files always give the same
//! digest; a directory with exactly one `.imgpkg`, directly inside it, holding a lock of digests.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use wharf_copy::Job;
use wharf_oci::Descriptor;
use wharf_store::{Address, ManifestRole, Session};

use super::image::{LayerWriter, stage};
use super::lock::{BundleLock, ImagesLock};
use super::{BUNDLE_LABEL, IMAGES_LOCK_PATH, ImgpkgError, upload_tag};
use crate::staged::Staged;

/// The directory imgpkg keeps its metadata in.
const IMGPKG_DIR: &str = ".imgpkg";

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The bundle's manifest.
    pub descriptor: Descriptor,
    /// Where it is: the repository and the tag.
    pub destination: Address,
    /// The lock imgpkg writes with `--lock-output`.
    pub lock: BundleLock,
    /// How many images its ImagesLock names.
    pub images: usize,
}

/// Builds a bundle from `dir` and pushes it to `destination` (tag `latest` unless it names one),
/// also under the tag `sha256-<hex>.imgpkg`, through `job`. `labels` go into the config beside the
/// bundle label, which they may not set.
pub async fn push(
    dir: &Path,
    destination: &Address,
    labels: &BTreeMap<String, String>,
    session: &Session,
    job: &Job,
) -> Result<Pushed, ImgpkgError> {
    if labels.contains_key(BUNDLE_LABEL) {
        return Err(ImgpkgError::Invalid {
            what: format!("label {BUNDLE_LABEL}"),
            message: "is reserved: imgpkg sets it on every bundle; choose another key".into(),
        });
    }
    if destination.digest().is_some() {
        return Err(ImgpkgError::Invalid {
            what: destination.to_string(),
            message: "a push names a tag, not a digest".into(),
        });
    }
    let entries = {
        let owned = dir.to_owned();
        tokio::task::spawn_blocking(move || list(&owned))
            .await
            .map_err(|e| directory(dir, e.to_string()))??
    };
    let lock_path = dir.join(IMAGES_LOCK_PATH);
    let text =
        std::fs::read_to_string(&lock_path).map_err(|e| directory(&lock_path, e.to_string()))?;
    let lock = ImagesLock::parse(&text).map_err(|e| directory(&lock_path, e))?;

    let (temp, diff_id, layer) = {
        tokio::task::spawn_blocking(move || write_layer(&entries))
            .await
            .map_err(io::Error::other)
            .and_then(|written| written)
            .map_err(|e| directory(dir, format!("writing the bundle layer: {e}")))?
    };
    let mut staged = Staged::default();
    staged.add_temporary(temp, &layer);
    let mut config_labels = labels.clone();
    config_labels.insert(BUNDLE_LABEL.to_owned(), "true".to_owned());
    let manifest = stage(&mut staged, &layer, &diff_id, &config_labels);

    let tag = destination.tag().unwrap_or("latest");
    let repository = destination.with(None, None);
    let store = session.write(&repository).await?;
    job.copy(&staged, store.as_ref(), &manifest, ManifestRole::Tag(tag))
        .await?;
    job.copy(
        &staged,
        store.as_ref(),
        &manifest,
        ManifestRole::Tag(&upload_tag(&manifest.digest)),
    )
    .await?;
    Ok(Pushed {
        destination: repository.with(Some(tag), None),
        lock: BundleLock::at(&repository, &manifest.digest, Some(tag)),
        descriptor: manifest,
        images: lock.images.len(),
    })
}

fn directory(path: impl Into<PathBuf>, message: String) -> ImgpkgError {
    ImgpkgError::Directory {
        path: path.into(),
        message,
    }
}

/// One entry of the bundle's tar.
struct Entry {
    /// The path below the directory, `/`-separated; `.` for the directory itself.
    name: String,
    path: PathBuf,
    /// `None` for directories.
    file: Option<(u32, u64)>,
}

/// Every entry below `dir`, in the order Go's `filepath.Walk` visits them (each directory's names
/// sorted bytewise, depth first), after checking the bundle's shape: only directories and regular
/// files, and one `.imgpkg`, directly in `dir`.
fn list(dir: &Path) -> Result<Vec<Entry>, ImgpkgError> {
    let meta = std::fs::metadata(dir).map_err(|e| directory(dir, e.to_string()))?;
    if !meta.is_dir() {
        return Err(directory(dir, "is not a directory".into()));
    }
    let mut entries = vec![Entry {
        name: ".".into(),
        path: dir.to_owned(),
        file: None,
    }];
    let mut found_imgpkg = false;
    walk(dir, "", &mut entries, &mut found_imgpkg)?;
    if !found_imgpkg || !dir.join(IMAGES_LOCK_PATH).is_file() {
        return Err(directory(
            dir,
            format!("is not a bundle: it has no {IMAGES_LOCK_PATH}"),
        ));
    }
    Ok(entries)
}

fn walk(
    dir: &Path,
    prefix: &str,
    entries: &mut Vec<Entry>,
    found_imgpkg: &mut bool,
) -> Result<(), ImgpkgError> {
    let fail = |path: &Path, message: String| directory(path, message);
    let mut names: Vec<(Vec<u8>, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| fail(dir, e.to_string()))?
        .map(|entry| {
            let entry = entry.map_err(|e| fail(dir, e.to_string()))?;
            Ok((entry.file_name().into_encoded_bytes(), entry.path()))
        })
        .collect::<Result<_, ImgpkgError>>()?;
    names.sort();
    for (_, path) in names {
        let Some(base) = path.file_name().and_then(|n| n.to_str()) else {
            return Err(fail(&path, "its name is not UTF-8".into()));
        };
        let name = format!("{prefix}{base}");
        let meta = std::fs::symlink_metadata(&path).map_err(|e| fail(&path, e.to_string()))?;
        if base == IMGPKG_DIR {
            if !prefix.is_empty() {
                return Err(fail(
                    &path,
                    format!(
                        "another {IMGPKG_DIR}: a bundle has exactly one, directly in the directory pushed"
                    ),
                ));
            }
            *found_imgpkg = true;
        }
        if meta.is_dir() {
            entries.push(Entry {
                name: name.clone(),
                path: path.clone(),
                file: None,
            });
            walk(&path, &format!("{name}/"), entries, found_imgpkg)?;
        } else if meta.is_file() {
            entries.push(Entry {
                name,
                path,
                file: Some((meta.permissions().mode() & 0o700, meta.len())),
            });
        } else {
            return Err(fail(
                &path,
                "is not a regular file or directory (links, devices and sockets cannot go in a bundle)"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// The bundle layer, gzip-compressed into a temporary file: returns it, the tar's digest and the
/// layer's descriptor.
fn write_layer(
    entries: &[Entry],
) -> io::Result<(tempfile::TempPath, wharf_oci::Digest, Descriptor)> {
    let temp = tempfile::NamedTempFile::new()?;
    let mut layer = LayerWriter::new(BufWriter::new(temp.as_file()));
    for entry in entries {
        match entry.file {
            None => layer.tar().directory(&entry.name, 0o700)?,
            Some((mode, size)) => {
                let file = std::fs::File::open(&entry.path).map_err(|e| {
                    io::Error::new(e.kind(), format!("{}: {e}", entry.path.display()))
                })?;
                layer.tar().file(&entry.name, mode, size, file)?;
            }
        }
    }
    let (mut out, diff_id, descriptor) = layer.finish()?;
    out.flush()?;
    drop(out);
    Ok((temp.into_temp_path(), diff_id, descriptor))
}
