//! Blob upload sessions — monolithic, streamed and chunked — kept in the object store, so that any
//! registry instance sharing it can serve any request of an upload. A session is the object
//! `uploads/<id>.state` (its repository and owner, the bytes received, the running hash's saved
//! state, its chunk count, when it was last used) and its chunks `uploads/<id>.<n>`, each written
//! whole: a chunk cut short leaves nothing, and the client asks for the offset and sends it again.
//! The blob appears only once its digest is checked, written whole (or, in a directory, the lone
//! chunk renamed) — never a partial blob.

use std::fmt::Display;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use wharf_oci::{Algorithm, Digest, Digester};

use super::{ObjectStream, Storage, blob_key};
use crate::error::{ApiError, ApiResult, Code};

/// Locks serialising the requests of one session within this process (striped by id).
const LOCKS: usize = 64;

/// Serialises the requests of each upload session within one process; other instances address
/// the same session only one request after another, as clients send them.
pub struct Uploads {
    locks: Vec<tokio::sync::Mutex<()>>,
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

/// Where a chunk claims to start, from `Content-Range`.
#[derive(Debug, Clone, Copy)]
pub struct ChunkRange {
    /// First byte offset.
    pub start: u64,
    /// Last byte offset, inclusive.
    pub end: u64,
}

/// A session as stored.
#[derive(Serialize, Deserialize)]
struct SessionState {
    repo: String,
    user: Option<String>,
    /// Bytes received so far.
    offset: u64,
    /// The saved state of the SHA-256 of those bytes.
    hash: String,
    /// Chunk objects written, `uploads/<id>.0` onwards.
    chunks: u32,
    /// A chunk shorter than the advertised minimum arrived; only the final one may be.
    short_chunk_seen: bool,
    /// When a request last used the session, in seconds since the epoch.
    touched: u64,
}

impl SessionState {
    /// The SHA-256 of the bytes received so far, carried on from its saved state.
    fn running_hash(&self) -> ApiResult<Digester> {
        let saved = STANDARD
            .decode(&self.hash)
            .map_err(|e| ApiError::internal("upload session", e))?;
        Digester::restore(Algorithm::Sha256, &saved)
            .ok_or_else(|| ApiError::internal("upload session", "unreadable hash state"))
    }
}

impl Uploads {
    pub(super) fn new() -> Uploads {
        Uploads {
            locks: (0..LOCKS).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    fn lock(&self, id: &str) -> &tokio::sync::Mutex<()> {
        let stripe = id
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31) ^ b as usize);
        &self.locks[stripe % LOCKS]
    }
}

fn state_key(id: &str) -> String {
    format!("uploads/{id}.state")
}

fn chunk_key(id: &str, n: u32) -> String {
    format!("uploads/{id}.{n}")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unknown(id: &str) -> ApiError {
    ApiError::new(
        Code::BlobUploadUnknown,
        format!("upload {id} is not in progress"),
    )
}

/// Session ids are uuids; anything else names no session (and no object key).
fn valid_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}

impl Storage {
    /// Opens an upload session for `repo`, owned by `user`, and returns its id.
    pub async fn start_upload(&self, repo: &str, user: Option<&str>) -> io::Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let state = SessionState {
            repo: repo.to_owned(),
            user: user.map(str::to_owned),
            offset: 0,
            hash: STANDARD.encode(Digester::new(Algorithm::Sha256).save()),
            chunks: 0,
            short_chunk_seen: false,
            touched: now(),
        };
        self.save_session(&id, &state).await?;
        Ok(id)
    }

    /// The session a request addresses; another repository's or another user's session is as
    /// unknown as a missing one.
    async fn session(&self, session: &Session<'_>) -> ApiResult<SessionState> {
        if !valid_id(session.id) {
            return Err(unknown(session.id));
        }
        let bytes = self
            .objects
            .read(&state_key(session.id))
            .await?
            .ok_or_else(|| unknown(session.id))?;
        let state: SessionState =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::internal("upload session", e))?;
        if state.repo != session.repo || state.user.as_deref() != session.user {
            return Err(unknown(session.id));
        }
        Ok(state)
    }

    async fn save_session(&self, id: &str, state: &SessionState) -> io::Result<()> {
        let bytes = serde_json::to_vec(state).expect("a session serialises");
        self.objects.write(&state_key(id), &bytes).await
    }

    /// Removes a session and its chunks.
    async fn drop_session(&self, id: &str, chunks: u32) -> io::Result<()> {
        for n in 0..chunks {
            self.objects.remove(&chunk_key(id, n)).await?;
        }
        self.objects.remove(&state_key(id)).await
    }

    /// Bytes received so far by an upload.
    pub async fn upload_offset(&self, session: &Session<'_>) -> ApiResult<u64> {
        Ok(self.session(session).await?.offset)
    }

    /// Removes upload sessions untouched for `expiry`, and chunks no session counts that are as
    /// old (left by a chunk write that was cut off); returns how many sessions went.
    pub async fn expire_uploads(&self, expiry: Duration) -> io::Result<usize> {
        let cutoff = SystemTime::now() - expiry;
        let mut removed = 0;
        let names = self.objects.list("uploads").await?;
        for name in &names {
            let Some(id) = name.strip_suffix(".state") else {
                continue;
            };
            let Some(bytes) = self.objects.read(&format!("uploads/{name}")).await? else {
                continue;
            };
            let state = serde_json::from_slice::<SessionState>(&bytes).ok();
            let last_use = match &state {
                Some(state) => UNIX_EPOCH + Duration::from_secs(state.touched),
                None => UNIX_EPOCH,
            };
            if last_use < cutoff {
                let _lock = self.uploads.lock(id).lock().await;
                self.drop_session(id, state.map_or(0, |s| s.chunks)).await?;
                removed += 1;
            }
        }
        // Chunks of sessions that are gone, and files of earlier versions' sessions (no suffix).
        for name in names {
            let id = name.split_once('.').map_or(name.as_str(), |(id, _)| id);
            let key = format!("uploads/{name}");
            let orphan = !self.objects.exists(&state_key(id)).await?;
            let old = self
                .objects
                .modified(&key)
                .await?
                .is_some_and(|m| m < cutoff);
            if orphan && old {
                self.objects.remove(&key).await?;
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
        body: impl Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
    ) -> ApiResult<u64> {
        let _lock = self.uploads.lock(target.id).lock().await;
        let mut state = self.session(target).await?;
        if state.short_chunk_seen {
            return Err(range_error(format!(
                "a chunk shorter than the {} byte minimum was not the last",
                min_chunk.unwrap_or(0)
            )));
        }
        if let Some(range) = range
            && range.start != state.offset
        {
            return Err(range_error(format!(
                "chunk starts at {}, but the upload has {} bytes",
                range.start, state.offset
            )));
        }
        let received = self.write_chunk(target.id, &mut state, body, range).await?;
        if min_chunk.is_some_and(|min| received < min) {
            state.short_chunk_seen = true;
        }
        self.save_session(target.id, &state).await?;
        Ok(state.offset)
    }

    /// Finishes an upload (PUT): appends the final chunk, checks the digest, and makes the blob
    /// part of `repo`. A digest mismatch cancels the upload.
    pub async fn finish_upload<E: Display>(
        &self,
        target: &Session<'_>,
        digest: &Digest,
        body: impl Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
    ) -> ApiResult<()> {
        let (repo, id) = (target.repo, target.id);
        let _lock = self.uploads.lock(id).lock().await;
        let mut state = self.session(target).await?;
        let mismatch = |actual: Option<&Digest>| {
            let message = match actual {
                Some(actual) => format!("uploaded content has digest {actual}, not {digest}"),
                None => format!("uploaded content does not have digest {digest}"),
            };
            ApiError::new(Code::DigestInvalid, message)
        };
        let blob = blob_key(digest);
        if state.chunks == 0 {
            // All in the closing request: straight into place, verified on the way.
            let written = self
                .objects
                .write_verified(&blob, interrupted_as_error(body), digest)
                .await
                .map_err(interrupted)?;
            if written.is_none() {
                self.drop_session(id, 0).await?;
                return Err(mismatch(None));
            }
            self.drop_session(id, 0).await?;
            self.link_blob(repo, digest).await?;
            return Ok(());
        }
        self.write_chunk(id, &mut state, body, None).await?;
        self.save_session(id, &state).await?;
        let running = state.running_hash()?.finish();
        if digest.algorithm() == Algorithm::Sha256 && running != *digest {
            self.drop_session(id, state.chunks).await?;
            return Err(mismatch(Some(&running)));
        }
        // The running hash proved the chunks are the blob: they may become it as they are.
        let present = self.objects.exists(&blob).await?;
        let chunks: Vec<String> = (0..state.chunks).map(|n| chunk_key(id, n)).collect();
        let joined = !present
            && digest.algorithm() == Algorithm::Sha256
            && self.objects.join(&chunks, &blob).await?;
        if !present && !joined {
            let chunks = self.chunks(id, state.chunks);
            if self
                .objects
                .write_verified(&blob, chunks, digest)
                .await?
                .is_none()
            {
                self.drop_session(id, state.chunks).await?;
                return Err(mismatch(None));
            }
        }
        self.drop_session(id, state.chunks).await?;
        self.link_blob(repo, digest).await?;
        Ok(())
    }

    /// Cancels an upload (DELETE).
    pub async fn cancel_upload(&self, target: &Session<'_>) -> ApiResult<()> {
        let _lock = self.uploads.lock(target.id).lock().await;
        let state = self.session(target).await?;
        self.drop_session(target.id, state.chunks).await?;
        Ok(())
    }

    /// The bytes of an upload's chunks, in order.
    fn chunks(&self, id: &str, count: u32) -> ObjectStream {
        let objects = self.objects.clone();
        let id = id.to_owned();
        stream::iter(0..count)
            .then(move |n| {
                let objects = objects.clone();
                let key = chunk_key(&id, n);
                async move {
                    let size = objects.size(&key).await?.ok_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, format!("{key} is gone"))
                    })?;
                    objects.read_range(&key, 0, size).await
                }
            })
            .try_flatten()
            .boxed()
    }

    /// Writes `body` as the session's next chunk, hashing it into the session's state; a chunk
    /// cut short, or not as long as `range` announced, leaves nothing. Returns its length.
    async fn write_chunk<E: Display>(
        &self,
        id: &str,
        state: &mut SessionState,
        body: impl Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
        range: Option<ChunkRange>,
    ) -> ApiResult<u64> {
        let digester = state.running_hash()?;
        let hashing = Arc::new(Mutex::new(digester));
        let received = Arc::new(AtomicU64::new(0));
        let counted = {
            let hashing = hashing.clone();
            let received = received.clone();
            interrupted_as_error(body)
                .inspect_ok(move |chunk| {
                    received.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    hashing
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .update(chunk);
                })
                .boxed()
        };
        let key = chunk_key(id, state.chunks);
        self.objects
            .write_stream(&key, counted)
            .await
            .map_err(interrupted)?;
        let received = received.load(Ordering::Relaxed);
        if let Some(range) = range
            && range.end + 1 - range.start != received
        {
            self.objects.remove(&key).await?;
            return Err(ApiError::new(
                Code::SizeInvalid,
                format!(
                    "Content-Range announced {} bytes, the body had {received}",
                    range.end + 1 - range.start
                ),
            ));
        }
        if received == 0 {
            self.objects.remove(&key).await?;
            return Ok(0);
        }
        let digester = hashing.lock().unwrap_or_else(|e| e.into_inner()).clone();
        state.hash = STANDARD.encode(digester.save());
        state.offset += received;
        state.chunks += 1;
        state.touched = now();
        Ok(received)
    }
}

/// A request body as an object stream; a body that breaks off is an error.
fn interrupted_as_error<E: Display>(
    body: impl Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
) -> ObjectStream {
    body.map_err(|e| io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()))
        .boxed()
}

/// A body that broke off, as the client sees it; other failures stay storage errors.
fn interrupted(error: io::Error) -> ApiError {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        ApiError::new(
            Code::BlobUploadInvalid,
            format!("upload interrupted: {error}"),
        )
    } else {
        error.into()
    }
}

fn range_error(message: String) -> ApiError {
    ApiError::new(Code::BlobUploadInvalid, message).with_status(StatusCode::RANGE_NOT_SATISFIABLE)
}
