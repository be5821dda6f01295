//! Tar archives of a directory, read with every entry checked and written deterministically.
//!
//! Reading refuses absolute paths, `..` components, links, devices and anything but plain files and
//! directories, so nothing lands outside the target directory; sizes come from the tar headers and a
//! short entry is an error.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// Modification time written into every entry, as OCM does, so equal content gives equal archives.
const MTIME: u64 = 1_640_995_200; // 2022-01-01T00:00:00Z

/// Why an archive cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// An entry that could write outside the target or is not a plain file or directory.
    #[error("archive entry {path:?} refused: {reason}")]
    Unsafe {
        /// The entry's path as stored.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// The archive is damaged.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Extracts `archive` (gzip-compressed when `gzip`) into `target`, refusing unsafe entries.
pub fn extract(archive: &Path, gzip: bool, target: &Path) -> Result<(), ArchiveError> {
    let file = File::open(archive)?;
    let reader: Box<dyn Read> = if gzip {
        Box::new(GzDecoder::new(io::BufReader::new(file)))
    } else {
        Box::new(io::BufReader::new(file))
    };
    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries()? {
        let mut entry = entry?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let refuse = |reason| ArchiveError::Unsafe {
            path: raw.clone(),
            reason,
        };
        let relative =
            safe_relative(&raw).ok_or_else(|| refuse("absolute path or '..' component"))?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            std::fs::create_dir_all(target.join(&relative))?;
            continue;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            return Err(refuse("links are not allowed"));
        }
        if !kind.is_file() {
            return Err(refuse("only files and directories are allowed"));
        }
        let destination = target.join(&relative);
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let expected = entry.header().size()?;
        let mut out = File::create(&destination)?;
        let copied = io::copy(&mut entry, &mut out)?;
        if copied != expected {
            return Err(refuse("shorter than its header says"));
        }
    }
    Ok(())
}

/// `path` as a relative path with only normal components, or `None`.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Writes `files` (paths relative to `source`, in this order) as a tar to `output`.
pub fn write(source: &Path, files: &[PathBuf], gzip: bool, output: &Path) -> io::Result<()> {
    let file = BufWriter::new(File::create(output)?);
    let writer: Box<dyn Write> = if gzip {
        Box::new(GzEncoder::new(file, Compression::default()))
    } else {
        Box::new(file)
    };
    let mut tar = tar::Builder::new(writer);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut directories: Vec<PathBuf> = Vec::new();
    for relative in files {
        if let Some(parent) = relative.parent().filter(|p| !p.as_os_str().is_empty())
            && !directories.iter().any(|d| d == parent)
        {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_mtime(MTIME);
            header.set_size(0);
            tar.append_data(&mut header, parent, io::empty())?;
            directories.push(parent.to_owned());
        }
        let mut content = File::open(source.join(relative))?;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_mtime(MTIME);
        header.set_size(content.metadata()?.len());
        tar.append_data(&mut header, relative, &mut content)?;
    }
    let mut writer = tar.into_inner()?;
    writer.flush()?;
    drop(writer);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_normal_relative_paths_pass() {
        assert_eq!(
            safe_relative("blobs/sha256.x"),
            Some(PathBuf::from("blobs/sha256.x"))
        );
        assert_eq!(safe_relative("./a"), Some(PathBuf::from("a")));
        assert_eq!(safe_relative("../a"), None);
        assert_eq!(safe_relative("a/../../b"), None);
        assert_eq!(safe_relative("/etc/passwd"), None);
        assert_eq!(safe_relative(""), None);
    }
}
