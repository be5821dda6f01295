//! Indexes that group children living in nested repositories of the index's own (image-spec
//! issue 1217): `team/app` holds the index, `team/app/cli` and `team/app/docs` its children. See
//! [`wharf_oci::nested`] for the encoding. [`create`] builds and pushes one through a copy job, so a
//! registry that wants every child beside its index gets copies there, as in any copy.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Deserialize;
use wharf_copy::{CopyError, CopyReport, Job};
use wharf_oci::nested::{ARTIFACT_TYPE, REPOSITORY_ANNOTATION, TAG_ANNOTATION, check_path};
use wharf_oci::{Descriptor, Digest, ImageIndex, Manifest, ManifestBody, Platform, media_type};
use wharf_store::{Address, ManifestRole, ReadStore, Session, StoreError, verified};

use crate::staged::Staged;

/// Why an index could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Copying failed.
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// A child that cannot be used.
    #[error("child {child:?}: {message}")]
    Child {
        /// The child as given.
        child: String,
        /// What is wrong.
        message: String,
    },
}

/// What the index says besides its children.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// Its artifact type.
    pub artifact_type: String,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            artifact_type: ARTIFACT_TYPE.to_owned(),
            annotations: BTreeMap::new(),
        }
    }
}

/// What [`create`] made.
#[derive(Debug, Clone)]
pub struct Created {
    /// The index.
    pub descriptor: Descriptor,
    /// Where it is: its repository and tag.
    pub address: Address,
    /// Its children as it lists them.
    pub children: Vec<Descriptor>,
    /// What pushing it moved (copies of children beside it, for registries that want them).
    pub report: CopyReport,
}

/// A child as given: in a nested repository (by path, relative to the index's), or in the index's
/// own repository.
struct ChildSpec {
    path: Option<String>,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Builds an index of `children` and pushes it to `target` (tag `latest` unless it names one). A
/// child is `PATH:TAG` or `PATH@DIGEST` in a repository below the target's, the same with the
/// target's repository in front (`host/team/app/cli:1.0`), or a digest in the target's repository.
pub async fn create(
    target: &Address,
    children: &[String],
    options: &IndexOptions,
    session: &Session,
    job: &Job,
) -> Result<Created, IndexError> {
    if target.digest().is_some() {
        return Err(IndexError::Child {
            child: target.to_string(),
            message: "an index is pushed to a tag, not a digest".into(),
        });
    }
    let repository = target.with(None, None);
    let here = session.read(&repository).await?;
    let mut entries = Vec::new();
    for text in children {
        let spec = parse_child(text, &repository)?;
        entries.push(describe(here.as_ref(), text, &spec).await?);
    }
    let mut index = ImageIndex::new();
    index.artifact_type = Some(options.artifact_type.clone());
    index.annotations = options.annotations.clone();
    index.manifests = entries.clone();
    let manifest = Manifest::from_index(&index);
    let mut staged = Staged::over(here);
    let descriptor = staged.add_bytes(media_type::OCI_INDEX, manifest.raw().clone());
    let tag = target.tag().unwrap_or("latest");
    let store = session.write(&repository).await?;
    let report = job
        .copy(&staged, store.as_ref(), &descriptor, ManifestRole::Tag(tag))
        .await?;
    Ok(Created {
        descriptor,
        address: repository.with(Some(tag), None),
        children: entries,
        report,
    })
}

/// Reads a child argument.
fn parse_child(text: &str, repository: &Address) -> Result<ChildSpec, IndexError> {
    let fail = |message: String| IndexError::Child {
        child: text.to_owned(),
        message,
    };
    let (named, digest) = match text.rsplit_once('@') {
        Some((named, digest)) => (
            named,
            Some(Digest::parse(digest).map_err(|e| fail(e.to_string()))?),
        ),
        None => match Digest::parse(text) {
            Ok(digest) => ("", Some(digest)),
            Err(_) => (text, None),
        },
    };
    // The target's repository in front: what follows is the nested path.
    let prefix = repository.to_string() + "/";
    let relative = named.strip_prefix(prefix.as_str()).unwrap_or(named);
    if relative.is_empty() {
        return Ok(ChildSpec {
            path: None,
            tag: None,
            digest,
        });
    }
    let (path, tag) = match relative.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => (path, Some(tag.to_owned())),
        _ => (relative, None),
    };
    if tag.is_none() && digest.is_none() {
        return Err(fail(
            "name a tag or a digest (PATH:TAG or PATH@DIGEST)".into(),
        ));
    }
    if let Some(tag) = &tag {
        wharf_oci::validate_tag(tag).map_err(|e| fail(e.to_string()))?;
    }
    check_path(path).map_err(|why| {
        fail(format!(
            "{path:?} is not a repository below {repository}: {why}"
        ))
    })?;
    Ok(ChildSpec {
        path: Some(path.to_owned()),
        tag,
        digest,
    })
}

/// The index entry of a child: its descriptor, its nested repository and tag, and the platform of
/// an image.
async fn describe(
    here: &dyn ReadStore,
    text: &str,
    spec: &ChildSpec,
) -> Result<Descriptor, IndexError> {
    let fail = |message: String| IndexError::Child {
        child: text.to_owned(),
        message,
    };
    let nested = match &spec.path {
        Some(path) => here.nested(path)?,
        None => None,
    };
    let store: &dyn ReadStore = nested.as_deref().unwrap_or(here);
    let reference = match (&spec.digest, &spec.tag) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.clone(),
        (None, None) => return Err(fail("name a tag or a digest".into())),
    };
    let found = store.resolve(&reference).await.map_err(|e| {
        fail(format!(
            "not found in {}: {}",
            store.location(),
            wharf_store::chain(&e)
        ))
    })?;
    if let (Some(digest), Some(tag)) = (&spec.digest, &spec.tag) {
        let tagged = store.resolve(tag).await?;
        if tagged.digest != *digest {
            return Err(fail(format!(
                "tag {tag} names {}, not {digest}",
                tagged.digest
            )));
        }
    }
    let mut entry = Descriptor::new(&found.media_type, found.digest.clone(), found.size);
    entry.platform = platform_of(store, &found).await?;
    if let Some(path) = &spec.path {
        entry
            .annotations
            .insert(REPOSITORY_ANNOTATION.into(), path.clone());
        if let Some(tag) = &spec.tag {
            entry.annotations.insert(TAG_ANNOTATION.into(), tag.clone());
        }
    }
    Ok(entry)
}

/// The platform an image's config names, if it names one.
async fn platform_of(
    store: &dyn ReadStore,
    descriptor: &Descriptor,
) -> Result<Option<Platform>, IndexError> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(default)]
        os: String,
        #[serde(default)]
        architecture: String,
        #[serde(default)]
        variant: Option<String>,
    }
    let manifest = store.fetch_manifest(descriptor).await?;
    let ManifestBody::Image(image) = manifest.body() else {
        return Ok(None);
    };
    let is_image_config = matches!(
        media_type::essence(&image.config.media_type),
        media_type::OCI_CONFIG | media_type::DOCKER_CONFIG
    );
    if !is_image_config || image.config.size > 1024 * 1024 {
        return Ok(None);
    }
    let target = format!("{} config {}", store.location(), image.config.digest);
    let stream = verified(
        &image.config,
        wharf_store::Op::Fetch,
        target,
        store.fetch(&image.config).await?,
    );
    let chunks: Vec<Bytes> = futures_util::TryStreamExt::try_collect(stream).await?;
    let Ok(config) = serde_json::from_slice::<Config>(&chunks.concat()) else {
        return Ok(None);
    };
    if config.os.is_empty() || config.architecture.is_empty() {
        return Ok(None);
    }
    Ok(Some(Platform::new(
        &config.os,
        &config.architecture,
        config.variant.as_deref(),
    )))
}
