//! Locations as users type them, parsed and printed through one table of prefixes.
//!
//! A [`Location`] is a set of repositories: a registry host (with an optional base path), an OCI image
//! layout directory or archive, or an OCM Common Transport Format. An [`Address`] is a location plus a
//! repository in it and an optional tag and digest. In a layout, the repository is the part of an
//! image name before its tag (`team/app` of `team/app:1.0`), as `ref.name` annotations hold it.

use std::fmt;
use std::path::PathBuf;

use wharf_oci::{
    Descriptor, Digest, Reference, is_valid_domain, validate_ref_name, validate_repository,
};

use crate::ReadStore;

/// Where a set of repositories is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A registry host; every repository lies under `base` (empty: at the root).
    Registry {
        /// `host[:port]` as references name it.
        host: String,
        /// A path prefix, without slashes at either end.
        base: String,
    },
    /// `oci:PATH`, an OCI image layout directory, or `oci-archive:PATH`, a tar of one.
    Layout {
        /// The directory or tar file.
        path: PathBuf,
        /// A tar file rather than a directory.
        archive: bool,
    },
    /// `ctf:PATH`, an OCM Common Transport Format (directory, `.tar` or `.tgz`).
    Ctf(PathBuf),
}

/// Content in a location: a repository, and optionally a tag and a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Where.
    pub location: Location,
    /// The repository, relative to the location (empty: the location as a whole, or a layout's
    /// images named without a repository).
    pub repository: String,
    /// The tag, as given.
    pub tag: Option<String>,
    /// The digest, as given.
    pub digest: Option<Digest>,
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

/// The notations wharf knows, by prefix; anything else must be a registry reference with a host.
/// Each entry parses what follows the prefix as an address and as a location.
struct Notation {
    prefix: &'static str,
    address: fn(&str) -> Result<Address, String>,
    location: fn(&str) -> Result<Location, String>,
}

const NOTATIONS: &[Notation] = &[
    Notation {
        prefix: "oci:",
        address: |rest| parse_layout(rest, false),
        location: |rest| layout_location(rest, false),
    },
    Notation {
        prefix: "oci-archive:",
        address: |rest| parse_layout(rest, true),
        location: |rest| layout_location(rest, true),
    },
    Notation {
        prefix: "ctf:",
        address: parse_ctf,
        location: ctf_location,
    },
    Notation {
        prefix: "docker://",
        address: parse_registry,
        location: registry_location,
    },
];

/// URL schemes accepted before a registry location (OCM writes them).
const SCHEMES: [&str; 3] = ["https://", "http://", "oci://"];

const KINDS: &str = "use HOST/REPO[:TAG] for a registry (docker://NAME for Docker Hub), oci:PATH[:TAG] for an OCI image layout, oci-archive:FILE[:TAG] for a tar of one or ctf:PATH[//REPO[:TAG]] for a CTF";

/// Other tools' notations, each with the form wharf takes instead (`{}` stands for the rest).
const FOREIGN: &[(&str, &str)] = &[
    (
        "http://",
        "a URL is not an image reference; write {} (wharf tries HTTPS, then plain HTTP for loopback hosts and --insecure-registry HOST)",
    ),
    ("https://", "a URL is not an image reference; write {}"),
    (
        "dir:",
        "wharf has no dir: transport; an OCI image layout directory is oci:{}",
    ),
    (
        "docker-archive:",
        "docker save archives are not read; use an OCI archive, oci-archive:{} (skopeo copy docker-archive:X oci-archive:Y converts one)",
    ),
    (
        "docker-daemon:",
        "the Docker daemon is not read; push the image to a registry, or export it with skopeo copy docker-daemon:X oci-archive:Y",
    ),
    (
        "containers-storage:",
        "containers-storage is not read; push the image to a registry, or export it with skopeo copy containers-storage:X oci-archive:Y",
    ),
];

/// The advice for an address in another tool's notation, if it is one.
fn foreign(input: &str) -> Option<String> {
    FOREIGN.iter().find_map(|(prefix, advice)| {
        let rest = input.strip_prefix(prefix)?;
        Some(advice.replace("{}", rest))
    })
}

fn notation(input: &str) -> Option<(&'static Notation, &str)> {
    NOTATIONS
        .iter()
        .find_map(|n| input.strip_prefix(n.prefix).map(|rest| (n, rest)))
}

impl Address {
    /// Parses an address: `HOST/REPO[:TAG][@DIGEST]`, `docker://REFERENCE`,
    /// `oci:PATH[:[REPO:]TAG][@DIGEST]`, `oci-archive:FILE[:[REPO:]TAG][@DIGEST]`,
    /// `ctf:PATH[//REPO[:TAG][@DIGEST]]`.
    pub fn parse(input: &str) -> Result<Address, AddressError> {
        let fail = |reason: String| AddressError {
            input: input.to_owned(),
            reason,
        };
        if let Some((notation, rest)) = notation(input) {
            return (notation.address)(rest).map_err(fail);
        }
        if let Some(advice) = foreign(input) {
            return Err(fail(advice));
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

    /// The whole of `location`.
    pub fn whole(location: Location) -> Address {
        Address {
            location,
            repository: String::new(),
            tag: None,
            digest: None,
        }
    }

    /// The registry image a reference names (tagged `latest` when the reference names neither a tag
    /// nor a digest, as references mean).
    pub fn from_reference(reference: &Reference) -> Address {
        Address {
            location: Location::registry(reference.domain()),
            repository: reference.path().to_owned(),
            tag: reference.tag().map(str::to_owned),
            digest: reference.digest().cloned(),
        }
    }

    /// The tag the address names, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest the address names, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same repository with another tag and digest.
    pub fn with(&self, tag: Option<&str>, digest: Option<Digest>) -> Address {
        Address {
            location: self.location.clone(),
            repository: self.repository.clone(),
            tag: tag.map(str::to_owned),
            digest,
        }
    }

    /// Finds the manifest this address names in `store`: by digest, else by tag, else the store's
    /// default.
    pub async fn resolve_in(&self, store: &dyn ReadStore) -> crate::Result<Descriptor> {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => store.resolve(digest.as_str()).await,
            (None, Some(tag)) => store.resolve(tag).await,
            (None, None) => store.resolve_default().await,
        }
    }

    /// The repository's whole path on its registry host (`base/repository`); `None` for addresses
    /// that are not in a registry.
    pub fn registry_path(&self) -> Option<String> {
        match &self.location {
            Location::Registry { base, .. } => Some(crate::namespace::join(base, &self.repository)),
            _ => None,
        }
    }

    /// True when the address names a location as a whole (no repository, tag or digest).
    pub fn is_whole(&self) -> bool {
        self.repository.is_empty() && self.tag.is_none() && self.digest.is_none()
    }
}

impl Location {
    /// Parses a location: `[SCHEME://]HOST[:PORT][/BASE]` for a registry, `oci:PATH`,
    /// `oci-archive:PATH` or `ctf:PATH`.
    pub fn parse(input: &str) -> Result<Location, AddressError> {
        let fail = |reason: String| AddressError {
            input: input.to_owned(),
            reason,
        };
        // Before the prefixes: `oci://host` is a registry URL, not a layout at `//host`.
        if let Some(rest) = SCHEMES.iter().find_map(|scheme| input.strip_prefix(scheme)) {
            return registry_location(rest).map_err(fail);
        }
        match notation(input) {
            Some((notation, rest)) => (notation.location)(rest).map_err(fail),
            None => match foreign(input) {
                Some(advice) => Err(fail(advice)),
                None => registry_location(input).map_err(fail),
            },
        }
    }

    /// The root of registry `host`.
    pub fn registry(host: &str) -> Location {
        Location::Registry {
            host: host.to_owned(),
            base: String::new(),
        }
    }

    /// The registry host, for registries.
    pub fn host(&self) -> Option<&str> {
        match self {
            Location::Registry { host, .. } => Some(host),
            _ => None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Registry { host, base } if base.is_empty() => f.write_str(host),
            Location::Registry { host, base } => write!(f, "{host}/{base}"),
            Location::Layout {
                path,
                archive: false,
            } => write!(f, "oci:{}", path.display()),
            Location::Layout {
                path,
                archive: true,
            } => write!(f, "oci-archive:{}", path.display()),
            Location::Ctf(path) => write!(f, "ctf:{}", path.display()),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::Registry { .. } => {
                write!(f, "{}", self.location)?;
                if !self.repository.is_empty() {
                    write!(f, "/{}", self.repository)?;
                }
                if let Some(tag) = &self.tag {
                    write!(f, ":{tag}")?;
                }
            }
            Location::Ctf(_) => {
                write!(f, "{}", self.location)?;
                if !self.repository.is_empty() {
                    write!(f, "//{}", self.repository)?;
                }
                if let Some(tag) = &self.tag {
                    write!(f, ":{tag}")?;
                }
            }
            Location::Layout { .. } => {
                write!(f, "{}", self.location)?;
                match (&self.tag, self.repository.is_empty()) {
                    (Some(tag), true) => write!(f, ":{tag}")?,
                    (Some(tag), false) => write!(f, ":{}:{tag}", self.repository)?,
                    (None, false) => write!(f, ":{}", self.repository)?,
                    (None, true) => {}
                }
            }
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `[docker://]HOST/REPO[:TAG][@DIGEST]` (`docker://NAME` is a Docker Hub name).
fn parse_registry(rest: &str) -> Result<Address, String> {
    let reference = Reference::parse(rest).map_err(|e| e.reason.to_string())?;
    let named = rest.split('@').next().unwrap_or(rest);
    let last_segment = named.rsplit('/').next().unwrap_or(named);
    let mut address = Address::from_reference(&reference);
    if !last_segment.contains(':') {
        address.tag = None;
    }
    Ok(address)
}

/// `HOST[:PORT][/BASE]`.
fn registry_location(rest: &str) -> Result<Location, String> {
    let text = rest.trim_end_matches('/');
    let (host, base) = text.split_once('/').unwrap_or((text, ""));
    if host.is_empty() || !is_valid_domain(host) {
        return Err(format!("expected a registry HOST[:PORT][/PATH]; {KINDS}"));
    }
    if !base.is_empty() {
        validate_repository(base).map_err(|e| e.to_string())?;
    }
    Ok(Location::Registry {
        host: host.to_owned(),
        base: base.to_owned(),
    })
}

/// `PATH[//REPO[:TAG][@DIGEST]]`.
fn parse_ctf(rest: &str) -> Result<Address, String> {
    let Some((path, repository)) = rest.split_once("//") else {
        return Ok(Address::whole(ctf_location(rest)?));
    };
    let location = ctf_location(path)?;
    let mut address = parse_registry(&format!("ctf.invalid/{repository}"))?;
    address.location = location;
    Ok(address)
}

fn ctf_location(path: &str) -> Result<Location, String> {
    if path.is_empty() {
        return Err("the CTF path is empty".into());
    }
    Ok(Location::Ctf(PathBuf::from(path)))
}

/// `PATH[:[REPO:]TAG][@DIGEST]`: an image name with a colon names a repository and a tag.
fn parse_layout(rest: &str, archive: bool) -> Result<Address, String> {
    let (rest, digest) = match rest.rsplit_once('@') {
        Some((before, after)) if after.contains(':') && !after.contains('/') => (
            before,
            Some(Digest::parse(after).map_err(|e| e.to_string())?),
        ),
        _ => (rest, None),
    };
    let (path, name) = match rest.split_once(':') {
        Some((path, name)) => {
            validate_ref_name(name).map_err(|e| e.to_string())?;
            (path, Some(name))
        }
        None => (rest, None),
    };
    let location = layout_location(path, archive)?;
    let (repository, tag) = match name.map(|n| n.rsplit_once(':').unwrap_or(("", n))) {
        Some((repository, tag)) => (repository.to_owned(), Some(tag.to_owned())),
        None => (String::new(), None),
    };
    Ok(Address {
        location,
        repository,
        tag,
        digest,
    })
}

fn layout_location(path: &str, archive: bool) -> Result<Location, String> {
    if path.is_empty() {
        return Err(if archive {
            "the archive path is empty"
        } else {
            "the layout path is empty"
        }
        .into());
    }
    Ok(Location::Layout {
        path: PathBuf::from(path),
        archive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_layouts_and_round_trips() {
        let cases = [
            ("oci:dir", "dir", "", None, None),
            ("oci:./a/b:v1.0", "./a/b", "", Some("v1.0"), None),
            (
                &format!("oci:/x@{DIGEST}") as &str,
                "/x",
                "",
                None,
                Some(DIGEST),
            ),
            (
                &format!("oci:x:t@{DIGEST}"),
                "x",
                "",
                Some("t"),
                Some(DIGEST),
            ),
            ("oci:user@host/dir:t", "user@host/dir", "", Some("t"), None),
            ("oci:x:team/app", "x", "", Some("team/app"), None),
            ("oci-archive:out.tar:v1", "out.tar", "", Some("v1"), None),
            (
                "oci-archive:out.tar:team/app:1.0",
                "out.tar",
                "team/app",
                Some("1.0"),
                None,
            ),
        ];
        for (input, path, repository, tag, digest) in cases {
            let a = Address::parse(input).unwrap();
            assert_eq!(a.to_string(), input);
            assert_eq!(Address::parse(&a.to_string()).unwrap(), a);
            let Location::Layout { path: p, .. } = &a.location else {
                panic!("{input} is a layout")
            };
            assert_eq!(p, &PathBuf::from(path));
            assert_eq!(a.repository, repository, "{input}");
            assert_eq!(a.tag(), tag);
            assert_eq!(a.digest().map(Digest::as_str), digest);
        }
    }

    #[test]
    fn parses_registries_and_ctfs_and_round_trips() {
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
            (
                "ctf:x.tgz//team/app:1",
                "ctf:x.tgz//team/app:1",
                Some("1"),
                None,
            ),
            ("ctf:./x", "ctf:./x", None, None),
        ];
        for (input, printed, tag, digest) in cases {
            let a = Address::parse(input).unwrap();
            assert_eq!(a.to_string(), printed, "{input}");
            assert_eq!(Address::parse(&a.to_string()).unwrap(), a, "{input}");
            assert_eq!(a.tag(), tag, "{input}");
            assert_eq!(a.digest().map(Digest::as_str), digest, "{input}");
        }
        assert!(Address::parse("ctf:./x").unwrap().is_whole());
        assert_eq!(
            Address::parse("ctf:a//b/c").unwrap().repository,
            "b/c".to_owned()
        );
    }

    #[test]
    fn other_tools_notations_get_the_form_to_use() {
        let advice = |input: &str| Address::parse(input).unwrap_err().to_string();
        assert!(
            advice("http://127.0.0.1:5000/team/app:1").contains("write 127.0.0.1:5000/team/app:1"),
            "{}",
            advice("http://127.0.0.1:5000/team/app:1")
        );
        assert!(advice("dir:./x").contains("oci:./x"));
        assert!(advice("docker-archive:x.tar").contains("oci-archive:x.tar"));
        assert!(advice("docker-daemon:app:1").contains("push the image to a registry"));
        let location = Location::parse("dir:./x").unwrap_err().to_string();
        assert!(location.contains("oci:./x"), "{location}");
        assert!(Location::parse("http://127.0.0.1:5000/base").is_ok());
    }

    #[test]
    fn parses_locations_and_round_trips() {
        for (input, printed) in [
            ("localhost:5000", "localhost:5000"),
            ("localhost:5000/ocm/", "localhost:5000/ocm"),
            (
                "http://localhost:9999/local/components",
                "localhost:9999/local/components",
            ),
            ("oci://r.example.com/a", "r.example.com/a"),
            ("oci:./out", "oci:./out"),
            ("oci-archive:out.tar", "oci-archive:out.tar"),
            ("ctf:./out.tgz", "ctf:./out.tgz"),
        ] {
            let location = Location::parse(input).unwrap();
            assert_eq!(location.to_string(), printed, "{input}");
            assert_eq!(Location::parse(printed).unwrap(), location, "{input}");
        }
        for bad in ["", "ctf:", "oci:", "/x", "local host/x", "r.io/UPPER"] {
            assert!(Location::parse(bad).is_err(), "{bad}");
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
            ("ctf://a:1", "CTF path is empty"),
        ] {
            let err = Address::parse(input).unwrap_err().to_string();
            assert!(err.contains(want), "{input}: {err}");
            assert!(err.contains(input), "{err}");
        }
    }
}
