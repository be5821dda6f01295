//! Indexing a tar: where each member's header and content are, with every entry checked.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path};

use super::ArchiveError;

/// Tar block size; headers and content are padded to it.
pub(crate) const BLOCK: u64 = 512;
/// Write buffer when copying a decompressed tar.
const COPY_BUFFER: usize = 1024 * 1024;

/// `size` rounded up to whole blocks.
pub(crate) fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK) * BLOCK
}

/// Where a member lives in the tar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    /// First byte of its headers (a GNU long-name entry included).
    pub start: u64,
    /// First byte of its content.
    pub data: u64,
    /// Content length.
    pub size: u64,
}

impl Member {
    /// One past its padded content: where the next entry starts.
    pub fn end(&self) -> u64 {
        self.data + padded(self.size)
    }
}

/// How to treat what does not look right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanMode {
    /// A finished archive: anything unsafe, damaged or truncated is an error.
    Strict,
    /// A partial archive wharf was writing when it stopped: keep the whole entries before the first
    /// damaged or cut-off one.
    Resume,
}

/// The members of a tar and where the next entry would go.
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    pub members: HashMap<String, Member>,
    /// Members whose name an earlier member already has: in a partial archive, a region another
    /// write of the same member lost the race for. Not part of the archive.
    pub duplicates: Vec<(String, Member)>,
    /// End of the last whole member.
    pub end: u64,
}

/// Indexes the plain tar in `file`. Members are plain files; directories and PAX global headers are
/// passed over; links, devices and paths that are absolute or climb with `..` are refused in strict
/// mode.
pub(crate) fn scan(file: &File, mode: ScanMode) -> Result<Scanned, ArchiveError> {
    let length = file.metadata()?.len();
    let mut tar = tar::Archive::new(BufReader::new(file.try_clone()?));
    let mut scanned = Scanned::default();
    let entries = tar.entries_with_seek()?;
    if let Err(e) = index(entries, &mut scanned, mode, Some(length)) {
        if scanned.end == 0 && matches!(e, ArchiveError::Damaged(_)) {
            return Err(ArchiveError::Damaged(not_a_tar(file)?));
        }
        return Err(e);
    }
    if mode == ScanMode::Strict && !ends_with_zero_block(file, scanned.end, length)? {
        return Err(ArchiveError::Damaged(
            "no end-of-archive marker: the file is cut off".into(),
        ));
    }
    Ok(scanned)
}

/// Indexes a tar as it streams out of `input` (a gzip decoder), copying it into `copy`, which then
/// holds the tar up to its last member followed by an end-of-archive marker. Every entry is checked
/// as it arrives, and nothing after the end-of-archive marker is read, so a stream of zeros or of
/// garbage stops at once, however large it would grow.
pub(crate) fn scan_copying(input: impl Read, copy: &File) -> Result<Scanned, ArchiveError> {
    let mut copying = Copying {
        input,
        output: BufWriter::with_capacity(COPY_BUFFER, copy),
        read_error: None,
        write_error: None,
    };
    let mut scanned = Scanned::default();
    let indexed = {
        let mut tar = tar::Archive::new(&mut copying);
        let entries = tar.entries()?;
        index(entries, &mut scanned, ScanMode::Strict, None)
    };
    let flushed = copying.output.flush();
    if let Some(e) = copying.write_error.take() {
        return Err(ArchiveError::Io(e));
    }
    flushed?;
    if let Some(e) = copying.read_error.take() {
        return Err(ArchiveError::Damaged(format!("gzip: {e}")));
    }
    if let Err(e) = indexed {
        if scanned.end == 0 && matches!(e, ArchiveError::Damaged(_)) {
            return Err(ArchiveError::Damaged("not a tar archive".into()));
        }
        return Err(e);
    }
    copy.set_len(scanned.end)?;
    copy.set_len(scanned.end + 2 * BLOCK)?;
    Ok(scanned)
}

/// Reads from `input`, writing what it read to `output`; failures of either side are kept apart, so
/// a full disk is not reported as a damaged archive.
struct Copying<R, W> {
    input: R,
    output: W,
    read_error: Option<io::Error>,
    write_error: Option<io::Error>,
}

impl<R: Read, W: Write> Read for Copying<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.input.read(buf) {
            Ok(n) => n,
            Err(e) => {
                let message = e.to_string();
                self.read_error = Some(e);
                return Err(io::Error::other(message));
            }
        };
        if let Err(e) = self.output.write_all(&buf[..n]) {
            let message = e.to_string();
            self.write_error = Some(e);
            return Err(io::Error::other(message));
        }
        Ok(n)
    }
}

/// Adds every entry to `scanned`, checking each; `length` is the file's when known.
fn index<R: Read>(
    entries: tar::Entries<'_, R>,
    scanned: &mut Scanned,
    mode: ScanMode,
    length: Option<u64>,
) -> Result<(), ArchiveError> {
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if mode == ScanMode::Resume => {
                tracing::debug!(error = %e, "partial archive ends here");
                break;
            }
            Err(e) => {
                return Err(ArchiveError::Damaged(format!(
                    "after byte {}: {}",
                    scanned.end,
                    printable(&e.to_string())
                )));
            }
        };
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let member = Member {
            start: scanned.end,
            data: entry.raw_file_position(),
            size: entry.size(),
        };
        let refuse = |reason| ArchiveError::Unsafe {
            path: raw.clone(),
            reason,
        };
        if length.is_some_and(|length| member.data + member.size > length) {
            if mode == ScanMode::Resume {
                break;
            }
            return Err(refuse("cut off: the archive ends inside it"));
        }
        let kind = entry.header().entry_type();
        let checked = if kind.is_dir() || kind.is_pax_global_extensions() {
            Ok(None)
        } else if kind.is_symlink() || kind.is_hard_link() {
            Err(refuse("links are not allowed"))
        } else if !kind.is_file() {
            Err(refuse("only files and directories are allowed"))
        } else {
            match normal_name(&raw) {
                None => Err(refuse("absolute path or '..' component")),
                Some(name) => Ok(Some(name)),
            }
        };
        match checked {
            Ok(Some(name)) if scanned.members.contains_key(&name) => {
                if mode == ScanMode::Strict {
                    return Err(refuse("the archive holds it twice"));
                }
                scanned.duplicates.push((name, member));
            }
            Ok(Some(name)) => {
                scanned.members.insert(name, member);
            }
            Ok(None) => {}
            Err(_) if mode == ScanMode::Resume => break,
            Err(e) => return Err(e),
        }
        scanned.end = member.end();
    }
    Ok(())
}

/// Why a file that does not start with a tar header is not one.
fn not_a_tar(file: &File) -> io::Result<String> {
    let mut magic = [0u8; 2];
    let gzip = file.read_exact_at(&mut magic, 0).is_ok() && magic == [0x1f, 0x8b];
    Ok(if gzip {
        "not a tar archive: it is gzip-compressed (oci-archive is a plain tar; a CTF must be named \
         .tgz or .tar.gz)"
            .into()
    } else {
        "not a tar archive".into()
    })
}

/// The tar reader quotes raw header bytes; keep messages printable.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || c == '\u{fffd}' {
                '?'
            } else {
                c
            }
        })
        .collect()
}

fn ends_with_zero_block(file: &File, end: u64, length: u64) -> io::Result<bool> {
    if end + BLOCK > length {
        return Ok(false);
    }
    let mut block = [0u8; BLOCK as usize];
    file.read_exact_at(&mut block, end)?;
    Ok(block.iter().all(|b| *b == 0))
}

/// `path` as a relative `a/b/c` name with only normal components, or `None`.
pub(crate) fn normal_name(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_normal_relative_paths_pass() {
        assert_eq!(
            normal_name("blobs/sha256.x").as_deref(),
            Some("blobs/sha256.x")
        );
        assert_eq!(normal_name("./a//b").as_deref(), Some("a/b"));
        assert_eq!(normal_name("../a"), None);
        assert_eq!(normal_name("a/../../b"), None);
        assert_eq!(normal_name("/etc/passwd"), None);
        assert_eq!(normal_name(""), None);
    }

    #[test]
    fn padding_is_to_whole_blocks() {
        assert_eq!(padded(0), 0);
        assert_eq!(padded(1), 512);
        assert_eq!(padded(512), 512);
        assert_eq!(padded(513), 1024);
    }
}
