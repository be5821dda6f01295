//! Indexing a tar: where each member's header and content are, with every entry checked.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Component, Path};

use super::ArchiveError;

/// Tar block size; headers and content are padded to it.
pub(crate) const BLOCK: u64 = 512;

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
    /// End of the last whole member.
    pub end: u64,
}

/// Indexes the tar at `path`. Members are plain files; directories and PAX global headers are passed
/// over; links, devices and paths that are absolute or climb with `..` are refused in strict mode.
pub(crate) fn scan(path: &Path, mode: ScanMode) -> Result<Scanned, ArchiveError> {
    let mut file = File::open(path)?;
    let length = file.metadata()?.len();
    let mut tar = tar::Archive::new(BufReader::new(file.try_clone()?));
    let mut scanned = Scanned::default();
    let mut entries = tar.entries_with_seek()?;
    loop {
        let entry = match entries.next() {
            None => break,
            Some(Ok(entry)) => entry,
            Some(Err(e)) if mode == ScanMode::Resume => {
                tracing::debug!(path = %path.display(), error = %e, "partial archive ends here");
                break;
            }
            Some(Err(_)) if scanned.end == 0 => {
                let mut magic = [0u8; 2];
                file.seek(SeekFrom::Start(0))?;
                let gzip = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
                return Err(ArchiveError::Damaged(if gzip {
                    "not a tar archive: it is gzip-compressed (oci-archive is a plain tar; a CTF \
                     must be named .tgz or .tar.gz)"
                        .into()
                } else {
                    "not a tar archive".into()
                }));
            }
            Some(Err(e)) => {
                // The tar reader quotes raw header bytes; keep messages printable.
                let reason: String = e
                    .to_string()
                    .chars()
                    .map(|c| {
                        if c.is_control() || c == '\u{fffd}' {
                            '?'
                        } else {
                            c
                        }
                    })
                    .collect();
                return Err(ArchiveError::Damaged(format!(
                    "after byte {}: {reason}",
                    scanned.end
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
        if member.data + member.size > length {
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
                Some(name) if scanned.members.contains_key(&name) => {
                    Err(refuse("the archive holds it twice"))
                }
                Some(name) => Ok(Some(name)),
            }
        };
        match checked {
            Ok(Some(name)) => {
                scanned.members.insert(name, member);
            }
            Ok(None) => {}
            Err(_) if mode == ScanMode::Resume => break,
            Err(e) => return Err(e),
        }
        scanned.end = member.end();
    }
    if mode == ScanMode::Strict && !ends_with_zero_block(&mut file, scanned.end, length)? {
        return Err(ArchiveError::Damaged(
            "no end-of-archive marker: the file is cut off".into(),
        ));
    }
    Ok(scanned)
}

fn ends_with_zero_block(file: &mut File, end: u64, length: u64) -> io::Result<bool> {
    if end + BLOCK > length {
        return Ok(false);
    }
    let mut block = [0u8; BLOCK as usize];
    file.seek(SeekFrom::Start(end))?;
    file.read_exact(&mut block)?;
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
