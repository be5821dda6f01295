//! The one error type of every store: the operation, what it acted on, and a matchable kind.

use std::fmt;
use std::io;

use wharf_oci::{Digest, ManifestError};

/// A failed store operation.
///
/// Displays as `{op} {target}`; the [`ErrorKind`] is its source, so `{:#}` prints the whole story on one
/// line: `fetch oci:./images blob sha256:…: not found`.
#[derive(Debug, thiserror::Error)]
#[error("{op} {target}")]
pub struct StoreError {
    /// What was being done.
    pub op: Op,
    /// The location and object acted on (`oci:./dir blob sha256:…`).
    pub target: String,
    /// What went wrong.
    #[source]
    pub kind: Box<ErrorKind>,
}

impl StoreError {
    /// A new error for `op` on `target`.
    pub fn new(op: Op, target: impl Into<String>, kind: ErrorKind) -> StoreError {
        StoreError {
            op,
            target: target.into(),
            kind: Box::new(kind),
        }
    }

    /// True if the content or name does not exist (at the primary location, for mirrored reads).
    pub fn is_not_found(&self) -> bool {
        match &*self.kind {
            ErrorKind::NotFound(_) => true,
            ErrorKind::EndpointsFailed { primary, .. } => primary.is_not_found(),
            _ => false,
        }
    }

    /// True if the registry refused the credentials or the access (401, 403). imgpkg, for one, reads
    /// that like "not found" when probing for content.
    pub fn is_denied(&self) -> bool {
        match &*self.kind {
            ErrorKind::Unauthorized(_) => true,
            ErrorKind::Registry { status, .. } => matches!(status, 401 | 403),
            ErrorKind::EndpointsFailed { primary, .. } => primary.is_denied(),
            _ => false,
        }
    }

    /// True if trying the same operation again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// True if bytes did not match their digest or size, on the way in or as the registry saw them:
    /// worth one more try, since bytes damaged in transit are fine the next time.
    pub fn is_content_mismatch(&self) -> bool {
        match &*self.kind {
            ErrorKind::DigestMismatch { .. } | ErrorKind::SizeMismatch { .. } => true,
            ErrorKind::Registry {
                code: Some(code), ..
            } => code == "DIGEST_INVALID" || code == "SIZE_INVALID",
            _ => false,
        }
    }

    /// True if an upload failed in a way starting it over may cure: the registry no longer knows
    /// the session it had opened (docker-registry cancels one when a chunk arrives twice, after
    /// its first answer was lost), or it refused the body as too large (413, often a proxy's
    /// limit; the next attempt sends chunks it takes).
    pub fn is_upload_to_start_over(&self) -> bool {
        match &*self.kind {
            ErrorKind::Registry {
                code: Some(code), ..
            } if code == "BLOB_UPLOAD_UNKNOWN" || code == "BLOB_UPLOAD_INVALID" => true,
            ErrorKind::Registry { status: 413, .. } => true,
            _ => false,
        }
    }
}

/// Store operations, named as in the OCI specs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Open a location.
    Open,
    /// Resolve a tag or digest to a descriptor.
    Resolve,
    /// Read content.
    Fetch,
    /// Check whether content exists.
    Exists,
    /// Write content.
    Push,
    /// Point a tag at a manifest.
    Tag,
    /// List tags.
    ListTags,
    /// List the repositories of a registry.
    ListRepositories,
    /// List referrers.
    Referrers,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Open => "open",
            Op::Resolve => "resolve",
            Op::Fetch => "fetch",
            Op::Exists => "check",
            Op::Push => "push",
            Op::Tag => "tag",
            Op::ListTags => "list tags of",
            Op::ListRepositories => "list the repositories of",
            Op::Referrers => "list referrers in",
        })
    }
}

/// What went wrong, independent of where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The content, tag or location does not exist.
    #[error("not found{}", hint_suffix(.0))]
    NotFound(Option<String>),
    /// Bytes did not hash to the digest they were addressed by.
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the descriptor promised.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// More or fewer bytes than the descriptor's size.
    #[error("expected {expected} bytes, got {actual}{}", if *.truncated { " (stopped reading)" } else { "" })]
    SizeMismatch {
        /// The size the descriptor promised.
        expected: u64,
        /// Bytes received (at least this many when `truncated`).
        actual: u64,
        /// Reading stopped as soon as the size was exceeded.
        truncated: bool,
    },
    /// A manifest that cannot be used.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A malformed location or file (`index.json`, `oci-layout`).
    #[error("{0}")]
    Invalid(String),
    /// Something this store cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// Operating system I/O failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The registry answered with an error status.
    #[error("{}", registry_error(*.status, .code.as_deref(), .message))]
    Registry {
        /// HTTP status.
        status: u16,
        /// The distribution spec error code, if the body had one.
        code: Option<String>,
        /// The registry's message, or the status text.
        message: String,
    },
    /// The registry could not be reached or the connection broke.
    #[error("{0}")]
    Network(String),
    /// Another process is writing the store.
    #[error("{0}")]
    Busy(String),
    /// Credentials are missing or were refused.
    #[error("{0}")]
    Unauthorized(String),
    /// Credentials or a credential helper could not be read.
    #[error(transparent)]
    Credentials(#[from] crate::registry::CredentialsError),
    /// Every registries.conf endpoint failed: the mirrors' errors, then the primary location's.
    #[error("{}(primary) {}", mirror_failures(.mirrors), chain(.primary.as_ref()))]
    EndpointsFailed {
        /// `reference: error` for each mirror tried.
        mirrors: Vec<String>,
        /// The error of the registry's own location.
        primary: Box<StoreError>,
    },
}

fn mirror_failures(mirrors: &[String]) -> String {
    if mirrors.is_empty() {
        String::new()
    } else {
        format!("mirrors failed: [{}]; ", mirrors.join("]; ["))
    }
}

/// An error and its sources on one line, `a: b: c`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out += &format!(": {e}");
        source = e.source();
    }
    out
}

fn registry_error(status: u16, code: Option<&str>, message: &str) -> String {
    match code {
        Some(code) => format!("registry answered {status} {code}: {message}"),
        None => format!("registry answered {status}: {message}"),
    }
}

impl ErrorKind {
    /// True for failures that may pass if the operation is tried again: network trouble, rate
    /// limiting, and server-side errors.
    pub fn is_retryable(&self) -> bool {
        match self {
            ErrorKind::Network(_) => true,
            ErrorKind::EndpointsFailed { primary, .. } => primary.is_retryable(),
            ErrorKind::Registry { status, .. } => {
                matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
            }
            _ => false,
        }
    }
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
}

/// Results of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
