//! Reading through registries.conf: each image is looked up at the configured endpoints in order
//! (mirrors, then the registry's own location), and the first that has it serves the whole image.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use wharf_oci::{Descriptor, Digest, Manifest, Reference};
use wharf_registries_conf::{Endpoint, RegistriesConf};

use super::{Clients, Repository};
use crate::error::chain;
use crate::{ByteStream, ErrorKind, MountSource, Op, ReadStore, Result, StoreError};

/// A repository read through its registries.conf endpoints.
pub(crate) struct Mirrored {
    clients: Clients,
    conf: Arc<RegistriesConf>,
    /// The repository as the user named it.
    logical: Reference,
    /// The endpoint that served the last resolve; the rest of that image comes from it.
    chosen: Mutex<Option<Arc<Repository>>>,
}

impl Mirrored {
    pub(super) fn new(clients: Clients, conf: Arc<RegistriesConf>, logical: Reference) -> Mirrored {
        Mirrored {
            clients,
            conf,
            logical,
            chosen: Mutex::new(None),
        }
    }

    fn chosen(&self) -> Option<Arc<Repository>> {
        self.chosen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `reference_text` (a tag or digest) on the logical repository.
    fn logical_reference(&self, reference_text: &str) -> Result<Reference> {
        match Digest::parse(reference_text) {
            Ok(digest) => Ok(self.logical.at_digest(digest)),
            Err(_) => self.logical.with_tag(reference_text).map_err(|e| {
                StoreError::new(
                    Op::Resolve,
                    self.location(),
                    ErrorKind::Invalid(e.to_string()),
                )
            }),
        }
    }

    /// Runs `attempt` on each endpoint for `reference` until one succeeds; returns the endpoint too.
    async fn try_endpoints<T, F, Fut>(
        &self,
        op: Op,
        reference: &Reference,
        attempt: F,
    ) -> Result<(T, Arc<Repository>)>
    where
        F: Fn(Arc<Repository>, Reference) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let endpoints = self.conf.pull_endpoints(reference).map_err(|e| {
            StoreError::new(op, reference.to_string(), ErrorKind::Invalid(e.to_string()))
        })?;
        let mut failures: Vec<(Endpoint, StoreError)> = Vec::new();
        for endpoint in endpoints {
            if endpoint.blocked {
                let entry = self
                    .conf
                    .find(&endpoint.reference.name())
                    .map(|r| r.prefix.clone())
                    .unwrap_or_default();
                let error = StoreError::new(
                    op,
                    endpoint.reference.to_string(),
                    ErrorKind::Unsupported(format!(
                        "registry {entry} is blocked in registries.conf"
                    )),
                );
                failures.push((endpoint, error));
                continue;
            }
            let repository = Arc::new(self.clients.endpoint(&endpoint, self.logical.domain()));
            tracing::debug!(endpoint = %endpoint.reference, mirror = endpoint.mirror, "trying");
            match attempt(repository.clone(), endpoint.reference.clone()).await {
                Ok(value) => return Ok((value, repository)),
                Err(error) => {
                    tracing::info!(endpoint = %endpoint.reference, "endpoint failed: {}", chain(&error));
                    failures.push((endpoint, error));
                }
            }
        }
        let (_, primary) = failures
            .pop()
            .expect("the primary location is always an endpoint");
        if failures.is_empty() {
            return Err(primary);
        }
        let mirrors = failures
            .iter()
            .map(|(endpoint, error)| format!("{}: {}", endpoint.reference, chain(error)))
            .collect();
        Err(StoreError::new(
            op,
            reference.to_string(),
            ErrorKind::EndpointsFailed {
                mirrors,
                primary: Box::new(primary),
            },
        ))
    }

    /// The endpoint for `descriptor`'s content: the chosen one, else the first that has it.
    async fn for_content(&self, op: Op, descriptor: &Descriptor) -> Result<Arc<Repository>> {
        if let Some(chosen) = self.chosen() {
            return Ok(chosen);
        }
        let reference = self.logical_reference(descriptor.digest.as_str())?;
        let (_, repository) = self
            .try_endpoints(op, &reference, |repository, _| async move {
                if repository.exists(descriptor).await? {
                    Ok(())
                } else {
                    Err(StoreError::new(
                        op,
                        repository.location(),
                        ErrorKind::NotFound(None),
                    ))
                }
            })
            .await?;
        Ok(repository)
    }
}

#[async_trait]
impl ReadStore for Mirrored {
    fn nested(&self, path: &str) -> Result<Option<Arc<dyn ReadStore>>> {
        let fail = |e: wharf_oci::ReferenceError| {
            StoreError::new(Op::Open, self.location(), ErrorKind::Invalid(e.to_string()))
        };
        let name = crate::namespace::nested_name(
            &self.location(),
            self.logical.domain(),
            self.logical.path(),
            path,
        )?;
        Ok(Some(
            self.clients
                .pull(&self.logical.with_path(&name).map_err(fail)?),
        ))
    }

    fn location(&self) -> String {
        self.logical.name()
    }

    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        let logical = self.logical_reference(reference)?;
        let (descriptor, repository) = self
            .try_endpoints(Op::Resolve, &logical, |repository, rewritten| async move {
                repository.resolve(&rewritten.tag_or_digest()).await
            })
            .await?;
        *self.chosen.lock().unwrap_or_else(|e| e.into_inner()) = Some(repository);
        Ok(descriptor)
    }

    async fn resolve_manifest(&self, reference: &str) -> Result<(Descriptor, Manifest)> {
        let logical = self.logical_reference(reference)?;
        let (found, repository) = self
            .try_endpoints(Op::Resolve, &logical, |repository, rewritten| async move {
                repository
                    .resolve_manifest(&rewritten.tag_or_digest())
                    .await
            })
            .await?;
        *self.chosen.lock().unwrap_or_else(|e| e.into_inner()) = Some(repository);
        Ok(found)
    }

    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        self.for_content(Op::Fetch, descriptor)
            .await?
            .fetch(descriptor)
            .await
    }

    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        match self.for_content(Op::Exists, descriptor).await {
            Ok(repository) => repository.exists(descriptor).await,
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Tags come from the registry as named: mirrors serve single images, not listings.
    async fn tags(&self) -> Result<Vec<String>> {
        self.clients.repository(&self.logical).tags().await
    }

    async fn referrers(
        &self,
        subject: &Descriptor,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        self.for_content(Op::Referrers, subject)
            .await?
            .referrers(subject, artifact_type)
            .await
    }

    fn mount_source(&self) -> Option<MountSource> {
        self.chosen().and_then(|chosen| chosen.mount_source())
    }
}
