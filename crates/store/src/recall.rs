//! What runs learn about registries and keep for later runs: which repositories of a registry hold
//! a blob (so a blob is mounted from there instead of uploaded), and facts about each registry (so
//! they are not probed again). The store crate only says what it needs; `wharf-cache` keeps it.

use wharf_oci::Digest;

/// Knowledge that outlives a run. Best effort: an implementation that cannot read or write its
/// store answers "nothing known" and never fails the caller.
pub trait Recall: Send + Sync {
    /// `digest` is in `repository` of registry `host` (pushed, pulled, mounted or found there).
    fn blob_seen(&self, host: &str, repository: &str, digest: &Digest);

    /// `digest` is no longer usable from `repository` of `host` (a mount from there failed).
    fn blob_gone(&self, host: &str, repository: &str, digest: &Digest);

    /// Repositories of `host` where `digest` was seen, most recent first, at most `limit`.
    fn blob_locations(&self, host: &str, digest: &Digest, limit: usize) -> Vec<String>;

    /// A fact learned about `host` recently enough to trust (`referrers-api` → `yes`).
    fn host_fact(&self, host: &str, fact: &str) -> Option<String>;

    /// Remembers a fact about `host`.
    fn learn_host_fact(&self, host: &str, fact: &str, value: &str);
}
