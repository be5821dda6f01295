//! One writer per layout, archive or CTF: an advisory lock on a file beside it, `<path>.wharf-lock`,
//! held while the store is open for writing, across processes.
//!
//! The lock file holds the holder's process id (for the message a second writer sees) and is removed
//! when the lock is released. A process that locked a file which was removed meanwhile (it opened the
//! old file before the holder released it) notices that the path now names another file, and tries
//! again, so two writers never both hold a lock.

use std::fs::{File, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::{ErrorKind, Op, Result, StoreError};

/// What a writer does when another process is writing the same store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenLocked {
    /// Wait until the other writer is done, saying so on stderr.
    #[default]
    Wait,
    /// Fail at once.
    Fail,
}

/// An exclusive lock on writing one store; released when dropped.
#[derive(Debug)]
pub(crate) struct WriteLock {
    /// Locked while open.
    _file: File,
    path: PathBuf,
}

impl WriteLock {
    /// Locks the store at `store` (a directory or file, which need not exist yet). `location` names
    /// it in messages.
    pub async fn acquire(store: &Path, location: &str, when: WhenLocked) -> Result<WriteLock> {
        let path = lock_path(store);
        let target = location.to_owned();
        tokio::task::spawn_blocking(move || acquire(path, &target, when))
            .await
            .map_err(|e| StoreError::new(Op::Open, location, ErrorKind::Io(io::Error::other(e))))?
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        // Removed while still locked: a process waiting on this file finds it gone and starts over.
        let _ = std::fs::remove_file(&self.path);
    }
}

fn acquire(path: PathBuf, location: &str, when: WhenLocked) -> Result<WriteLock> {
    let fail = |kind: ErrorKind| StoreError::new(Op::Open, location, kind);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| fail(e.into()))?;
    }
    let mut announced = false;
    loop {
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| fail(e.into()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = holder(&mut file);
                if when == WhenLocked::Fail {
                    return Err(fail(ErrorKind::Busy(format!(
                        "another wharf process{holder} is writing it; wait for it to finish or \
                         leave out --no-wait to wait"
                    ))));
                }
                if !announced {
                    tracing::warn!(
                        "waiting for another wharf process{holder} to finish writing {location}"
                    );
                    announced = true;
                }
                file.lock().map_err(|e| fail(e.into()))?;
            }
            Err(TryLockError::Error(e)) => return Err(fail(e.into())),
        }
        if !names_same_file(&file, &path) {
            continue;
        }
        file.set_len(0).map_err(|e| fail(e.into()))?;
        file.rewind().map_err(|e| fail(e.into()))?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(|e| fail(e.into()))?;
        return Ok(WriteLock { _file: file, path });
    }
}

/// ` (pid N)` from the lock file, if it says.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    match text.trim().parse::<u32>() {
        Ok(pid) => format!(" (pid {pid})"),
        Err(_) => String::new(),
    }
}

/// True while `path` still names the file `file` has open.
fn names_same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

/// `<store>.wharf-lock`, beside the store (`out/` and `out` alike give `out.wharf-lock`).
pub(crate) fn lock_path(store: &Path) -> PathBuf {
    let named = match store.file_name() {
        Some(_) => store.to_owned(),
        // `.` or `..`: name the directory itself.
        None => std::fs::canonicalize(store).unwrap_or_else(|_| store.to_owned()),
    };
    let mut name = named.file_name().unwrap_or_default().to_owned();
    name.push(".wharf-lock");
    named.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_sits_beside_the_store() {
        assert_eq!(lock_path(Path::new("out")), Path::new("out.wharf-lock"));
        assert_eq!(
            lock_path(Path::new("a/out/")),
            Path::new("a/out.wharf-lock")
        );
        assert_eq!(
            lock_path(Path::new("/x/b.tgz")),
            Path::new("/x/b.tgz.wharf-lock")
        );
        let here = std::env::current_dir().unwrap();
        assert_eq!(
            lock_path(Path::new(".")),
            here.with_file_name(format!(
                "{}.wharf-lock",
                here.file_name().unwrap().to_string_lossy()
            ))
        );
    }

    #[tokio::test]
    async fn a_second_writer_fails_or_waits_until_the_first_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("layout");
        let first = WriteLock::acquire(&store, "oci:layout", WhenLocked::Fail)
            .await
            .unwrap();
        let refused = WriteLock::acquire(&store, "oci:layout", WhenLocked::Fail)
            .await
            .unwrap_err();
        let message = crate::chain(&refused);
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { WriteLock::acquire(&store, "oci:layout", WhenLocked::Wait).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "the second writer waits");
        drop(first);
        let second = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the second writer gets the lock")
            .unwrap()
            .unwrap();
        assert!(names_same_file(&second._file, &lock_path(&store)));
        drop(second);
        assert!(!lock_path(&store).exists(), "released locks leave no file");
    }
}
