//! Locations as users type them, parsed through one table of prefixes.

use std::fmt;
use std::path::PathBuf;

use wharf_oci::{Descriptor, Digest, Reference, validate_ref_name};

use crate::layout::Layout;
use crate::registry::Registries;
use crate::{ReadStore, Result, Store};

/// Where content lives, in command-line notation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `[docker://]HOST/REPO[:TAG][@DIGEST]`: a repository of a registry.
    Registry {
        /// The repository (its tag, if any, is `latest` by normalisation and not used).
        repository: Reference,
        /// The tag as given.
        tag: Option<String>,
        /// The digest as given.
        digest: Option<Digest>,
    },
    /// `ctf:PATH//REPO[:TAG][@DIGEST]`: a repository of an OCM Common Transport Format.
    Ctf {
        /// The CTF (directory, `.tar` or `.tgz`).
        path: PathBuf,
        /// The repository inside it.
        repository: String,
        /// The tag as given.
        tag: Option<String>,
        /// The digest as given.
        digest: Option<Digest>,
    },
    /// `oci:PATH[:TAG][@DIGEST]`: an OCI image layout directory, or `oci-archive:FILE[:TAG][@DIGEST]`: a
    /// tar of one.
    Layout {
        /// The layout directory or tar file.
        path: PathBuf,
        /// A tar file (`oci-archive:`) rather than a directory.
        archive: bool,
        /// The image's tag (`org.opencontainers.image.ref.name`).
        tag: Option<String>,
        /// The image's digest.
        digest: Option<Digest>,
    },
}

/// Why a location string cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid location {input:?}: {reason}")]
pub struct AddressError {
    /// The location as given.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses what follows a location's prefix.
type PrefixParser = fn(&str) -> Result<Address, String>;

/// The transports wharf knows, by prefix; anything else must be a registry reference with a host.
const PREFIXES: &[(&str, PrefixParser)] = &[
    ("oci:", parse_layout),
    ("oci-archive:", parse_archive),
    ("ctf:", parse_ctf),
    ("docker://", parse_registry),
];

const KINDS: &str = "use HOST/REPO[:TAG] for a registry (docker://NAME for Docker Hub), oci:PATH[:TAG] for an OCI image layout, oci-archive:FILE[:TAG] for a tar of one or ctf:PATH//REPO[:TAG] for a CTF";

impl Address {
    /// Parses a location: `HOST/REPO[:TAG][@DIGEST]`, `docker://REFERENCE`, `oci:PATH[:TAG][@DIGEST]`,
    /// `oci-archive:FILE[:TAG][@DIGEST]`, `ctf:PATH//REPO[:TAG][@DIGEST]`.
    pub fn parse(input: &str) -> Result<Address, AddressError> {
        let fail = |reason: String| AddressError {
            input: input.to_owned(),
            reason,
        };
        if let Some((rest, parse)) = PREFIXES
            .iter()
            .find_map(|(prefix, parse)| input.strip_prefix(prefix).map(|rest| (rest, parse)))
        {
            return parse(rest).map_err(fail);
        }
        // Without a prefix only an unmistakable registry reference is accepted, so that a typo such as
        // `oci-dir:x` is not read as the Docker Hub image `oci-dir` with tag `x`.
        let host = input.split('/').next().unwrap_or_default();
        let has_host = input.contains('/') && (host.contains(['.', ':']) || host == "localhost");
        if !has_host {
            return Err(fail(format!("unknown kind of location; {KINDS}")));
        }
        parse_registry(input).map_err(fail)
    }

    /// The CTF that `ctf:PATH` (without `//REPO`) names as a whole, for commands that take all of
    /// its repositories.
    pub fn whole_ctf(input: &str) -> Option<PathBuf> {
        input
            .strip_prefix("ctf:")
            .filter(|rest| !rest.is_empty() && !rest.contains("//"))
            .map(PathBuf::from)
    }

    /// The tag the location names, if any.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Address::Registry { tag, .. }
            | Address::Layout { tag, .. }
            | Address::Ctf { tag, .. } => tag.as_deref(),
        }
    }

    /// The digest the location names, if any.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Address::Registry { digest, .. }
            | Address::Layout { digest, .. }
            | Address::Ctf { digest, .. } => digest.as_ref(),
        }
    }

    /// Opens the location to read from it; it must exist.
    pub async fn open_read(&self, registries: &Registries) -> Result<Box<dyn ReadStore>> {
        match self {
            Address::Registry { repository, .. } => Ok(registries.pull(repository)),
            Address::Layout {
                path,
                archive: false,
                ..
            } => Ok(Box::new(Layout::open(path.clone()).await?)),
            // Opened once per run: an archive is indexed (or decompressed) once.
            Address::Layout {
                path,
                archive: true,
                ..
            } => Ok(Box::new(registries.archive(path, false).await?)),
            Address::Ctf {
                path, repository, ..
            } => Ok(Box::new(
                registries.ctf(path, false).await?.repository(repository),
            )),
        }
    }

    /// Opens the location to write to it, creating it on first write if it does not exist.
    pub async fn open_write(&self, registries: &Registries) -> Result<Box<dyn Store>> {
        match self {
            Address::Registry { repository, .. } => Ok(Box::new(registries.push(repository)?)),
            Address::Layout {
                path,
                archive: false,
                ..
            } => Ok(Box::new(registries.layout(path).await?)),
            Address::Layout {
                path,
                archive: true,
                ..
            } => Ok(Box::new(registries.archive(path, true).await?)),
            Address::Ctf {
                path, repository, ..
            } => Ok(Box::new(
                registries.ctf(path, true).await?.repository(repository),
            )),
        }
    }

    /// Finds the manifest this location names in `store`: by digest, else by tag, else the store's
    /// default.
    pub async fn resolve_in(&self, store: &dyn ReadStore) -> Result<Descriptor> {
        match (self.digest(), self.tag()) {
            (Some(digest), _) => store.resolve(digest.as_str()).await,
            (None, Some(tag)) => store.resolve(tag).await,
            (None, None) => store.resolve_default().await,
        }
    }
}

fn parse_registry(rest: &str) -> Result<Address, String> {
    let repository = Reference::parse(rest).map_err(|e| e.reason.to_string())?;
    let named = rest.split('@').next().unwrap_or(rest);
    let last_segment = named.rsplit('/').next().unwrap_or(named);
    let tag = if last_segment.contains(':') {
        repository.tag().map(str::to_owned)
    } else {
        None
    };
    let digest = repository.digest().cloned();
    Ok(Address::Registry {
        repository,
        tag,
        digest,
    })
}

fn parse_ctf(rest: &str) -> Result<Address, String> {
    let (path, repository) = rest
        .split_once("//")
        .ok_or("expected ctf:PATH//REPOSITORY[:TAG][@DIGEST]")?;
    if path.is_empty() {
        return Err("the CTF path is empty".into());
    }
    let Address::Registry {
        repository: reference,
        tag,
        digest,
    } = parse_registry(&format!("ctf.invalid/{repository}"))?
    else {
        unreachable!("parse_registry makes registry addresses")
    };
    Ok(Address::Ctf {
        path: PathBuf::from(path),
        repository: reference.path().to_owned(),
        tag,
        digest,
    })
}

fn parse_layout(rest: &str) -> Result<Address, String> {
    parse_layout_kind(rest, false)
}

fn parse_archive(rest: &str) -> Result<Address, String> {
    parse_layout_kind(rest, true)
}

fn parse_layout_kind(rest: &str, archive: bool) -> Result<Address, String> {
    let (rest, digest) = match rest.rsplit_once('@') {
        Some((before, after)) if after.contains(':') && !after.contains('/') => (
            before,
            Some(Digest::parse(after).map_err(|e| e.to_string())?),
        ),
        _ => (rest, None),
    };
    let (path, tag) = match rest.split_once(':') {
        Some((path, tag)) => {
            validate_ref_name(tag).map_err(|e| e.to_string())?;
            (path, Some(tag.to_owned()))
        }
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(if archive {
            "the archive path is empty"
        } else {
            "the layout path is empty"
        }
        .into());
    }
    Ok(Address::Layout {
        path: PathBuf::from(path),
        archive,
        tag,
        digest,
    })
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (tag, digest) = (self.tag(), self.digest());
        match self {
            Address::Registry { repository, .. } => write!(f, "{}", repository.name())?,
            Address::Layout {
                path,
                archive: false,
                ..
            } => write!(f, "oci:{}", path.display())?,
            Address::Layout {
                path,
                archive: true,
                ..
            } => write!(f, "oci-archive:{}", path.display())?,
            Address::Ctf {
                path, repository, ..
            } => write!(f, "ctf:{}//{repository}", path.display())?,
        }
        if let Some(tag) = tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_layouts_and_round_trips() {
        let cases = [
            ("oci:dir", "dir", None, None),
            ("oci:./a/b:v1.0", "./a/b", Some("v1.0"), None),
            (
                &format!("oci:/x@{DIGEST}") as &str,
                "/x",
                None,
                Some(DIGEST),
            ),
            (&format!("oci:x:t@{DIGEST}"), "x", Some("t"), Some(DIGEST)),
            ("oci:user@host/dir:t", "user@host/dir", Some("t"), None),
            ("oci-archive:out.tar:v1", "out.tar", Some("v1"), None),
            (
                "oci-archive:out.tar:team/app:1.0",
                "out.tar",
                Some("team/app:1.0"),
                None,
            ),
        ];
        for (input, path, tag, digest) in cases {
            let a = Address::parse(input).unwrap();
            assert_eq!(a.to_string(), input);
            assert_eq!(Address::parse(&a.to_string()).unwrap(), a);
            let Address::Layout { path: p, .. } = &a else {
                panic!("{input} is a layout")
            };
            assert_eq!(p, &PathBuf::from(path));
            assert_eq!(a.tag(), tag);
            assert_eq!(a.digest().map(Digest::as_str), digest);
        }
    }

    #[test]
    fn parses_registries_and_round_trips() {
        let cases = [
            ("localhost:5000/app", "localhost:5000/app", None, None),
            (
                "localhost:5000/app:1.0",
                "localhost:5000/app:1.0",
                Some("1.0"),
                None,
            ),
            ("docker://busybox", "docker.io/library/busybox", None, None),
            (
                "docker://busybox:1",
                "docker.io/library/busybox:1",
                Some("1"),
                None,
            ),
            (
                &format!("quay.io/a/b@{DIGEST}") as &str,
                &format!("quay.io/a/b@{DIGEST}") as &str,
                None,
                Some(DIGEST),
            ),
            (
                &format!("127.0.0.1:5/a:t@{DIGEST}"),
                &format!("127.0.0.1:5/a:t@{DIGEST}"),
                Some("t"),
                Some(DIGEST),
            ),
        ];
        for (input, printed, tag, digest) in cases {
            let a = Address::parse(input).unwrap();
            assert_eq!(a.to_string(), printed, "{input}");
            assert_eq!(Address::parse(&a.to_string()).unwrap(), a, "{input}");
            assert_eq!(a.tag(), tag, "{input}");
            assert_eq!(a.digest().map(Digest::as_str), digest, "{input}");
        }
    }

    #[test]
    fn rejects_bad_locations() {
        for (input, want) in [
            ("dir", "unknown kind of location"),
            ("busybox", "docker://NAME for Docker Hub"),
            ("oci-dir:x", "unknown kind of location"),
            ("oci:", "path is empty"),
            ("oci::tag", "path is empty"),
            ("oci-archive:", "archive path is empty"),
            ("oci:dir:-bad", "image name \"-bad\" is invalid"),
            ("oci:dir:a//b", "image name \"a//b\" is invalid"),
            ("oci:dir@md5:abc", "unsupported digest algorithm"),
            ("localhost:5000/UPPER", "must be lowercase"),
            ("docker://a/b@sha256:12", "64 hex characters"),
            ("ctf:x", "ctf:PATH//REPOSITORY"),
            ("ctf://a:1", "CTF path is empty"),
        ] {
            let err = Address::parse(input).unwrap_err().to_string();
            assert!(err.contains(want), "{input}: {err}");
            assert!(err.contains(input), "{err}");
        }
    }
}
