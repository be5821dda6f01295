//! Copying component versions between OCM repositories, with their resources when asked.

use std::collections::HashSet;

use wharf_copy::{CopyOptions, copy_graph};
use wharf_oci::{Descriptor, Digest};
use wharf_store::registry::Registries;
use wharf_store::{ManifestRole, ReadStore};

use super::repository::{OcmRepository, push_bytes};
use super::resolve::{Located, locate};
use super::{Access, OcmError};

/// How copied OCI artifacts are referenced at the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceMode {
    /// Stored beside the component version, referenced with a host-less `relativeOciReference`.
    Relative,
    /// Stored inside the component version as a `localBlob`.
    LocalBlob,
}

/// How a transfer runs.
#[derive(Debug, Clone)]
pub struct TransferOptions {
    /// Also transfer referenced component versions.
    pub recursive: bool,
    /// Copy OCI artifact resources into the destination.
    pub copy_resources: bool,
    /// How copied artifacts are referenced.
    pub mode: ResourceMode,
    /// Replace a destination version with different content.
    pub overwrite: bool,
    /// Rebase absolute references into the source's own repository contexts.
    pub rebase: bool,
    /// How artifacts are copied.
    pub copy: CopyOptions,
}

/// What happened to one component version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transferred {
    /// `name:version`.
    pub component: String,
    /// False when the destination already had it with the same content.
    pub copied: bool,
    /// Resources copied along.
    pub resources_copied: usize,
    /// The normalised descriptor digest (unchanged by the transfer).
    pub digest: Digest,
}

/// Transfers `name:version` (and, recursively, its references) from `src` to `dst`. External images
/// are read through `external`. Archives written to are not finished here: see
/// [`Registries::finish`].
pub async fn transfer(
    src: &OcmRepository,
    dst: &OcmRepository,
    name: &str,
    version: &str,
    external: &Registries,
    options: &TransferOptions,
) -> Result<Vec<Transferred>, OcmError> {
    let mut done = Vec::new();
    let mut visited = HashSet::new();
    let mut pending = vec![(name.to_owned(), version.to_owned())];
    while let Some((name, version)) = pending.pop() {
        if !visited.insert(format!("{name}:{version}")) {
            continue;
        }
        let (result, references) =
            transfer_one(src, dst, &name, &version, external, options).await?;
        done.push(result);
        if options.recursive {
            pending.extend(references);
        }
    }
    Ok(done)
}

async fn transfer_one(
    src: &OcmRepository,
    dst: &OcmRepository,
    name: &str,
    version: &str,
    external: &Registries,
    options: &TransferOptions,
) -> Result<(Transferred, Vec<(String, String)>), OcmError> {
    let cv = src.read(name, version).await?;
    let references = cv
        .descriptor
        .references()
        .into_iter()
        .map(|r| (r.component_name, r.version))
        .collect();
    let digest = cv.descriptor.normalised_digest();
    let component = format!("{name}:{version}");
    match dst.read(name, version).await {
        Ok(existing) if !options.overwrite => {
            if existing.descriptor.normalised_digest() == digest {
                tracing::info!("{component} is already in {}", dst.location());
                let transferred = Transferred {
                    component,
                    copied: false,
                    resources_copied: 0,
                    digest,
                };
                return Ok((transferred, references));
            }
            return Err(OcmError::Conflict(component, dst.location()));
        }
        Ok(_) | Err(OcmError::UnknownVersion(..)) | Err(OcmError::UnknownComponent(..)) => {}
        Err(e) => return Err(e),
    }

    let component_path = dst.component_path(name);
    let src_component = src.read_store(&src.component_path(name))?;
    let dst_component = dst.write_store(&component_path)?;
    let mut descriptor = cv.descriptor.clone();
    let mut blobs: Vec<Descriptor> = Vec::new();
    let mut artifacts: Vec<Descriptor> = Vec::new();
    let mut resources_copied = 0;
    for resource in cv.descriptor.resources() {
        let Some(access) = &resource.access else {
            continue;
        };
        let located = match access {
            Access::LocalBlob { .. }
            | Access::RelativeOciReference { .. }
            | Access::OciArtifact { .. } => locate(src, &cv, &resource, options.rebase)?,
            Access::Other(_) => continue,
        };
        match located {
            Located::Blob { digest, .. } => {
                let blob = cv.local.get(digest.as_str()).cloned().ok_or_else(|| {
                    OcmError::Invalid(format!(
                        "resource {:?}: local blob {digest} is not in {component}",
                        resource.name
                    ))
                })?;
                if !dst_component.exists(&blob).await? {
                    dst_component
                        .push(&blob, src_component.fetch(&blob).await?)
                        .await?;
                }
                blobs.push(blob);
            }
            Located::Within { .. } if matches!(access, Access::LocalBlob { .. }) => {
                let root = src_component
                    .resolve(&located.tag_or_digest().unwrap_or_default())
                    .await?;
                copy_graph(
                    src_component.as_ref(),
                    dst_component.as_ref(),
                    &root,
                    ManifestRole::Child,
                    &options.copy,
                )
                .await?;
                artifacts.push(root);
            }
            located if options.copy_resources => {
                let (store, original_path, tag) = match &located {
                    Located::Within {
                        repository,
                        path,
                        tag,
                        ..
                    } => (
                        repository.read_store(path)?,
                        repository.strip_base(path).to_owned(),
                        tag.clone(),
                    ),
                    Located::External(reference) => (
                        external.pull(reference),
                        reference.path().to_owned(),
                        reference.tag().map(str::to_owned),
                    ),
                    Located::Blob { .. } => unreachable!("handled above"),
                };
                let root = store
                    .resolve(&located.tag_or_digest().unwrap_or_default())
                    .await?;
                check_artifact_digest(&resource.name, resource.digest.as_ref(), &root.digest)?;
                resources_copied += 1;
                let tag_suffix = tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default();
                let new_access = match options.mode {
                    ResourceMode::Relative => {
                        let path = dst.path(&original_path);
                        let target = dst.write_store(&path)?;
                        let role = tag.as_deref().map_or(ManifestRole::Root, ManifestRole::Tag);
                        copy_graph(store.as_ref(), target.as_ref(), &root, role, &options.copy)
                            .await?;
                        Access::RelativeOciReference {
                            reference: format!("{path}{tag_suffix}@{}", root.digest),
                        }
                    }
                    ResourceMode::LocalBlob => {
                        copy_graph(
                            store.as_ref(),
                            dst_component.as_ref(),
                            &root,
                            ManifestRole::Child,
                            &options.copy,
                        )
                        .await?;
                        artifacts.push(root.clone());
                        Access::LocalBlob {
                            local_reference: root.digest.to_string(),
                            media_type: root.media_type.clone(),
                            reference_name: Some(format!("{original_path}{tag_suffix}")),
                        }
                    }
                };
                descriptor.set_access(resource.index, &new_access);
            }
            // Left where they are. A reference relative to the source would not resolve at the
            // destination, so it becomes the absolute reference it stands for.
            Located::Within { .. } if src.host().is_some() => {
                descriptor.set_access(
                    resource.index,
                    &Access::OciArtifact {
                        image_reference: located.to_string(),
                    },
                );
            }
            _ => {}
        }
    }
    descriptor.push_repository_context(dst.context());
    dst.write(&descriptor, &blobs, &artifacts).await?;
    tracing::info!("transferred {component} to {}", dst.location());
    Ok((
        Transferred {
            component,
            copied: true,
            resources_copied,
            digest,
        },
        references,
    ))
}

/// An `ociArtifactDigest/v1` resource digest must be the copied manifest's.
fn check_artifact_digest(
    resource: &str,
    digest: Option<&serde_json::Value>,
    actual: &Digest,
) -> Result<(), OcmError> {
    let Some(digest) = digest else { return Ok(()) };
    if digest
        .get("normalisationAlgorithm")
        .and_then(|v| v.as_str())
        != Some("ociArtifactDigest/v1")
    {
        return Ok(());
    }
    let expected = digest
        .get("value")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if expected != actual.hex() {
        return Err(OcmError::Invalid(format!(
            "resource {resource:?}: the artifact's digest is {actual}, but the descriptor records sha256:{expected}"
        )));
    }
    Ok(())
}

/// Stores bytes as a local blob of component `name` in `repository`.
pub(super) async fn add_local_blob(
    repository: &OcmRepository,
    name: &str,
    descriptor: &Descriptor,
    bytes: bytes::Bytes,
) -> Result<(), OcmError> {
    let store = repository.write_store(&repository.component_path(name))?;
    push_bytes(store.as_ref(), descriptor, bytes).await?;
    Ok(())
}

/// The store and root manifest of a located OCI artifact.
pub async fn resolve_image(
    located: &Located,
    external: &Registries,
) -> Result<(Box<dyn ReadStore>, Descriptor), OcmError> {
    let store: Box<dyn ReadStore> = match located {
        Located::Within {
            repository, path, ..
        } => repository.read_store(path)?,
        Located::External(reference) => external.pull(reference),
        Located::Blob { digest, .. } => {
            return Err(OcmError::Invalid(format!(
                "{digest} is a blob, not an OCI artifact"
            )));
        }
    };
    let root = store
        .resolve(&located.tag_or_digest().unwrap_or_default())
        .await?;
    Ok((store, root))
}
