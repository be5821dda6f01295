//! What wharf runs learn about registries, kept between runs (as containers/image keeps its
//! blob-info cache): for each registry, the repositories where each blob was last seen — pushed,
//! pulled, mounted or found there — so that a later run into a new repository mounts the blob
//! instead of uploading it again; and facts about each registry (does it have the referrers API?),
//! so that they are not probed again.
//!
//! It is one SQLite database under the user's cache directory, in WAL mode, so several wharf
//! processes read and write it at once. It is bounded (the oldest entries beyond
//! [`MAX_LOCATIONS`] are dropped), facts expire after [`FACT_LIFETIME`], and it is best effort: a
//! cache that cannot be opened, read or written is reported once and answers "nothing known"; the
//! run goes on without it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use wharf_oci::Digest;
use wharf_store::Recall;

/// Blob locations kept; beyond this the least recently seen are dropped.
pub const MAX_LOCATIONS: i64 = 200_000;
/// How long a fact about a registry is trusted: registries get upgraded.
pub const FACT_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// The layout of the tables; a database of another version is emptied and set up anew.
const SCHEMA_VERSION: i64 = 1;
/// Writes between two checks of the size bound.
const PRUNE_EVERY: u64 = 512;
/// How long a write waits for another process's write to end.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The cache file: `$XDG_CACHE_HOME/wharf/cache.sqlite`, else `~/.cache/wharf/cache.sqlite`.
pub fn default_path() -> Option<PathBuf> {
    let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let base = non_empty("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|home| Path::new(&home).join(".cache")))?;
    Some(base.join("wharf").join("cache.sqlite"))
}

/// The cache in one file, opened on first use.
pub struct BlobCache {
    path: PathBuf,
    limit: i64,
    connection: OnceLock<Option<Mutex<Connection>>>,
    writes: AtomicU64,
    warned: AtomicBool,
}

impl BlobCache {
    /// The cache kept in `path` (created with its directory when first used).
    pub fn at(path: PathBuf) -> BlobCache {
        BlobCache::bounded(path, MAX_LOCATIONS)
    }

    /// The cache in `path`, keeping at most `limit` blob locations.
    pub fn bounded(path: PathBuf, limit: i64) -> BlobCache {
        BlobCache {
            path,
            limit,
            connection: OnceLock::new(),
            writes: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        }
    }

    /// Where the cache is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on the database; `None` (reported once) when it cannot be used.
    fn with<T>(&self, work: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<T> {
        let connection = self
            .connection
            .get_or_init(|| match open_or_replace(&self.path) {
                Ok(connection) => Some(Mutex::new(connection)),
                Err(e) => {
                    self.warn(&e.to_string());
                    None
                }
            })
            .as_ref()?;
        let connection = connection.lock().unwrap_or_else(|e| e.into_inner());
        match work(&connection) {
            Ok(value) => Some(value),
            Err(e) => {
                self.warn(&e.to_string());
                None
            }
        }
    }

    fn warn(&self, problem: &str) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "blob cache {}: {problem}; going on without it (--no-cache skips it)",
                self.path.display()
            );
        }
    }

    /// Counts a write and, every so often, drops the oldest locations beyond the bound.
    fn wrote(&self, connection: &Connection) -> rusqlite::Result<()> {
        if !self
            .writes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PRUNE_EVERY)
        {
            return Ok(());
        }
        connection.execute(
            "DELETE FROM blob_locations WHERE seen < (
                 SELECT seen FROM blob_locations ORDER BY seen DESC LIMIT 1 OFFSET ?1)",
            params![self.limit.saturating_sub(1)],
        )?;
        Ok(())
    }

    /// Blob locations held (for tests and `--verbose` reports).
    pub fn locations(&self) -> i64 {
        self.with(|c| c.query_row("SELECT count(*) FROM blob_locations", [], |row| row.get(0)))
            .unwrap_or(0)
    }
}

/// Opens the database; a file that is no database (damaged, or something else) is replaced: it
/// only ever held what later runs can learn again.
fn open_or_replace(path: &Path) -> rusqlite::Result<Connection> {
    match open(path) {
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) => {
            tracing::info!(
                "blob cache {} is damaged; starting it afresh",
                path.display()
            );
            for suffix in ["", "-wal", "-shm"] {
                let mut name = path.as_os_str().to_owned();
                name.push(suffix);
                let _ = std::fs::remove_file(name);
            }
            open(path)
        }
        other => other,
    }
}

/// Opens (creating if need be) the database and brings its tables to this version.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("cannot create {}: {e}", dir.display())),
            )
        })?;
    }
    let mut connection = Connection::open(path)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    // One process sets the tables up; the others wait for it, then find them ready.
    let setup = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = setup.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version != SCHEMA_VERSION {
        setup.execute_batch(&format!(
            "DROP TABLE IF EXISTS blob_locations;
             DROP TABLE IF EXISTS host_facts;
             CREATE TABLE blob_locations (
                 host TEXT NOT NULL, digest TEXT NOT NULL, repository TEXT NOT NULL,
                 seen INTEGER NOT NULL,
                 PRIMARY KEY (host, digest, repository)) WITHOUT ROWID;
             CREATE INDEX blob_locations_by_age ON blob_locations (seen);
             CREATE TABLE host_facts (
                 host TEXT NOT NULL, fact TEXT NOT NULL, value TEXT NOT NULL,
                 learned INTEGER NOT NULL,
                 PRIMARY KEY (host, fact)) WITHOUT ROWID;
             PRAGMA user_version = {SCHEMA_VERSION};"
        ))?;
    }
    setup.commit()?;
    Ok(connection)
}

/// Milliseconds since the epoch.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Recall for BlobCache {
    fn blob_seen(&self, host: &str, repository: &str, digest: &Digest) {
        self.with(|c| {
            c.execute(
                "INSERT INTO blob_locations (host, digest, repository, seen) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (host, digest, repository) DO UPDATE SET seen = excluded.seen",
                params![host, digest.as_str(), repository, now()],
            )?;
            self.wrote(c)
        });
    }

    fn blob_gone(&self, host: &str, repository: &str, digest: &Digest) {
        self.with(|c| {
            c.execute(
                "DELETE FROM blob_locations WHERE host = ?1 AND digest = ?2 AND repository = ?3",
                params![host, digest.as_str(), repository],
            )
        });
    }

    fn blob_locations(&self, host: &str, digest: &Digest, limit: usize) -> Vec<String> {
        self.with(|c| {
            let mut query = c.prepare_cached(
                "SELECT repository FROM blob_locations WHERE host = ?1 AND digest = ?2
                 ORDER BY seen DESC LIMIT ?3",
            )?;
            let rows = query.query_map(params![host, digest.as_str(), limit as i64], |row| {
                row.get(0)
            })?;
            rows.collect()
        })
        .unwrap_or_default()
    }

    fn host_fact(&self, host: &str, fact: &str) -> Option<String> {
        let oldest = now() - FACT_LIFETIME.as_millis() as i64;
        self.with(|c| {
            c.query_row(
                "SELECT value FROM host_facts WHERE host = ?1 AND fact = ?2 AND learned >= ?3",
                params![host, fact, oldest],
                |row| row.get(0),
            )
            .optional()
        })
        .flatten()
    }

    fn learn_host_fact(&self, host: &str, fact: &str, value: &str) {
        self.with(|c| {
            c.execute(
                "INSERT INTO host_facts (host, fact, value, learned) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (host, fact) DO UPDATE SET value = excluded.value,
                     learned = excluded.learned",
                params![host, fact, value, now()],
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u32) -> Digest {
        wharf_oci::Algorithm::Sha256.digest(&n.to_be_bytes())
    }

    #[test]
    fn remembers_locations_newest_first_and_forgets_gone_ones() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::at(dir.path().join("sub/cache.sqlite"));
        let blob = digest(1);
        cache.blob_seen("r.local", "a", &blob);
        std::thread::sleep(Duration::from_millis(5));
        cache.blob_seen("r.local", "b", &blob);
        cache.blob_seen("other.local", "c", &blob);
        assert_eq!(cache.blob_locations("r.local", &blob, 5), ["b", "a"]);
        cache.blob_gone("r.local", "b", &blob);
        assert_eq!(cache.blob_locations("r.local", &blob, 5), ["a"]);
        assert!(cache.blob_locations("r.local", &digest(2), 5).is_empty());

        // Another handle (another process) sees the same.
        let again = BlobCache::at(dir.path().join("sub/cache.sqlite"));
        assert_eq!(again.blob_locations("other.local", &blob, 5), ["c"]);
        again.learn_host_fact("r.local", "referrers-api", "no");
        assert_eq!(
            cache.host_fact("r.local", "referrers-api").as_deref(),
            Some("no")
        );
        assert_eq!(cache.host_fact("other.local", "referrers-api"), None);
    }

    #[test]
    fn stays_within_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::bounded(dir.path().join("cache.sqlite"), 100);
        for n in 0..(PRUNE_EVERY as u32 * 2 + 1) {
            cache.blob_seen("r.local", "a", &digest(n));
        }
        assert!(
            cache.locations() <= 100 + PRUNE_EVERY as i64,
            "{}",
            cache.locations()
        );
        let newest = digest(PRUNE_EVERY as u32 * 2);
        assert_eq!(cache.blob_locations("r.local", &newest, 1), ["a"]);
    }

    #[test]
    fn writers_in_many_threads_share_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.sqlite");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let cache = BlobCache::at(path);
                    for n in 0..200 {
                        cache.blob_seen("r.local", &format!("repo{t}"), &digest(n));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(BlobCache::at(path).locations(), 800);
    }

    #[test]
    fn a_damaged_file_is_started_afresh_and_an_unusable_place_is_no_cache_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.sqlite");
        std::fs::write(&path, [0x5a_u8; 8192]).unwrap();
        let cache = BlobCache::at(path);
        cache.blob_seen("r.local", "a", &digest(1));
        assert_eq!(cache.blob_locations("r.local", &digest(1), 5), ["a"]);

        let blocked = dir.path().join("a-file");
        std::fs::write(&blocked, b"").unwrap();
        let cache = BlobCache::at(blocked.join("cache.sqlite"));
        cache.blob_seen("r.local", "a", &digest(1));
        assert!(cache.blob_locations("r.local", &digest(1), 5).is_empty());
    }
}
