//! One registries.conf file: TOML schema, v1 detection, and the per-file validation containers/image
//! does (`postProcessRegistries`), with its error wording.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

/// Which mirrors serve which pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullFromMirror {
    /// Tag and digest pulls (`all`, or unset).
    All,
    /// Only pulls by digest.
    DigestOnly,
    /// Only pulls by tag.
    TagOnly,
}

/// A mirror of a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// Where the mirror lives (`host[:port][/path]`).
    pub location: String,
    /// Skip TLS verification and allow plain HTTP.
    pub insecure: bool,
    /// Which pulls use it.
    pub pull_from_mirror: PullFromMirror,
}

/// A `[[registry]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// What references it applies to (`host[/path]` or `*.domain`).
    pub prefix: String,
    /// Where those references really live (empty only with a `*.` prefix).
    pub location: String,
    /// Skip TLS verification and allow plain HTTP.
    pub insecure: bool,
    /// Refuse to pull from it.
    pub blocked: bool,
    /// Use the mirrors only for pulls by digest.
    pub mirror_by_digest_only: bool,
    /// Mirrors, tried in this order before the location.
    pub mirrors: Vec<Mirror>,
}

/// The settings of one file (or of several merged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `[[registry]]` entries, sorted by prefix, one per prefix.
    pub registries: Vec<Registry>,
    /// `unqualified-search-registries`, if the file sets it.
    pub unqualified_search_registries: Option<Vec<String>>,
    /// `short-name-mode`, if set.
    pub short_name_mode: Option<String>,
    /// `credential-helpers`, if set.
    pub credential_helpers: Option<Vec<String>>,
    /// `[aliases]`; an empty value erases an alias.
    pub aliases: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawFile {
    #[serde(default)]
    registry: Vec<RawRegistry>,
    unqualified_search_registries: Option<Vec<String>>,
    short_name_mode: Option<String>,
    credential_helpers: Option<Vec<String>>,
    #[serde(default)]
    aliases: BTreeMap<String, String>,
    /// The deprecated v1 format: `[registries.search]`, `[registries.insecure]`, `[registries.block]`.
    registries: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawRegistry {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror_by_digest_only: bool,
    #[serde(default)]
    pull_from_mirror: String,
    #[serde(default)]
    mirror: Vec<RawMirror>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawMirror {
    #[serde(default)]
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    pull_from_mirror: String,
}

/// Parses and validates one file's text. `drop_in` files must be v2.
pub fn parse(text: &str, drop_in: bool) -> Result<Settings, String> {
    let raw: RawFile = toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))?;
    if raw.registries.is_some() {
        let v2 = !raw.registry.is_empty()
            || raw.unqualified_search_registries.is_some()
            || raw.short_name_mode.is_some()
            || raw.credential_helpers.is_some()
            || !raw.aliases.is_empty();
        return Err(if v2 {
            "mixing sysregistry v1/v2 is not supported".into()
        } else if drop_in {
            "registry must be in v2 format but is in v1".into()
        } else {
            "registries.conf must be in v2 format but is in v1 (convert [registries.search], \
             [registries.insecure] and [registries.block] to [[registry]] entries)"
                .into()
        });
    }
    if let Some(mode) = &raw.short_name_mode
        && !matches!(mode.as_str(), "" | "enforcing" | "permissive" | "disabled")
    {
        return Err(format!("invalid short-name mode: {mode:?}"));
    }
    let mut registries = Vec::new();
    for entry in raw.registry {
        registries.push(validate(entry)?);
    }
    check_conflicts(&registries)?;
    let unqualified = match raw.unqualified_search_registries {
        Some(list) => Some(
            list.iter()
                .map(|entry| {
                    let host = parse_location(entry)?;
                    if !wharf_oci::is_valid_domain(&host) {
                        return Err(format!(
                            "Invalid unqualified-search-registries entry {host:?}"
                        ));
                    }
                    Ok(host)
                })
                .collect::<Result<Vec<_>, String>>()?,
        ),
        None => None,
    };
    Ok(Settings {
        registries: unique_sorted(registries),
        unqualified_search_registries: unqualified,
        short_name_mode: raw.short_name_mode.filter(|m| !m.is_empty()),
        credential_helpers: raw.credential_helpers,
        aliases: raw.aliases,
    })
}

/// Trailing `/` removed; schemes refused.
fn parse_location(input: &str) -> Result<String, String> {
    let trimmed = input.trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return Err(format!(
            "invalid location '{input}': URI schemes are not supported"
        ));
    }
    Ok(trimmed.to_owned())
}

fn validate(raw: RawRegistry) -> Result<Registry, String> {
    let location = parse_location(&raw.location)?;
    let prefix = if raw.prefix.is_empty() {
        if location.is_empty() {
            return Err("invalid condition: both location and prefix are unset".into());
        }
        location.clone()
    } else {
        let prefix = parse_location(&raw.prefix)?;
        if !prefix.starts_with("*.") && location.is_empty() {
            return Err(
                "invalid condition: location is unset and prefix is not in the format: *.example.com"
                    .into(),
            );
        }
        prefix
    };
    if prefix.starts_with("*.") && prefix.contains(['/', '@', ':']) {
        return Err(format!(
            "Wildcarded prefix should be in the format: *.example.com. Current prefix {prefix:?} is incorrectly formatted"
        ));
    }
    if !raw.pull_from_mirror.is_empty() {
        return Err(format!(
            "pull-from-mirror must not be set for a non-mirror registry {prefix:?}"
        ));
    }
    let mut mirrors = Vec::new();
    for mirror in raw.mirror {
        let location = parse_location(&mirror.location)?;
        if location.is_empty() {
            return Err("invalid condition: mirror location is unset".into());
        }
        if raw.mirror_by_digest_only && !mirror.pull_from_mirror.is_empty() {
            return Err(format!(
                "cannot set mirror usage mirror-by-digest-only for the registry ({prefix:?}) and pull-from-mirror for per-mirror ({location:?}) at the same time"
            ));
        }
        let pull_from_mirror = match mirror.pull_from_mirror.as_str() {
            "" | "all" => PullFromMirror::All,
            "digest-only" => PullFromMirror::DigestOnly,
            "tag-only" => PullFromMirror::TagOnly,
            other => {
                return Err(format!(
                    "unsupported pull-from-mirror value {other:?} for mirror {location:?}"
                ));
            }
        };
        mirrors.push(Mirror {
            location,
            insecure: mirror.insecure,
            pull_from_mirror,
        });
    }
    Ok(Registry {
        prefix,
        location,
        insecure: raw.insecure,
        blocked: raw.blocked,
        mirror_by_digest_only: raw.mirror_by_digest_only,
        mirrors,
    })
}

/// Entries for the same location (or prefix, without a location) must agree on insecure and blocked.
fn check_conflicts(registries: &[Registry]) -> Result<(), String> {
    let key = |r: &Registry| {
        if r.location.is_empty() {
            r.prefix.clone()
        } else {
            r.location.clone()
        }
    };
    let mut seen: HashMap<String, &Registry> = HashMap::new();
    for registry in registries {
        let Some(first) = seen.get(&key(registry)) else {
            seen.insert(key(registry), registry);
            continue;
        };
        if first.insecure != registry.insecure {
            return Err(format!(
                "registry '{}' is defined multiple times with conflicting 'insecure' setting",
                registry.location
            ));
        }
        if first.blocked != registry.blocked {
            return Err(format!(
                "registry '{}' is defined multiple times with conflicting 'blocked' setting",
                registry.location
            ));
        }
    }
    Ok(())
}

/// One entry per prefix (the first in the file wins), sorted by prefix.
fn unique_sorted(registries: Vec<Registry>) -> Vec<Registry> {
    let mut by_prefix: BTreeMap<String, Registry> = BTreeMap::new();
    for registry in registries {
        by_prefix.entry(registry.prefix.clone()).or_insert(registry);
    }
    by_prefix.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse(text, false).unwrap_err()
    }

    #[test]
    fn parses_registries_mirrors_and_top_level_keys() {
        let settings = parse(
            r#"
unqualified-search-registries = ["registry.fedoraproject.org", "docker.io/"]
short-name-mode = "enforcing"
credential-helpers = ["containers-auth.json", "secretservice"]

[aliases]
"fedora" = "registry.fedoraproject.org/fedora"

[[registry]]
prefix = "example.com/foo"
location = "internal.example.com/bar/"
insecure = true
mirror-by-digest-only = true
[[registry.mirror]]
location = "mirror.example.com/m/"
insecure = true

[[registry]]
location = "a.example.com"
[[registry]]
location = "a.example.com"
prefix = "a.example.com/x"
[[registry]]
location = "ignored.example.com"
prefix = "example.com/foo"
"#,
            false,
        )
        .unwrap();
        let prefixes: Vec<&str> = settings
            .registries
            .iter()
            .map(|r| r.prefix.as_str())
            .collect();
        assert_eq!(
            prefixes,
            ["a.example.com", "a.example.com/x", "example.com/foo"]
        );
        let foo = &settings.registries[2];
        assert_eq!(
            foo.location, "internal.example.com/bar",
            "the first entry for a prefix wins"
        );
        assert_eq!(foo.mirrors[0].location, "mirror.example.com/m");
        assert!(foo.insecure && foo.mirror_by_digest_only && foo.mirrors[0].insecure);
        assert_eq!(
            settings.unqualified_search_registries,
            Some(vec![
                "registry.fedoraproject.org".into(),
                "docker.io".into()
            ])
        );
        assert_eq!(settings.short_name_mode.as_deref(), Some("enforcing"));
        assert_eq!(settings.credential_helpers.unwrap().len(), 2);
        assert_eq!(
            settings.aliases["fedora"],
            "registry.fedoraproject.org/fedora"
        );
    }

    #[test]
    fn validation_errors_use_containers_image_words() {
        let cases = [
            (
                "[[registry]]\nlocation = \"https://example.com\"",
                "invalid location 'https://example.com': URI schemes are not supported",
            ),
            (
                "[[registry]]\ninsecure = true",
                "invalid condition: both location and prefix are unset",
            ),
            (
                "[[registry]]\nprefix = \"example.com\"",
                "invalid condition: location is unset and prefix is not in the format: *.example.com",
            ),
            (
                "[[registry]]\nlocation = \"r.com/foo\"\npull-from-mirror = \"all\"",
                "pull-from-mirror must not be set for a non-mirror registry \"r.com/foo\"",
            ),
            (
                "[[registry]]\nlocation = \"r.com\"\n[[registry.mirror]]\ninsecure = true",
                "invalid condition: mirror location is unset",
            ),
            (
                "[[registry]]\nlocation = \"r.com\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.com\"\npull-from-mirror = \"all\"",
                "cannot set mirror usage mirror-by-digest-only for the registry (\"r.com\") and pull-from-mirror for per-mirror (\"m.com\") at the same time",
            ),
            (
                "[[registry]]\nlocation = \"r.com\"\n[[registry.mirror]]\nlocation = \"m.com\"\npull-from-mirror = \"notvalid\"",
                "unsupported pull-from-mirror value \"notvalid\" for mirror \"m.com\"",
            ),
            (
                "[[registry]]\nlocation = \"r.com\"\ninsecure = true\n[[registry]]\nlocation = \"r.com\"\nprefix = \"x.com\"",
                "registry 'r.com' is defined multiple times with conflicting 'insecure' setting",
            ),
            (
                "[[registry]]\nlocation = \"r.com\"\n[[registry]]\nlocation = \"r.com\"\nprefix = \"x.com\"\nblocked = true",
                "registry 'r.com' is defined multiple times with conflicting 'blocked' setting",
            ),
            (
                "[[registry]]\nprefix = \"*.example.com/foo\"\nlocation = \"x.com\"",
                "Wildcarded prefix should be in the format: *.example.com. Current prefix \"*.example.com/foo\" is incorrectly formatted",
            ),
            (
                "unqualified-search-registries = [\"registry-a.com/namespace-is-forbidden\"]",
                "Invalid unqualified-search-registries entry \"registry-a.com/namespace-is-forbidden\"",
            ),
            (
                "short-name-mode = \"invalid\"",
                "invalid short-name mode: \"invalid\"",
            ),
            (
                "[registries.search]\nregistries = [\"docker.io\"]",
                "registries.conf must be in v2 format but is in v1",
            ),
            (
                "[registries.search]\nregistries = []\n[[registry]]\nlocation = \"a.com\"",
                "mixing sysregistry v1/v2 is not supported",
            ),
        ];
        for (text, want) in cases {
            let got = error(text);
            assert!(
                got.starts_with(want),
                "{text}\n  got:  {got}\n  want: {want}"
            );
        }
        assert_eq!(
            parse("[registries.block]\nregistries = [\"a\"]", true).unwrap_err(),
            "registry must be in v2 format but is in v1"
        );
        assert!(
            error("[[registry]\n").contains("TOML") || error("[[registry]\n").contains("invalid"),
            "{}",
            error("[[registry]\n")
        );
    }

    #[test]
    fn unknown_keys_are_ignored_like_upstream() {
        // A key after [[registry.mirror]] belongs to the mirror table and has no effect (podman#14306).
        let settings = parse("[[registry]]\nlocation = \"r.com\"\n[[registry.mirror]]\nlocation = \"m.com\"\nmirror-by-digest-only = true\nfuture-key = 1", false).unwrap();
        assert!(!settings.registries[0].mirror_by_digest_only);
    }

    #[test]
    fn wildcard_prefixes_may_go_without_location() {
        let settings = parse(
            "[[registry]]\nprefix = \"*.example.com\"\nblocked = true",
            false,
        )
        .unwrap();
        assert_eq!(settings.registries[0].location, "");
        assert!(settings.registries[0].blocked);
    }
}
