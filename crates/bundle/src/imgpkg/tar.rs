//! Tars as imgpkg writes them, byte for byte: Go's `archive/tar` headers (USTAR, falling back to
//! PAX records for names or sizes USTAR cannot hold), zero times and owners, no end-of-archive
//! padding beyond the two zero blocks. Matching Go's bytes is what makes the uncompressed digest
//! (`diff_id`) of a layer wharf writes equal to imgpkg's for the same files.
//!
//! And the way back: a layer's bytes decompressed whatever the compression (gzip, zstd or none),
//! as imgpkg's registry library sniffs it.

use std::io::{self, BufRead, Read, Write};

const BLOCK: usize = 512;
const NAME_SIZE: usize = 100;
const PREFIX_SIZE: usize = 155;

/// The entry types imgpkg writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// A directory (type `5`).
    Directory,
    /// A regular file (type `0`).
    File,
}

/// Writes a tar the way Go's `archive/tar` writes the headers imgpkg gives it.
pub(crate) struct GoTar<W: Write> {
    out: W,
}

impl<W: Write> GoTar<W> {
    pub fn new(out: W) -> GoTar<W> {
        GoTar { out }
    }

    /// A directory entry; `name` without a trailing slash, as imgpkg names them (`.` for the root).
    pub fn directory(&mut self, name: &str, mode: u32) -> io::Result<()> {
        self.header(name, mode, 0, EntryKind::Directory)
    }

    /// A file entry of `size` bytes read from `content`, which must hold exactly that many.
    pub fn file(&mut self, name: &str, mode: u32, size: u64, content: impl Read) -> io::Result<()> {
        self.header(name, mode, size, EntryKind::File)?;
        let copied = io::copy(&mut content.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name}: expected {size} bytes, read {copied} (did it change?)"),
            ));
        }
        self.pad(size)
    }

    /// Writes the end of the archive and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; BLOCK * 2])?;
        Ok(self.out)
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rest = (size % BLOCK as u64) as usize;
        if rest != 0 {
            self.out.write_all(&[0u8; BLOCK][..BLOCK - rest])?;
        }
        Ok(())
    }

    fn header(&mut self, name: &str, mode: u32, size: u64, kind: EntryKind) -> io::Result<()> {
        let size_fits = size < 1 << 33;
        let split = if name.len() > NAME_SIZE {
            split_ustar_path(name)
        } else {
            Some(("", name))
        };
        let flag = match kind {
            EntryKind::Directory => b'5',
            EntryKind::File => b'0',
        };
        match split {
            Some((prefix, rest)) if name.is_ascii() && size_fits => {
                let mut block = template(rest, mode, size, flag);
                put_str(&mut block[345..500], prefix);
                self.write_block(block)
            }
            _ => {
                let mut records = Vec::new();
                if !(name.is_ascii() && split.is_some()) {
                    records.push(pax_record("path", name));
                }
                if !size_fits {
                    records.push(pax_record("size", &size.to_string()));
                }
                self.pax(name, &records.concat())?;
                // Go cuts the name to its field, minding a trailing slash where it cuts.
                let ascii: String = name.chars().filter(char::is_ascii).collect();
                let block = template(&ascii, mode, if size_fits { size } else { 0 }, flag);
                self.write_block(block)
            }
        }
    }

    /// The extended header Go writes before an entry USTAR cannot describe.
    fn pax(&mut self, name: &str, records: &str) -> io::Result<()> {
        let (dir, file) = match name.rfind('/') {
            Some(i) => (&name[..=i], &name[i + 1..]),
            None => ("", name),
        };
        let joined = clean_join(dir, file);
        let ascii: String = joined.chars().filter(char::is_ascii).collect();
        let shown = ascii[..ascii.len().min(NAME_SIZE)].trim_end_matches('/');
        let mut block = [0u8; BLOCK];
        block[156] = b'x';
        put_str(&mut block[0..100], shown);
        put_octal(&mut block[100..108], 0);
        put_octal(&mut block[108..116], 0);
        put_octal(&mut block[116..124], 0);
        put_octal(&mut block[124..136], records.len() as u64);
        put_octal(&mut block[136..148], 0);
        self.write_block(block)?;
        self.out.write_all(records.as_bytes())?;
        self.pad(records.len() as u64)
    }

    fn write_block(&mut self, mut block: [u8; BLOCK]) -> io::Result<()> {
        block[257..263].copy_from_slice(b"ustar\0");
        block[263..265].copy_from_slice(b"00");
        block[148..156].fill(b' ');
        let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
        put_octal(&mut block[148..155], sum);
        block[155] = b' ';
        self.out.write_all(&block)
    }
}

/// The fields Go fills for every entry: name, mode, owner 0, size, time 0, type, device 0.
fn template(name: &str, mode: u32, size: u64, flag: u8) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    put_str(&mut block[0..100], name);
    put_octal(&mut block[100..108], u64::from(mode));
    put_octal(&mut block[108..116], 0);
    put_octal(&mut block[116..124], 0);
    put_octal(&mut block[124..136], size);
    put_octal(&mut block[136..148], 0);
    block[156] = flag;
    put_octal(&mut block[329..337], 0);
    put_octal(&mut block[337..345], 0);
    block
}

/// Go's `formatString`: the bytes, cut to the field, NUL-terminated when shorter; a name cut right
/// after a `/` loses its trailing slashes, so that no reader takes a file for a directory.
fn put_str(field: &mut [u8], text: &str) {
    let n = text.len().min(field.len());
    field[..n].copy_from_slice(&text.as_bytes()[..n]);
    if n < field.len() {
        field[n] = 0;
    } else if text.len() > field.len() && field[n - 1] == b'/' {
        let kept = field[..n - 1].iter().rposition(|&b| b != b'/');
        field[kept.map_or(0, |i| i + 1)] = 0;
    }
}

/// Go's `formatOctal`: zero-padded octal leaving room for a NUL.
fn put_octal(field: &mut [u8], value: u64) {
    let digits = format!("{value:o}");
    let width = field.len() - 1;
    put_str(field, &format!("{digits:0>width$}"));
}

/// Go's `splitUSTARPath`: a name too long for the name field split at a `/` into prefix and name.
fn split_ustar_path(name: &str) -> Option<(&str, &str)> {
    if name.len() <= NAME_SIZE || !name.is_ascii() {
        return None;
    }
    let mut length = name.len();
    if length > PREFIX_SIZE + 1 {
        length = PREFIX_SIZE + 1;
    } else if name.as_bytes()[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].rfind('/')?;
    let (prefix, rest) = (&name[..i], &name[i + 1..]);
    if i == 0 || rest.is_empty() || rest.len() > NAME_SIZE || prefix.len() > PREFIX_SIZE {
        return None;
    }
    Some((prefix, rest))
}

/// Go's `path.Join(dir, "PaxHeaders.0", file)`, for the names Go gives extended headers.
fn clean_join(dir: &str, file: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in dir
        .split('/')
        .chain(["PaxHeaders.0"])
        .chain(file.split('/'))
    {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if dir.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

/// One PAX record, `"<length> <key>=<value>\n"`, its length counting itself.
fn pax_record(key: &str, value: &str) -> String {
    let body = key.len() + value.len() + 3;
    let mut size = body + body.to_string().len();
    if size.to_string().len() + body != size {
        size = body + size.to_string().len();
    }
    format!("{size} {key}={value}\n")
}

/// A layer's bytes, decompressed as its first bytes say: gzip, zstd, or a plain tar.
pub(crate) fn decompressed<'a>(mut raw: impl BufRead + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let head = raw.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(raw))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = ruzstd::decoding::StreamingDecoder::new(raw)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Box::new(decoder)
    } else {
        Box::new(raw)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `tar tvf` and Python's tarfile make of our bytes; Go's exact header bytes are pinned by
    /// the record's test vector.
    #[test]
    fn writes_tars_other_readers_read() {
        let long_dir = "d".repeat(120);
        let long_name = format!("{long_dir}/file.txt");
        let unicode = "répertoire/naïve.txt";
        let mut tar = GoTar::new(Vec::new());
        tar.directory(".", 0o700).unwrap();
        tar.file("a.txt", 0o600, 3, &b"abc"[..]).unwrap();
        tar.file(&long_name, 0o600, 1, &b"x"[..]).unwrap();
        tar.file(unicode, 0o600, 2, &b"yz"[..]).unwrap();
        let bytes = tar.finish().unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let entries: Vec<(String, Vec<u8>)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let mut content = Vec::new();
                e.read_to_end(&mut content).unwrap();
                (name, content)
            })
            .collect();
        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [".", "a.txt", long_name.as_str(), unicode]);
        assert_eq!(entries[3].1, b"yz");
    }

    #[test]
    fn cuts_names_as_go_does() {
        let mut field = [0xffu8; 8];
        put_str(&mut field, "abc");
        assert_eq!(&field[..4], b"abc\0");
        let mut field = [0u8; 8];
        put_str(&mut field, "abcd//efghij");
        assert_eq!(&field, b"abcd//ef");
        let mut field = [0u8; 4];
        put_str(&mut field, "ab//cd");
        assert_eq!(&field, b"ab\0/");
    }

    #[test]
    fn pax_records_count_their_own_length() {
        assert_eq!(pax_record("path", "a"), "9 path=a\n");
        // 98 bytes around the length: two digits would make 100, so it takes three.
        let record = pax_record("path", &"x".repeat(91));
        assert_eq!(record.len(), 101);
        assert!(record.starts_with("101 "));
    }

    #[test]
    fn splits_long_names_like_go() {
        let name = format!("{}/{}", "p".repeat(150), "n".repeat(90));
        assert_eq!(split_ustar_path(&name), Some((&name[..150], &name[151..])));
        assert_eq!(split_ustar_path(&"n".repeat(101)), None);
        assert_eq!(split_ustar_path("short"), None);
    }

    #[test]
    fn decompresses_whatever_the_compression() {
        let plain = b"tar bytes".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        // A zstd frame holding "tar bytes" as one raw block.
        let mut zstd = vec![0x28, 0xb5, 0x2f, 0xfd, 0x20, plain.len() as u8];
        zstd.extend_from_slice(&[(plain.len() as u8) << 3 | 1, 0, 0]);
        zstd.extend_from_slice(&plain);
        for input in [plain.clone(), gz, zstd] {
            let mut out = Vec::new();
            decompressed(&input[..])
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, plain);
        }
    }
}
