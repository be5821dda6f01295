//! Building component versions from an OCM constructor file (`components:`), the common subset:
//! name, version, provider, labels, resources with an `ociArtifact` access or a `file`/`dir` input,
//! and component references. Unknown fields and types are errors, naming the file.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use wharf_oci::{Descriptor, Reference};
use wharf_store::registry::Registries;

use super::repository::OcmRepository;
use super::transfer::add_local_blob;
use super::{Access, ComponentDescriptor, OcmError};
use crate::yaml;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConstructorFile {
    components: Vec<ComponentSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentSpec {
    name: String,
    version: String,
    provider: Value,
    #[serde(default)]
    labels: Vec<Value>,
    #[serde(default)]
    resources: Vec<ResourceSpec>,
    #[serde(default, rename = "componentReferences")]
    references: Vec<ReferenceSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceSpec {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    version: Option<String>,
    relation: Option<String>,
    #[serde(default)]
    labels: Vec<Value>,
    #[serde(rename = "extraIdentity")]
    extra_identity: Option<Value>,
    access: Option<AccessSpec>,
    input: Option<InputSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessSpec {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "imageReference")]
    image_reference: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSpec {
    #[serde(rename = "type")]
    kind: String,
    path: PathBuf,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferenceSpec {
    name: String,
    #[serde(rename = "componentName")]
    component_name: String,
    version: String,
    #[serde(default)]
    labels: Vec<Value>,
}

/// Builds every component version `file` describes into `repository`; image references are resolved
/// through `registries` to record their digests. Returns the descriptors written.
pub async fn build(
    file: &Path,
    repository: &OcmRepository,
    registries: &Registries,
) -> Result<Vec<ComponentDescriptor>, OcmError> {
    let fail = |message: String| OcmError::Constructor {
        path: file.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(file).map_err(|e| fail(e.to_string()))?;
    let constructor: ConstructorFile = yaml::from_str(&text).map_err(fail)?;
    let base = file.parent().unwrap_or(Path::new("."));
    // Check every component before writing anything.
    let mut planned = Vec::new();
    for spec in &constructor.components {
        let mut descriptor =
            ComponentDescriptor::new(&spec.name, &spec.version, spec.provider.clone())
                .map_err(|e| fail(e.0))?;
        if !spec.labels.is_empty() {
            descriptor.set_labels(Value::Array(spec.labels.clone()));
        }
        let mut blobs = Vec::new();
        for resource in &spec.resources {
            let context = |m: String| {
                fail(format!(
                    "component {}: resource {:?}: {m}",
                    spec.name, resource.name
                ))
            };
            let mut entry = json!({"name": resource.name, "type": resource.kind});
            let object = entry.as_object_mut().expect("object");
            if let Some(version) = &resource.version {
                object.insert("version".into(), json!(version));
            }
            if !resource.labels.is_empty() {
                object.insert("labels".into(), Value::Array(resource.labels.clone()));
            }
            if let Some(extra) = &resource.extra_identity {
                object.insert("extraIdentity".into(), extra.clone());
            }
            let (access, digest, relation) = match (&resource.access, &resource.input) {
                (Some(access), None) => {
                    if access.kind != "ociArtifact" && access.kind != "OCIImage/v1" {
                        return Err(context(format!(
                            "access type {:?} is not supported here (use ociArtifact)",
                            access.kind
                        )));
                    }
                    let reference = Reference::parse(&access.image_reference)
                        .map_err(|e| context(e.to_string()))?;
                    let root = registries
                        .pull(&reference)
                        .resolve(&reference.tag_or_digest())
                        .await
                        .map_err(|e| {
                            context(format!(
                                "image {}: {}",
                                access.image_reference,
                                wharf_store::chain(&e)
                            ))
                        })?;
                    let access = Access::OciArtifact {
                        image_reference: access.image_reference.clone(),
                    };
                    (
                        access,
                        digest_value("ociArtifactDigest/v1", root.digest.hex()),
                        "external",
                    )
                }
                (None, Some(input)) => {
                    let path = base.join(&input.path);
                    let (bytes, default_type) = match input.kind.as_str() {
                        "file" => (
                            std::fs::read(&path).map_err(|e| {
                                context(format!("input file {}: {e}", input.path.display()))
                            })?,
                            "application/octet-stream",
                        ),
                        "dir" => (
                            tar_directory(&path).map_err(|e| {
                                context(format!("input directory {}: {e}", input.path.display()))
                            })?,
                            "application/x-tar",
                        ),
                        other => {
                            return Err(context(format!(
                                "input type {other:?} is not supported (use file or dir)"
                            )));
                        }
                    };
                    let media_type = input
                        .media_type
                        .clone()
                        .unwrap_or_else(|| default_type.to_owned());
                    let blob = Descriptor::for_bytes(&media_type, &bytes);
                    let access = Access::LocalBlob {
                        local_reference: blob.digest.to_string(),
                        media_type,
                        reference_name: None,
                    };
                    let digest = digest_value("genericBlobDigest/v1", blob.digest.hex());
                    blobs.push((blob, Bytes::from(bytes)));
                    (access, digest, "local")
                }
                _ => return Err(context("needs exactly one of access and input".into())),
            };
            object.insert(
                "relation".into(),
                json!(resource.relation.as_deref().unwrap_or(relation)),
            );
            object.insert("access".into(), access.to_value());
            object.insert("digest".into(), digest);
            descriptor.add_resource(entry);
        }
        for reference in &spec.references {
            super::validate_name(&reference.component_name).map_err(|e| {
                fail(format!(
                    "component {}: reference {:?}: {e}",
                    spec.name, reference.name
                ))
            })?;
            let mut entry = json!({"name": reference.name, "componentName": reference.component_name, "version": reference.version});
            if !reference.labels.is_empty() {
                entry["labels"] = Value::Array(reference.labels.clone());
            }
            descriptor.add_reference(entry);
        }
        ComponentDescriptor::from_value(descriptor.as_value().clone()).map_err(|e| fail(e.0))?;
        planned.push((descriptor, blobs));
    }
    let mut written = Vec::new();
    for (mut descriptor, blobs) in planned {
        for (blob, bytes) in &blobs {
            add_local_blob(repository, descriptor.name(), blob, bytes.clone()).await?;
        }
        descriptor.push_repository_context(repository.context());
        let layers: Vec<Descriptor> = blobs.into_iter().map(|(d, _)| d).collect();
        repository.write(&descriptor, &layers, &[]).await?;
        written.push(descriptor);
    }
    Ok(written)
}

fn digest_value(algorithm: &str, hex: &str) -> Value {
    json!({"hashAlgorithm": "SHA-256", "normalisationAlgorithm": algorithm, "value": hex})
}

/// A directory as a tar with sorted entries and fixed times, so equal trees give equal digests.
fn tar_directory(dir: &Path) -> std::io::Result<Vec<u8>> {
    if !dir.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not a directory",
        ));
    }
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    let mut tar = tar::Builder::new(Vec::new());
    for file in files {
        let relative = file.strip_prefix(dir).expect("under dir");
        let bytes = std::fs::read(&file)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, relative, bytes.as_slice())?;
    }
    tar.into_inner()
}
