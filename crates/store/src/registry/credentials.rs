//! Registry credentials from the files docker and podman write: `auths` entries (`auth` and
//! `identitytoken`), `credHelpers` and `credsStore` through `docker-credential-<name>` executables, and
//! writing them back for `wharf login` / `wharf logout`.
//!
//! Lookup order without `--authfile` follows containers/image: `$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`, then
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`; the first file with an entry for the
//! registry wins. Secrets never appear in `Debug` output or errors.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;

/// How long a credential helper may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// A secret for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// User name and password (or personal access token).
    Basic {
        /// The user.
        username: String,
        /// The password.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged for access tokens.
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

impl Credentials {
    /// Parses `user:password` as given to `--creds`.
    pub fn from_user_pass(text: &str) -> Option<Credentials> {
        let (username, password) = text.split_once(':')?;
        Some(Credentials::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        })
    }
}

/// Why credentials could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// An auth file that exists but cannot be used.
    #[error("auth file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A credential helper failed.
    #[error("credential helper docker-credential-{helper}: {reason}")]
    Helper {
        /// The helper's name.
        helper: String,
        /// What it said, without secrets.
        reason: String,
    },
}

/// Where credentials come from.
#[derive(Debug, Clone, Default)]
pub struct CredentialSource {
    /// Only this file (`--authfile`), instead of the default search.
    pub authfile: Option<PathBuf>,
}

impl CredentialSource {
    /// The files searched, in order.
    pub fn files(&self) -> Vec<PathBuf> {
        if let Some(file) = &self.authfile {
            return vec![file.clone()];
        }
        let env = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let mut files = Vec::new();
        if let Some(file) = env("REGISTRY_AUTH_FILE") {
            files.push(file);
        }
        if let Some(dir) = env("XDG_RUNTIME_DIR") {
            files.push(dir.join("containers/auth.json"));
        }
        let home = env("HOME");
        if let Some(home) = &home {
            files.push(home.join(".config/containers/auth.json"));
        }
        match env("DOCKER_CONFIG") {
            Some(dir) => files.push(dir.join("config.json")),
            None => {
                if let Some(home) = &home {
                    files.push(home.join(".docker/config.json"));
                }
            }
        }
        files
    }

    /// The file `wharf login` writes: `--authfile`, `$REGISTRY_AUTH_FILE`,
    /// `$XDG_RUNTIME_DIR/containers/auth.json`, else `~/.docker/config.json`.
    pub fn login_file(&self) -> Option<PathBuf> {
        if let Some(file) = &self.authfile {
            return Some(file.clone());
        }
        let env = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        env("REGISTRY_AUTH_FILE")
            .or_else(|| env("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")))
            .or_else(|| match env("DOCKER_CONFIG") {
                Some(dir) => Some(dir.join("config.json")),
                None => env("HOME").map(|h| h.join(".docker/config.json")),
            })
    }

    /// Credentials for `registry` (a host, `host:port`, or `host/path` for per-repository entries).
    pub async fn lookup(&self, registry: &str) -> Result<Option<Credentials>, CredentialsError> {
        for file in self.files() {
            let Some(config) = read_config(&file).await? else {
                continue;
            };
            if let Some(found) = lookup_in(&config, registry).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Stores credentials for `host` in the login file (or its credential helper).
    pub async fn store(
        &self,
        host: &str,
        credentials: &Credentials,
    ) -> Result<PathBuf, CredentialsError> {
        let path = self.login_file().ok_or_else(|| CredentialsError::File {
            path: PathBuf::from("~/.docker/config.json"),
            reason: "no home directory; pass --authfile".into(),
        })?;
        let mut config = read_config(&path).await?.unwrap_or_else(|| json!({}));
        if let Some(helper) = helper_for(&config, host) {
            let (username, secret) = match credentials {
                Credentials::Basic { username, password } => (username.clone(), password.clone()),
                Credentials::IdentityToken(token) => ("<token>".to_owned(), token.clone()),
            };
            let input = json!({"ServerURL": host, "Username": username, "Secret": secret});
            run_helper(&helper, "store", input.to_string().as_bytes()).await?;
            return Ok(path);
        }
        let entry = match credentials {
            Credentials::Basic { username, password } => {
                json!({"auth": STANDARD.encode(format!("{username}:{password}"))})
            }
            Credentials::IdentityToken(token) => json!({"auth": "", "identitytoken": token}),
        };
        auths_mut(&mut config, &path)?.insert(host.to_owned(), entry);
        write_config(&path, &config).await?;
        Ok(path)
    }

    /// Removes credentials for `host`; false if there were none.
    pub async fn erase(&self, host: &str) -> Result<bool, CredentialsError> {
        let mut removed = false;
        for path in self.files() {
            let Some(mut config) = read_config(&path).await? else {
                continue;
            };
            if let Some(helper) = helper_for(&config, host) {
                if run_helper(&helper, "erase", host.as_bytes()).await.is_ok() {
                    removed = true;
                }
                continue;
            }
            let auths = auths_mut(&mut config, &path)?;
            let keys: Vec<String> = auths
                .keys()
                .filter(|k| normalise_key(k) == normalise_key(host))
                .cloned()
                .collect();
            if keys.is_empty() {
                continue;
            }
            for key in keys {
                auths.remove(&key);
            }
            write_config(&path, &config).await?;
            removed = true;
        }
        Ok(removed)
    }
}

async fn read_config(path: &Path) -> Result<Option<Value>, CredentialsError> {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CredentialsError::File {
                path: path.to_owned(),
                reason: e.to_string(),
            });
        }
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| CredentialsError::File {
        path: path.to_owned(),
        reason: format!("invalid JSON: {e}"),
    })?;
    if !value.is_object() {
        return Err(CredentialsError::File {
            path: path.to_owned(),
            reason: "not a JSON object".into(),
        });
    }
    Ok(Some(value))
}

async fn write_config(path: &Path, config: &Value) -> Result<(), CredentialsError> {
    let fail = |e: std::io::Error| CredentialsError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(fail)?;
    }
    let mut text = serde_json::to_string_pretty(config).expect("json serialises");
    text.push('\n');
    let temp = path.with_extension("wharf-tmp");
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&temp).await.map_err(fail)?;
    file.write_all(text.as_bytes()).await.map_err(fail)?;
    file.sync_all().await.map_err(fail)?;
    tokio::fs::rename(&temp, path).await.map_err(fail)
}

fn auths_mut<'a>(
    config: &'a mut Value,
    path: &Path,
) -> Result<&'a mut Map<String, Value>, CredentialsError> {
    let object = config.as_object_mut().expect("checked when read");
    object
        .entry("auths")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| CredentialsError::File {
            path: path.to_owned(),
            reason: "\"auths\" is not an object".into(),
        })
}

/// `https://index.docker.io/v1/` → `docker.io`; scheme and trailing `/v1/`-style paths dropped.
fn normalise_key(key: &str) -> String {
    let key = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let key = key
        .strip_suffix("/v1")
        .or_else(|| key.strip_suffix("/v2"))
        .unwrap_or(key);
    match key {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        other => other.to_owned(),
    }
}

/// The most specific `auths` key matching `registry` (`host/path` entries beat `host`).
fn best_key<'a>(keys: impl Iterator<Item = &'a String>, registry: &str) -> Option<&'a String> {
    let wanted = normalise_key(registry);
    keys.filter(|key| {
        let key = normalise_key(key);
        wanted == key || wanted.starts_with(&format!("{key}/"))
    })
    .max_by_key(|key| normalise_key(key).len())
}

fn helper_for(config: &Value, registry: &str) -> Option<String> {
    let host = normalise_key(registry.split('/').next().unwrap_or(registry));
    if let Some(helpers) = config.get("credHelpers").and_then(Value::as_object)
        && let Some(key) = best_key(helpers.keys(), &host)
        && let Some(helper) = helpers[key].as_str()
    {
        return Some(helper.to_owned());
    }
    config
        .get("credsStore")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

async fn lookup_in(
    config: &Value,
    registry: &str,
) -> Result<Option<Credentials>, CredentialsError> {
    if let Some(auths) = config.get("auths").and_then(Value::as_object)
        && let Some(key) = best_key(auths.keys(), registry)
    {
        let entry = &auths[key];
        if let Some(token) = entry
            .get("identitytoken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            return Ok(Some(Credentials::IdentityToken(token.to_owned())));
        }
        if let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            let decoded = STANDARD
                .decode(auth)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| Credentials::from_user_pass(&s));
            if let Some(credentials) = decoded {
                return Ok(Some(credentials));
            }
        }
    }
    let host = registry.split('/').next().unwrap_or(registry);
    match helper_for(config, host) {
        Some(helper) => helper_get(&helper, host).await,
        None => Ok(None),
    }
}

async fn helper_get(helper: &str, host: &str) -> Result<Option<Credentials>, CredentialsError> {
    let output = match run_helper(helper, "get", host.as_bytes()).await {
        Ok(output) => output,
        Err(CredentialsError::Helper { reason, .. })
            if reason.contains("credentials not found") =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let value: Value = serde_json::from_slice(&output).map_err(|e| CredentialsError::Helper {
        helper: helper.to_owned(),
        reason: format!("answered with invalid JSON: {e}"),
    })?;
    let username = value["Username"].as_str().unwrap_or_default();
    let secret = value["Secret"].as_str().unwrap_or_default();
    if secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if username == "<token>" {
        Credentials::IdentityToken(secret.to_owned())
    } else {
        Credentials::Basic {
            username: username.to_owned(),
            password: secret.to_owned(),
        }
    }))
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin; returns stdout.
async fn run_helper(helper: &str, action: &str, input: &[u8]) -> Result<Vec<u8>, CredentialsError> {
    let fail = |reason: String| CredentialsError::Helper {
        helper: helper.to_owned(),
        reason,
    };
    let program = format!("docker-credential-{helper}");
    let mut child = tokio::process::Command::new(&program)
        .arg(action)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot run {program}: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin
        .write_all(input)
        .await
        .map_err(|e| fail(e.to_string()))?;
    drop(stdin);
    let output = tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| fail(format!("{action} took longer than {HELPER_TIMEOUT:?}")))?
        .map_err(|e| fail(e.to_string()))?;
    if !output.status.success() {
        // Helpers print their error on stdout; it never contains the secret.
        let said = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let said = if said.is_empty() {
            String::from_utf8_lossy(&output.stderr).trim().to_owned()
        } else {
            said
        };
        return Err(fail(format!("{action} failed: {said}")));
    }
    Ok(output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_docker_hub_keys() {
        assert_eq!(normalise_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalise_key("registry-1.docker.io"), "docker.io");
        assert_eq!(normalise_key("http://localhost:5000"), "localhost:5000");
        let keys = [
            "quay.io".to_owned(),
            "quay.io/org".to_owned(),
            "quay.io/organisation".to_owned(),
        ];
        assert_eq!(best_key(keys.iter(), "quay.io/org/app"), Some(&keys[1]));
        assert_eq!(best_key(keys.iter(), "quay.io/other"), Some(&keys[0]));
        assert_eq!(best_key(keys.iter(), "example.com"), None);
    }

    #[tokio::test]
    async fn reads_auth_identity_tokens_and_writes_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        std::fs::write(
            &file,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"ghcr.io":{"identitytoken":"rt"}},"other":1}"#,
        )
        .unwrap();
        let source = CredentialSource {
            authfile: Some(file.clone()),
        };
        assert_eq!(
            source.lookup("docker.io").await.unwrap(),
            Some(Credentials::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert_eq!(
            source.lookup("ghcr.io").await.unwrap(),
            Some(Credentials::IdentityToken("rt".into()))
        );
        assert_eq!(source.lookup("example.com").await.unwrap(), None);

        let creds = Credentials::from_user_pass("alice:s3:cret").unwrap();
        source.store("localhost:5000", &creds).await.unwrap();
        assert_eq!(source.lookup("localhost:5000").await.unwrap(), Some(creds));
        let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(written["other"], 1, "unrelated settings survive");
        assert!(source.erase("localhost:5000").await.unwrap());
        assert_eq!(source.lookup("localhost:5000").await.unwrap(), None);
        assert!(!source.erase("localhost:5000").await.unwrap());
        assert_eq!(
            format!("{:?}", Credentials::from_user_pass("a:b").unwrap()),
            "Basic(a, <redacted>)"
        );
    }

    #[tokio::test]
    async fn broken_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        std::fs::write(&file, "{nope").unwrap();
        let err = CredentialSource {
            authfile: Some(file),
        }
        .lookup("x")
        .await
        .unwrap_err();
        assert!(err.to_string().contains("auth.json: invalid JSON"), "{err}");
    }
}
