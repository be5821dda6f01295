//! Copying component versions between OCM repositories, with their resources when asked.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use wharf_copy::{CopyReport, Job};
use wharf_oci::{Descriptor, Digest};
use wharf_store::{ManifestRole, ReadStore, Session, Store};

use super::repository::{COMPONENT_INDEX, OcmRepository, component_index, push_bytes};
use super::resolve::{Located, locate};
use super::{Access, OcmError, Resource, ResourceError, version_to_tag};

/// How copied OCI artifacts are referenced at the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceMode {
    /// Stored beside the component version, referenced with a host-less `relativeOciReference`.
    Relative,
    /// Stored inside the component version as a `localBlob`.
    LocalBlob,
}

/// How a transfer runs; the copying itself (concurrency, retries, dry run) is the job's.
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
    /// Blobs written for it (streamed or mounted; local blobs and copied resources).
    pub blobs_copied: usize,
    /// Of those, blobs mounted from another repository of the same registry.
    pub blobs_mounted: usize,
    /// Bytes streamed for it.
    pub bytes_copied: u64,
}

/// Transfers `name:version` (and, recursively, its references) from `src` to `dst` as part of `job`:
/// local blobs, resources and the images it copies share the job's deduplication, retries and
/// progress with everything else the job copies. External images are read through `external`.
/// Archives written to are not finished here: see [`Session::finish`].
pub async fn transfer(
    src: &OcmRepository,
    dst: &OcmRepository,
    name: &str,
    version: &str,
    external: &Session,
    job: &Job,
    options: &TransferOptions,
) -> Result<Vec<Transferred>, OcmError> {
    let mut done = Vec::new();
    let mut visited = HashSet::new();
    let mut pending = vec![(name.to_owned(), version.to_owned())];
    while let Some((name, version)) = pending.pop() {
        if !visited.insert(format!("{name}:{version}")) {
            continue;
        }
        let transfer = Transfer {
            src,
            dst,
            external,
            job,
            options,
        };
        let (result, references) = transfer.one(&name, &version).await?;
        done.push(result);
        if options.recursive {
            pending.extend(references);
        }
    }
    Ok(done)
}

/// One transfer's parties.
struct Transfer<'a> {
    src: &'a OcmRepository,
    dst: &'a OcmRepository,
    external: &'a Session,
    job: &'a Job,
    options: &'a TransferOptions,
}

impl Transfer<'_> {
    async fn one(
        &self,
        name: &str,
        version: &str,
    ) -> Result<(Transferred, Vec<(String, String)>), OcmError> {
        let (src, dst, job, options) = (self.src, self.dst, self.job, self.options);
        let cv = src.read(name, version).await?;
        let references = cv
            .descriptor
            .references()
            .into_iter()
            .map(|r| (r.component_name, r.version))
            .collect();
        let digest = cv.descriptor.normalised_digest();
        let component = format!("{name}:{version}");
        let mut transferred = Transferred {
            component: component.clone(),
            copied: false,
            resources_copied: 0,
            digest: digest.clone(),
            blobs_copied: 0,
            blobs_mounted: 0,
            bytes_copied: 0,
        };
        match dst.read(name, version).await {
            Ok(existing) if !options.overwrite => {
                if existing.descriptor.normalised_digest() == digest {
                    tracing::info!("{component} is already in {}", dst.location());
                    if !job.options().dry_run {
                        // A run that stopped before its catalog entry leaves it to this one.
                        dst.record(&existing.descriptor, &existing.root).await?;
                    }
                    return Ok((transferred, references));
                }
                return Err(OcmError::Conflict(component, dst.location()));
            }
            Ok(_) | Err(OcmError::UnknownVersion(..)) | Err(OcmError::UnknownComponent(..)) => {}
            Err(e) => return Err(e),
        }

        let src_component = src.read_store(&src.component_path(name))?;
        let dst_component = dst.write_store(&dst.component_path(name))?;
        let mut counted = |report: &CopyReport| {
            transferred.blobs_copied += report.blobs_copied;
            transferred.blobs_mounted += report.blobs_mounted;
            transferred.bytes_copied += report.bytes_copied;
        };
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
                        OcmError::Resource {
                            name: resource.name.clone(),
                            error: Box::new(ResourceError::MissingBlob(digest.clone())),
                        }
                    })?;
                    counted(
                        &job.copy_blob(src_component.as_ref(), dst_component.as_ref(), &blob)
                            .await?,
                    );
                    blobs.push(blob);
                }
                Located::Within { .. } if matches!(access, Access::LocalBlob { .. }) => {
                    let root = src_component
                        .resolve(&located.tag_or_digest().unwrap_or_default())
                        .await?;
                    counted(
                        &job.copy(
                            src_component.as_ref(),
                            dst_component.as_ref(),
                            &root,
                            ManifestRole::Child,
                        )
                        .await?,
                    );
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
                            self.external.read(&located.address()).await?,
                            reference.path().to_owned(),
                            reference.tag().map(str::to_owned),
                        ),
                        Located::Blob { .. } => unreachable!("handled above"),
                    };
                    let root = store
                        .resolve(&located.tag_or_digest().unwrap_or_default())
                        .await?;
                    check_artifact_digest(&resource, store.as_ref(), &root).await?;
                    resources_copied += 1;
                    let tag_suffix = tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default();
                    let new_access = match options.mode {
                        ResourceMode::Relative => {
                            let path = dst.path(&original_path);
                            let target = dst.write_store(&path)?;
                            let role = tag.as_deref().map_or(ManifestRole::Root, ManifestRole::Tag);
                            counted(
                                &job.copy(store.as_ref(), target.as_ref(), &root, role)
                                    .await?,
                            );
                            Access::RelativeOciReference {
                                reference: format!("{path}{tag_suffix}@{}", root.digest),
                            }
                        }
                        ResourceMode::LocalBlob => {
                            counted(
                                &job.copy(
                                    store.as_ref(),
                                    dst_component.as_ref(),
                                    &root,
                                    ManifestRole::Child,
                                )
                                .await?,
                            );
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
        transferred.copied = true;
        transferred.resources_copied = resources_copied;
        if job.options().dry_run {
            return Ok((transferred, references));
        }
        // Written with OCM's referrer tracking: the component index goes first, and the version
        // keeps referring to it, copied byte for byte when nothing in it changes.
        let index = component_index();
        let anchored = cv
            .subject
            .as_ref()
            .is_some_and(|s| s.digest == index.digest);
        if anchored {
            ensure_component_index(dst_component.as_ref()).await?;
            if descriptor.to_value() == cv.descriptor.to_value() {
                let tag = version_to_tag(version);
                let role = ManifestRole::Tag(&tag);
                let report = job
                    .copy(
                        src_component.as_ref(),
                        dst_component.as_ref(),
                        &cv.root,
                        role,
                    )
                    .await?;
                counted(&report);
                dst.record(&descriptor, &cv.root).await?;
                tracing::info!("transferred {component} to {} unchanged", dst.location());
                return Ok((transferred, references));
            }
        }
        descriptor.push_repository_context(dst.context());
        let subject = anchored.then_some(&index);
        dst.write(&descriptor, &blobs, &artifacts, subject).await?;
        tracing::info!("transferred {component} to {}", dst.location());
        Ok((transferred, references))
    }
}

/// Puts OCM's component index (and the empty blob it consists of) into a component's repository,
/// by digest, as OCM does, unless it is there.
async fn ensure_component_index(store: &dyn Store) -> Result<(), OcmError> {
    let index = component_index();
    if store.exists(&index).await? {
        return Ok(());
    }
    let empty = Descriptor::for_bytes(wharf_oci::media_type::OCI_EMPTY, b"{}");
    push_bytes(store, &empty, Bytes::from_static(b"{}")).await?;
    store
        .push_manifest(
            &index,
            Bytes::from_static(COMPONENT_INDEX.as_bytes()),
            ManifestRole::Root,
        )
        .await?;
    Ok(())
}

/// An `ociArtifactDigest/v1` resource digest must be the copied manifest's, in the hash algorithm
/// it names.
async fn check_artifact_digest(
    resource: &Resource,
    store: &dyn ReadStore,
    root: &Descriptor,
) -> Result<(), OcmError> {
    let Some(recorded) = &resource.digest else {
        return Ok(());
    };
    let field = |key: &str| recorded.get(key).and_then(serde_json::Value::as_str);
    if field("normalisationAlgorithm") != Some("ociArtifactDigest/v1") {
        return Ok(());
    }
    let unusable = |error| OcmError::Resource {
        name: resource.name.clone(),
        error: Box::new(error),
    };
    let algorithm = field("hashAlgorithm")
        .unwrap_or("SHA-256")
        .to_ascii_lowercase()
        .replace('-', "");
    let text = format!("{algorithm}:{}", field("value").unwrap_or_default());
    let recorded =
        Digest::parse(&text).map_err(|_| unusable(ResourceError::RecordedDigest(text.clone())))?;
    let actual = if recorded.algorithm() == root.digest.algorithm() {
        root.digest.clone()
    } else {
        let manifest = store.fetch_manifest(root).await?;
        recorded.algorithm().digest(manifest.raw())
    };
    if actual != recorded {
        return Err(unusable(ResourceError::DigestMismatch {
            actual: root.digest.clone(),
            recorded,
        }));
    }
    Ok(())
}

/// The store and root manifest of a located OCI artifact.
pub async fn resolve_image(
    located: &Located,
    external: &Session,
) -> Result<(Arc<dyn ReadStore>, Descriptor), OcmError> {
    let store = match located {
        Located::Within {
            repository, path, ..
        } => repository.read_store(path)?,
        Located::External(_) => external.read(&located.address()).await?,
        Located::Blob { digest, .. } => return Err(OcmError::NotAnArtifact(digest.clone())),
    };
    let root = store
        .resolve(&located.tag_or_digest().unwrap_or_default())
        .await?;
    Ok((store, root))
}
