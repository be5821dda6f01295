//! The files of a layout or CTF, wherever they are kept: a directory or a tar archive.
//!
//! Stores name files by their relative path (`blobs/sha256/<hex>`, `index.json`) and leave it to
//! [`Files`] whether that is a file in a directory (written atomically, synced) or a member of an
//! [`Archive`] (written in place, made visible by [`Files::finish`]).

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::archive::Archive;
use crate::durable;
use crate::{ByteStream, StoreError};

/// Where a store's files are.
pub(crate) enum Files {
    /// A directory.
    Dir(PathBuf),
    /// A tar archive.
    Archive(Box<Archive>),
}

impl Files {
    /// The directory or archive.
    pub fn path(&self) -> &Path {
        match self {
            Files::Dir(dir) => dir,
            Files::Archive(archive) => archive.path(),
        }
    }

    /// The length of file `name`, if it exists.
    pub async fn len(&self, name: &str) -> io::Result<Option<u64>> {
        match self {
            Files::Dir(dir) => match tokio::fs::metadata(dir.join(name)).await {
                Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
            Files::Archive(archive) => Ok(archive.len(name)),
        }
    }

    /// File `name` in memory, if it exists; for small files.
    pub async fn read(&self, name: &str) -> io::Result<Option<Bytes>> {
        match self {
            Files::Dir(dir) => {
                let Some(mut file) = open_regular(&dir.join(name)).await? else {
                    return Ok(None);
                };
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes).await?;
                Ok(Some(Bytes::from(bytes)))
            }
            Files::Archive(archive) => archive.read(name).await,
        }
    }

    /// File `name` as a stream of bytes, if it exists.
    pub async fn reader(&self, name: &str) -> io::Result<Option<Pin<Box<dyn AsyncRead + Send>>>> {
        match self {
            Files::Dir(dir) => Ok(open_regular(&dir.join(name))
                .await?
                .map(|file| Box::pin(file) as Pin<Box<dyn AsyncRead + Send>>)),
            Files::Archive(archive) => archive.reader(name).await,
        }
    }

    /// Writes content-addressed file `name` from `body` (already verified by the caller's stream);
    /// it exists only once the body has ended cleanly.
    pub async fn write_stream(
        &self,
        name: &str,
        size: u64,
        mut body: ByteStream,
        fail: impl Fn(io::Error) -> StoreError,
    ) -> crate::Result<()> {
        match self {
            Files::Dir(dir) => {
                tokio::fs::create_dir_all(dir).await.map_err(&fail)?;
                let (mut file, temp) = durable::temp_file(dir).await.map_err(&fail)?;
                while let Some(chunk) = body.next().await {
                    file.write_all(&chunk?).await.map_err(&fail)?;
                }
                durable::persist(file, temp, &dir.join(name))
                    .await
                    .map_err(fail)
            }
            Files::Archive(archive) => archive.write_stream(name, size, body, fail).await,
        }
    }

    /// Writes content-addressed file `name`.
    pub async fn write(
        &self,
        name: &str,
        bytes: Bytes,
        fail: impl Fn(io::Error) -> StoreError,
    ) -> crate::Result<()> {
        match self {
            Files::Dir(dir) => write_file(dir, name, &bytes).await.map_err(fail),
            Files::Archive(archive) => archive.write(name, bytes, fail).await,
        }
    }

    /// Sets file `name` (an index that changes) to `bytes`: at once in a directory, at
    /// [`Files::finish`] in an archive.
    pub async fn replace(&self, name: &str, bytes: Bytes) -> io::Result<()> {
        match self {
            Files::Dir(dir) => write_file(dir, name, &bytes).await,
            Files::Archive(archive) => {
                archive.replace(name, bytes);
                Ok(())
            }
        }
    }

    /// Removes temporary files an earlier, killed writer left. Only for the holder of the store's
    /// write lock.
    pub async fn remove_stale_temporaries(&self) -> io::Result<()> {
        match self {
            Files::Dir(dir) => durable::remove_stale(dir, durable::TEMP_PREFIX).await,
            Files::Archive(archive) => archive.remove_stale_temporaries().await,
        }
    }

    /// Whether this is an archive written to since it was opened or last finished.
    pub fn unfinished(&self) -> bool {
        matches!(self, Files::Archive(archive) if archive.dirty())
    }

    /// Makes what was written visible: nothing to do for a directory; an archive is written out.
    pub async fn finish(&self) -> io::Result<()> {
        match self {
            Files::Dir(_) => Ok(()),
            Files::Archive(archive) => archive.finish().await,
        }
    }

    /// Makes what was written so far durable without finishing: an archive's partial file then holds
    /// the indexes too, for the run that resumes it. The archive's path when one was left unfinished.
    pub async fn checkpoint(&self) -> io::Result<Option<PathBuf>> {
        match self {
            Files::Archive(archive) if archive.dirty() => {
                archive.checkpoint().await?;
                Ok(Some(archive.path().to_owned()))
            }
            _ => Ok(None),
        }
    }
}

/// Opens a file to read, `None` if it does not exist; anything but a regular file is refused, since
/// opening a FIFO would wait for a writer forever.
async fn open_regular(path: &Path) -> io::Result<Option<tokio::fs::File>> {
    match tokio::fs::metadata(path).await {
        Ok(meta) if meta.is_file() => tokio::fs::File::open(path).await.map(Some),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

async fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    durable::write_atomic(dir, &dir.join(name), bytes).await
}
