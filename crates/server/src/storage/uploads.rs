//! Blob upload sessions: monolithic, streamed and chunked, with the hash kept up to date as bytes arrive
//! so that finishing an upload costs no second read in the usual case. A session belongs to the
//! repository and the user that opened it, and is removed when untouched for the expiry time.

use std::collections::HashMap;
use std::fmt::Display;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncReadExt;
use tokio::sync::Mutex;
use wharf_oci::{Algorithm, Digest, Digester};

use super::Storage;
use super::writer::BlockWriter;
use crate::error::{ApiError, ApiResult, Code};
use wharf_store::durable;

/// Read buffer when an upload has to be hashed again from disk.
const READ_BUFFER: usize = 1024 * 1024;

/// Upload sessions in progress.
pub struct Uploads {
    dir: PathBuf,
    sessions: std::sync::Mutex<HashMap<String, Arc<Entry>>>,
}

/// A session, the repository and user it belongs to, and when it was last used.
struct Entry {
    repo: String,
    user: Option<String>,
    touched: std::sync::Mutex<Instant>,
    state: Mutex<SessionState>,
}

/// Which upload a request addresses, and who asks.
pub struct Session<'a> {
    /// The repository in the request's path.
    pub repo: &'a str,
    /// The session id in the request's path.
    pub id: &'a str,
    /// The authenticated user, if any.
    pub user: Option<&'a str>,
}

struct SessionState {
    /// Bytes received so far.
    offset: u64,
    /// SHA-256 of those bytes; `None` after an interrupted chunk, when the file is hashed again at the end.
    digester: Option<Digester>,
    /// A chunk shorter than the advertised minimum arrived; only the final one may be.
    short_chunk_seen: bool,
}

/// Where a chunk claims to start, from `Content-Range`.
#[derive(Debug, Clone, Copy)]
pub struct ChunkRange {
    /// First byte offset.
    pub start: u64,
    /// Last byte offset, inclusive.
    pub end: u64,
}

impl Uploads {
    pub(super) fn new(dir: PathBuf) -> Uploads {
        Uploads {
            dir,
            sessions: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// The session a request addresses; another repository's or another user's session is as
    /// unknown as a missing one.
    fn entry(&self, session: &Session<'_>) -> ApiResult<Arc<Entry>> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let entry = sessions
            .get(session.id)
            .filter(|entry| entry.repo == session.repo && entry.user.as_deref() == session.user)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    Code::BlobUploadUnknown,
                    format!("upload {} is not in progress", session.id),
                )
            })?;
        *entry.touched.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Ok(entry)
    }

    fn forget(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

impl Storage {
    /// Opens an upload session for `repo`, owned by `user`, and returns its id.
    pub async fn start_upload(&self, repo: &str, user: Option<&str>) -> io::Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        tokio::fs::File::create(self.uploads.path(&id)).await?;
        let entry = Entry {
            repo: repo.to_owned(),
            user: user.map(str::to_owned),
            touched: std::sync::Mutex::new(Instant::now()),
            state: Mutex::new(SessionState {
                offset: 0,
                digester: Some(Digester::new(Algorithm::Sha256)),
                short_chunk_seen: false,
            }),
        };
        self.uploads
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), Arc::new(entry));
        Ok(id)
    }

    /// Bytes received so far by an upload.
    pub async fn upload_offset(&self, session: &Session<'_>) -> ApiResult<u64> {
        Ok(self.uploads.entry(session)?.state.lock().await.offset)
    }

    /// Removes upload sessions untouched for `expiry`, and upload files no session of this process
    /// owns that are as old (left by an earlier run); returns how many were removed.
    pub async fn expire_uploads(&self, expiry: Duration) -> io::Result<usize> {
        let expired: Vec<String> = {
            let mut sessions = self
                .uploads
                .sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let ids: Vec<String> = sessions
                .iter()
                .filter(|(_, entry)| {
                    entry
                        .touched
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .elapsed()
                        >= expiry
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in &ids {
                sessions.remove(id);
            }
            ids
        };
        let mut removed = 0;
        for name in durable::list_dir(&self.uploads.dir).await? {
            let owned = self
                .uploads
                .sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&name);
            let path = self.uploads.path(&name);
            let old = match tokio::fs::metadata(&path).await {
                Ok(meta) => meta.modified()?.elapsed().unwrap_or_default() >= expiry,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if expired.contains(&name) || (!owned && old) {
                durable::remove_if_present(&path).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Appends a chunk (PATCH). `min_chunk` is the advertised `OCI-Chunk-Min-Length`, if any.
    pub async fn append_upload<E: Display>(
        &self,
        target: &Session<'_>,
        range: Option<ChunkRange>,
        min_chunk: Option<u64>,
        body: impl Stream<Item = Result<Bytes, E>> + Unpin,
    ) -> ApiResult<u64> {
        let id = target.id;
        let entry = self.uploads.entry(target)?;
        let mut session = entry.state.lock().await;
        if session.short_chunk_seen {
            return Err(range_error(format!(
                "a chunk shorter than the {} byte minimum was not the last",
                min_chunk.unwrap_or(0)
            )));
        }
        if let Some(range) = range
            && range.start != session.offset
        {
            return Err(range_error(format!(
                "chunk starts at {}, but the upload has {} bytes",
                range.start, session.offset
            )));
        }
        let before = session.offset;
        self.write_chunk(id, &mut session, body).await?;
        let received = session.offset - before;
        if let Some(range) = range
            && range.end + 1 - range.start != received
        {
            self.rewind(id, &mut session, before).await?;
            return Err(ApiError::new(
                Code::SizeInvalid,
                format!(
                    "Content-Range announced {} bytes, the body had {received}",
                    range.end + 1 - range.start
                ),
            ));
        }
        if min_chunk.is_some_and(|min| received < min) {
            session.short_chunk_seen = true;
        }
        Ok(session.offset)
    }

    /// Finishes an upload (PUT): appends the final chunk, checks the digest, and makes the blob part of
    /// `repo`. A digest mismatch cancels the upload.
    pub async fn finish_upload<E: Display>(
        &self,
        target: &Session<'_>,
        digest: &Digest,
        body: impl Stream<Item = Result<Bytes, E>> + Unpin,
    ) -> ApiResult<()> {
        let (repo, id) = (target.repo, target.id);
        let entry = self.uploads.entry(target)?;
        let mut session = entry.state.lock().await;
        self.write_chunk(id, &mut session, body).await?;
        let path = self.uploads.path(id);
        let actual = match session.digester.take() {
            Some(digester) if digest.algorithm() == Algorithm::Sha256 => digester.finish(),
            _ => hash_file(&path, digest.algorithm()).await?,
        };
        if actual != *digest {
            self.uploads.forget(id);
            durable::remove_if_present(&path).await?;
            return Err(ApiError::new(
                Code::DigestInvalid,
                format!("uploaded content has digest {actual}, not {digest}"),
            ));
        }
        let blob = self.blob_path(digest);
        if tokio::fs::try_exists(&blob).await? {
            durable::remove_if_present(&path).await?;
        } else {
            tokio::fs::File::open(&path).await?.sync_all().await?;
            durable::rename_synced(&path, &blob).await?;
        }
        self.uploads.forget(id);
        self.link_blob(repo, digest).await?;
        Ok(())
    }

    /// Cancels an upload (DELETE).
    pub async fn cancel_upload(&self, target: &Session<'_>) -> ApiResult<()> {
        let entry = self.uploads.entry(target)?;
        let _guard = entry.state.lock().await;
        self.uploads.forget(target.id);
        durable::remove_if_present(&self.uploads.path(target.id)).await?;
        Ok(())
    }

    /// Streams `body` onto the end of the upload file, hashing as it goes.
    async fn write_chunk<E: Display>(
        &self,
        id: &str,
        session: &mut SessionState,
        mut body: impl Stream<Item = Result<Bytes, E>> + Unpin,
    ) -> ApiResult<()> {
        let mut writer = BlockWriter::append(&self.uploads.path(id)).await?;
        let mut failure = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => {
                    if let Some(d) = session.digester.as_mut() {
                        d.update(&chunk);
                    }
                    writer.write(&chunk).await?;
                    session.offset += chunk.len() as u64;
                }
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        writer.flush().await?;
        if let Some(why) = failure {
            // Whatever arrived is kept (the client can ask for the offset and resume); the running
            // hash may have seen a chunk the file did not, so the file is hashed again at the end.
            session.digester = None;
            session.offset = writer.len();
            return Err(ApiError::new(
                Code::BlobUploadInvalid,
                format!("upload interrupted: {why}"),
            ));
        }
        Ok(())
    }

    /// Drops bytes past `offset` after a rejected chunk.
    async fn rewind(&self, id: &str, session: &mut SessionState, offset: u64) -> io::Result<()> {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(self.uploads.path(id))
            .await?;
        file.set_len(offset).await?;
        session.offset = offset;
        session.digester = None;
        Ok(())
    }
}

fn range_error(message: String) -> ApiError {
    ApiError::new(Code::BlobUploadInvalid, message).with_status(StatusCode::RANGE_NOT_SATISFIABLE)
}

/// Hashes a file from disk, for uploads whose running hash was lost.
async fn hash_file(path: &std::path::Path, algorithm: Algorithm) -> io::Result<Digest> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut digester = Digester::new(algorithm);
    let mut buffer = vec![0u8; READ_BUFFER];
    loop {
        let n = file.read(&mut buffer).await?;
        if n == 0 {
            return Ok(digester.finish());
        }
        digester.update(&buffer[..n]);
    }
}
