//! Appending network data to a file in large blocks, with the disk starting on each block at once.
//!
//! The final fsync of an upload must wait for every byte to reach the disk. Asking the kernel to begin
//! writing each block as soon as it is handed over lets the disk work while the rest of the upload is
//! still on the network, so that fsync finds little left to do.

use std::io::{self, Write};
use std::path::Path;

use bytes::BytesMut;

/// Bytes gathered before one write to the file.
const BLOCK: usize = 1024 * 1024;

/// Appends to a file in blocks written on the blocking pool.
pub struct BlockWriter {
    file: Option<std::fs::File>,
    buffer: BytesMut,
    /// File offset of the next write.
    position: u64,
}

impl BlockWriter {
    /// Opens `path` for appending.
    pub async fn append(path: &Path) -> io::Result<BlockWriter> {
        let file = tokio::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .await?
            .into_std()
            .await;
        let position = file.metadata()?.len();
        Ok(BlockWriter {
            file: Some(file),
            buffer: BytesMut::with_capacity(BLOCK),
            position,
        })
    }

    /// Queues `chunk`, writing a block once enough has gathered.
    pub async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.buffer.extend_from_slice(chunk);
        if self.buffer.len() >= BLOCK {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes whatever is queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let block = self.buffer.split().freeze();
        let mut file = self
            .file
            .take()
            .expect("the file is back after every write");
        let offset = self.position;
        let (file, result) = tokio::task::spawn_blocking(move || {
            let result = file.write_all(&block);
            if result.is_ok() {
                start_writeback(&file, offset, block.len() as u64);
            }
            (file, result.map(|()| block.len() as u64))
        })
        .await
        .map_err(io::Error::other)?;
        self.file = Some(file);
        self.position += result?;
        Ok(())
    }
}

/// Asks the kernel to start writing a range to disk without waiting for it.
///
/// On Linux, `POSIX_FADV_DONTNEED` starts writeback of the range's dirty pages (without waiting) and
/// drops only pages that are already clean, so the block just written stays cached for readers.
#[cfg(target_os = "linux")]
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use rustix::fs::{Advice, fadvise};
    // Only a hint: an error here changes nothing about correctness, which the final fsync provides.
    let _ = fadvise(
        file,
        offset,
        std::num::NonZeroU64::new(len),
        Advice::DontNeed,
    );
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &std::fs::File, _offset: u64, _len: u64) {}
