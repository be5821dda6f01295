//! Where a resource's content is, computed from the location a component version was read from.
//!
//! `relativeOciReference` and local blobs resolve against that location; an `ociArtifact` whose
//! reference starts with the host and path of one of the descriptor's own repository contexts (written
//! by OCM's absolute mode) is rebased onto it, so bundles stay valid under any URL.

use std::fmt;

use serde_json::Value;
use wharf_oci::{Digest, Reference, media_type};
use wharf_store::Address;

use super::repository::{ComponentVersion, OcmRepository};
use super::{Access, OcmError, Resource, ResourceError};

/// Where a resource's content lives.
pub enum Located {
    /// An OCI artifact in a repository of the OCM repository that was read.
    Within {
        /// The OCM repository.
        repository: OcmRepository,
        /// Full repository path (base included).
        path: String,
        /// Tag, if any.
        tag: Option<String>,
        /// Digest, if any.
        digest: Option<Digest>,
    },
    /// An OCI artifact elsewhere.
    External(Reference),
    /// A plain blob stored in the component version.
    Blob {
        /// The OCM repository.
        repository: OcmRepository,
        /// The component's repository path.
        path: String,
        /// The blob's digest.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
}

impl Located {
    /// The tag or digest to resolve (digest first).
    pub fn tag_or_digest(&self) -> Option<String> {
        match self {
            Located::Within { tag, digest, .. } => digest
                .as_ref()
                .map(ToString::to_string)
                .or_else(|| tag.clone()),
            Located::External(reference) => Some(reference.tag_or_digest()),
            Located::Blob { .. } => None,
        }
    }
}

impl Located {
    /// The address of the content: a pullable reference for images (`ctf:PATH//repo…` inside a
    /// CTF), `…@digest` for blobs.
    pub fn address(&self) -> Address {
        match self {
            Located::Within {
                repository,
                path,
                tag,
                digest,
            } => repository.address(path, tag.as_deref(), digest.as_ref()),
            Located::External(reference) => Address::from_reference(reference),
            Located::Blob {
                repository,
                path,
                digest,
                ..
            } => repository.address(path, None, Some(digest)),
        }
    }
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The reference as written, `latest` included.
            Located::External(reference) => write!(f, "{reference}"),
            _ => write!(f, "{}", self.address()),
        }
    }
}

/// Finds the content of `resource`, read from `repository`.
pub fn locate(
    repository: &OcmRepository,
    version: &ComponentVersion,
    resource: &Resource,
    rebase: bool,
) -> Result<Located, OcmError> {
    let unusable = |error| OcmError::Resource {
        name: resource.name.clone(),
        error: Box::new(error),
    };
    let parse = |text: &str, written: &str| {
        Reference::parse(text).map_err(|error| {
            unusable(ResourceError::Reference {
                reference: written.to_owned(),
                error,
            })
        })
    };
    match &resource.access {
        None => Err(unusable(ResourceError::NoAccess)),
        Some(Access::LocalBlob {
            local_reference,
            media_type,
            ..
        }) => {
            // OCM v1 may list several digests (split blobs); wharf reads single ones.
            let digest = Digest::parse(local_reference)
                .map_err(|e| unusable(ResourceError::LocalReference(e)))?;
            let path = repository.component_path(version.descriptor.name());
            if media_type::is_manifest(media_type) {
                Ok(Located::Within {
                    repository: repository.clone(),
                    path,
                    tag: None,
                    digest: Some(digest),
                })
            } else {
                Ok(Located::Blob {
                    repository: repository.clone(),
                    path,
                    digest,
                    media_type: media_type.clone(),
                })
            }
        }
        Some(Access::RelativeOciReference { reference }) => {
            let parsed = parse(&format!("relative.invalid/{reference}"), reference)?;
            Ok(Located::Within {
                repository: repository.clone(),
                path: parsed.path().to_owned(),
                tag: reference_tag(reference, &parsed),
                digest: parsed.digest().cloned(),
            })
        }
        Some(Access::OciArtifact { image_reference }) => {
            let bare = strip_scheme(image_reference);
            if rebase
                && let Some(rest) =
                    own_context_rest(&version.descriptor.repository_contexts(), bare)
            {
                let parsed = parse(&format!("relative.invalid/{rest}"), image_reference)?;
                return Ok(Located::Within {
                    repository: repository.clone(),
                    path: repository.path(parsed.path()),
                    tag: reference_tag(rest, &parsed),
                    digest: parsed.digest().cloned(),
                });
            }
            Ok(Located::External(parse(bare, image_reference)?))
        }
        Some(Access::Other(value)) => Err(unusable(ResourceError::UnknownAccess(
            value
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned(),
        ))),
    }
}

/// The tag written in `text`, not the `latest` the parser supplies when there is none.
fn reference_tag(text: &str, parsed: &Reference) -> Option<String> {
    let named = text.split('@').next().unwrap_or(text);
    named
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'))
        .then(|| parsed.tag().map(str::to_owned))
        .flatten()
}

fn strip_scheme(text: &str) -> &str {
    ["https://", "http://", "oci://"]
        .iter()
        .find_map(|s| text.strip_prefix(s))
        .unwrap_or(text)
}

/// What follows `baseUrl[/subPath]/` of one of the descriptor's registry contexts in `reference`.
fn own_context_rest<'a>(contexts: &[Value], reference: &'a str) -> Option<&'a str> {
    contexts.iter().rev().find_map(|context| {
        let base = strip_scheme(context.get("baseUrl")?.as_str()?).trim_end_matches('/');
        let sub = context
            .get("subPath")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim_matches('/');
        let prefix = if sub.is_empty() {
            base.to_owned()
        } else {
            format!("{base}/{sub}")
        };
        reference.strip_prefix(&prefix)?.strip_prefix('/')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_part_after_an_own_context() {
        let contexts = [
            json!({"type": "OCIRegistry", "baseUrl": "http://localhost:9999", "subPath": "local/components"}),
        ];
        assert_eq!(
            own_context_rest(
                &contexts,
                "localhost:9999/local/components/library/busybox:1.36.1@sha256:x"
            ),
            Some("library/busybox:1.36.1@sha256:x")
        );
        assert_eq!(
            own_context_rest(&contexts, "localhost:9999/local/other/busybox:1"),
            None
        );
        assert_eq!(
            own_context_rest(&contexts, "localhost:99999/local/components/x:1"),
            None
        );
        assert_eq!(
            own_context_rest(
                &[json!({"type": "OCIRegistry", "baseUrl": "r.io"})],
                "r.io/a/b:1"
            ),
            Some("a/b:1")
        );
    }
}
