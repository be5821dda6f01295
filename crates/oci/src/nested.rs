//! Index children that live in nested repositories (image-spec issue 1217): an index in repository
//! `team/app` may group children whose home is `team/app/cli`, `team/app/docs`, and so on.
//!
//! A child descriptor names its repository relative to the index's own with the annotation
//! [`REPOSITORY_ANNOTATION`] (a repository path: no `..`, no leading `/`, no host, tag or digest),
//! and optionally a tag it goes by there with [`TAG_ANNOTATION`]. The index carries the artifact type
//! [`ARTIFACT_TYPE`]. The annotations are written when the index is created and never changed, so
//! the index has the same digest wherever it is copied. Readers look for a child in its nested
//! repository first, then in the index's own (where registries that insist on complete indexes get
//! a copy of it).

use crate::manifest::Descriptor;
use crate::reference::{NAME_MAX_LEN, validate_repository, validate_tag};

/// Names a child's repository, relative to the index's repository.
pub const REPOSITORY_ANNOTATION: &str = "dev.wharf.ref.repository";
/// The tag a child goes by in its repository.
pub const TAG_ANNOTATION: &str = "dev.wharf.ref.tag";
/// The artifact type of an index grouping children from nested repositories.
pub const ARTIFACT_TYPE: &str = "application/vnd.wharf.bundle.v1+json";

/// Why a child's nested repository cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("child {digest} names nested repository {path:?}: {reason}")]
pub struct NestedError {
    /// The child.
    pub digest: String,
    /// The repository as written.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Where a child lives, relative to its index's repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nested<'a> {
    /// The repository path below the index's.
    pub path: &'a str,
    /// The tag it goes by there, if any.
    pub tag: Option<&'a str>,
}

/// The nested repository a child descriptor names, if it names one, checked: a repository path
/// below the index's repository, and a valid tag.
pub fn nested(child: &Descriptor) -> Result<Option<Nested<'_>>, NestedError> {
    let Some(path) = child.annotations.get(REPOSITORY_ANNOTATION) else {
        return Ok(None);
    };
    let fail = |reason: String| NestedError {
        digest: child.digest.to_string(),
        path: path.clone(),
        reason,
    };
    check_path(path).map_err(fail)?;
    let tag = child.annotations.get(TAG_ANNOTATION).map(String::as_str);
    if let Some(tag) = tag {
        validate_tag(tag).map_err(|e| fail(e.reason.to_string()))?;
    }
    Ok(Some(Nested { path, tag }))
}

/// A nested repository path: a relative repository path, nothing more.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("it is empty".into());
    }
    if path.starts_with('/') {
        return Err("it is absolute; name a path below the index's repository".into());
    }
    if path.split('/').any(|c| c == ".." || c == ".") {
        return Err("it leaves the index's repository; name a path below it".into());
    }
    if path.contains(['@', ':']) {
        return Err("it holds a host, tag or digest; name a repository path only".into());
    }
    // Read as a reference, a first component with a dot (or `localhost`) would be a host.
    if let Some((first, _)) = path.split_once('/')
        && (first.contains('.') || first == "localhost")
    {
        return Err("it starts with a host name; name a path below the index's repository".into());
    }
    validate_repository(path).map_err(|e| e.reason.to_string())
}

/// `parent/path`, if the whole name (with `host`) stays within the limit references have.
pub fn join(host: &str, parent: &str, path: &str) -> Result<String, String> {
    let joined = if parent.is_empty() {
        path.to_owned()
    } else {
        format!("{parent}/{path}")
    };
    let length = host.len() + 1 + joined.len();
    if length > NAME_MAX_LEN {
        return Err(format!(
            "{host}/{joined} would be {length} characters, more than the {NAME_MAX_LEN} a repository name may have"
        ));
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(path: &str, tag: Option<&str>) -> Descriptor {
        let mut d = Descriptor::for_bytes(crate::media_type::OCI_MANIFEST, b"x");
        d.annotations
            .insert(REPOSITORY_ANNOTATION.into(), path.into());
        if let Some(tag) = tag {
            d.annotations.insert(TAG_ANNOTATION.into(), tag.into());
        }
        d
    }

    #[test]
    fn reads_nested_children() {
        let ok = child("sbom/spdx", Some("1.0"));
        assert_eq!(
            nested(&ok).unwrap(),
            Some(Nested {
                path: "sbom/spdx",
                tag: Some("1.0")
            })
        );
        let plain = Descriptor::for_bytes(crate::media_type::OCI_MANIFEST, b"y");
        assert_eq!(nested(&plain).unwrap(), None);
    }

    #[test]
    fn refuses_paths_that_leave_the_index() {
        for (path, why) in [
            ("../other", "leaves"),
            ("cli/../../x", "leaves"),
            ("/abs/path", "absolute"),
            ("registry.example.com/team/x", "host"),
            ("cli:1.0", "tag"),
            ("cli@sha256:abc", "digest"),
            ("Cli", "lowercase"),
            ("", "empty"),
        ] {
            let err = nested(&child(path, None)).unwrap_err();
            assert!(err.to_string().contains(why), "{path}: {err}");
        }
        assert!(nested(&child("cli", Some("-bad"))).is_err());
        let long = "x".repeat(250);
        assert!(join("registry.example.com", "team/app", &long).is_err());
        assert_eq!(join("r.io", "team/app", "cli").unwrap(), "team/app/cli");
    }
}
