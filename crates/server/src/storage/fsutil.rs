//! Crash-safe writes: a temporary file beside the target, fsync, rename, fsync the directory.

use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `target` so that readers see the old content or the new, never a mix. The
/// temporary file lives in `temp_dir`, on the same filesystem.
pub async fn write_atomic(temp_dir: &Path, target: &Path, bytes: &[u8]) -> io::Result<()> {
    let (temp_dir, target, bytes) = (temp_dir.to_owned(), target.to_owned(), bytes.to_vec());
    blocking(move || {
        let mut file = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&temp_dir)?;
        file.write_all(&bytes)?;
        file.as_file().sync_all()?;
        let dir = parent(&target);
        std::fs::create_dir_all(dir)?;
        file.persist(&target).map_err(|e| e.error)?;
        std::fs::File::open(dir)?.sync_all()
    })
    .await
}

/// Renames `from` to `to`, creating `to`'s directory, and syncs that directory.
pub async fn rename_synced(from: &Path, to: &Path) -> io::Result<()> {
    let (from, to) = (from.to_owned(), to.to_owned());
    blocking(move || {
        let dir = parent(&to);
        std::fs::create_dir_all(dir)?;
        std::fs::rename(&from, &to)?;
        std::fs::File::open(dir)?.sync_all()
    })
    .await
}

/// Removes a file, treating "already gone" as success.
pub async fn remove_if_present(path: &Path) -> io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
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

fn parent(path: &Path) -> &Path {
    path.parent().expect("storage paths have a parent")
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}
