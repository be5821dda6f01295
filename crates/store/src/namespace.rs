//! A set of repositories in one place: a registry (host and base path), an OCI layout or archive, a
//! CTF, or memory.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{ErrorKind, Op, ReadStore, Result, Store, StoreError};

/// Repositories that live together and are written out together.
///
/// Repository names are relative to the namespace: below a registry location's base path, a CTF's
/// repository paths, a layout's image-name prefixes (`team/app` of `team/app:1.0`; the empty name
/// holds images named without one).
#[async_trait]
pub trait Namespace: Send + Sync {
    /// The namespace in the notation users type (`localhost:5000/base`, `ctf:./out.tgz`), for
    /// messages.
    fn location(&self) -> String;

    /// A repository to read from. For registries, reads go through registries.conf: mirrors first.
    fn read(&self, repository: &str) -> Result<Arc<dyn ReadStore>>;

    /// A repository to write to. For registries, writes go to the registry itself and are refused
    /// when registries.conf blocks it; a layout, archive or CTF must have been opened for writing.
    fn write(&self, repository: &str) -> Result<Arc<dyn Store>>;

    /// The repositories the namespace holds (a registry's catalog below the base path, a CTF's
    /// index, a layout's image-name prefixes), sorted.
    async fn repositories(&self) -> Result<Vec<String>>;

    /// Makes everything written durable where a final step is needed (an archive is written out).
    /// Call once, after the last write.
    async fn finish(&self) -> Result<()> {
        Ok(())
    }

    /// Leaves an archive that was written to unfinished but resumable: its partial file keeps what
    /// was written, indexes included, for the next run. Returns the archive's path when it did.
    async fn checkpoint(&self) -> Result<Option<PathBuf>> {
        Ok(None)
    }
}

/// `base/repository`, or either alone when the other is empty.
pub(crate) fn join(base: &str, repository: &str) -> String {
    match (base.is_empty(), repository.is_empty()) {
        (true, _) => repository.to_owned(),
        (_, true) => base.to_owned(),
        _ => format!("{base}/{repository}"),
    }
}

/// The repository `path` below `parent` (a nested index child's home), checked: a repository path
/// below it, and a whole name (with `host`, if any) within the limits of references. `target` names
/// the store in errors.
pub(crate) fn nested_name(target: &str, host: &str, parent: &str, path: &str) -> Result<String> {
    let fail = |reason: String| {
        StoreError::new(
            Op::Open,
            format!("{target} nested repository {path:?}"),
            ErrorKind::Invalid(reason),
        )
    };
    wharf_oci::nested::check_path(path).map_err(fail)?;
    wharf_oci::nested::join(host, parent, path).map_err(fail)
}

/// `names` sorted, each once.
pub(crate) fn sorted_unique(names: impl Iterator<Item = String>) -> Vec<String> {
    names
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}
