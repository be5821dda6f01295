//! HTTP basic authentication against an htpasswd file with bcrypt entries (`htpasswd -B`).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use axum::http::{HeaderMap, Method, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use wharf_oci::Algorithm;

/// The authenticated user, which the authentication layer attaches to the request and the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User(pub String);

/// Users and their bcrypt hashes.
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// Checked against for unknown users, so that they take as long as known ones: the response
    /// time must not tell which user names exist.
    dummy: String,
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
        let cost = users.values().filter_map(|hash| bcrypt_cost(hash)).max();
        let dummy = bcrypt::hash("wharf: no such user", cost.unwrap_or(bcrypt::DEFAULT_COST))
            .map_err(|e| fail(format!("cannot prepare password checks: {e}")))?;
        Ok(Htpasswd {
            users,
            dummy,
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
        let Some(hash) = self.users.get(user) else {
            let _ = bcrypt::verify(password, &self.dummy);
            return None;
        };
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

/// The cost field of a bcrypt hash (`$2y$10$...` is 10).
fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.split('$').nth(2)?.parse().ok()
}

/// True for requests that only read.
pub fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn unknown_users_are_checked_against_a_hash_of_the_same_cost() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("htpasswd");
        let hash = bcrypt::hash("s3cret", 6).unwrap();
        std::fs::write(&file, format!("alice:{hash}\n")).unwrap();
        let htpasswd = Htpasswd::load(&file).unwrap();
        assert_eq!(bcrypt_cost(&htpasswd.dummy), Some(6));
        assert_eq!(
            htpasswd.check(&basic("alice", "s3cret")).as_deref(),
            Some("alice")
        );
        assert_eq!(htpasswd.check(&basic("alice", "wrong")), None);
        assert_eq!(htpasswd.check(&basic("mallory", "s3cret")), None);
        assert_eq!(bcrypt_cost("$2y$12$abc"), Some(12));
    }
}
