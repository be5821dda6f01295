//! Building component versions from an OCM constructor file (`components:`), the common subset:
//! name, version, provider, labels, resources with an `ociArtifact` access or a `file`/`dir` input,
//! and component references. Unknown fields and types are errors, naming the file.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};
use tempfile::TempPath;
use wharf_copy::Job;
use wharf_oci::{Descriptor, Reference};
use wharf_store::{Address, Session};

use super::repository::OcmRepository;
use super::{Access, ComponentDescriptor, OcmError};
use crate::staged::Staged;
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
/// through `session` to record their digests, and input files are streamed into place through `job`
/// (directories as tars made in a temporary file), never held in memory. Everything is checked
/// before anything is written. Returns the descriptors written.
pub async fn build(
    file: &Path,
    repository: &OcmRepository,
    session: &Session,
    job: &Job,
) -> Result<Vec<ComponentDescriptor>, OcmError> {
    let fail = |message: String| OcmError::Constructor {
        path: file.to_owned(),
        message,
    };
    let text = tokio::fs::read_to_string(file)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let constructor: ConstructorFile = yaml::from_str(&text).map_err(|e| fail(e.to_string()))?;
    let base = file.parent().unwrap_or(Path::new("."));
    let mut inputs = Staged::default();
    let mut planned = Vec::new();
    for spec in &constructor.components {
        let mut descriptor =
            ComponentDescriptor::new(&spec.name, &spec.version, spec.provider.clone())
                .map_err(|e| fail(e.to_string()))?;
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
            let object = entry.as_object_mut().expect("a JSON object literal");
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
                    let image = |e: wharf_store::StoreError| {
                        context(format!(
                            "image {}: {}",
                            access.image_reference,
                            wharf_store::chain(&e)
                        ))
                    };
                    let root = session
                        .read(&Address::from_reference(&reference))
                        .await
                        .map_err(image)?
                        .resolve(&reference.tag_or_digest())
                        .await
                        .map_err(image)?;
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
                    let shown = input.path.display();
                    let blob = match input.kind.as_str() {
                        "file" => {
                            let media_type = input.media_type.as_deref();
                            inputs
                                .add_file(path, media_type.unwrap_or("application/octet-stream"))
                                .await
                                .map_err(|e| context(format!("input file {shown}: {e}")))?
                        }
                        "dir" => {
                            let media_type = input.media_type.as_deref();
                            add_directory(
                                &mut inputs,
                                path,
                                media_type.unwrap_or("application/x-tar"),
                            )
                            .await
                            .map_err(|e| context(format!("input directory {shown}: {e}")))?
                        }
                        other => {
                            return Err(context(format!(
                                "input type {other:?} is not supported (use file or dir)"
                            )));
                        }
                    };
                    let access = Access::LocalBlob {
                        local_reference: blob.digest.to_string(),
                        media_type: blob.media_type.clone(),
                        reference_name: None,
                    };
                    let digest = digest_value("genericBlobDigest/v1", blob.digest.hex());
                    blobs.push(blob);
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
        ComponentDescriptor::from_value(descriptor.to_value()).map_err(|e| fail(e.to_string()))?;
        planned.push((descriptor, blobs));
    }
    let mut written = Vec::new();
    for (mut descriptor, blobs) in planned {
        let store = repository.write_store(&repository.component_path(descriptor.name()))?;
        for blob in &blobs {
            job.copy_blob(&inputs, store.as_ref(), blob).await?;
        }
        descriptor.push_repository_context(repository.context());
        repository.write(&descriptor, &blobs, &[], None).await?;
        written.push(descriptor);
    }
    Ok(written)
}

fn digest_value(algorithm: &str, hex: &str) -> Value {
    json!({"hashAlgorithm": "SHA-256", "normalisationAlgorithm": algorithm, "value": hex})
}

/// Adds a directory as a tar with sorted entries and fixed times, so equal trees give equal digests;
/// the tar is a temporary file, removed with the staged content.
async fn add_directory(
    inputs: &mut Staged,
    dir: PathBuf,
    media_type: &str,
) -> io::Result<Descriptor> {
    let temp = tokio::task::spawn_blocking(move || tar_directory(&dir))
        .await
        .map_err(io::Error::other)??;
    let descriptor = inputs.add_file(temp.to_path_buf(), media_type).await?;
    inputs.add_temporary(temp, &descriptor);
    Ok(descriptor)
}

/// `dir` as a tar in a temporary file: sorted entries, fixed times and modes.
fn tar_directory(dir: &Path) -> io::Result<TempPath> {
    if !dir.is_dir() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "not a directory"));
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
    let temp = tempfile::NamedTempFile::new()?;
    let mut tar = tar::Builder::new(io::BufWriter::new(temp.as_file()));
    for file in files {
        let relative = file.strip_prefix(dir).expect("listed under dir");
        let mut input = std::fs::File::open(&file)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(input.metadata()?.len());
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, relative, &mut input)?;
    }
    tar.into_inner()?.flush()?;
    Ok(temp.into_temp_path())
}
