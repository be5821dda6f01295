//! Tar archives as the file system of a store: members read where they are, written in parallel, and
//! an interrupted write resumed.
//!
//! Opening indexes the tar once (each member's offset and size, every entry checked, nothing
//! extracted); a `.tgz` is decompressed into an unnamed temporary file as it is checked, up to the
//! tar's end-of-archive marker and no further. Members are read by position from open files, so
//! nothing named is left behind for reading. Writing goes to
//! `<archive>.wharf-partial`, a plain tar: each member gets its header and a region sized from its
//! descriptor up front, so blobs stream into the file side by side with positional writes and every byte
//! is written once. Files that change (`index.json`, `artifact-index.json`) are kept in memory and
//! written by [`Archive::finish`], which ends the tar, syncs it, compresses it for `.tgz` and renames it
//! into place: the archive appears whole or not at all.
//!
//! An interrupted write leaves the partial file. Opening the archive for writing again scans it, keeps
//! each whole member whose content matches the digest its name carries, and carries on after them; a
//! region that did not match is written again in place or dropped at the end.

mod scan;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt};
use wharf_oci::{Digest, MANIFEST_MAX_BYTES, Manifest};

use crate::{ByteStream, ErrorKind, StoreError};
use scan::{BLOCK, Member, ScanMode};

/// Modification time of every entry, as OCM writes it, so equal content gives equal archives.
const MTIME: u64 = 1_640_995_200; // 2022-01-01T00:00:00Z
/// Buffer for hashing members when resuming.
const HASH_CHUNK: usize = 1024 * 1024;
/// Chunk size when streaming a member out.
const READ_CHUNK: usize = 256 * 1024;

/// Why an archive cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// An entry that is not a plain file or directory, or whose path could point outside the archive.
    #[error("archive entry {path:?} refused: {reason}")]
    Unsafe {
        /// The entry's path as stored.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// The tar structure is broken.
    #[error("damaged archive: {0}")]
    Damaged(String),
    /// Reading failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<ArchiveError> for ErrorKind {
    fn from(e: ArchiveError) -> ErrorKind {
        match e {
            ArchiveError::Io(e) => ErrorKind::Io(e),
            other => ErrorKind::Invalid(other.to_string()),
        }
    }
}

/// What a member's name says its content must hash to (blob names), or `None` for other files.
pub(crate) type ContentDigest = fn(&str) -> Option<Digest>;

/// A tar (or gzip-compressed tar) archive, read and written in place.
pub(crate) struct Archive {
    path: PathBuf,
    gzip: bool,
    state: Mutex<State>,
    /// Serialises setting up the partial file.
    writer_setup: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// The plain tar the members are in, once there is one: the archive, its decompressed copy, or
    /// the partial file being written.
    tar: Option<Arc<File>>,
    members: HashMap<String, Member>,
    /// End of the last member in `tar`.
    end: u64,
    /// Files set by [`Archive::replace`], written at [`Archive::finish`].
    pending: BTreeMap<String, Bytes>,
    writer: Option<Writer>,
    /// Something was written since the archive was opened or last finished.
    dirty: bool,
}

struct Writer {
    file: Arc<File>,
    /// Regions not holding a member (a failed write, a replaced file): reused by a member of the same
    /// name and size, else dropped at the end.
    holes: Vec<(String, Member)>,
    /// Writes under way.
    writing: usize,
}

impl Archive {
    /// Opens an existing archive to read it.
    pub async fn open(path: &Path, gzip: bool) -> Result<Archive, ArchiveError> {
        let (path, blocking_path) = (path.to_owned(), path.to_owned());
        let state = blocking(move || State::read(&blocking_path, gzip)).await?;
        Ok(Archive::with_state(path, gzip, state))
    }

    /// Opens an archive to write it: resumes `<path>.wharf-partial` if an earlier write left one, else
    /// reads the existing archive (whose members are kept), else starts empty. Nothing is created before
    /// the first write.
    pub async fn open_for_write(
        path: &Path,
        gzip: bool,
        content_digest: ContentDigest,
    ) -> Result<Archive, ArchiveError> {
        let partial = partial_path(path);
        let state = if partial.exists() {
            blocking(move || State::resume(&partial, content_digest)).await?
        } else if path.exists() {
            let path = path.to_owned();
            blocking(move || {
                let mut state = State::read(&path, gzip)?;
                state.take_trailing_files(content_digest)?;
                Ok::<_, ArchiveError>(state)
            })
            .await?
        } else {
            State::default()
        };
        Ok(Archive::with_state(path.to_owned(), gzip, state))
    }

    fn with_state(path: PathBuf, gzip: bool, state: State) -> Archive {
        Archive {
            path,
            gzip,
            state: Mutex::new(state),
            writer_setup: tokio::sync::Mutex::new(()),
        }
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when the archive was there, finished, when it was opened: its indexes must be there too.
    /// (A new archive, or a partial one being resumed, may have none yet.)
    pub fn finished_before(&self) -> bool {
        self.path.is_file() && !partial_path(&self.path).exists()
    }

    /// The length of member `name`, if the archive has it.
    pub fn len(&self, name: &str) -> Option<u64> {
        let state = self.state();
        match state.pending.get(name) {
            Some(bytes) => Some(bytes.len() as u64),
            None => state.members.get(name).map(|m| m.size),
        }
    }

    /// Member `name` in memory; for small files.
    pub async fn read(&self, name: &str) -> io::Result<Option<Bytes>> {
        let Some(mut reader) = self.reader(name).await? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await?;
        Ok(Some(Bytes::from(bytes)))
    }

    /// Member `name` as a stream of bytes.
    pub async fn reader(&self, name: &str) -> io::Result<Option<Pin<Box<dyn AsyncRead + Send>>>> {
        let (tar, member) = {
            let state = self.state();
            if let Some(bytes) = state.pending.get(name) {
                return Ok(Some(Box::pin(io::Cursor::new(bytes.clone()))));
            }
            match (&state.tar, state.members.get(name)) {
                (Some(tar), Some(member)) => (tar.clone(), *member),
                _ => return Ok(None),
            }
        };
        Ok(Some(Box::pin(member_reader(tar, member))))
    }

    /// Writes member `name` of `size` bytes from `body`. The member exists once the body has ended
    /// cleanly; a body that fails leaves a region to be written again or dropped.
    pub async fn write_stream(
        &self,
        name: &str,
        size: u64,
        mut body: ByteStream,
        fail: impl Fn(io::Error) -> StoreError,
    ) -> crate::Result<()> {
        self.ensure_writer().await.map_err(&fail)?;
        let Some((file, member)) = self.reserve(name, size).map_err(&fail)? else {
            return Ok(());
        };
        let written = async {
            let mut offset = member.data;
            // Chunks are written as they come: network reads are large enough, and copying them
            // together would cost more than the extra writes.
            while let Some(chunk) = body.next().await.transpose()? {
                let len = chunk.len() as u64;
                if offset + len > member.data + size {
                    return Err(fail(io::Error::other("more bytes than the member's size")));
                }
                let file = file.clone();
                blocking(move || file.write_all_at(&chunk, offset))
                    .await
                    .map_err(&fail)?;
                offset += len;
            }
            if offset != member.data + size {
                return Err(fail(io::Error::other("fewer bytes than the member's size")));
            }
            Ok(())
        }
        .await;
        let mut state = self.state();
        let present = state.members.contains_key(name);
        let writer = state.writer.as_mut().expect("set up before writing");
        writer.writing -= 1;
        // A region that failed, or lost the race to another write of the same member, holds nothing.
        if written.is_err() || present {
            writer.holes.push((name.to_owned(), member));
        } else {
            state.members.insert(name.to_owned(), member);
        }
        written
    }

    /// Writes member `name` with `bytes` as content.
    pub async fn write(
        &self,
        name: &str,
        bytes: Bytes,
        fail: impl Fn(io::Error) -> StoreError,
    ) -> crate::Result<()> {
        let size = bytes.len() as u64;
        let body: ByteStream = Box::pin(futures_util::stream::iter([Ok(bytes)]));
        self.write_stream(name, size, body, fail).await
    }

    /// Sets file `name` to `bytes`, replacing what it held, when the archive is finished.
    pub fn replace(&self, name: &str, bytes: Bytes) {
        let mut state = self.state();
        state.pending.insert(name.to_owned(), bytes);
        state.dirty = true;
    }

    /// Claims a region for `name`: its hole from an earlier attempt, else the end of the tar. `None`
    /// when the member is there already. Two writes of one member each get a region (each must
    /// succeed or fail on its own); the second to finish leaves a hole.
    fn reserve(&self, name: &str, size: u64) -> io::Result<Option<(Arc<File>, Member)>> {
        let mut state = self.state();
        if state.members.contains_key(name) {
            return Ok(None);
        }
        let end = state.end;
        let writer = state.writer.as_mut().expect("set up before reserving");
        let reused = writer
            .holes
            .iter()
            .position(|(hole, member)| hole == name && member.size == size)
            .map(|at| writer.holes.swap_remove(at).1);
        let header = header_bytes(name, size)?;
        let member = reused.unwrap_or(Member {
            start: end,
            data: end + header.len() as u64,
            size,
        });
        debug_assert_eq!(member.data - member.start, header.len() as u64);
        writer.file.write_all_at(&header, member.start)?;
        writer.writing += 1;
        let file = writer.file.clone();
        state.end = state.end.max(member.end());
        state.dirty = true;
        Ok(Some((file, member)))
    }

    /// Creates the partial file on the first write: a copy of the existing archive's tar, or empty.
    async fn ensure_writer(&self) -> io::Result<()> {
        if self.state().writer.is_some() {
            return Ok(());
        }
        let _setup = self.writer_setup.lock().await;
        let (source, end) = {
            let state = self.state();
            if state.writer.is_some() {
                return Ok(());
            }
            (state.tar.clone(), state.end)
        };
        let partial = partial_path(&self.path);
        let file = blocking::<_, io::Error>(move || {
            if let Some(parent) = partial.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            let mut file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&partial)?;
            if let Some(source) = source {
                // Members are read by position, so moving this handle's offset disturbs no reader.
                let mut source = &*source;
                source.rewind()?;
                io::copy(&mut source.take(end), &mut file)?;
            }
            file.set_len(end)?;
            Ok(file)
        })
        .await?;
        let file = Arc::new(file);
        let mut state = self.state();
        state.tar = Some(file.clone());
        state.writer = Some(Writer {
            file,
            holes: Vec::new(),
            writing: 0,
        });
        Ok(())
    }

    /// Whether anything was written since the archive was opened or last finished.
    pub fn dirty(&self) -> bool {
        self.state().dirty
    }

    /// Writes the pending files into the partial archive and syncs it, without finishing it, so that a
    /// later run resumes with them (the roots recorded so far). Nothing happens when nothing was
    /// written.
    pub async fn checkpoint(&self) -> io::Result<()> {
        if !self.dirty() {
            return Ok(());
        }
        self.write_pending().await?;
        let file = self
            .state()
            .writer
            .as_ref()
            .map(|w| w.file.clone())
            .expect("set up by write_pending");
        blocking(move || file.sync_all()).await
    }

    /// Appends the pending files as members, in place of the ones they replace.
    async fn write_pending(&self) -> io::Result<()> {
        self.ensure_writer().await?;
        let pending = {
            let mut state = self.state();
            let pending = std::mem::take(&mut state.pending);
            let State {
                members, writer, ..
            } = &mut *state;
            let writer = writer.as_mut().expect("set up above");
            for name in pending.keys() {
                if let Some(old) = members.remove(name) {
                    writer.holes.push((name.clone(), old));
                }
            }
            pending
        };
        self.drop_trailing_holes();
        for (name, bytes) in pending {
            self.write(&name, bytes, |e| {
                StoreError::new(crate::Op::Push, name.clone(), e.into())
            })
            .await
            .map_err(io::Error::other)?;
        }
        Ok(())
    }

    /// Writes the pending files, ends and syncs the tar, and moves it into place (compressed for
    /// `.tgz`). Nothing happens when nothing was written.
    pub async fn finish(&self) -> io::Result<()> {
        if !self.dirty() {
            return Ok(());
        }
        self.write_pending().await?;
        let (file, holes, members, end) = {
            let mut state = self.state();
            let writer = state.writer.take().expect("set up above");
            if writer.writing > 0 {
                return Err(io::Error::other("members are still being written"));
            }
            let holes = !writer.holes.is_empty();
            (writer.file, holes, state.members.clone(), state.end)
        };
        let (path, gzip) = (self.path.clone(), self.gzip);
        let (members, end, tar) = blocking::<_, io::Error>(move || {
            drop(file);
            let partial = partial_path(&path);
            let (members, end) = if holes {
                compact(&partial, members)?
            } else {
                (members, end)
            };
            let file = File::options().read(true).write(true).open(&partial)?;
            // Cut first, then grow: the end marker must be zeros, not what a dropped region held.
            file.set_len(end)?;
            file.set_len(end + 2 * BLOCK)?;
            file.sync_all()?;
            if gzip {
                compress(&file, &path)?;
                // Later reads come from the open tar, which needs no name.
                std::fs::remove_file(&partial)?;
            } else {
                std::fs::rename(&partial, &path)?;
            }
            sync_parent(&path)?;
            Ok((members, end, file))
        })
        .await?;
        let mut state = self.state();
        state.tar = Some(Arc::new(tar));
        state.members = members;
        state.end = end;
        state.dirty = false;
        Ok(())
    }

    /// Removes the temporary files a killed writer of this archive left beside it. Only for the holder
    /// of the archive's write lock.
    pub async fn remove_stale_temporaries(&self) -> io::Result<()> {
        let mut compacting = partial_path(&self.path).into_os_string();
        compacting.push(COMPACT_SUFFIX);
        crate::durable::remove_if_present(Path::new(&compacting)).await?;
        crate::durable::remove_stale(parent_dir(&self.path), &compress_prefix(&self.path)).await
    }

    /// Gives back space at the end of the tar that holds no member.
    fn drop_trailing_holes(&self) {
        let mut state = self.state();
        let State { writer, end, .. } = &mut *state;
        let Some(writer) = writer else { return };
        while let Some(at) = writer.holes.iter().position(|(_, m)| m.end() == *end) {
            *end = writer.holes.swap_remove(at).1.start;
        }
    }
}

impl State {
    /// The state of an existing archive.
    fn read(path: &Path, gzip: bool) -> Result<State, ArchiveError> {
        let file = open_regular(path)?;
        let (tar, scanned) = if gzip {
            let temp_dir = std::env::temp_dir();
            let copy = tempfile::tempfile_in(&temp_dir)?;
            let input = GzDecoder::new(BufReader::new(file));
            let scanned = scan::scan_copying(input, &copy).map_err(|e| match e {
                ArchiveError::Io(e) => ArchiveError::Io(io::Error::new(
                    e.kind(),
                    format!(
                        "decompressing {} into {} (set TMPDIR to use another directory): {e}",
                        path.display(),
                        temp_dir.display()
                    ),
                )),
                other => other,
            })?;
            (copy, scanned)
        } else {
            let scanned = scan::scan(&file, ScanMode::Strict)?;
            (file, scanned)
        };
        Ok(State {
            tar: Some(Arc::new(tar)),
            members: scanned.members,
            end: scanned.end,
            ..State::default()
        })
    }

    /// The state of a partial archive left by an interrupted write: whole members whose content
    /// matches the digest in their name are kept, others become holes.
    fn resume(partial: &Path, content_digest: ContentDigest) -> Result<State, ArchiveError> {
        let file = File::options().read(true).write(true).open(partial)?;
        let scanned = scan::scan(&file, ScanMode::Resume)?;
        file.set_len(scanned.end)?;
        let mut members = HashMap::new();
        let mut holes = Vec::new();
        // A name written twice (two writes raced for one member) is kept once, from a copy that is
        // intact; the other region is a hole.
        let mut candidates: Vec<(String, scan::Member)> = scanned
            .members
            .into_iter()
            .chain(scanned.duplicates)
            .collect();
        candidates.sort_by_key(|(_, member)| member.start);
        for (name, member) in candidates {
            let intact = !members.contains_key(&name)
                && match content_digest(&name) {
                    Some(expected) => content_matches(&file, member, &expected)?,
                    None => true,
                };
            if intact {
                members.insert(name, member);
            } else {
                holes.push((name, member));
            }
        }
        drop_incomplete_manifests(&file, &mut members, &mut holes, content_digest)?;
        tracing::info!(
            partial = %partial.display(),
            kept = members.len(),
            damaged = holes.len(),
            "resuming an interrupted archive"
        );
        let file = Arc::new(file);
        let mut state = State {
            tar: Some(file.clone()),
            members,
            end: scanned.end,
            writer: Some(Writer {
                file,
                holes,
                writing: 0,
            }),
            dirty: true,
            ..State::default()
        };
        state.take_trailing_files(content_digest)?;
        if let Some(writer) = &state.writer {
            writer.file.set_len(state.end)?;
        }
        Ok(state)
    }

    /// Moves the files after the last blob (the indexes, written last) into memory, so that writing
    /// carries on where the blobs end and the indexes are written once, at the end.
    fn take_trailing_files(&mut self, content_digest: ContentDigest) -> io::Result<()> {
        let Some(file) = self.tar.clone() else {
            return Ok(());
        };
        let mut ordered: Vec<(String, Member)> =
            self.members.iter().map(|(n, m)| (n.clone(), *m)).collect();
        ordered.sort_by_key(|(_, m)| std::cmp::Reverse(m.start));
        for (name, member) in ordered {
            if content_digest(&name).is_some() || member.end() != self.end {
                break;
            }
            let mut bytes = vec![0u8; member.size as usize];
            file.read_exact_at(&mut bytes, member.data)?;
            self.pending.insert(name.clone(), Bytes::from(bytes));
            self.members.remove(&name);
            self.end = member.start;
        }
        Ok(())
    }
}

/// Drops the manifests whose successors are not all kept, until none is left: stores take a present
/// manifest to mean a complete graph below it, so a manifest whose blob was damaged must be written
/// again with it. (A subject may be missing: a referrer can outlive its subject.)
fn drop_incomplete_manifests(
    file: &File,
    members: &mut HashMap<String, Member>,
    holes: &mut Vec<(String, Member)>,
    content_digest: ContentDigest,
) -> io::Result<()> {
    let mut manifests: Vec<(String, Vec<Digest>)> = Vec::new();
    for (name, member) in members.iter() {
        if content_digest(name).is_none() || member.size > MANIFEST_MAX_BYTES as u64 {
            continue;
        }
        let mut bytes = vec![0u8; member.size as usize];
        file.read_exact_at(&mut bytes, member.data)?;
        if let Ok(manifest) = Manifest::parse(Bytes::from(bytes), None) {
            let subject = manifest.subject().map(|s| s.digest.clone());
            let needed = manifest
                .successors()
                .into_iter()
                .map(|d| d.digest.clone())
                .filter(|d| Some(d) != subject.as_ref())
                .collect();
            manifests.push((name.clone(), needed));
        }
    }
    loop {
        let present: HashSet<Digest> = members.keys().filter_map(|n| content_digest(n)).collect();
        let incomplete: Vec<String> = manifests
            .iter()
            .filter(|(name, needed)| {
                members.contains_key(name) && needed.iter().any(|d| !present.contains(d))
            })
            .map(|(name, _)| name.clone())
            .collect();
        if incomplete.is_empty() {
            return Ok(());
        }
        for name in incomplete {
            let member = members.remove(&name).expect("listed as kept");
            holes.push((name, member));
        }
    }
}

/// Where an archive is written until it is finished.
pub(crate) fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".wharf-partial");
    PathBuf::from(name)
}

async fn blocking<T: Send + 'static, E: From<io::Error> + Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| E::from(io::Error::other(e)))?
}

/// Opens `path` for reading, refusing anything but a regular file (a FIFO would block the open).
fn open_regular(path: &Path) -> io::Result<File> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    File::open(path)
}

/// The content of `member`, read by position from `tar` in chunks.
fn member_reader(tar: Arc<File>, member: Member) -> impl AsyncRead + Send + use<> {
    let chunks = futures_util::stream::try_unfold(
        (tar, member.data, member.data + member.size),
        |(tar, offset, end)| async move {
            if offset >= end {
                return Ok::<_, io::Error>(None);
            }
            let want = ((end - offset) as usize).min(READ_CHUNK);
            let reading = tar.clone();
            let chunk = blocking::<_, io::Error>(move || {
                let mut buffer = vec![0u8; want];
                reading.read_exact_at(&mut buffer, offset)?;
                Ok::<_, io::Error>(Bytes::from(buffer))
            })
            .await?;
            Ok(Some((chunk, (tar, offset + want as u64, end))))
        },
    );
    tokio_util::io::StreamReader::new(Box::pin(chunks))
}

fn content_matches(file: &File, member: Member, expected: &Digest) -> io::Result<bool> {
    let mut digester = expected.algorithm().digester();
    let mut buffer = vec![0u8; HASH_CHUNK];
    let mut offset = member.data;
    let end = member.data + member.size;
    while offset < end {
        let want = ((end - offset) as usize).min(buffer.len());
        file.read_exact_at(&mut buffer[..want], offset)?;
        digester.update(&buffer[..want]);
        offset += want as u64;
    }
    Ok(digester.finish() == *expected)
}

/// The header blocks of a regular file member: a GNU long-name entry first when the name needs it.
fn header_bytes(name: &str, size: u64) -> io::Result<Vec<u8>> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_mtime(MTIME);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(size);
    let mut builder = tar::Builder::new(Vec::new());
    // Appends only the header blocks: the content is written in place afterwards. The bytes are
    // taken before the builder would end the archive.
    builder.append_data(&mut header, name, io::empty())?;
    Ok(builder.get_ref().clone())
}

/// Rewrites `partial` with only its members, in their order, and returns where they now are.
fn compact(
    partial: &Path,
    members: HashMap<String, Member>,
) -> io::Result<(HashMap<String, Member>, u64)> {
    let mut ordered: Vec<(String, Member)> = members.into_iter().collect();
    ordered.sort_by_key(|(_, m)| m.start);
    let mut temp = partial.as_os_str().to_owned();
    temp.push(COMPACT_SUFFIX);
    let temp = PathBuf::from(temp);
    let mut input = File::open(partial)?;
    let mut output = BufWriter::new(File::create(&temp)?);
    let mut moved = HashMap::new();
    let mut end = 0;
    for (name, member) in ordered {
        input.seek(SeekFrom::Start(member.start))?;
        let length = member.end() - member.start;
        io::copy(&mut (&mut input).take(length), &mut output)?;
        let start = end;
        end += length;
        moved.insert(
            name,
            Member {
                start,
                data: start + (member.data - member.start),
                size: member.size,
            },
        );
    }
    output.flush()?;
    drop(output);
    std::fs::rename(&temp, partial)?;
    Ok((moved, end))
}

/// Suffix of the partial file's copy while it is compacted.
const COMPACT_SUFFIX: &str = ".compact";

/// Prefix of the temporary file a `.tgz` is compressed into, beside it: `.<name>.wharf-tmp-`.
fn compress_prefix(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    format!(".{name}{}", crate::durable::TEMP_PREFIX)
}

/// Compresses the finished tar into `path`, through a temporary file beside it.
fn compress(tar: &File, path: &Path) -> io::Result<()> {
    let temp = tempfile::Builder::new()
        .prefix(&compress_prefix(path))
        .tempfile_in(parent_dir(path))?;
    let mut encoder = GzEncoder::new(BufWriter::new(temp.as_file()), Compression::default());
    let mut tar = tar;
    tar.rewind()?;
    io::copy(&mut BufReader::new(tar), &mut encoder)?;
    encoder.finish()?.flush()?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn sync_parent(path: &Path) -> io::Result<()> {
    File::open(parent_dir(path))?.sync_all()
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_oci::Algorithm;

    fn digest_in_name(name: &str) -> Option<Digest> {
        Digest::parse(name.strip_prefix("blobs/")?).ok()
    }

    fn name_of(content: &[u8]) -> String {
        format!("blobs/{}", Algorithm::Sha256.digest(content))
    }

    fn fail(e: io::Error) -> StoreError {
        StoreError::new(crate::Op::Push, "test", e.into())
    }

    fn body(chunks: Vec<crate::Result<Bytes>>) -> ByteStream {
        Box::pin(futures_util::stream::iter(chunks))
    }

    async fn put(archive: &Archive, content: &'static [u8]) -> crate::Result<()> {
        let size = content.len() as u64;
        let chunks = vec![Ok(Bytes::from_static(content))];
        archive
            .write_stream(&name_of(content), size, body(chunks), fail)
            .await
    }

    async fn content(archive: &Archive, name: &str) -> Vec<u8> {
        archive.read(name).await.unwrap().unwrap().to_vec()
    }

    #[tokio::test]
    async fn a_failed_write_leaves_nothing_and_the_finished_tar_is_compact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        let archive = Archive::open_for_write(&path, false, digest_in_name)
            .await
            .unwrap();
        put(&archive, b"first").await.unwrap();
        let broken = body(vec![
            Ok(Bytes::from_static(b"half")),
            Err(fail(io::Error::other("cut"))),
        ]);
        let lost = name_of(b"halfway");
        assert!(archive.write_stream(&lost, 7, broken, fail).await.is_err());
        put(&archive, b"third").await.unwrap();
        archive.replace("index.json", Bytes::from_static(b"{}"));
        assert!(!path.exists(), "nothing appears before finishing");
        archive.finish().await.unwrap();
        assert!(!partial_path(&path).exists());

        let reread = Archive::open(&path, false).await.unwrap();
        assert_eq!(reread.len(&lost), None);
        assert_eq!(content(&reread, &name_of(b"first")).await, b"first");
        assert_eq!(content(&reread, &name_of(b"third")).await, b"third");
        assert_eq!(content(&reread, "index.json").await, b"{}");
        // Three members of one block each plus their headers, and the end marker: no hole left.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 * 1024 + 1024);
    }

    #[tokio::test]
    async fn a_failed_last_write_leaves_no_header_behind_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        let archive = Archive::open_for_write(&path, false, digest_in_name)
            .await
            .unwrap();
        put(&archive, b"first").await.unwrap();
        let broken = body(vec![Err(fail(io::Error::other("cut")))]);
        let lost = name_of(&[b'x'; 5000]);
        assert!(
            archive
                .write_stream(&lost, 5000, broken, fail)
                .await
                .is_err()
        );
        archive.finish().await.unwrap();
        let reread = Archive::open(&path, false).await.unwrap();
        assert_eq!(reread.len(&lost), None);
        assert_eq!(content(&reread, &name_of(b"first")).await, b"first");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1024 + 1024);
    }

    #[tokio::test]
    async fn racing_writes_of_one_member_store_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        let archive = Archive::open_for_write(&path, false, digest_in_name)
            .await
            .unwrap();
        let (a, b) = tokio::join!(put(&archive, b"same"), put(&archive, b"same"));
        a.unwrap();
        b.unwrap();
        archive.finish().await.unwrap();
        let reread = Archive::open(&path, false).await.unwrap();
        assert_eq!(content(&reread, &name_of(b"same")).await, b"same");
    }

    #[tokio::test]
    async fn resuming_keeps_whole_members_and_drops_damaged_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        {
            let archive = Archive::open_for_write(&path, false, digest_in_name)
                .await
                .unwrap();
            put(&archive, b"kept").await.unwrap();
            put(&archive, b"damaged").await.unwrap();
            put(&archive, b"cut off").await.unwrap();
        }
        let partial = partial_path(&path);
        let mut bytes = std::fs::read(&partial).unwrap();
        bytes[1024 + 512] ^= 1;
        bytes.truncate(2048 + 512 + 3);
        std::fs::write(&partial, bytes).unwrap();

        let archive = Archive::open_for_write(&path, false, digest_in_name)
            .await
            .unwrap();
        assert_eq!(archive.len(&name_of(b"kept")), Some(4));
        assert_eq!(archive.len(&name_of(b"damaged")), None);
        assert_eq!(archive.len(&name_of(b"cut off")), None);
        put(&archive, b"damaged").await.unwrap();
        put(&archive, b"cut off").await.unwrap();
        archive.finish().await.unwrap();
        let reread = Archive::open(&path, false).await.unwrap();
        for member in [&b"kept"[..], b"damaged", b"cut off"] {
            assert_eq!(content(&reread, &name_of(member)).await, member);
        }
    }
}
