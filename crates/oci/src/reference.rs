//! Image references (`[domain/]path[:tag][@digest]`) following the distribution reference grammar,
//! with Docker Hub normalisation (`busybox` → `docker.io/library/busybox:latest`).

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// Docker Hub's canonical domain.
pub const DOCKER_HUB: &str = "docker.io";
/// The legacy name of Docker Hub, rewritten to [`DOCKER_HUB`].
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
/// Maximum length of the full name (domain and path).
pub const NAME_MAX_LEN: usize = 255;
/// Maximum length of a tag.
pub const TAG_MAX_LEN: usize = 128;

/// A fully qualified image reference.
///
/// Parsing normalises the way `docker` and `skopeo` do: a first component without `.` or `:` that is not
/// `localhost` is not a domain, so `busybox` means `docker.io/library/busybox`, and a reference with neither
/// tag nor digest gets the tag `latest`. [`Display`](fmt::Display) prints the normalised form, which parses
/// back to the same value.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not a valid reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference {input:?}: {reason}")]
pub struct ReferenceError {
    /// The string that failed to parse.
    pub input: String,
    /// What is wrong with it.
    pub reason: ReferenceErrorReason,
}

/// The specific problem with a reference string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceErrorReason {
    /// Nothing to parse.
    #[error("reference is empty")]
    Empty,
    /// The repository path has an empty component (`a//b`, leading or trailing `/`).
    #[error("repository name must have at least one component between slashes")]
    EmptyComponent,
    /// Upper-case letters in the repository path.
    #[error("repository name {0:?} must be lowercase")]
    Uppercase(String),
    /// A path component that is not `[a-z0-9]+` joined by `.`, `_`, `__` or dashes.
    #[error(
        "repository path component {0:?} is invalid: use [a-z0-9] separated by '.', '_', '__' or '-'"
    )]
    BadComponent(String),
    /// The domain is not a hostname, IPv4 or bracketed IPv6 address with an optional numeric port.
    #[error("registry host {0:?} is invalid")]
    BadDomain(String),
    /// A port that is empty or not numeric.
    #[error("port {0:?} is not a number")]
    BadPort(String),
    /// Name longer than [`NAME_MAX_LEN`].
    #[error("repository name must not be more than {NAME_MAX_LEN} characters (it has {0})")]
    NameTooLong(usize),
    /// Tag not matching `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error("tag {0:?} is invalid: use up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'")]
    BadTag(String),
    /// An image layout name not matching the `org.opencontainers.image.ref.name` grammar.
    #[error(
        "image name {0:?} is invalid: use [A-Za-z0-9] runs joined by '-', '.', '_', ':', '@', '+' or '--', in '/'-separated parts"
    )]
    BadRefName(String),
    /// A repository that is a bare 64-hex identifier, which Docker forbids as ambiguous.
    #[error("a repository name cannot be a 64-character hexadecimal string")]
    HexIdentifier,
    /// The digest after `@` is invalid.
    #[error("{0}")]
    BadDigest(DigestError),
}

impl Reference {
    /// Parses and normalises a reference.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        parse(input).map_err(|reason| ReferenceError {
            input: input.to_owned(),
            reason,
        })
    }

    /// Builds a reference from already-validated parts of another reference and a new tag or digest.
    fn with(&self, tag: Option<String>, digest: Option<Digest>) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag,
            digest,
        }
    }

    /// Registry host, with port if any (`docker.io`, `localhost:5000`, `[::1]:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Repository path inside the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `domain/path`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry for: the digest when there is one (it is immutable), else the tag.
    pub fn tag_or_digest(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// The same repository with `digest` pinned (the tag is kept).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        self.with(self.tag.clone(), Some(digest))
    }

    /// The same repository with only `digest` (no tag): a pull by digest.
    pub fn at_digest(&self, digest: Digest) -> Reference {
        self.with(None, Some(digest))
    }

    /// The same repository with only `tag`.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        check_tag(tag).map_err(|reason| ReferenceError {
            input: tag.to_owned(),
            reason,
        })?;
        Ok(self.with(Some(tag.to_owned()), None))
    }

    /// The same registry with another repository path (tag and digest kept).
    pub fn with_path(&self, path: &str) -> Result<Reference, ReferenceError> {
        let fail = |reason| ReferenceError {
            input: path.to_owned(),
            reason,
        };
        check_path(path).map_err(fail)?;
        check_name_len(&self.domain, path).map_err(fail)?;
        let mut reference = self.clone();
        reference.path = path.to_owned();
        Ok(reference)
    }
}

fn parse(input: &str) -> Result<Reference, ReferenceErrorReason> {
    use ReferenceErrorReason as R;
    if input.is_empty() {
        return Err(R::Empty);
    }
    if is_hex_identifier(input) {
        return Err(R::HexIdentifier);
    }
    let (named, digest) = match input.split_once('@') {
        Some((named, digest)) => (named, Some(Digest::parse(digest).map_err(R::BadDigest)?)),
        None => (input, None),
    };
    let (domain, remainder) = split_domain(named);
    // Any ':' left after the domain is split off can only introduce the tag.
    let (path, tag) = match remainder.rsplit_once(':') {
        Some((path, tag)) => (path, Some(tag)),
        None => (remainder, None),
    };
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    check_domain(domain)?;
    let domain = if domain == DOCKER_HUB_LEGACY {
        DOCKER_HUB
    } else {
        domain
    };
    let path = if domain == DOCKER_HUB && !path.contains('/') && !path.is_empty() {
        format!("library/{path}")
    } else {
        path.to_owned()
    };
    check_path(&path)?;
    if is_hex_identifier(&path) {
        return Err(R::HexIdentifier);
    }
    check_name_len(domain, &path)?;
    let tag = match (tag, &digest) {
        (Some(tag), _) => Some(tag.to_owned()),
        (None, Some(_)) => None,
        (None, None) => Some("latest".to_owned()),
    };
    Ok(Reference {
        domain: domain.to_owned(),
        path,
        tag,
        digest,
    })
}

/// Docker's rule: the part before the first `/` is a domain only if it contains `.` or `:`, is
/// `localhost`, or has upper case (repository paths cannot).
fn split_domain(named: &str) -> (&str, &str) {
    match named.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, named),
    }
}

fn is_hex_identifier(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn check_name_len(domain: &str, path: &str) -> Result<(), ReferenceErrorReason> {
    let len = domain.len() + 1 + path.len();
    if len > NAME_MAX_LEN {
        return Err(ReferenceErrorReason::NameTooLong(len));
    }
    Ok(())
}

/// `host[:port]`; host is `component(.component)*` (alphanumerics and inner dashes) or `[ipv6]`.
fn check_domain(domain: &str) -> Result<(), ReferenceErrorReason> {
    let bad = || ReferenceErrorReason::BadDomain(domain.to_owned());
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let (ipv6, after) = rest.split_once(']').ok_or_else(bad)?;
        if ipv6.is_empty() || !ipv6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(bad());
        }
        match after {
            "" => (None, None),
            _ => (None, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        let valid_component = |c: &str| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        };
        if !host.split('.').all(valid_component) {
            return Err(bad());
        }
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ReferenceErrorReason::BadPort(port.to_owned()));
    }
    Ok(())
}

/// `component(/component)*`, each `[a-z0-9]+` joined by `.`, `_`, `__` or `-+`.
fn check_path(path: &str) -> Result<(), ReferenceErrorReason> {
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceErrorReason::Uppercase(path.to_owned()));
    }
    for component in path.split('/') {
        if component.is_empty() {
            return Err(ReferenceErrorReason::EmptyComponent);
        }
        if !is_path_component(component) {
            return Err(ReferenceErrorReason::BadComponent(component.to_owned()));
        }
    }
    Ok(())
}

fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(|&b| alnum(b)) || !bytes.last().is_some_and(|&b| alnum(b)) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator run: one '.', one or two '_', or any number of '-'.
        let start = i;
        let sep = bytes[i];
        while i < bytes.len() && bytes[i] == sep {
            i += 1;
        }
        let run = i - start;
        let ok = match sep {
            b'.' => run == 1,
            b'_' => run <= 2,
            b'-' => true,
            _ => false,
        };
        // Separators of different kinds may not touch (`.-`): the next byte must be alphanumeric.
        if !ok || !alnum(bytes[i]) {
            return false;
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), ReferenceErrorReason> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let valid = tag.len() <= TAG_MAX_LEN
        && tag.as_bytes().first().is_some_and(|&b| word(b))
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ReferenceErrorReason::BadTag(tag.to_owned()))
    }
}

/// Checks a repository path on its own (`library/busybox`), for servers and path rewriting.
pub fn validate_repository(path: &str) -> Result<(), ReferenceError> {
    let fail = |reason| ReferenceError {
        input: path.to_owned(),
        reason,
    };
    check_path(path).map_err(fail)?;
    if path.len() > NAME_MAX_LEN {
        return Err(fail(ReferenceErrorReason::NameTooLong(path.len())));
    }
    Ok(())
}

/// True if `text` is a registry host as the grammar allows it: `host[:port]`, host a domain name or a
/// bracketed IPv6 address.
pub fn is_valid_domain(text: &str) -> bool {
    !text.is_empty() && check_domain(text).is_ok()
}

/// Checks an image name in an OCI image layout (`org.opencontainers.image.ref.name`): `/`-separated
/// components of alphanumeric runs joined by `-`, `.`, `_`, `:`, `@`, `+` or `--`, so `1.0` and
/// `team/app:1.0` both qualify.
pub fn validate_ref_name(name: &str) -> Result<(), ReferenceError> {
    let component_ok = |component: &str| {
        let bytes = component.as_bytes();
        let separator = |b: u8| matches!(b, b'-' | b'.' | b'_' | b':' | b'@' | b'+');
        let mut previous_separator = true;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii_alphanumeric() {
                previous_separator = false;
            } else if separator(b) && !previous_separator {
                // `--` is the one two-character separator.
                if b == b'-' && bytes.get(i + 1) == Some(&b'-') {
                    i += 1;
                }
                previous_separator = true;
            } else {
                return false;
            }
            i += 1;
        }
        !previous_separator
    };
    if !name.is_empty() && name.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(ReferenceError {
            input: name.to_owned(),
            reason: ReferenceErrorReason::BadRefName(name.to_owned()),
        })
    }
}

/// Checks a tag on its own, for places that take a tag apart from a reference.
pub fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    check_tag(tag).map_err(|reason| ReferenceError {
        input: tag.to_owned(),
        reason,
    })
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:ec15a5bd53cf9507beb851574654669e778a9735f8e605e0ee3d71fd07debbe1";

    fn normalised(input: &str) -> String {
        Reference::parse(input)
            .unwrap_or_else(|e| panic!("{input}: {e}"))
            .to_string()
    }

    #[test]
    fn layout_image_names_follow_the_ref_name_grammar() {
        for good in ["1.0", "v1", "team/app:1.0", "a--b", "x@y+z", "A_B.c"] {
            assert!(validate_ref_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "-a", "a-", "a//b", "/a", "a/", "a---b", "a b", "a:/b", "a..b",
        ] {
            assert!(validate_ref_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn normalises_like_docker() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("docker.io/user/app:v1", "docker.io/user/app:v1"),
            ("user/app", "docker.io/user/app:latest"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/a/b/c:t", "localhost:5000/a/b/c:t"),
            ("127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"),
            ("[::1]:5000/app:1", "[::1]:5000/app:1"),
            ("[fe80::1]/app", "[fe80::1]/app:latest"),
            ("Registry/app", "Registry/app:latest"),
            (
                "quay.io/org/app-x.y__z---w",
                "quay.io/org/app-x.y__z---w:latest",
            ),
            ("localhost:5000", "docker.io/library/localhost:5000"),
        ];
        for (input, want) in cases {
            assert_eq!(normalised(input), want, "{input}");
        }
    }

    #[test]
    fn keeps_tag_and_digest() {
        let r = Reference::parse(&format!("example.com/app:1.0@{DIGEST}")).unwrap();
        assert_eq!(r.tag(), Some("1.0"));
        assert_eq!(r.digest().unwrap().as_str(), DIGEST);
        assert_eq!(r.tag_or_digest(), DIGEST);
        let by_digest = Reference::parse(&format!("busybox@{DIGEST}")).unwrap();
        assert_eq!(by_digest.tag(), None);
        assert_eq!(
            by_digest.to_string(),
            format!("docker.io/library/busybox@{DIGEST}")
        );
        assert_eq!(by_digest.name(), "docker.io/library/busybox");
    }

    #[test]
    fn rejects_each_invalid_form() {
        use ReferenceErrorReason as R;
        let reason = |s: &str| Reference::parse(s).unwrap_err().reason;
        assert_eq!(reason(""), R::Empty);
        assert_eq!(reason("example.com/Foo"), R::Uppercase("Foo".into()));
        assert_eq!(reason("example.com//foo"), R::EmptyComponent);
        assert_eq!(reason("example.com/foo/"), R::EmptyComponent);
        assert_eq!(reason("example.com/-foo"), R::BadComponent("-foo".into()));
        assert_eq!(
            reason("example.com/foo..bar"),
            R::BadComponent("foo..bar".into())
        );
        assert_eq!(
            reason("example.com/foo___bar"),
            R::BadComponent("foo___bar".into())
        );
        assert_eq!(
            reason("example.com/foo.-bar"),
            R::BadComponent("foo.-bar".into())
        );
        assert_eq!(
            reason("ex_ample.com/foo"),
            R::BadDomain("ex_ample.com".into())
        );
        assert_eq!(
            reason("-example.com/foo"),
            R::BadDomain("-example.com".into())
        );
        assert_eq!(
            reason("example..com/foo"),
            R::BadDomain("example..com".into())
        );
        assert_eq!(reason("[::1/foo"), R::BadDomain("[::1".into()));
        assert_eq!(reason("[zz::1]/foo"), R::BadDomain("[zz::1]".into()));
        assert_eq!(reason("example.com:/foo"), R::BadPort(String::new()));
        assert_eq!(reason("example.com:http/foo"), R::BadPort("http".into()));
        assert_eq!(reason("foo:"), R::BadTag(String::new()));
        assert_eq!(reason("foo:.bar"), R::BadTag(".bar".into()));
        assert_eq!(reason("foo:a+b"), R::BadTag("a+b".into()));
        assert_eq!(
            reason(&format!("foo:{}", "t".repeat(129))),
            R::BadTag("t".repeat(129))
        );
        assert!(Reference::parse(&format!("foo:{}", "t".repeat(128))).is_ok());
        assert_eq!(reason(&"a".repeat(64)), R::HexIdentifier);
        assert!(matches!(reason("foo@sha256:abc"), R::BadDigest(_)));
        assert!(matches!(reason("foo@md5:abc"), R::BadDigest(_)));
        assert!(matches!(reason("foo@bar@sha256:abc"), R::BadDigest(_)));
        let long = format!("example.com/{}", "a".repeat(255 - 12));
        assert!(Reference::parse(&long).is_ok());
        assert_eq!(reason(&format!("{long}b")), R::NameTooLong(256));
        assert_eq!(
            Reference::parse("example.com/Foo").unwrap_err().to_string(),
            "invalid reference \"example.com/Foo\": repository name \"Foo\" must be lowercase"
        );
    }

    #[test]
    fn rewrites_parts() {
        let r = Reference::parse("localhost:5000/a/b:t").unwrap();
        assert_eq!(
            r.with_path("x/y").unwrap().to_string(),
            "localhost:5000/x/y:t"
        );
        assert!(r.with_path("X").is_err());
        assert_eq!(
            r.with_tag("v2").unwrap().to_string(),
            "localhost:5000/a/b:v2"
        );
        assert!(r.with_tag("-v2").is_err());
        let pinned = r.with_digest(Digest::parse(DIGEST).unwrap());
        assert_eq!(pinned.to_string(), format!("localhost:5000/a/b:t@{DIGEST}"));
    }
}
