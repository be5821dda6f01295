//! Access specifications: where a resource's content is.

use serde_json::{Value, json};

/// How a resource is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// Stored inside the component version (a layer, or a manifest of its index).
    LocalBlob {
        /// Digest of the blob or manifest within the component version.
        local_reference: String,
        /// Media type of the content.
        media_type: String,
        /// The artifact's original `repository:tag`, for tools that re-publish it.
        reference_name: Option<String>,
    },
    /// An OCI artifact at an absolute reference.
    OciArtifact {
        /// `host/repository:tag@digest`.
        image_reference: String,
    },
    /// An OCI artifact in the registry the component version is read from: `repository:tag@digest`
    /// without a host.
    RelativeOciReference {
        /// `repository:tag@digest`.
        reference: String,
    },
    /// Any other access type, kept as written.
    Other(Value),
}

/// An access specification that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// No `type`.
    #[error("access has no type")]
    NoType,
    /// A field the type needs is missing.
    #[error("{kind} access needs {field}")]
    Missing {
        /// The access type.
        kind: String,
        /// The field.
        field: &'static str,
    },
}

impl Access {
    /// Reads an access specification.
    pub fn from_value(value: &Value) -> Result<Access, AccessError> {
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .ok_or(AccessError::NoType)?;
        let field = |name: &'static str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| AccessError::Missing {
                    kind: kind.to_owned(),
                    field: name,
                })
        };
        Ok(match kind.split('/').next().unwrap_or(kind) {
            "localBlob" | "LocalBlob" => Access::LocalBlob {
                local_reference: field("localReference")?,
                media_type: field("mediaType")?,
                reference_name: value
                    .get("referenceName")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            },
            "ociArtifact" | "OCIImage" | "ociRegistry" | "ociImage" => Access::OciArtifact {
                image_reference: field("imageReference")?,
            },
            "relativeOciReference" => Access::RelativeOciReference {
                reference: field("reference")?,
            },
            _ => Access::Other(value.clone()),
        })
    }

    /// The access as written in a descriptor.
    pub fn to_value(&self) -> Value {
        match self {
            Access::LocalBlob {
                local_reference,
                media_type,
                reference_name,
            } => {
                let mut value = json!({"type": "localBlob", "localReference": local_reference, "mediaType": media_type});
                if let Some(name) = reference_name {
                    value["referenceName"] = json!(name);
                }
                value
            }
            Access::OciArtifact { image_reference } => {
                json!({"type": "ociArtifact", "imageReference": image_reference})
            }
            Access::RelativeOciReference { reference } => {
                json!({"type": "relativeOciReference", "reference": reference})
            }
            Access::Other(value) => value.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_spelling_and_writes_back() {
        let oci =
            Access::from_value(&json!({"type": "OCIImage/v1", "imageReference": "a.com/b:1"}))
                .unwrap();
        assert_eq!(
            oci,
            Access::OciArtifact {
                image_reference: "a.com/b:1".into()
            }
        );
        let local = json!({"type": "localBlob", "localReference": "sha256:x", "mediaType": "text/plain", "referenceName": "r:1"});
        assert_eq!(Access::from_value(&local).unwrap().to_value(), local);
        let relative = json!({"type": "relativeOciReference", "reference": "a/b:1@sha256:x"});
        assert_eq!(Access::from_value(&relative).unwrap().to_value(), relative);
        let other = json!({"type": "gitHub", "repoUrl": "x"});
        assert_eq!(
            Access::from_value(&other).unwrap(),
            Access::Other(other.clone())
        );
        assert!(
            Access::from_value(&json!({"type": "localBlob"}))
                .unwrap_err()
                .to_string()
                .contains("localReference")
        );
    }
}
