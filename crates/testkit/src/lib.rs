//! wharf's test harness: real servers on 127.0.0.1 with ports picked at run time, stopped when dropped.
//!
//! - [`WharfServe`] runs the `wharf serve` binary; [`DockerRegistry`] runs Debian's `docker-registry`
//!   (distribution 2.8, no referrers API) with a temporary configuration, optionally with htpasswd auth.
//! - [`TestProxy`] sits in front of a registry: it can demand bearer tokens it issues itself, and inject
//!   faults (error statuses with `Retry-After`, connections cut or stalled mid-body, requests never
//!   answered, corrupted bytes either way, ignored `Range`), one by one or at random, and it records
//!   every request so tests can count them at the wire.
//!
//! Peers that are not installed fail the test with a hint to run `scripts/setup-peers`: interop tests
//! never skip.

#![allow(missing_docs)]

mod proxy;
mod servers;

pub use proxy::{ChaosKind, Fault, FaultAction, Record, TestProxy, TokenAuth};
pub use servers::{
    DockerRegistry, Moto, Nginx, ServeSetup, TlsFiles, WharfServe, free_port, wait_for_registry,
};

/// Writes the demo's multi-arch sample image (linux/amd64, linux/arm64/v8; two layers each) into an OCI
/// layout at `path` under `tag`.
pub fn sample_layout(path: &std::path::Path, tag: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let layout = wharf_store::layout::Layout::create(path)
            .await
            .expect("layout");
        wharf_sample::Sample::multi_arch("wharf-demo/app", 2026)
            .push(&layout, wharf_store::ManifestRole::Tag(tag))
            .await
            .expect("sample written");
    });
}
