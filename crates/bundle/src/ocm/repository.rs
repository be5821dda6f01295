//! Where component versions live, and how one is laid out there.
//!
//! An OCM repository is a registry base (`host[:port][/path]`) or a CTF. A component version is the
//! manifest tagged `<version>` (`+` written `.build-`) in `<base>/component-descriptors/<name>`: its
//! config (`application/vnd.ocm.software.component.config.v1+json`) names the descriptor layer, a tar
//! holding `component-descriptor.yaml`; further layers are local blobs. When OCI artifacts are stored
//! inside the component version, the tag points to an index whose first manifest (annotated
//! `software.ocm.descriptor: "true"`) is the descriptor manifest and whose other entries are the
//! artifacts, as OCM's newer layout does.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use wharf_oci::{
    Descriptor, Digest, ImageIndex, ImageManifest, Manifest, ManifestBody, media_type,
};
use wharf_store::{
    Address, Location, ManifestRole, Mode, Namespace, Op, ReadStore, Session, Store, StoreError,
    verified,
};

use super::descriptor::{ComponentDescriptor, tag_to_version, version_to_tag};
use super::{OcmError, StoredError};
use crate::catalog::{self, Catalog, Entry};

/// Where OCM keeps component versions: `<base>/component-descriptors/<name>`.
pub const COMPONENT_REPOSITORIES: &str = "component-descriptors/";
/// Config media type of a component version manifest.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.ocm.software.component.config.v1+json";
/// The descriptor as a tar holding `component-descriptor.yaml` (what OCM writes and every version reads).
pub const DESCRIPTOR_YAML_TAR: &str =
    "application/vnd.ocm.software.component-descriptor.v2+yaml+tar";
const DESCRIPTOR_JSON: &str = "application/vnd.ocm.software.component-descriptor.v2+json";
const DESCRIPTOR_YAML: &str = "application/vnd.ocm.software.component-descriptor.v2+yaml";
const LEGACY_YAML_TAR: [&str; 2] = [
    "application/vnd.gardener.cloud.cnudie.component-descriptor.v2+yaml+tar",
    "application/vnd.oci.gardener.cloud.cnudie.component-descriptor.config.v2+yaml+tar",
];
const LEGACY_JSON: &str = "application/vnd.gardener.cloud.cnudie.component-descriptor.v2+json";
const LEGACY_CONFIG: [&str; 2] = [
    "application/vnd.gardener.cloud.cnudie.component.config.v1+json",
    "application/vnd.oci.gardener.cloud.cnudie.component-descriptor-metadata.config.v2+json",
];
/// OCM's per-component index anchor, byte for byte (837 bytes, `sha256:9717cda4…`). Component
/// versions written with OCM's referrer tracking name it as their `subject` in their component's
/// repository, so the referrers of this one manifest are the component's versions. Its missing
/// spaces are part of the bytes.
pub const COMPONENT_INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.ocm.software.component-index.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="},"layers":[{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="}],"annotations":{"org.opencontainers.image.description":"This is an OCM component index. It is an empty jsonthat can be used as referrer for OCM component descriptors. It is used as a subjectfor all OCM Component Version Top-Level Manifests and can be used to reference back allOCM Component Versions","org.opencontainers.image.title":"OCM Component Index V1"}}"#;
/// The artifact type of a component version manifest that refers to the component index.
pub const DESCRIPTOR_ARTIFACT_TYPE: &str = "application/vnd.ocm.software.component-descriptor.v2";

/// The descriptor of OCM's component index anchor.
pub fn component_index() -> Descriptor {
    Descriptor::for_bytes(media_type::OCI_MANIFEST, COMPONENT_INDEX.as_bytes())
}

/// Marks the descriptor manifest in the index form.
const DESCRIPTOR_ANNOTATION: &str = "software.ocm.descriptor";
const VERSION_ANNOTATION: &str = "software.ocm.componentversion";
/// Descriptors larger than this are refused.
const DESCRIPTOR_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Modification time of the descriptor tar entry, fixed so equal descriptors give equal digests.
const DESCRIPTOR_MTIME: u64 = 1_640_995_200;

/// A registry base or a CTF holding component versions.
#[derive(Clone)]
pub struct OcmRepository {
    /// Where, as written: `host[/base]` or `ctf:PATH`.
    location: Location,
    /// The namespace of the whole registry host (or the CTF): artifacts referenced relative to a
    /// component version resolve against the host, not the base.
    root: Arc<dyn Namespace>,
    /// Path prefix of every repository (may be empty).
    base: String,
    /// The catalog every component version written here is recorded in, if any.
    catalog: Option<Arc<Catalog>>,
}

/// A component version as read from a repository.
pub struct ComponentVersion {
    /// The descriptor.
    pub descriptor: ComponentDescriptor,
    /// What the version tag points at (the descriptor manifest, or the index).
    pub root: Descriptor,
    /// Content stored in the component version (local blobs and artifacts), by digest.
    pub local: BTreeMap<String, Descriptor>,
    /// The manifest its root (or its descriptor manifest) refers to, such as OCM's component index.
    pub subject: Option<Descriptor>,
}

impl OcmRepository {
    /// The OCM repository at `location` (a registry base or a CTF), opened through `session` to read
    /// or to write. A registry opened to write records every component version written in its
    /// catalog, `wharf-catalog` below the base (see [`OcmRepository::with_catalog`]); a CTF lists
    /// what it holds in its own index.
    pub async fn open(
        session: &Session,
        location: &Location,
        mode: Mode,
    ) -> Result<OcmRepository, OcmError> {
        let (root, base) = match location {
            Location::Registry { host, base } => (Location::registry(host), base.clone()),
            Location::Ctf(_) => (location.clone(), String::new()),
            Location::Layout { .. } => {
                return Err(OcmError::Location(format!(
                    "{location}: component versions live in a registry or a CTF, not an OCI layout"
                )));
            }
        };
        let root = session.namespace(&root, mode).await?;
        // A CTF lists everything it holds in its own index already.
        let catalog = (mode == Mode::Write && location.host().is_some()).then(|| {
            Arc::new(Catalog::new(
                root.clone(),
                &base,
                catalog::DEFAULT_REPOSITORY,
            ))
        });
        Ok(OcmRepository {
            location: location.clone(),
            root,
            base,
            catalog,
        })
    }

    /// The repository recording what it writes in the catalog repository `name` below the base,
    /// or in none. A CTF records in none.
    pub fn with_catalog(mut self, name: Option<&str>) -> OcmRepository {
        self.catalog = name
            .filter(|_| self.location.host().is_some())
            .map(|name| Arc::new(Catalog::new(self.root.clone(), &self.base, name)));
        self
    }

    /// The catalog repository `name` below the base, to read.
    pub fn catalog(&self, name: &str) -> Catalog {
        Catalog::new(self.root.clone(), &self.base, name)
    }

    /// Records component version `descriptor`, stored as `root`, in the catalog, if there is one.
    pub async fn record(
        &self,
        descriptor: &ComponentDescriptor,
        root: &Descriptor,
    ) -> Result<(), OcmError> {
        let Some(catalog) = &self.catalog else {
            return Ok(());
        };
        let entry = Entry::component_version(
            &format!("{COMPONENT_REPOSITORIES}{}", descriptor.name()),
            &root.digest,
            &version_to_tag(descriptor.version()),
            descriptor.name(),
            descriptor.version(),
            &descriptor.provider(),
        );
        catalog.record(&[entry]).await?;
        Ok(())
    }

    /// `host/base` or `ctf:PATH`, as users write it.
    pub fn location(&self) -> String {
        self.location.to_string()
    }

    /// The address of `path` (from the registry root, base included) at `tag` and `digest`.
    pub fn address(&self, path: &str, tag: Option<&str>, digest: Option<&Digest>) -> Address {
        let root = match &self.location {
            Location::Registry { host, .. } => Location::registry(host),
            other => other.clone(),
        };
        Address {
            location: root,
            repository: path.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.cloned(),
        }
    }

    /// The repository path of `repository` under the base.
    pub fn path(&self, repository: &str) -> String {
        if self.base.is_empty() {
            repository.to_owned()
        } else {
            format!("{}/{repository}", self.base)
        }
    }

    /// `repository` made relative to the base again, if it lies under it.
    pub fn strip_base<'a>(&self, repository: &'a str) -> &'a str {
        if self.base.is_empty() {
            return repository;
        }
        repository
            .strip_prefix(self.base.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(repository)
    }

    /// The namespace of the whole registry host, or the CTF.
    pub(super) fn root_namespace(&self) -> &Arc<dyn Namespace> {
        &self.root
    }

    /// The registry host, for registries.
    pub fn host(&self) -> Option<&str> {
        self.location.host()
    }

    /// A store for reading the repository at `full_path` (a path from the registry root, base included).
    pub fn read_store(&self, full_path: &str) -> Result<Arc<dyn ReadStore>, OcmError> {
        Ok(self.root.read(full_path)?)
    }

    /// A store for writing the repository at `full_path`.
    pub fn write_store(&self, full_path: &str) -> Result<Arc<dyn Store>, OcmError> {
        Ok(self.root.write(full_path)?)
    }

    /// The repository path of a component's versions.
    pub fn component_path(&self, name: &str) -> String {
        self.path(&format!("{COMPONENT_REPOSITORIES}{name}"))
    }

    /// The `repositoryContexts` entry recorded in descriptors stored here.
    pub fn context(&self) -> Value {
        match &self.location {
            Location::Registry { host, base } => json!({
                "type": "OCIRegistry",
                "baseUrl": host,
                "subPath": base,
                "componentNameMapping": "urlPath",
            }),
            Location::Ctf(path) | Location::Layout { path, .. } => json!({
                "type": "CommonTransportFormat/v1",
                "filePath": path.display().to_string(),
            }),
        }
    }

    /// The versions of component `name`, from its tags.
    pub async fn versions(&self, name: &str) -> Result<Vec<String>, OcmError> {
        let store = self.read_store(&self.component_path(name))?;
        let tags = match store.tags().await {
            Ok(tags) => tags,
            Err(e) if e.is_not_found() => {
                return Err(OcmError::UnknownComponent(name.to_owned(), self.location()));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(tags
            .iter()
            .map(|t| tag_to_version(t))
            .filter(|v| super::validate_version(v).is_ok())
            .collect())
    }

    /// Reads component version `name:version`.
    pub async fn read(&self, name: &str, version: &str) -> Result<ComponentVersion, OcmError> {
        let stored = |error| OcmError::Stored {
            component: format!("{name}:{version}"),
            location: self.location(),
            error: Box::new(error),
        };
        let store = self.read_store(&self.component_path(name))?;
        let root = store.resolve(&version_to_tag(version)).await.map_err(|e| {
            if e.is_not_found() {
                OcmError::UnknownVersion(format!("{name}:{version}"), self.location())
            } else {
                e.into()
            }
        })?;
        let root_manifest = store.fetch_manifest(&root).await?;
        let mut subject = root_manifest.subject().cloned();
        let mut local = BTreeMap::new();
        let (descriptor_manifest, manifest) = match root_manifest.body() {
            ManifestBody::Image(_) => (root.clone(), root_manifest),
            ManifestBody::Index(index) => {
                let marked: Vec<&Descriptor> = index
                    .manifests
                    .iter()
                    .filter(|d| {
                        d.annotations.get(DESCRIPTOR_ANNOTATION).map(String::as_str) == Some("true")
                    })
                    .collect();
                let chosen = match marked.as_slice() {
                    [one] => (*one).clone(),
                    [] => index
                        .manifests
                        .first()
                        .cloned()
                        .ok_or_else(|| stored(StoredError::EmptyIndex))?,
                    _ => return Err(stored(StoredError::SeveralDescriptors)),
                };
                for entry in index.manifests.iter().filter(|d| d.digest != chosen.digest) {
                    local.insert(entry.digest.to_string(), plain(entry));
                }
                let manifest = store.fetch_manifest(&chosen).await?;
                (chosen, manifest)
            }
        };
        let ManifestBody::Image(image) = manifest.body() else {
            return Err(stored(StoredError::DescriptorIsIndex));
        };
        subject = subject.or_else(|| image.subject.clone());
        if image.config.media_type != CONFIG_MEDIA_TYPE
            && !LEGACY_CONFIG.contains(&image.config.media_type.as_str())
        {
            return Err(stored(StoredError::ForeignConfig(
                image.config.media_type.clone(),
            )));
        }
        let config: Value =
            serde_json::from_slice(&read_small(store.as_ref(), &image.config, &stored).await?)
                .map_err(|e| stored(StoredError::ConfigNotJson(e)))?;
        let layer: Descriptor = serde_json::from_value(config["componentDescriptorLayer"].clone())
            .map_err(|e| stored(StoredError::NoDescriptorLayer(e)))?;
        let bytes = read_small(store.as_ref(), &layer, &stored).await?;
        let text = match layer.media_type.as_str() {
            DESCRIPTOR_YAML_TAR => untar_descriptor(&bytes).map_err(stored)?,
            t if LEGACY_YAML_TAR.contains(&t) => untar_descriptor(&bytes).map_err(stored)?,
            DESCRIPTOR_JSON | DESCRIPTOR_YAML | LEGACY_JSON => bytes.to_vec(),
            other => {
                return Err(stored(StoredError::UnknownDescriptorType(other.to_owned())));
            }
        };
        let descriptor = ComponentDescriptor::parse(&text)?;
        if descriptor.name() != name || descriptor.version() != version {
            return Err(stored(StoredError::DescribesOther(format!(
                "{}:{}",
                descriptor.name(),
                descriptor.version()
            ))));
        }
        for blob in image.layers.iter().filter(|l| l.digest != layer.digest) {
            local.insert(blob.digest.to_string(), plain(blob));
        }
        tracing::debug!(manifest = %descriptor_manifest.digest, "read component version {name}:{version}");
        Ok(ComponentVersion {
            descriptor,
            root,
            local,
            subject,
        })
    }

    /// Stores a component version whose local content (`blobs` as layers, `artifacts` as index
    /// members) is already in the component's repository, tags it with its version and records it
    /// in the catalog. With a `subject` (OCM's component index, already in the repository) its
    /// manifests refer to it, as OCM's referrer tracking writes them.
    pub async fn write(
        &self,
        descriptor: &ComponentDescriptor,
        blobs: &[Descriptor],
        artifacts: &[Descriptor],
        subject: Option<&Descriptor>,
    ) -> Result<Descriptor, OcmError> {
        let root = self.store(descriptor, blobs, artifacts, subject).await?;
        self.record(descriptor, &root).await?;
        Ok(root)
    }

    async fn store(
        &self,
        descriptor: &ComponentDescriptor,
        blobs: &[Descriptor],
        artifacts: &[Descriptor],
        subject: Option<&Descriptor>,
    ) -> Result<Descriptor, OcmError> {
        let store = self.write_store(&self.component_path(descriptor.name()))?;
        let layer = tar_descriptor(&descriptor.to_yaml());
        let layer_descriptor = Descriptor::for_bytes(DESCRIPTOR_YAML_TAR, &layer);
        push_bytes(store.as_ref(), &layer_descriptor, layer).await?;
        let config = serde_json::to_vec(&json!({"componentDescriptorLayer": layer_descriptor}))
            .expect("json");
        let config_descriptor = Descriptor::for_bytes(CONFIG_MEDIA_TYPE, &config);
        push_bytes(store.as_ref(), &config_descriptor, Bytes::from(config)).await?;
        let mut layers = vec![layer_descriptor];
        layers.extend(blobs.iter().cloned());
        let subject = subject.map(|s| Descriptor::new(&s.media_type, s.digest.clone(), s.size));
        let manifest = Manifest::from_image(&ImageManifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.to_owned()),
            artifact_type: subject
                .as_ref()
                .map(|_| DESCRIPTOR_ARTIFACT_TYPE.to_owned()),
            config: config_descriptor,
            layers,
            subject: subject.clone(),
            annotations: [(
                VERSION_ANNOTATION.to_owned(),
                format!("{}:{}", descriptor.name(), descriptor.version()),
            )]
            .into(),
        });
        let tag = version_to_tag(descriptor.version());
        let mut manifest_descriptor = manifest.descriptor();
        if artifacts.is_empty() {
            store
                .push_manifest(
                    &manifest_descriptor,
                    manifest.raw().clone(),
                    ManifestRole::Tag(&tag),
                )
                .await?;
            return Ok(manifest_descriptor);
        }
        store
            .push_manifest(
                &manifest_descriptor,
                manifest.raw().clone(),
                ManifestRole::Child,
            )
            .await?;
        manifest_descriptor
            .annotations
            .insert(DESCRIPTOR_ANNOTATION.to_owned(), "true".to_owned());
        let mut index = ImageIndex::new();
        index.subject = subject;
        index.manifests.push(manifest_descriptor);
        index.manifests.extend(artifacts.iter().map(plain));
        let index = Manifest::from_index(&index);
        let root = index.descriptor();
        store
            .push_manifest(&root, index.raw().clone(), ManifestRole::Tag(&tag))
            .await?;
        Ok(root)
    }
}

/// A descriptor without platform or annotations: as an index member or a layer list entry.
fn plain(descriptor: &Descriptor) -> Descriptor {
    let mut plain = Descriptor::new(
        &descriptor.media_type,
        descriptor.digest.clone(),
        descriptor.size,
    );
    plain.annotations = descriptor
        .annotations
        .iter()
        .filter(|(k, _)| k.as_str() != DESCRIPTOR_ANNOTATION)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    plain
}

/// Reads and verifies a small blob (config, descriptor).
async fn read_small(
    store: &dyn ReadStore,
    descriptor: &Descriptor,
    stored: &dyn Fn(StoredError) -> OcmError,
) -> Result<Bytes, OcmError> {
    if descriptor.size > DESCRIPTOR_MAX_BYTES {
        return Err(stored(StoredError::TooLarge(
            descriptor.digest.clone(),
            descriptor.size,
        )));
    }
    let target = format!("{} {}", store.location(), descriptor.digest);
    let mut body = verified(
        descriptor,
        Op::Fetch,
        target,
        store.fetch(descriptor).await?,
    );
    let mut out = BytesMut::with_capacity(descriptor.size as usize);
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out.freeze())
}

/// Pushes bytes unless the store has them.
pub(super) async fn push_bytes(
    store: &dyn Store,
    descriptor: &Descriptor,
    bytes: Bytes,
) -> Result<(), StoreError> {
    if store.exists(descriptor).await? {
        return Ok(());
    }
    store
        .push(descriptor, Box::pin(stream::once(async { Ok(bytes) })))
        .await
}

/// The descriptor YAML as a one-file tar, as OCM writes it.
fn tar_descriptor(yaml: &str) -> Bytes {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(yaml.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(DESCRIPTOR_MTIME);
    header.set_cksum();
    tar.append_data(&mut header, "component-descriptor.yaml", yaml.as_bytes())
        .expect("writing a tar to memory cannot fail");
    Bytes::from(tar.into_inner().expect("in-memory tar"))
}

/// `component-descriptor.yaml` out of the descriptor tar.
fn untar_descriptor(bytes: &[u8]) -> Result<Vec<u8>, StoredError> {
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().map_err(StoredError::Tar)? {
        let mut entry = entry.map_err(StoredError::Tar)?;
        let path = entry.path().map_err(StoredError::Tar)?.into_owned();
        if path.to_str() == Some("component-descriptor.yaml")
            && entry.header().entry_type().is_file()
        {
            let mut out = Vec::new();
            entry
                .by_ref()
                .take(DESCRIPTOR_MAX_BYTES)
                .read_to_end(&mut out)
                .map_err(StoredError::Tar)?;
            return Ok(out);
        }
    }
    Err(StoredError::NoDescriptorFile)
}
