//! Content wharf assembles before pushing it: files where they are, temporary files (removed with
//! the store) and small documents in memory, served as a read-only store so that a copy job moves
//! them like any other content: verified, retried, deduplicated.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use tempfile::TempPath;
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;
use wharf_oci::{Algorithm, Descriptor, Digest, Digester};
use wharf_store::{ByteStream, ErrorKind, Op, ReadStore, StoreError};

/// Read buffer for hashing and streaming files.
const BUFFER: usize = 1024 * 1024;

/// Blobs and manifests staged for pushing, by digest.
#[derive(Default)]
pub struct Staged {
    files: HashMap<Digest, PathBuf>,
    documents: HashMap<Digest, Bytes>,
    temporaries: Vec<TempPath>,
    /// Where everything not staged is read, nested repositories included.
    base: Option<Arc<dyn ReadStore>>,
}

impl Staged {
    /// Staged content on top of `base`: what is not staged is read there, and so are the
    /// repositories below it.
    pub fn over(base: Arc<dyn ReadStore>) -> Staged {
        Staged {
            base: Some(base),
            ..Staged::default()
        }
    }

    /// Adds a file, hashing it as it is read; returns its descriptor.
    pub async fn add_file(&mut self, path: PathBuf, media_type: &str) -> io::Result<Descriptor> {
        let meta = tokio::fs::metadata(&path).await?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let mut file = tokio::fs::File::open(&path).await?;
        let mut digester = Digester::new(Algorithm::Sha256);
        let mut buffer = vec![0u8; BUFFER];
        loop {
            let n = file.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            digester.update(&buffer[..n]);
        }
        let size = digester.bytes();
        let descriptor = Descriptor::new(media_type, digester.finish(), size);
        self.files.insert(descriptor.digest.clone(), path);
        Ok(descriptor)
    }

    /// Adds a temporary file whose digest the caller computed while writing it; the file is removed
    /// with the store. A wrong digest is caught where the content is pushed.
    pub fn add_temporary(&mut self, file: TempPath, descriptor: &Descriptor) {
        self.files
            .insert(descriptor.digest.clone(), file.to_path_buf());
        self.temporaries.push(file);
    }

    /// Adds bytes held in memory; returns their descriptor.
    pub fn add_bytes(&mut self, media_type: &str, bytes: Bytes) -> Descriptor {
        let descriptor = Descriptor::for_bytes(media_type, &bytes);
        self.documents.insert(descriptor.digest.clone(), bytes);
        descriptor
    }
}

#[async_trait]
impl ReadStore for Staged {
    fn location(&self) -> String {
        "staged content".to_owned()
    }

    async fn resolve(&self, reference: &str) -> wharf_store::Result<Descriptor> {
        Err(StoreError::new(
            Op::Resolve,
            self.location(),
            ErrorKind::NotFound(Some(format!("{reference}: staged content has no tags"))),
        ))
    }

    async fn fetch(&self, descriptor: &Descriptor) -> wharf_store::Result<ByteStream> {
        let target = format!("{} {}", self.location(), descriptor.digest);
        let fail = |kind| StoreError::new(Op::Fetch, target.clone(), kind);
        if let Some(bytes) = self.documents.get(&descriptor.digest) {
            return Ok(Box::pin(stream::once(std::future::ready(
                Ok(bytes.clone()),
            ))));
        }
        let Some(path) = self.files.get(&descriptor.digest) else {
            return match &self.base {
                Some(base) => base.fetch(descriptor).await,
                None => Err(fail(ErrorKind::NotFound(None))),
            };
        };
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| fail(e.into()))?;
        Ok(Box::pin(ReaderStream::with_capacity(file, BUFFER).map(
            move |chunk| chunk.map_err(|e| StoreError::new(Op::Fetch, target.clone(), e.into())),
        )))
    }

    async fn exists(&self, descriptor: &Descriptor) -> wharf_store::Result<bool> {
        if self.files.contains_key(&descriptor.digest)
            || self.documents.contains_key(&descriptor.digest)
        {
            return Ok(true);
        }
        match &self.base {
            Some(base) => base.exists(descriptor).await,
            None => Ok(false),
        }
    }

    fn nested(&self, path: &str) -> wharf_store::Result<Option<Arc<dyn ReadStore>>> {
        match &self.base {
            Some(base) => base.nested(path),
            None => Ok(None),
        }
    }
}
