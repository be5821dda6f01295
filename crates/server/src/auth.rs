//! HTTP basic authentication against an htpasswd file with bcrypt entries (`htpasswd -B`).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use axum::http::{HeaderMap, Method, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use wharf_oci::Algorithm;

/// Users and their bcrypt hashes.
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// Successful checks, so bcrypt (deliberately slow) runs once per credential, not per request.
    verified: Mutex<HashSet<(String, String)>>,
}

/// Why an htpasswd file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("htpasswd file {path}: {reason}")]
pub struct HtpasswdError {
    path: String,
    reason: String,
}

impl Htpasswd {
    /// Reads `user:hash` lines; only bcrypt hashes are accepted.
    pub fn load(path: &Path) -> Result<Htpasswd, HtpasswdError> {
        let fail = |reason: String| HtpasswdError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| fail(format!("line {}: expected user:hash", n + 1)))?;
            if !hash.starts_with("$2") {
                return Err(fail(format!(
                    "line {}: user {user} does not have a bcrypt hash (create entries with htpasswd -B)",
                    n + 1
                )));
            }
            users.insert(user.to_owned(), hash.to_owned());
        }
        if users.is_empty() {
            return Err(fail("no users".into()));
        }
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// The user the request authenticates as, if its credentials are valid.
    pub fn check(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let encoded = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))?;
        let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
        let (user, password) = decoded.split_once(':')?;
        let hash = self.users.get(user)?;
        // Cache by a digest of the password, never the password itself.
        let key = (
            user.to_owned(),
            Algorithm::Sha256.digest(password.as_bytes()).to_string(),
        );
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.contains(&key) {
            return Some(user.to_owned());
        }
        drop(verified);
        if bcrypt::verify(password, hash).unwrap_or(false) {
            verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            verified.insert(key);
            return Some(user.to_owned());
        }
        None
    }
}

/// True for requests that only read.
pub fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}
