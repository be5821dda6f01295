//! Registries over the OCI distribution API: a repository is a [`Store`], a registry host (below a base
//! path) a [`Namespace`], both reached through the clients and per-host state of a
//! [`Session`](crate::Session). Only the credential types are public: callers open registries through
//! sessions, never this module's types.
//!
//! Blobs stream in both directions: downloads are resumed with `Range` after a dropped connection, and
//! uploads are one streamed `PUT` after a `POST` (chunked `PATCH`es when a chunk size is set, the host's
//! quirks require it, or the registry advertises a minimum chunk length), verified while they stream.
//! Manifests are pushed byte for byte. Referrers use the referrers API and fall back to the
//! `sha256-<hex>` tag schema, which wharf also maintains when it pushes a referrer to a registry without
//! the API.

mod challenge;
mod client;
mod credentials;
mod mirrors;
mod quirks;
mod throttle;
mod tls;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, LINK};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use wharf_oci::{Descriptor, Digest, ImageIndex, Manifest, ManifestBody, Reference, media_type};

use crate::namespace::{join, nested_name, sorted_unique};
use crate::referrers::{self, TaggedIndexes};
use crate::{
    ByteStream, ErrorKind, ManifestRole, MountSource, Namespace, Op, ReadStore, Recall, Result,
    SessionOptions, Store, StoreError, check_bytes, verified,
};
use client::{Body, Host, Request, Response};
pub use credentials::{CredentialSource, Credentials, CredentialsError};
use wharf_registries_conf::RegistriesConf;

/// Upload chunk size when chunked uploads are needed and nothing else says how big.
const DEFAULT_CHUNK: usize = 8 * 1024 * 1024;
/// Page size asked for when listing tags.
const TAGS_PAGE: usize = 1000;
/// Times a manifest the registry refused as damaged is sent again.
const MANIFEST_RESENDS: u64 = 2;

/// Largest page of a tag, catalog or referrers list read.
const TAGS_PAGE_LIMIT: usize = 16 * 1024 * 1024;
/// Resumes of one download after dropped connections.
const MAX_RESUMES: u32 = 5;
/// How long a request may go without a byte moving, unless the options say otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for a connection to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The host fact kept between runs: does the registry have the referrers API (`yes`, `no`)?
const REFERRERS_API_FACT: &str = "referrers-api";
/// The host fact kept between runs: the largest upload request body the registry, or a proxy in
/// front of it, takes (bytes), learned from 413 answers.
const BODY_LIMIT_FACT: &str = "body-limit";
/// Smallest upload chunk learned from 413 answers; a registry refusing less is not chunked further.
const MIN_LEARNED_CHUNK: usize = 64 * 1024;
/// The host fact kept between runs: does the registry mount blobs across repositories (`yes`,
/// `no`)?
const MOUNT_FACT: &str = "mount";
/// Refused mounts of blobs known to be there after which a registry counts as not mounting.
const MOUNT_REFUSALS_TO_LEARN: usize = 2;
/// Repositories of the blob cache tried for a mount before a blob is uploaded.
const MOUNT_CANDIDATES: usize = 3;

/// How to reach one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct HostMode {
    /// Skip certificate checks and allow plain HTTP.
    insecure: bool,
    /// Send `--creds` (only to the registry the user named, never to a mirror elsewhere).
    explicit_credentials: bool,
}

/// HTTP clients and per-host state (schemes, tokens, detected capabilities), shared by every
/// repository a session opens.
#[derive(Clone)]
pub(crate) struct Clients {
    inner: Arc<ClientsInner>,
}

struct ClientsInner {
    credentials: Option<Credentials>,
    source: CredentialSource,
    insecure_hosts: Vec<String>,
    chunk_size: Option<usize>,
    registries_conf: Option<Arc<RegistriesConf>>,
    idle_timeout: Duration,
    client: reqwest::Client,
    /// For insecure hosts: certificates are not checked.
    lenient_client: reqwest::Client,
    hosts: Mutex<HashMap<(String, HostMode), Arc<Host>>>,
    recall: Option<Arc<dyn Recall>>,
    /// Per host: does the referrers API exist? Learned once per run (a registry has it for every
    /// repository or for none), so later subjects go straight to the tag schema.
    referrers_api: Mutex<HashMap<String, bool>>,
    /// Held while a registry is asked whether it has the referrers API, so that the images of a
    /// run starting together ask once, not once each.
    referrers_probe: tokio::sync::Mutex<()>,
}

impl Clients {
    /// Clients for `options`; fails if the CA directory cannot be read.
    pub fn new(options: &SessionOptions) -> Result<Clients> {
        let fail = |reason: String| {
            StoreError::new(Op::Open, "registry client", ErrorKind::Invalid(reason))
        };
        let builder = || {
            reqwest::Client::builder()
                // HTTP/2 flow control throttles large pushes; one HTTP/1.1 connection per transfer is faster.
                .http1_only()
                .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(CONNECT_TIMEOUT.min(options.idle_timeout))
                .pool_max_idle_per_host(32)
        };
        let strict = match &options.cert_dir {
            Some(dir) if options.tls_verify => {
                builder().tls_backend_preconfigured(tls::with_cert_dir(dir).map_err(fail)?)
            }
            _ => builder().tls_danger_accept_invalid_certs(!options.tls_verify),
        };
        let client = strict.build().map_err(|e| fail(e.to_string()))?;
        let lenient_client = builder()
            .tls_danger_accept_invalid_certs(true)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        Ok(Clients {
            inner: Arc::new(ClientsInner {
                credentials: options.credentials.clone(),
                source: options.source.clone(),
                insecure_hosts: options.insecure_hosts.clone(),
                chunk_size: options.chunk_size,
                registries_conf: options.registries_conf.clone(),
                idle_timeout: options.idle_timeout,
                client,
                lenient_client,
                hosts: Mutex::new(HashMap::new()),
                referrers_api: Mutex::new(HashMap::new()),
                referrers_probe: tokio::sync::Mutex::new(()),
                recall: options.recall.clone(),
            }),
        })
    }

    /// The shared state for `host` reached in `mode`.
    fn host_with(&self, host: &str, mode: HostMode) -> Arc<Host> {
        let inner = &self.inner;
        let mut hosts = inner.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts
            .entry((host.to_owned(), mode))
            .or_insert_with(|| {
                // Insecure hosts skip certificate checks and may use HTTP; loopback hosts may use HTTP
                // but a certificate they present is still checked.
                let client = if mode.insecure {
                    inner.lenient_client.clone()
                } else {
                    inner.client.clone()
                };
                let credentials = inner
                    .credentials
                    .clone()
                    .filter(|_| mode.explicit_credentials);
                Arc::new(Host::new(
                    host,
                    client,
                    mode.insecure || is_loopback(host),
                    credentials,
                    inner.source.clone(),
                    inner.idle_timeout,
                ))
            })
            .clone()
    }

    /// `host` as the user named it: insecure if `--insecure-registry` or registries.conf says so.
    fn host(&self, host: &str) -> Arc<Host> {
        let configured = self
            .inner
            .registries_conf
            .as_ref()
            .and_then(|conf| conf.find(host))
            .is_some_and(|r| r.insecure);
        let insecure = configured || self.inner.insecure_hosts.iter().any(|h| h == host);
        self.host_with(
            host,
            HostMode {
                insecure,
                explicit_credentials: true,
            },
        )
    }

    /// The namespace of registry `host` below `base`.
    pub fn namespace(&self, host: &str, base: &str) -> Arc<dyn Namespace> {
        Arc::new(RegistryNamespace {
            clients: self.clone(),
            host: host.to_owned(),
            base: base.to_owned(),
        })
    }

    /// A store for the repository `reference` names (its tag and digest are ignored), reached
    /// directly: for writes, tag listings, and when no registries.conf applies.
    fn repository(&self, reference: &Reference) -> Repository {
        Repository {
            clients: self.clone(),
            host: self.host(reference.domain()),
            name: reference.path().to_owned(),
        }
    }

    /// A store for reading `reference`'s repository: through the registries.conf endpoints (mirrors
    /// first) when a configuration is loaded, else directly.
    fn pull(&self, reference: &Reference) -> Arc<dyn ReadStore> {
        match &self.inner.registries_conf {
            Some(conf) => Arc::new(mirrors::Mirrored::new(
                self.clone(),
                conf.clone(),
                reference.clone(),
            )),
            None => Arc::new(self.repository(reference)),
        }
    }

    /// A store for writing to `reference`'s repository; refused if registries.conf blocks it.
    fn push(&self, reference: &Reference) -> Result<Repository> {
        if let Some(conf) = &self.inner.registries_conf
            && let Some(entry) = conf.find(&reference.name()).filter(|r| r.blocked)
        {
            return Err(StoreError::new(
                Op::Open,
                reference.name(),
                ErrorKind::Unsupported(format!(
                    "registry {} is blocked in registries.conf",
                    entry.prefix
                )),
            ));
        }
        Ok(self.repository(reference))
    }

    /// The repository of one registries.conf endpoint.
    fn endpoint(
        &self,
        endpoint: &wharf_registries_conf::Endpoint,
        logical_domain: &str,
    ) -> Repository {
        let domain = endpoint.reference.domain();
        let mode = HostMode {
            insecure: endpoint.insecure || self.inner.insecure_hosts.iter().any(|h| h == domain),
            explicit_credentials: domain == logical_domain,
        };
        Repository {
            clients: self.clone(),
            host: self.host_with(domain, mode),
            name: endpoint.reference.path().to_owned(),
        }
    }

    /// Checks that the registry accepts the credentials (`wharf login`).
    pub async fn check_credentials(&self, host: &str) -> Result<()> {
        let host = self.host(host);
        let fail = |kind| StoreError::new(Op::Open, host.name.clone(), kind);
        let url = host.url("/v2/").await.map_err(fail)?;
        let answer = host
            .send_read(Request::new(Method::GET, url, Vec::new()), TAGS_PAGE_LIMIT)
            .await
            .map_err(fail)?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(fail(answer.error()))
        }
    }

    /// Repositories of a registry (`/v2/_catalog`, following pagination).
    async fn catalog(&self, host: &str) -> Result<Vec<String>> {
        let host = self.host(host);
        let target = host.name.clone();
        let fail = |kind| StoreError::new(Op::ListRepositories, target.clone(), kind);
        let first = host
            .url(&format!("/v2/_catalog?n={TAGS_PAGE}"))
            .await
            .map_err(fail)?;
        #[derive(Deserialize)]
        struct Catalog {
            #[serde(default)]
            repositories: Vec<String>,
        }
        let mut out = Vec::new();
        paginate(
            &host,
            first,
            vec!["registry:catalog:*".to_owned()],
            |bytes| {
                let page: Catalog = serde_json::from_slice(bytes)
                    .map_err(|e| ErrorKind::Invalid(format!("unreadable catalog: {e}")))?;
                out.extend(page.repositories);
                Ok(())
            },
        )
        .await
        .map_err(fail)?;
        Ok(out)
    }
}

/// The repositories of a registry below a base path.
struct RegistryNamespace {
    clients: Clients,
    host: String,
    base: String,
}

impl RegistryNamespace {
    fn reference(&self, repository: &str) -> Result<Reference> {
        let path = join(&self.base, repository);
        Reference::parse(&format!("{}/{path}", self.host)).map_err(|e| {
            StoreError::new(
                Op::Open,
                format!("{}/{path}", self.host),
                ErrorKind::Invalid(e.reason.to_string()),
            )
        })
    }
}

#[async_trait]
impl Namespace for RegistryNamespace {
    fn location(&self) -> String {
        join(&self.host, &self.base)
    }

    fn read(&self, repository: &str) -> Result<Arc<dyn ReadStore>> {
        Ok(self.clients.pull(&self.reference(repository)?))
    }

    fn write(&self, repository: &str) -> Result<Arc<dyn Store>> {
        Ok(Arc::new(self.clients.push(&self.reference(repository)?)?))
    }

    async fn repositories(&self) -> Result<Vec<String>> {
        let all = self.clients.catalog(&self.host).await?;
        if self.base.is_empty() {
            return Ok(sorted_unique(all.into_iter()));
        }
        let prefix = format!("{}/", self.base);
        Ok(sorted_unique(all.iter().filter_map(|r| {
            r.strip_prefix(&prefix).map(str::to_owned)
        })))
    }
}

fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.split(':').next().unwrap_or(host),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Follows `Link: <...>; rel="next"` pages, handing each body to `page`.
async fn paginate(
    host: &Host,
    first: Url,
    scopes: Vec<String>,
    mut page: impl FnMut(&[u8]) -> Result<(), ErrorKind>,
) -> Result<(), ErrorKind> {
    let mut next = Some(first);
    let mut seen = 0;
    let mut reread = false;
    while let Some(url) = next.take() {
        seen += 1;
        if seen > 10_000 {
            return Err(ErrorKind::Invalid(
                "more than 10000 pages; the registry's Link headers loop".into(),
            ));
        }
        let answer = host
            .send_read(
                Request::new(Method::GET, url.clone(), scopes.clone()),
                TAGS_PAGE_LIMIT,
            )
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Err(ErrorKind::NotFound(None));
        }
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        match page(&answer.body) {
            // A page damaged on the way is asked for again, once.
            Err(ErrorKind::Invalid(why)) if !reread => {
                tracing::info!(%url, "unreadable page ({why}); asking again");
                reread = true;
                next = Some(url);
                continue;
            }
            outcome => outcome?,
        }
        reread = false;
        if let Some(link) = next_link(&answer.headers) {
            next = Some(host.resolve_location(&link).await?);
        }
    }
    Ok(())
}

/// The target of a `rel="next"` link.
fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find(|part| part.contains("rel=\"next\"") || part.contains("rel=next"))
        .and_then(|part| {
            let start = part.find('<')? + 1;
            let end = part.find('>')?;
            Some(part[start..end].to_owned())
        })
}

/// One repository of a registry.
pub(crate) struct Repository {
    clients: Clients,
    host: Arc<Host>,
    name: String,
}

impl Repository {
    /// Remembers, for later runs, that this repository holds `digest`.
    fn seen(&self, digest: &Digest) {
        if let Some(recall) = &self.clients.inner.recall {
            recall.blob_seen(&self.host.name, &self.name, digest);
        }
    }

    fn target(&self, what: &str) -> String {
        if what.is_empty() {
            format!("{}/{}", self.host.name, self.name)
        } else {
            format!("{}/{} {what}", self.host.name, self.name)
        }
    }

    fn error(&self, op: Op, what: &str, kind: ErrorKind) -> StoreError {
        StoreError::new(op, self.target(what), kind)
    }

    fn pull_scope(&self) -> Vec<String> {
        vec![format!("repository:{}:pull", self.name)]
    }

    /// The repository `path` below this one.
    fn nested_reference(&self, path: &str) -> Result<Reference> {
        let name = nested_name(&self.target(""), &self.host.name, &self.name, path)?;
        Reference::parse(&format!("{}/{name}", self.host.name))
            .map_err(|e| self.error(Op::Open, path, ErrorKind::Invalid(e.reason.to_string())))
    }

    fn push_scope(&self) -> Vec<String> {
        vec![format!("repository:{}:pull,push", self.name)]
    }

    async fn url(&self, suffix: &str) -> Result<Url, ErrorKind> {
        self.host.url(&format!("/v2/{}/{suffix}", self.name)).await
    }

    fn manifest_accept() -> String {
        media_type::MANIFEST_TYPES.join(", ")
    }

    /// A HEAD or GET request for a manifest.
    async fn manifest_request(
        &self,
        method: Method,
        reference: &str,
    ) -> Result<Request, ErrorKind> {
        let url = self.url(&format!("manifests/{reference}")).await?;
        Ok(Request::new(method, url, self.pull_scope()).header("accept", &Self::manifest_accept()))
    }

    /// GETs a manifest and checks its bytes; the descriptor comes from what was received. Bytes that do
    /// not match the digest asked for are fetched once more before giving up.
    async fn get_manifest(&self, reference: &str) -> Result<(Descriptor, Manifest), ErrorKind> {
        match self.get_manifest_once(reference).await {
            Err(ErrorKind::DigestMismatch { expected, actual }) => {
                tracing::info!(%expected, %actual, "manifest did not match its digest; fetching it again");
                self.get_manifest_once(reference).await
            }
            other => other,
        }
    }

    async fn get_manifest_once(
        &self,
        reference: &str,
    ) -> Result<(Descriptor, Manifest), ErrorKind> {
        let request = self.manifest_request(Method::GET, reference).await?;
        let answer = self
            .host
            .send_read(request, wharf_oci::MANIFEST_MAX_BYTES)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Err(ErrorKind::NotFound(None));
        }
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        let content_type = header_str(&answer.headers, CONTENT_TYPE.as_str()).map(str::to_owned);
        let header_digest = header_str(&answer.headers, "docker-content-digest")
            .and_then(|d| Digest::parse(d).ok());
        let bytes = answer.body;
        let algorithm = Digest::parse(reference)
            .map(|d| d.algorithm())
            .or_else(|_| header_digest.as_ref().map(Digest::algorithm).ok_or(()))
            .unwrap_or(wharf_oci::Algorithm::Sha256);
        let actual = algorithm.digest(&bytes);
        // By digest, the bytes must match it; by tag, the digest the registry says it sent.
        if let Some(expected) = Digest::parse(reference).ok().or(header_digest)
            && expected != actual
        {
            return Err(ErrorKind::DigestMismatch { expected, actual });
        }
        let size = bytes.len() as u64;
        let manifest = Manifest::parse(bytes, content_type.as_deref())?;
        let mut descriptor = Descriptor::new(manifest.media_type(), actual, size);
        descriptor.artifact_type = match manifest.body() {
            ManifestBody::Image(m) => m.artifact_type.clone(),
            ManifestBody::Index(i) => i.artifact_type.clone(),
        };
        Ok((descriptor, manifest))
    }

    /// The referrers API for `subject`, or `None` when the registry does not have it.
    async fn referrers_api(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Descriptor>>, ErrorKind> {
        let key = self.host.name.clone();
        let recall = self.clients.inner.recall.as_deref();
        let lookup = || {
            self.clients
                .inner
                .referrers_api
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .copied()
                .or_else(|| {
                    recall
                        .and_then(|r| r.host_fact(&key, REFERRERS_API_FACT))
                        .map(|v| v == "yes")
                })
        };
        let mut _probing = None;
        let mut known = lookup();
        if known.is_none() {
            _probing = Some(self.clients.inner.referrers_probe.lock().await);
            known = lookup();
        }
        if known == Some(false) {
            return Ok(None);
        }
        let mut url = self.url(&format!("referrers/{subject}")).await?;
        if let Some(artifact_type) = artifact_type {
            url.query_pairs_mut()
                .append_pair("artifactType", artifact_type);
        }
        let first = self
            .host
            .send_read(
                Request::new(Method::GET, url, self.pull_scope())
                    .header("accept", media_type::OCI_INDEX),
                wharf_oci::MANIFEST_MAX_BYTES,
            )
            .await?;
        let is_index = header_str(&first.headers, CONTENT_TYPE.as_str())
            .is_some_and(|t| media_type::essence(t) == media_type::OCI_INDEX);
        if !first.status.is_success() || !is_index {
            // 404 (or any non-index answer) from a registry without the API: use the tag schema.
            if matches!(first.status.as_u16(), 404 | 400 | 405) || first.status.is_success() {
                self.clients
                    .inner
                    .referrers_api
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.clone(), false);
                if known.is_none()
                    && let Some(recall) = recall
                {
                    recall.learn_host_fact(&key, REFERRERS_API_FACT, "no");
                }
                return Ok(None);
            }
            return Err(first.error());
        }
        self.clients
            .inner
            .referrers_api
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), true);
        if known.is_none()
            && let Some(recall) = recall
        {
            recall.learn_host_fact(&key, REFERRERS_API_FACT, "yes");
        }
        let filtered = header_str(&first.headers, "oci-filters-applied")
            .is_some_and(|f| f.contains("artifactType"));
        let next = next_link(&first.headers);
        let mut out = parse_index_entries(&first.body)?;
        if let Some(next) = next {
            let url = self.host.resolve_location(&next).await?;
            paginate(&self.host, url, self.pull_scope(), |bytes| {
                out.extend(parse_index_entries(bytes)?);
                Ok(())
            })
            .await?;
        }
        if !filtered && let Some(wanted) = artifact_type {
            out.retain(|d| d.artifact_type.as_deref() == Some(wanted));
        }
        Ok(Some(out))
    }

    /// PUTs a manifest and makes sure the registry stored exactly those bytes: bytes damaged on the
    /// way (the registry refuses them, or stores them under another digest) are sent once more, and
    /// if they arrive damaged again, what the registry stored is deleted so that no tag is left on
    /// content nobody sent.
    async fn put_manifest_checked(
        &self,
        reference: &str,
        descriptor: &Descriptor,
        raw: Bytes,
    ) -> Result<HeaderMap, ErrorKind> {
        let mut resent = false;
        let mut refused = 0;
        loop {
            let stored = match self
                .put_manifest(reference, &descriptor.media_type, raw.clone())
                .await
            {
                Ok(headers) => match header_str(&headers, "docker-content-digest")
                    .and_then(|d| Digest::parse(d).ok())
                    .filter(|d| *d != descriptor.digest)
                {
                    None => return Ok(headers),
                    Some(stored) => stored,
                },
                // Damaged on the way, or (docker-registry) a blob it points at being linked by
                // another writer at this moment: either passes, the second after a pause.
                Err(ErrorKind::Registry {
                    code: Some(code), ..
                }) if code == "DIGEST_INVALID" && refused < MANIFEST_RESENDS => {
                    refused += 1;
                    let pause = Duration::from_millis(50 * refused + referrers::jitter());
                    tracing::info!(digest = %descriptor.digest, "the registry refused the manifest as damaged; sending it again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !resent {
                tracing::info!(digest = %descriptor.digest, %stored, "the registry stored other bytes than were sent; sending them again");
                resent = true;
                continue;
            }
            let cleanup = match self.delete_manifest(&stored).await {
                Ok(()) => format!("wharf deleted {stored} so that {reference} does not name it"),
                Err(e) => format!(
                    "deleting {stored} failed ({e}): {reference} may name content wharf did not send"
                ),
            };
            return Err(ErrorKind::Invalid(format!(
                "the registry stored the manifest as {stored}, not {}, twice; {cleanup}",
                descriptor.digest
            )));
        }
    }

    async fn delete_manifest(&self, digest: &Digest) -> Result<(), ErrorKind> {
        let url = self.url(&format!("manifests/{digest}")).await?;
        let response = self
            .host
            .send(Request::new(Method::DELETE, url, self.push_scope()))
            .await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(client::status_error(response).await)
        }
    }

    /// PUTs manifest bytes under a tag or digest; returns the response headers.
    async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        raw: Bytes,
    ) -> Result<HeaderMap, ErrorKind> {
        let url = self.url(&format!("manifests/{reference}")).await?;
        let request = Request::new(Method::PUT, url, self.push_scope())
            .header("content-type", media_type)
            .body(Body::Bytes(raw));
        let response = self.host.send(request).await?;
        if !response.status().is_success() {
            return Err(client::status_error(response).await);
        }
        Ok(response.headers().clone())
    }

    /// Uploads a blob: POST, then one streamed PUT, or PATCHes then PUT.
    async fn upload(&self, descriptor: &Descriptor, body: ByteStream) -> Result<(), ErrorKind> {
        let _permit = self.host.push_throttle.acquire().await;
        let start = self.url("blobs/uploads/").await?;
        let response = self
            .host
            .send(Request::new(Method::POST, start, self.push_scope()))
            .await?;
        if response.status() != StatusCode::ACCEPTED && !response.status().is_success() {
            return Err(client::status_error(response).await);
        }
        let min_chunk = header_str(response.headers(), "oci-chunk-min-length")
            .and_then(|v| v.parse::<usize>().ok());
        let location = upload_location(&self.host, response.headers()).await?;
        let mut chunk = match (self.clients.inner.chunk_size, min_chunk) {
            (Some(size), min) => Some(size.max(min.unwrap_or(0))),
            (None, Some(min)) if !self.host.quirks.monolithic_only => Some(min.max(DEFAULT_CHUNK)),
            (None, _) if self.host.quirks.chunked_upload => Some(DEFAULT_CHUNK),
            _ => None,
        };
        if let Some(limit) = self.body_limit()
            && descriptor.size > limit as u64
            && !self.host.quirks.monolithic_only
        {
            chunk = Some(chunk.map_or(limit, |size| size.min(limit)));
        }
        let target = self.target(&format!("blob {}", descriptor.digest));
        let body = verified(descriptor, Op::Push, target, body);
        let done = match chunk {
            Some(size) if !self.host.quirks.monolithic_only => {
                self.upload_chunked(descriptor, location, body, size)
                    .await?
            }
            _ => {
                let mut url = location;
                url.query_pairs_mut()
                    .append_pair("digest", descriptor.digest.as_str());
                // reqwest reports only that the body failed; keep the body's own error to report it.
                let body_error: Arc<Mutex<Option<StoreError>>> = Arc::default();
                let slot = body_error.clone();
                let body = body.map(move |item| {
                    item.map_err(|e| {
                        let message = e.to_string();
                        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        std::io::Error::other(message)
                    })
                });
                let request = Request::new(Method::PUT, url, self.push_scope())
                    .header("content-type", "application/octet-stream")
                    .header("content-length", &descriptor.size.to_string())
                    .body(Body::Stream(Some(body.boxed())));
                let sent = self.host.send(request).await;
                if let Some(e) = body_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    return Err(*e.kind);
                }
                let sent = sent?;
                if sent.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    // Too large in one request (often a proxy's body limit): the next attempt
                    // sends it in chunks the host takes.
                    let size = usize::try_from(descriptor.size).unwrap_or(usize::MAX);
                    self.learn_body_limit(size.min(2 * DEFAULT_CHUNK));
                }
                sent
            }
        };
        if done.status() == StatusCode::NOT_FOUND && self.blob_present(descriptor).await {
            // The closing PUT was sent again (by wharf or a balancer in front of the registry)
            // after the registry had finished the upload but its answer was lost.
            return Ok(());
        }
        if done.status() != StatusCode::CREATED && !done.status().is_success() {
            return Err(client::status_error(done).await);
        }
        if let Some(returned) = header_str(done.headers(), "docker-content-digest")
            && Digest::parse(returned).is_ok_and(|d| d != descriptor.digest)
        {
            return Err(ErrorKind::Invalid(format!(
                "the registry stored the blob as {returned}, not {}",
                descriptor.digest
            )));
        }
        Ok(())
    }

    /// A fact about the host kept in the blob cache by an earlier run, if recent.
    fn remembered(&self, fact: &str) -> Option<String> {
        self.clients
            .inner
            .recall
            .as_deref()?
            .host_fact(&self.host.name, fact)
    }

    /// False when the registry was seen refusing a mount of a blob known to be in the repository
    /// it was asked to mount from: this run, or a recent one.
    fn mounts_may_work(&self) -> bool {
        let mut state = self.host.mounts.load(Ordering::Relaxed);
        if state == client::MOUNTS_UNREAD {
            let remembered = match self.remembered(MOUNT_FACT).as_deref() {
                Some("yes") => client::MOUNTS_YES,
                Some("no") => client::MOUNTS_NO,
                _ => client::MOUNTS_UNKNOWN,
            };
            state = self
                .host
                .mounts
                .compare_exchange(
                    client::MOUNTS_UNREAD,
                    remembered,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .map_or_else(|current| current, |_| remembered);
        }
        state != client::MOUNTS_NO
    }

    /// Records whether the registry mounts, for this run and later ones. A registry known to
    /// mount keeps that answer: a refusal then is about one repository, not the registry; and it
    /// takes a second refusal to decide that it does not, so one odd answer costs nothing.
    fn learn_mounts(&self, works: bool) {
        self.mounts_may_work();
        if !works
            && self
                .host
                .mount_refusals
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1)
                < MOUNT_REFUSALS_TO_LEARN
        {
            return;
        }
        let learned = if works {
            client::MOUNTS_YES
        } else {
            client::MOUNTS_NO
        };
        let changed = self
            .host
            .mounts
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |current| {
                (current != learned && current != client::MOUNTS_YES).then_some(learned)
            })
            .is_ok();
        if !changed {
            return;
        }
        if !works {
            tracing::info!(host = %self.host.name, "the registry does not mount blobs across repositories; uploading them");
        }
        if let Some(recall) = &self.clients.inner.recall {
            recall.learn_host_fact(
                &self.host.name,
                MOUNT_FACT,
                if works { "yes" } else { "no" },
            );
        }
    }

    /// The largest request body the host takes, where a 413 taught it: this run or a recent one.
    fn body_limit(&self) -> Option<usize> {
        let mut limit = self.host.body_limit.load(Ordering::Relaxed);
        if limit == client::FACT_UNREAD {
            let remembered = self
                .remembered(BODY_LIMIT_FACT)
                .and_then(|limit| limit.parse::<usize>().ok())
                .filter(|limit| (MIN_LEARNED_CHUNK..client::FACT_UNREAD).contains(limit))
                .unwrap_or(0);
            limit = self
                .host
                .body_limit
                .compare_exchange(
                    client::FACT_UNREAD,
                    remembered,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .map_or_else(|current| current, |_| remembered);
        }
        (limit > 0).then_some(limit)
    }

    /// After the host refused a body of `refused` bytes with 413: the limit becomes the largest
    /// power of two below it (proxies' limits are round: nginx's `1m`), kept for later runs.
    /// `None` when that would be too small to be worth chunking.
    fn learn_body_limit(&self, refused: usize) -> Option<usize> {
        let below = refused.checked_sub(1).filter(|b| *b > 0)?;
        let limit = 1usize << (usize::BITS - 1 - below.leading_zeros());
        if limit < MIN_LEARNED_CHUNK {
            return None;
        }
        self.body_limit();
        // Uploads refused at once each learn: the smallest limit wins.
        let _ =
            self.host
                .body_limit
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |current| {
                    (current == 0 || limit < current).then_some(limit)
                });
        let kept = self.host.body_limit.load(Ordering::Relaxed);
        tracing::info!(host = %self.host.name, limit = kept, "the registry refused a request body as too large; sending chunks of at most {kept} bytes");
        if let Some(recall) = &self.clients.inner.recall {
            recall.learn_host_fact(&self.host.name, BODY_LIMIT_FACT, &kept.to_string());
        }
        Some(kept)
    }

    async fn upload_chunked(
        &self,
        descriptor: &Descriptor,
        mut location: Url,
        mut body: ByteStream,
        mut chunk_size: usize,
    ) -> Result<Response, ErrorKind> {
        let mut offset: u64 = 0;
        let mut buffer = BytesMut::with_capacity(chunk_size);
        let mut exhausted = false;
        loop {
            while !exhausted && buffer.len() < chunk_size {
                match body.next().await {
                    Some(chunk) => buffer.extend_from_slice(&chunk.map_err(|e| *e.kind)?),
                    None => exhausted = true,
                }
            }
            if buffer.is_empty() {
                break;
            }
            let send = buffer.split_to(buffer.len().min(chunk_size)).freeze();
            let end = offset + send.len() as u64 - 1;
            let request = Request::new(Method::PATCH, location.clone(), self.push_scope())
                .header("content-type", "application/octet-stream")
                .header("content-range", &format!("{offset}-{end}"))
                .header("content-length", &send.len().to_string())
                .body(Body::Bytes(send.clone()));
            let response = self.host.send(request).await?;
            if response.status() == StatusCode::PAYLOAD_TOO_LARGE
                && let Some(limit) = self.learn_body_limit(send.len())
            {
                // Refused before it reached the registry: the same bytes again, in smaller chunks.
                let mut again = BytesMut::with_capacity(send.len() + buffer.len());
                again.extend_from_slice(&send);
                again.extend_from_slice(&buffer);
                buffer = again;
                chunk_size = limit;
                continue;
            }
            if response.status() == StatusCode::RANGE_NOT_SATISFIABLE
                && let Some((received, next)) = self.upload_status(&location).await?
                && received == end + 1
            {
                // A chunk sent again after its answer was lost, which the registry already has.
                offset = received;
                location = next;
                continue;
            }
            if response.status() != StatusCode::ACCEPTED && !response.status().is_success() {
                return Err(client::status_error(response).await);
            }
            offset = end + 1;
            location = upload_location(&self.host, response.headers()).await?;
        }
        let mut url = location;
        url.query_pairs_mut()
            .append_pair("digest", descriptor.digest.as_str());
        let request =
            Request::new(Method::PUT, url, self.push_scope()).header("content-length", "0");
        self.host.send(request).await
    }

    /// Whether the repository has the blob, as far as one HEAD can tell.
    async fn blob_present(&self, descriptor: &Descriptor) -> bool {
        let Ok(url) = self.url(&format!("blobs/{}", descriptor.digest)).await else {
            return false;
        };
        let request = Request::new(Method::HEAD, url, self.push_scope());
        self.host.send(request).await.is_ok_and(|response| {
            response.status().is_success()
                && header_str(response.headers(), CONTENT_LENGTH.as_str())
                    .is_none_or(|length| length == descriptor.size.to_string())
        })
    }

    /// How many bytes an upload session has received (from its `Range: 0-N`), and where to send
    /// the next chunk; `None` when the registry does not say.
    async fn upload_status(&self, location: &Url) -> Result<Option<(u64, Url)>, ErrorKind> {
        let request = Request::new(Method::GET, location.clone(), self.push_scope());
        let response = self.host.send(request).await?;
        if !response.status().is_success() {
            return Ok(None);
        }
        let received = header_str(response.headers(), "range")
            .and_then(|range| range.split_once('-'))
            .and_then(|(_, last)| last.trim().parse::<u64>().ok())
            .map(|last| last + 1);
        let next = match response.headers().get("location") {
            Some(_) => upload_location(&self.host, response.headers()).await?,
            None => location.clone(),
        };
        Ok(received.map(|received| (received, next)))
    }
}

fn parse_index_entries(bytes: &[u8]) -> Result<Vec<Descriptor>, ErrorKind> {
    let index: ImageIndex = serde_json::from_slice(bytes)
        .map_err(|e| ErrorKind::Invalid(format!("unreadable referrers index: {e}")))?;
    Ok(index.manifests)
}

/// A manifest reference for messages: a digest as it is, a tag quoted.
fn reference_text(reference: &str) -> String {
    if Digest::parse(reference).is_ok() {
        reference.to_owned()
    } else {
        format!("tag {reference:?}")
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

async fn upload_location(host: &Host, headers: &HeaderMap) -> Result<Url, ErrorKind> {
    let location = header_str(headers, "location").ok_or_else(|| {
        ErrorKind::Invalid("the registry opened an upload without a Location".into())
    })?;
    host.resolve_location(location).await
}

#[async_trait]
impl ReadStore for Repository {
    fn location(&self) -> String {
        format!("{}/{}", self.host.name, self.name)
    }

    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        let what = reference_text(reference);
        let fail = |kind| self.error(Op::Resolve, &what, kind);
        let request = self
            .manifest_request(Method::HEAD, reference)
            .await
            .map_err(fail)?;
        let response = self.host.send(request).await.map_err(fail)?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(fail(ErrorKind::NotFound(None)));
        }
        if response.status().is_success() {
            let headers = response.headers();
            let digest =
                header_str(headers, "docker-content-digest").and_then(|d| Digest::parse(d).ok());
            let size =
                header_str(headers, CONTENT_LENGTH.as_str()).and_then(|l| l.parse::<u64>().ok());
            let content_type = header_str(headers, CONTENT_TYPE.as_str()).map(media_type::essence);
            if let (Some(digest), Some(size), Some(content_type)) = (digest, size, content_type)
                && media_type::is_manifest(content_type)
                && Digest::parse(reference).ok().is_none_or(|d| d == digest)
            {
                return Ok(Descriptor::new(content_type, digest, size));
            }
        } else if response.status() != StatusCode::METHOD_NOT_ALLOWED {
            return Err(fail(client::status_error(response).await));
        }
        // HEAD said too little: read the manifest itself.
        self.get_manifest(reference)
            .await
            .map(|(d, _)| d)
            .map_err(fail)
    }

    async fn resolve_manifest(&self, reference: &str) -> Result<(Descriptor, Manifest)> {
        let what = reference_text(reference);
        self.get_manifest(reference)
            .await
            .map_err(|kind| self.error(Op::Resolve, &what, kind))
    }

    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        let what = format!(
            "{} {}",
            if descriptor.is_manifest() {
                "manifest"
            } else {
                "blob"
            },
            descriptor.digest
        );
        let fail = |kind| self.error(Op::Fetch, &what, kind);
        if descriptor.is_manifest() {
            let (_, manifest) = self
                .get_manifest(descriptor.digest.as_str())
                .await
                .map_err(fail)?;
            let bytes = manifest.raw().clone();
            return Ok(Box::pin(futures_util::stream::once(async { Ok(bytes) })));
        }
        let url = self
            .url(&format!("blobs/{}", descriptor.digest))
            .await
            .map_err(fail)?;
        let permit = self.host.pull_throttle.acquire().await;
        let response = self
            .host
            .send(Request::new(Method::GET, url.clone(), self.pull_scope()))
            .await
            .map_err(fail)?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(fail(ErrorKind::NotFound(None)));
        }
        if !response.status().is_success() {
            return Err(fail(client::status_error(response).await));
        }
        self.seen(&descriptor.digest);
        Ok(resumable_download(
            self.host.clone(),
            url,
            self.pull_scope(),
            response,
            self.target(&what),
            permit,
        ))
    }

    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        let what = descriptor.digest.to_string();
        let fail = |kind| self.error(Op::Exists, &what, kind);
        let request = if descriptor.is_manifest() {
            self.manifest_request(Method::HEAD, descriptor.digest.as_str())
                .await
                .map_err(fail)?
        } else {
            let url = self
                .url(&format!("blobs/{}", descriptor.digest))
                .await
                .map_err(fail)?;
            Request::new(Method::HEAD, url, self.pull_scope())
        };
        let response = self.host.send(request).await.map_err(fail)?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(false),
            status if status.is_success() => {
                if !descriptor.is_manifest() {
                    self.seen(&descriptor.digest);
                }
                Ok(true)
            }
            _ => Err(fail(client::status_error(response).await)),
        }
    }

    async fn tags(&self) -> Result<Vec<String>> {
        let fail = |kind| self.error(Op::ListTags, "", kind);
        #[derive(Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let first = self
            .url(&format!("tags/list?n={TAGS_PAGE}"))
            .await
            .map_err(fail)?;
        let mut out = Vec::new();
        paginate(&self.host, first, self.pull_scope(), |bytes| {
            let page: Tags = serde_json::from_slice(bytes)
                .map_err(|e| ErrorKind::Invalid(format!("unreadable tag list: {e}")))?;
            out.extend(page.tags.unwrap_or_default());
            Ok(())
        })
        .await
        .map_err(fail)?;
        Ok(out)
    }

    async fn referrers(
        &self,
        subject: &Descriptor,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let fail = |kind| self.error(Op::Referrers, subject.digest.as_str(), kind);
        if let Some(found) = self
            .referrers_api(&subject.digest, artifact_type)
            .await
            .map_err(fail)?
        {
            return Ok(found);
        }
        referrers::listed(self, &subject.digest, artifact_type).await
    }

    fn nested(&self, path: &str) -> Result<Option<Arc<dyn ReadStore>>> {
        Ok(Some(self.clients.pull(&self.nested_reference(path)?)))
    }

    fn mount_source(&self) -> Option<MountSource> {
        Some(MountSource {
            host: self.host.name.clone(),
            repository: self.name.clone(),
            vouched: true,
        })
    }

    fn blob_scope(&self) -> String {
        self.host.name.clone()
    }
}

#[async_trait]
impl Store for Repository {
    async fn push(&self, descriptor: &Descriptor, body: ByteStream) -> Result<()> {
        let what = format!("blob {}", descriptor.digest);
        self.upload(descriptor, body)
            .await
            .map_err(|kind| self.error(Op::Push, &what, kind))?;
        self.seen(&descriptor.digest);
        Ok(())
    }

    async fn push_manifest(
        &self,
        descriptor: &Descriptor,
        raw: Bytes,
        role: ManifestRole<'_>,
    ) -> Result<()> {
        let what = format!("manifest {}", descriptor.digest);
        check_bytes(descriptor, &raw, &self.target(&what))?;
        let fail = |kind| self.error(Op::Push, &what, kind);
        let reference = match role {
            ManifestRole::Tag(tag) => tag.to_owned(),
            ManifestRole::Child | ManifestRole::Root => descriptor.digest.to_string(),
        };
        let headers = self
            .put_manifest_checked(&reference, descriptor, raw.clone())
            .await
            .map_err(fail)?;
        let manifest =
            Manifest::parse(raw, Some(&descriptor.media_type)).map_err(|e| fail(e.into()))?;
        // Without an OCI-Subject answer the registry keeps no referrers index: maintain the tag schema.
        if let Some(subject) = manifest.subject()
            && header_str(&headers, "oci-subject").is_none()
        {
            referrers::add(
                self,
                &subject.digest,
                referrers::entry(descriptor, &manifest),
            )
            .await?;
        }
        Ok(())
    }

    fn mount_candidates(&self, descriptor: &Descriptor) -> Vec<MountSource> {
        let Some(recall) = &self.clients.inner.recall else {
            return Vec::new();
        };
        if !self.mounts_may_work() {
            return Vec::new();
        }
        recall
            .blob_locations(&self.host.name, &descriptor.digest, MOUNT_CANDIDATES + 1)
            .into_iter()
            .filter(|repository| *repository != self.name)
            .take(MOUNT_CANDIDATES)
            .map(|repository| MountSource {
                host: self.host.name.clone(),
                repository,
                vouched: false,
            })
            .collect()
    }

    async fn mount(&self, descriptor: &Descriptor, from: &MountSource) -> Result<bool> {
        if from.host != self.host.name
            || from.repository == self.name
            || !self.host.quirks.mount
            || !self.mounts_may_work()
        {
            return Ok(false);
        }
        let what = format!("blob {}", descriptor.digest);
        let fail = |kind| self.error(Op::Push, &what, kind);
        let mut url = self.url("blobs/uploads/").await.map_err(fail)?;
        url.query_pairs_mut()
            .append_pair("mount", descriptor.digest.as_str())
            .append_pair("from", &from.repository);
        let mut scopes = self.push_scope();
        scopes.push(format!("repository:{}:pull", from.repository));
        let response = self
            .host
            .send(Request::new(Method::POST, url, scopes))
            .await
            .map_err(fail)?;
        if response.status() == StatusCode::CREATED {
            self.seen(&descriptor.digest);
            self.learn_mounts(true);
            return Ok(true);
        }
        let refused = matches!(
            response.status(),
            StatusCode::ACCEPTED | StatusCode::NOT_FOUND
        );
        if response.status() == StatusCode::ACCEPTED && from.vouched {
            // The blob is there, yet an upload was opened instead: the registry does not mount.
            self.learn_mounts(false);
        }
        if refused
            && !from.vouched
            && let Some(recall) = &self.clients.inner.recall
        {
            // Not there (or not readable by us) any more: later runs stop trying it.
            recall.blob_gone(&from.host, &from.repository, &descriptor.digest);
        }
        if response.status() == StatusCode::ACCEPTED {
            // Refused, but an upload session was opened: close it so it does not linger.
            if let Ok(location) = upload_location(&self.host, response.headers()).await {
                let _ = self
                    .host
                    .send(Request::new(Method::DELETE, location, self.push_scope()))
                    .await;
            }
        }
        Ok(false)
    }

    fn nested_mut(&self, path: &str) -> Result<Option<Arc<dyn Store>>> {
        Ok(Some(Arc::new(
            self.clients.push(&self.nested_reference(path)?)?,
        )))
    }
}

#[async_trait]
impl TaggedIndexes for Repository {
    fn location(&self) -> String {
        ReadStore::location(self)
    }

    async fn tagged(&self, tag: &str) -> Result<Option<Manifest>> {
        let fail = |kind| self.error(Op::Referrers, tag, kind);
        match self.get_manifest(tag).await {
            Ok((_, manifest)) => Ok(Some(manifest)),
            Err(
                ErrorKind::NotFound(_)
                | ErrorKind::Registry {
                    status: 400 | 404, ..
                },
            ) => Ok(None),
            Err(e) => Err(fail(e)),
        }
    }

    async fn put_tagged(&self, tag: &str, manifest: &Manifest) -> Result<()> {
        self.put_manifest(tag, manifest.media_type(), manifest.raw().clone())
            .await
            .map(|_| ())
            .map_err(|kind| self.error(Op::Push, tag, kind))
    }
}

/// A blob download that picks up where it stopped when the connection drops: `Range` from the byte
/// received last, and if the server ignores `Range` (200), skipping what was already passed on.
fn resumable_download(
    host: Arc<Host>,
    url: Url,
    scopes: Vec<String>,
    first: Response,
    target: String,
    permit: throttle::Permit,
) -> ByteStream {
    struct State {
        /// The transfer slot, held until the stream is dropped.
        _permit: throttle::Permit,
        host: Arc<Host>,
        url: Url,
        scopes: Vec<String>,
        body: futures_util::stream::BoxStream<'static, Result<Bytes, ErrorKind>>,
        received: u64,
        /// Bytes to drop from the current response (a server that ignored Range).
        skip: u64,
        resumes: u32,
        target: String,
        done: bool,
    }
    let state = State {
        _permit: permit,
        host,
        url,
        scopes,
        body: first.bytes_stream(),
        received: 0,
        skip: 0,
        resumes: 0,
        target,
        done: false,
    };
    Box::pin(futures_util::stream::try_unfold(
        state,
        |mut state| async move {
            loop {
                if state.done {
                    return Ok(None);
                }
                match state.body.next().await {
                    None => return Ok(None),
                    Some(Ok(mut chunk)) => {
                        if state.skip > 0 {
                            let drop = state.skip.min(chunk.len() as u64) as usize;
                            state.skip -= drop as u64;
                            chunk = chunk.slice(drop..);
                            if chunk.is_empty() {
                                continue;
                            }
                        }
                        state.received += chunk.len() as u64;
                        return Ok(Some((chunk, state)));
                    }
                    Some(Err(e)) if e.is_retryable() && state.resumes < MAX_RESUMES => {
                        state.resumes += 1;
                        tracing::info!(url = %state.url, received = state.received, "download interrupted ({e}); resuming");
                        let request =
                            Request::new(Method::GET, state.url.clone(), state.scopes.clone())
                                .header("range", &format!("bytes={}-", state.received));
                        let response = state.host.send(request).await.map_err(|kind| {
                            StoreError::new(Op::Fetch, state.target.clone(), kind)
                        })?;
                        state.skip = match response.status() {
                            StatusCode::PARTIAL_CONTENT => 0,
                            StatusCode::OK => state.received,
                            _ => {
                                let kind = client::status_error(response).await;
                                return Err(StoreError::new(Op::Fetch, state.target.clone(), kind));
                            }
                        };
                        state.body = response.bytes_stream();
                    }
                    Some(Err(kind)) => {
                        state.done = true;
                        return Err(StoreError::new(Op::Fetch, state.target.clone(), kind));
                    }
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_next_links() {
        let mut headers = HeaderMap::new();
        headers.insert(
            LINK,
            "</v2/a/tags/list?n=2&last=b>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        headers.insert(
            LINK,
            "<https://x/y>; rel=\"prev\", <https://x/z>; rel=next"
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&headers).as_deref(), Some("https://x/z"));
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn loopback_hosts_may_use_http() {
        for host in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["example.com", "10.0.0.1:5000", "localhost.example.com"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
