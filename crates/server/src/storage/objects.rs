//! Where the registry keeps its bytes: an [`ObjectStore`] holds objects named by `/`-separated keys
//! (`blobs/sha256/<hex>`, `repositories/<name>/_tags/<tag>`), each written whole and atomically, read
//! whole or by range, and listed one level below a prefix, as a directory is. [`Files`] keeps them in
//! a local directory, each write through a temporary file, fsync and rename.

use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tempfile::TempPath;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;
use wharf_oci::{Digest, Digester};
use wharf_store::durable;

use super::writer::BlockWriter;

/// Bytes of an object, as they are read.
pub type ObjectStream = BoxStream<'static, io::Result<Bytes>>;

/// Chunk size of object reads.
const READ_CHUNK: usize = 256 * 1024;

/// Named objects, each written whole and atomically.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Where the objects are, for messages.
    fn describe(&self) -> String;

    /// True when the store can be used (for health checks).
    async fn available(&self) -> bool;

    /// The size of an object, `None` when there is none.
    async fn size(&self, key: &str) -> io::Result<Option<u64>>;

    /// When an object was last written, `None` when there is none.
    async fn modified(&self, key: &str) -> io::Result<Option<SystemTime>>;

    /// True when the object exists.
    async fn exists(&self, key: &str) -> io::Result<bool> {
        Ok(self.size(key).await?.is_some())
    }

    /// A small object whole, `None` when there is none.
    async fn read(&self, key: &str) -> io::Result<Option<Bytes>>;

    /// `length` bytes of an object from `start`.
    async fn read_range(&self, key: &str, start: u64, length: u64) -> io::Result<ObjectStream>;

    /// Writes an object whole, replacing what was there; it is durable when this returns.
    async fn write(&self, key: &str, bytes: &[u8]) -> io::Result<()>;

    /// Writes an object from a stream; nothing appears of a stream that fails. Returns its size.
    async fn write_stream(&self, key: &str, body: ObjectStream) -> io::Result<u64>;

    /// Makes `to` the objects `parts` joined in order without their bytes passing through here
    /// (a rename, a server-side copy), where the store can; false, with nothing written, where it
    /// cannot. The parts may be gone afterwards.
    async fn join(&self, parts: &[String], to: &str) -> io::Result<bool>;

    /// Writes an object from a stream only if its bytes have digest `expected`: nothing appears
    /// otherwise, nor of a stream that fails. Returns the size written, or `None` when the digest
    /// did not match.
    async fn write_verified(
        &self,
        key: &str,
        body: ObjectStream,
        expected: &Digest,
    ) -> io::Result<Option<u64>>;

    /// Removes an object; nothing happens when there is none.
    async fn remove(&self, key: &str) -> io::Result<()>;

    /// A URL anyone may GET the object from for `valid_for`, where the store can sign one.
    fn presigned_get(&self, _key: &str, _valid_for: std::time::Duration) -> Option<url::Url> {
        None
    }

    /// The names one level below `prefix` (objects and deeper prefixes alike), unsorted.
    async fn list(&self, prefix: &str) -> io::Result<Vec<String>>;

    /// Removes what writes begun before `cutoff` left unfinished (a killed writer's temporary
    /// files, a bucket's incomplete multipart uploads); returns how many went.
    async fn remove_unfinished(&self, cutoff: SystemTime) -> io::Result<usize>;
}

/// Objects as files below a directory; `tmp/` holds the temporary files of atomic writes.
pub struct Files {
    root: PathBuf,
}

impl Files {
    /// The objects below `root`.
    pub fn new(root: PathBuf) -> Files {
        Files { root }
    }

    /// The file of an object.
    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// The directory of temporary files.
    fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Streams `body` into a temporary file in large blocks (the disk starting on each at once),
    /// hashing it with `digester` if given; the file is not yet synced.
    async fn to_temp(
        &self,
        mut body: ObjectStream,
        mut digester: Option<Digester>,
    ) -> io::Result<(tokio::fs::File, TempPath, u64, Option<Digest>)> {
        let (file, temp) = durable::temp_file(&self.tmp()).await?;
        let mut writer = BlockWriter::append(&temp).await?;
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if let Some(digester) = digester.as_mut() {
                digester.update(&chunk);
            }
            size += chunk.len() as u64;
            writer.write(&chunk).await?;
        }
        writer.flush().await?;
        Ok((file, temp, size, digester.map(Digester::finish)))
    }
}

#[async_trait]
impl ObjectStore for Files {
    fn describe(&self) -> String {
        std::path::absolute(&self.root)
            .unwrap_or(self.root.clone())
            .display()
            .to_string()
    }

    async fn available(&self) -> bool {
        self.root.join("repositories").is_dir()
    }

    async fn size(&self, key: &str) -> io::Result<Option<u64>> {
        match tokio::fs::metadata(self.path(key)).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn modified(&self, key: &str) -> io::Result<Option<SystemTime>> {
        match tokio::fs::metadata(self.path(key)).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.modified()?)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn read(&self, key: &str) -> io::Result<Option<Bytes>> {
        Ok(durable::read_optional(&self.path(key))
            .await?
            .map(Bytes::from))
    }

    async fn read_range(&self, key: &str, start: u64, length: u64) -> io::Result<ObjectStream> {
        let mut file = tokio::fs::File::open(self.path(key)).await?;
        file.seek(io::SeekFrom::Start(start)).await?;
        Ok(ReaderStream::with_capacity(file.take(length), READ_CHUNK).boxed())
    }

    async fn write(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        durable::write_atomic(&self.tmp(), &self.path(key), bytes).await
    }

    async fn write_stream(&self, key: &str, body: ObjectStream) -> io::Result<u64> {
        let (file, temp, size, _) = self.to_temp(body, None).await?;
        durable::persist(file, temp, &self.path(key)).await?;
        Ok(size)
    }

    async fn join(&self, parts: &[String], to: &str) -> io::Result<bool> {
        let [part] = parts else {
            return Ok(false);
        };
        durable::rename_synced(&self.path(part), &self.path(to)).await?;
        Ok(true)
    }

    async fn write_verified(
        &self,
        key: &str,
        body: ObjectStream,
        expected: &Digest,
    ) -> io::Result<Option<u64>> {
        let digester = expected.algorithm().digester();
        let (file, temp, size, actual) = self.to_temp(body, Some(digester)).await?;
        if actual.as_ref() != Some(expected) {
            return Ok(None);
        }
        durable::persist(file, temp, &self.path(key)).await?;
        Ok(Some(size))
    }

    async fn remove(&self, key: &str) -> io::Result<()> {
        durable::remove_if_present(&self.path(key)).await
    }

    async fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        match durable::list_dir(&self.path(prefix)).await {
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => Ok(Vec::new()),
            other => other,
        }
    }

    async fn remove_unfinished(&self, cutoff: SystemTime) -> io::Result<usize> {
        let mut removed = 0;
        for name in durable::list_dir(&self.tmp()).await? {
            let path = self.tmp().join(name);
            // A write may finish (its file renamed away) while this looks.
            let modified = match tokio::fs::metadata(&path).await {
                Ok(metadata) => metadata.modified()?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if modified < cutoff {
                durable::remove_if_present(&path).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
