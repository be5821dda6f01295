//! containers-registries.conf(5), version 2: where a pull of an image reference really goes.
//!
//! [`RegistriesConf::load`] finds and merges the same files skopeo and podman read (a main file, then
//! `*.conf` drop-ins in lexical order, a later entry for a prefix replacing the whole earlier one), and
//! validates each as containers/image does, with its wording. [`RegistriesConf::pull_endpoints`] turns a
//! reference into the endpoints to try, in order: the matching entry's mirrors (filtered by
//! `mirror-by-digest-only` and `pull-from-mirror`), then its location, each with its own `insecure` flag
//! and `blocked` (judged on the rewritten name, as upstream does).
//!
//! The quirks of the reference implementation (containers/image `sysregistriesv2`, as in skopeo 1.9)
//! are kept on purpose, so that a cluster's mirror configuration behaves the same under wharf:
//! longest prefix by raw string length with ties broken by sorted order (`*.example.com` beats
//! `a.example.com`), a prefix `host` also matching `host:port/...`, the first occurrence of a wildcard's
//! suffix deciding the match, the original port carried over by wildcard rewrites, and any invalid
//! rewrite failing the whole lookup. Deliberately different: the v1 format is refused (current
//! containers/image does the same; skopeo 1.9 still converts it).
//!
//! ```
//! use wharf_oci::Reference;
//! use wharf_registries_conf::RegistriesConf;
//! let conf = RegistriesConf::from_text(r#"
//! [[registry]]
//! prefix = "quay.io/team"
//! location = "registry.internal/quay/team"
//! [[registry.mirror]]
//! location = "mirror.internal/team"
//! "#).unwrap();
//! let endpoints = conf.pull_endpoints(&Reference::parse("quay.io/team/app:1").unwrap()).unwrap();
//! let tried: Vec<String> = endpoints.iter().map(|e| e.reference.to_string()).collect();
//! assert_eq!(tried, ["mirror.internal/team/app:1", "registry.internal/quay/team/app:1"]);
//! ```

mod file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use file::{Mirror, PullFromMirror, Registry, Settings};
use wharf_oci::Reference;

/// Why the configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfError {
    /// A file is missing (when named explicitly), unreadable or invalid.
    #[error("loading registries configuration {path:?}: {message}")]
    Load {
        /// The file.
        path: PathBuf,
        /// What is wrong, in containers/image's words where it has them.
        message: String,
    },
    /// A drop-in directory cannot be read.
    #[error("reading registries.conf.d {path:?}: {message}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The failure.
        message: String,
    },
    /// The configuration rewrites the reference into something that is not a reference.
    #[error("rewriting reference {reference} with prefix {prefix:?}: {message}")]
    Rewrite {
        /// The reference being pulled.
        reference: String,
        /// The matching entry's prefix.
        prefix: String,
        /// What is wrong with the result.
        message: String,
    },
}

/// Which files to read.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// The main file (`--registries-conf` or `$CONTAINERS_REGISTRIES_CONF`); it must exist.
    pub file: Option<PathBuf>,
    /// The only drop-in directory (`--registries-conf-dir`).
    pub dir: Option<PathBuf>,
    /// The home directory for `~/.config/containers/registries.conf{,.d}`.
    pub home: Option<PathBuf>,
    /// Prefix for `/etc/containers/...` (`/` normally; tests point it elsewhere).
    pub system_root: PathBuf,
}

impl Discovery {
    /// The usual sources: `file` or `$CONTAINERS_REGISTRIES_CONF`, `dir`, `$HOME`, and `/etc`.
    pub fn from_env(file: Option<PathBuf>, dir: Option<PathBuf>) -> Discovery {
        let env = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Discovery {
            file: file.or_else(|| env("CONTAINERS_REGISTRIES_CONF")),
            dir,
            home: env("HOME"),
            system_root: PathBuf::from("/"),
        }
    }

    /// The main file, whether it must exist, and the drop-in directories, as containers/image picks
    /// them: a user `registries.conf` replaces the system one and brings only the user drop-ins.
    fn plan(&self) -> (PathBuf, bool, Vec<PathBuf>) {
        let system_file = self.system_root.join("etc/containers/registries.conf");
        let system_dir = self.system_root.join("etc/containers/registries.conf.d");
        let user_file = self
            .home
            .as_ref()
            .map(|h| h.join(".config/containers/registries.conf"));
        let user_dir = self
            .home
            .as_ref()
            .map(|h| h.join(".config/containers/registries.conf.d"));
        let (main, required, user_main) = match (&self.file, &user_file) {
            (Some(file), _) => (file.clone(), true, false),
            (None, Some(user)) if user.exists() => (user.clone(), false, true),
            _ => (system_file, false, false),
        };
        let dirs = match (&self.dir, user_main) {
            (Some(dir), _) => vec![dir.clone()],
            (None, true) => user_dir.into_iter().collect(),
            (None, false) => std::iter::once(system_dir).chain(user_dir).collect(),
        };
        (main, required, dirs)
    }
}

/// A reference to try, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The reference on this endpoint (rewritten from the one pulled).
    pub reference: Reference,
    /// Skip TLS verification and allow plain HTTP.
    pub insecure: bool,
    /// Refused by a `blocked` entry matching the rewritten name.
    pub blocked: bool,
    /// A mirror rather than the entry's own location.
    pub mirror: bool,
}

/// The merged configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistriesConf {
    settings: Settings,
    files: Vec<PathBuf>,
}

impl RegistriesConf {
    /// Reads and merges the files `discovery` names.
    pub fn load(discovery: &Discovery) -> Result<RegistriesConf, ConfError> {
        let (main, required, dirs) = discovery.plan();
        let mut conf = RegistriesConf::default();
        match std::fs::read_to_string(&main) {
            Ok(text) => {
                conf.settings = parse_file(&main, &text, false)?;
                conf.files.push(main);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {}
            Err(e) => {
                return Err(ConfError::Load {
                    path: main,
                    message: e.to_string(),
                });
            }
        }
        for path in drop_ins(&dirs)? {
            let text = std::fs::read_to_string(&path).map_err(|e| ConfError::Load {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let settings = parse_file(&path, &text, true)?;
            conf.merge(settings);
            conf.files.push(path);
        }
        Ok(conf)
    }

    /// A configuration from one file's text (for tests and examples).
    pub fn from_text(text: &str) -> Result<RegistriesConf, ConfError> {
        Ok(RegistriesConf {
            settings: parse_file(Path::new("<text>"), text, false)?,
            files: Vec::new(),
        })
    }

    /// A later file's settings over these: entries replace entries with the same prefix whole, lists
    /// replace lists, aliases merge key by key.
    fn merge(&mut self, later: Settings) {
        let mut by_prefix: BTreeMap<String, Registry> =
            std::mem::take(&mut self.settings.registries)
                .into_iter()
                .map(|r| (r.prefix.clone(), r))
                .collect();
        for registry in later.registries {
            by_prefix.insert(registry.prefix.clone(), registry);
        }
        self.settings.registries = by_prefix.into_values().collect();
        if later.unqualified_search_registries.is_some() {
            self.settings.unqualified_search_registries = later.unqualified_search_registries;
        }
        if later.credential_helpers.is_some() {
            self.settings.credential_helpers = later.credential_helpers;
        }
        if later.short_name_mode.is_some() {
            self.settings.short_name_mode = later.short_name_mode;
        }
        self.settings.aliases.extend(later.aliases);
    }

    /// The files read, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The merged `[[registry]]` entries, sorted by prefix.
    pub fn registries(&self) -> &[Registry] {
        &self.settings.registries
    }

    /// `unqualified-search-registries`.
    pub fn unqualified_search_registries(&self) -> &[String] {
        self.settings
            .unqualified_search_registries
            .as_deref()
            .unwrap_or_default()
    }

    /// `short-name-mode` (`permissive` when unset).
    pub fn short_name_mode(&self) -> &str {
        self.settings
            .short_name_mode
            .as_deref()
            .unwrap_or("permissive")
    }

    /// `credential-helpers` (`containers-auth.json` when unset or empty).
    pub fn credential_helpers(&self) -> Vec<String> {
        match &self.settings.credential_helpers {
            Some(helpers) if !helpers.is_empty() => helpers.clone(),
            _ => vec!["containers-auth.json".to_owned()],
        }
    }

    /// `[aliases]`, without erased entries.
    pub fn aliases(&self) -> BTreeMap<&str, &str> {
        self.settings
            .aliases
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// The entry whose prefix matches `name` (`host/repository`, no tag) with the longest prefix.
    pub fn find(&self, name: &str) -> Option<&Registry> {
        let mut best: Option<&Registry> = None;
        for registry in &self.settings.registries {
            if matching_prefix_len(name, &registry.prefix).is_some()
                && registry.prefix.len() > best.map_or(0, |b| b.prefix.len())
            {
                best = Some(registry);
            }
        }
        best
    }

    /// True if a `blocked` entry matches `name`.
    pub fn is_blocked(&self, name: &str) -> bool {
        self.find(name).is_some_and(|r| r.blocked)
    }

    /// The endpoints a pull of `reference` tries, in order; the entry's own location is always last.
    pub fn pull_endpoints(&self, reference: &Reference) -> Result<Vec<Endpoint>, ConfError> {
        let Some(registry) = self.find(&reference.name()) else {
            return Ok(vec![Endpoint {
                reference: reference.clone(),
                insecure: false,
                blocked: false,
                mirror: false,
            }]);
        };
        let digested = reference.digest().is_some();
        let mirrors = registry.mirrors.iter().filter(|mirror| {
            if registry.mirror_by_digest_only {
                return digested;
            }
            match mirror.pull_from_mirror {
                PullFromMirror::All => true,
                PullFromMirror::DigestOnly => digested,
                PullFromMirror::TagOnly => !digested,
            }
        });
        let mut endpoints = Vec::new();
        for (location, insecure, mirror) in mirrors
            .map(|m| (m.location.as_str(), m.insecure, true))
            .chain(std::iter::once((
                registry.location.as_str(),
                registry.insecure,
                false,
            )))
        {
            let rewritten = rewrite(reference, &registry.prefix, location)?;
            endpoints.push(Endpoint {
                blocked: self.is_blocked(&rewritten.name()),
                reference: rewritten,
                insecure,
                mirror,
            });
        }
        Ok(endpoints)
    }
}

fn parse_file(path: &Path, text: &str, drop_in: bool) -> Result<Settings, ConfError> {
    file::parse(text, drop_in).map_err(|message| ConfError::Load {
        path: path.to_owned(),
        message,
    })
}

/// `*.conf` files of each directory (not recursing), lexically, directory by directory.
fn drop_ins(dirs: &[PathBuf]) -> Result<Vec<PathBuf>, ConfError> {
    let mut out = Vec::new();
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(ConfError::Dir {
                    path: dir.clone(),
                    message: e.to_string(),
                });
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
            .map(|e| e.path())
            .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".conf")))
            .collect();
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

/// How many leading bytes of `reference` the prefix matches, if it does: the prefix must end at a
/// repository boundary (`:`, `/`, `@` or the end), and `*.domain` matches any subdomain of `domain`
/// before the first `/`.
pub fn matching_prefix_len(reference: &str, prefix: &str) -> Option<usize> {
    if let Some(suffix) = prefix.strip_prefix('*')
        && suffix.starts_with('.')
    {
        // The first occurrence of the suffix decides, as upstream (so `*.com` misses `a.comx.com`).
        let index = reference.find(suffix)?;
        if reference[..index].contains('/') {
            return None;
        }
        return boundary(reference, index + suffix.len());
    }
    if !reference.starts_with(prefix) {
        return None;
    }
    boundary(reference, prefix.len())
}

fn boundary(reference: &str, end: usize) -> Option<usize> {
    match reference.as_bytes().get(end) {
        None | Some(b':' | b'/' | b'@') => Some(end),
        Some(_) => None,
    }
}

/// `location` + what follows the prefix; an empty location (a `*.` entry) keeps the reference.
fn rewrite(reference: &Reference, prefix: &str, location: &str) -> Result<Reference, ConfError> {
    if location.is_empty() {
        return Ok(reference.clone());
    }
    let text = reference.to_string();
    let fail = |message: String| ConfError::Rewrite {
        reference: text.clone(),
        prefix: prefix.to_owned(),
        message,
    };
    let matched = matching_prefix_len(&text, prefix)
        .ok_or_else(|| fail(format!("invalid prefix '{prefix}' for reference '{text}'")))?;
    let candidate = format!("{location}{}", &text[matched..]);
    let rewritten = Reference::parse(&candidate).map_err(|e| fail(e.reason.to_string()))?;
    if rewritten.to_string() != candidate {
        return Err(fail(format!(
            "{candidate:?}: repository name must be canonical"
        )));
    }
    Ok(rewritten)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matching_follows_upstream() {
        let cases = [
            ("example.com/foo/bar:1", "example.com/foo", Some(15)),
            ("example.com/foobar:1", "example.com/foo", None),
            ("example.com/foo@sha256:x", "example.com/foo", Some(15)),
            ("example.com:5000/x:1", "example.com", Some(11)),
            ("example.com:50000/x:1", "example.com:5000", None),
            ("a.b.example.com/x:1", "*.example.com", Some(15)),
            ("example.com/x:1", "*.example.com", None),
            ("docker.io/example.com/x:1", "*.example.com", None),
            ("foo.comx.com/x:1", "*.com", None),
            ("a.example.com:5000/x:1", "*.example.com", Some(13)),
            ("anything/x:1", "*", None),
            ("a.x/y:1", "**.x", None),
        ];
        for (reference, prefix, want) in cases {
            assert_eq!(
                matching_prefix_len(reference, prefix),
                want,
                "{reference} vs {prefix}"
            );
        }
    }
}
