//! Crash-safe file writes: temporary file in the same directory tree, fsync, rename, fsync the directory.

use std::io;
use std::path::{Path, PathBuf};

use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

/// Prefix of temporary files inside a layout or CTF; never a valid blob or index file name.
pub(crate) const TEMP_PREFIX: &str = ".wharf-tmp-";

/// A new temporary file in `dir`, removed when the returned path is dropped unless persisted.
pub(crate) async fn temp_file(dir: &Path) -> io::Result<(tokio::fs::File, TempPath)> {
    let dir = dir.to_owned();
    let named = tokio::task::spawn_blocking(move || {
        tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)
    })
    .await
    .map_err(io::Error::other)??;
    let (file, path) = named.into_parts();
    Ok((tokio::fs::File::from_std(file), path))
}

/// Syncs `file` and renames it to `target`, creating the target's directory if needed.
pub(crate) async fn persist(
    mut file: tokio::fs::File,
    temp: TempPath,
    target: &Path,
) -> io::Result<()> {
    file.flush().await?;
    file.sync_all().await?;
    drop(file);
    let target: PathBuf = target.to_owned();
    tokio::task::spawn_blocking(move || {
        let dir = target.parent().expect("blob paths have a parent");
        std::fs::create_dir_all(dir)?;
        temp.persist(&target).map_err(|e| e.error)?;
        std::fs::File::open(dir)?.sync_all()
    })
    .await
    .map_err(io::Error::other)?
}

/// Writes `bytes` to `target` atomically, with the temporary file in `temp_dir`.
pub(crate) async fn write_atomic(temp_dir: &Path, target: &Path, bytes: &[u8]) -> io::Result<()> {
    let (mut file, temp) = temp_file(temp_dir).await?;
    file.write_all(bytes).await?;
    persist(file, temp, target).await
}

/// Removes the files in `dir` whose names start with `prefix`: temporary files a killed run left.
/// Only for a writer holding the store's lock, so no other process is writing them.
pub(crate) async fn remove_stale(dir: &Path, prefix: &str) -> io::Result<()> {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    while let Some(entry) = entries.next_entry().await? {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            tracing::debug!(path = %entry.path().display(), "removing a temporary file a killed run left");
            remove_if_present(&entry.path()).await?;
        }
    }
    Ok(())
}

/// Removes a file, treating "already gone" as success.
pub(crate) async fn remove_if_present(path: &Path) -> io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
