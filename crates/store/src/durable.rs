//! Crash-safe file writes, for every store and the embedded registry: each file is written under a
//! temporary name in the same directory tree, synced, renamed into place, and its directory synced,
//! so that after a crash at any point a reader sees the old content or the new, never a mix.

use std::io;
use std::path::{Path, PathBuf};

use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

/// Prefix of temporary files inside a layout or CTF; never a valid blob or index file name.
pub const TEMP_PREFIX: &str = ".wharf-tmp-";

/// A new temporary file in `dir`, removed when the returned path is dropped unless persisted.
pub async fn temp_file(dir: &Path) -> io::Result<(tokio::fs::File, TempPath)> {
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
pub async fn persist(mut file: tokio::fs::File, temp: TempPath, target: &Path) -> io::Result<()> {
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
pub async fn write_atomic(temp_dir: &Path, target: &Path, bytes: &[u8]) -> io::Result<()> {
    let (mut file, temp) = temp_file(temp_dir).await?;
    file.write_all(bytes).await?;
    persist(file, temp, target).await
}

/// Removes the files in `dir` whose names start with `prefix`: temporary files a killed run left.
/// Only for a writer holding the store's lock, so no other process is writing them.
pub async fn remove_stale(dir: &Path, prefix: &str) -> io::Result<()> {
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
pub async fn remove_if_present(path: &Path) -> io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Renames `from` to `to`, creating `to`'s directory, and syncs that directory.
pub async fn rename_synced(from: &Path, to: &Path) -> io::Result<()> {
    let (from, to) = (from.to_owned(), to.to_owned());
    tokio::task::spawn_blocking(move || {
        let dir = to.parent().expect("renamed files have a parent");
        std::fs::create_dir_all(dir)?;
        std::fs::rename(&from, &to)?;
        std::fs::File::open(dir)?.sync_all()
    })
    .await
    .map_err(io::Error::other)?
}

/// Reads a small file, `None` if it does not exist.
pub async fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Names of the entries of a directory, empty if it does not exist.
pub async fn list_dir(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(e),
    };
    while let Some(entry) = entries.next_entry().await? {
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}
