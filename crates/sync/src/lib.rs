//! Many images and component versions in one run.
//!
//! A [`SyncSpec`] (a sync file, or sources and a destination prefix from the command line) expands
//! into roots: every tag of a repository, or the tags, digests and platforms listed. [`run`] copies
//! them concurrently through one [`Job`], so blobs shared between images move once per destination
//! registry and discovery of some roots overlaps the transfer of others. A failed root never stops
//! the others; each root's result is reported, and the failed ones can be rerun from the report.
//!
//! Destinations keep each source's repository path below the prefix (after `--repo-map` rewrites):
//! `registry.example.com/team/app:1.0` synced `--to mirror.local/copy` lands at
//! `mirror.local/copy/team/app:1.0`. In an OCI layout the image is named `team/app:1.0`, in a CTF
//! it is repository `team/app`, tag `1.0`, so the same path comes back when the archive is synced on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use wharf_bundle::ocm::{self, ComponentAddress, RepositorySpec, ResourceMode, TransferOptions};
use wharf_copy::Job;
use wharf_oci::{Digest, Platform, Reference};
use wharf_store::registry::Registries;
use wharf_store::{Address, chain};

/// A sync file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSpec {
    /// Images to copy.
    #[serde(default)]
    pub images: Vec<ImageSpec>,
    /// OCM component versions to transfer.
    #[serde(default)]
    pub components: Vec<ComponentSpec>,
}

/// One `images:` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// A repository (all tags), or one image by tag or digest.
    pub source: String,
    /// Only these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Only these digests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub digests: Vec<String>,
    /// Only these platforms of multi-platform images (`os/arch[/variant]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// Where to, instead of the prefix mapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// One `components:` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ComponentSpec {
    /// `LOCATION//NAME:VERSION`.
    pub source: String,
    /// Where to, instead of the prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// Copy the component's images along (default true).
    #[serde(default = "yes")]
    pub copy_resources: bool,
    /// Transfer referenced components too (default true).
    #[serde(default = "yes")]
    pub recursive: bool,
}

fn yes() -> bool {
    true
}

/// Why a sync could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// A sync file or report that cannot be read.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An entry that cannot be used.
    #[error("{0}")]
    Entry(String),
}

impl SyncSpec {
    /// Reads a sync file (YAML or JSON).
    pub fn read(path: &std::path::Path) -> Result<SyncSpec, SyncError> {
        let fail = |message: String| SyncError::File {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        wharf_bundle::yaml::from_str(&text).map_err(fail)
    }

    /// The entries of a previous run's report that failed, as a sync file.
    pub fn failed_in(path: &std::path::Path) -> Result<SyncSpec, SyncError> {
        let fail = |message: String| SyncError::File {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let report: SyncReport = serde_json::from_str(&text)
            .map_err(|e| fail(format!("not a wharf sync report (--output json): {e}")))?;
        Ok(report.retry)
    }
}

/// How the destination of each root is chosen, and how the run goes.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Destination prefix: a registry `HOST[/PATH]`, `oci:DIR`, `oci-archive:FILE` or `ctf:PATH`.
    pub to: Option<String>,
    /// `FROM=TO` rewrites of source repository paths (first match wins).
    pub repo_map: Vec<(String, String)>,
    /// Roots in flight at once.
    pub roots_at_once: usize,
}

/// One image to copy.
#[derive(Debug, Clone)]
pub struct Root {
    /// Where from.
    pub source: Address,
    /// Where to.
    pub destination: Address,
    /// Only these platforms.
    pub platforms: Vec<Platform>,
    /// The entry it came from (to retry exactly it).
    pub spec: ImageSpec,
}

/// What happened to one root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    /// Content was copied.
    Copied,
    /// The destination had everything.
    Skipped,
    /// Dry run: this would be copied.
    Planned,
    /// It failed; see `error`.
    Failed,
}

/// The result of one root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RootResult {
    /// The source.
    pub source: String,
    /// The destination.
    pub destination: String,
    /// The root's digest, when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub digest: Option<Digest>,
    /// What happened.
    pub status: Status,
    /// Bytes moved (or to move, in a dry run).
    pub bytes: u64,
    /// Blobs copied (or to copy).
    pub blobs: usize,
    /// Of those, mounted rather than streamed.
    pub mounted: usize,
    /// The error, for failed roots.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

impl RootResult {
    /// A root that has failed (until it turns out otherwise), with `error` if known.
    fn failed(source: String, destination: String, error: Option<String>) -> RootResult {
        RootResult {
            source,
            destination,
            digest: None,
            status: Status::Failed,
            bytes: 0,
            blobs: 0,
            mounted: 0,
            error,
        }
    }
}

/// An entry's own destination, else the run's prefix.
fn destination_or_prefix(destination: &Option<String>, options: &SyncOptions) -> String {
    destination
        .clone()
        .or_else(|| options.to.clone())
        .unwrap_or_default()
}

/// The result of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// One entry per image root and per component version.
    pub roots: Vec<RootResult>,
    /// A sync file with exactly the failed entries, for `--retry-failed`.
    pub retry: SyncSpec,
}

impl SyncReport {
    /// Number of failed roots.
    pub fn failures(&self) -> usize {
        self.roots
            .iter()
            .filter(|r| r.status == Status::Failed)
            .count()
    }
}

/// Called as each root finishes (progress displays).
pub trait RootObserver: Send + Sync {
    /// A root is done.
    fn finished(&self, _result: &RootResult) {}
    /// The number of roots is known.
    fn planned(&self, _roots: usize) {}
}

/// What a [`SyncSpec`] expands into.
#[derive(Debug, Default)]
pub struct Expanded {
    /// Images to copy.
    pub roots: Vec<Root>,
    /// Component versions to transfer: the spec's, and those found in whole CTFs.
    pub components: Vec<ComponentSpec>,
    /// Entries that could not be expanded, as failed results.
    pub failures: Vec<RootResult>,
    /// Those entries, for `--retry-failed`.
    pub retry: SyncSpec,
}

/// Expands `spec` into roots, listing tags where a repository is given without one. A whole CTF
/// (`ctf:PATH`) brings every artifact it lists: its component versions are transferred as
/// components, so that their references are rewritten for where they land, the rest copied as
/// images. Entries that cannot be expanded (a repository that does not exist) come back as failed
/// results.
pub async fn expand(spec: &SyncSpec, options: &SyncOptions, sources: &Registries) -> Expanded {
    let mut expanded = Expanded {
        components: spec.components.clone(),
        ..Expanded::default()
    };
    for entry in &spec.images {
        match expand_image(entry, options, sources).await {
            Ok((mut roots, mut components)) => {
                expanded.roots.append(&mut roots);
                expanded.components.append(&mut components);
            }
            Err(message) => {
                tracing::warn!("{} failed: {message}", entry.source);
                expanded.failures.push(RootResult::failed(
                    entry.source.clone(),
                    destination_or_prefix(&entry.destination, options),
                    Some(message),
                ));
                expanded.retry.images.push(entry.clone());
            }
        }
    }
    expanded
}

async fn expand_image(
    entry: &ImageSpec,
    options: &SyncOptions,
    sources: &Registries,
) -> Result<(Vec<Root>, Vec<ComponentSpec>), String> {
    let platforms = entry
        .platforms
        .iter()
        .map(|p| Platform::parse(p))
        .collect::<Result<Vec<_>, String>>()?;
    if let Some(path) = Address::whole_ctf(&entry.source) {
        let (images, components) = ctf_artifacts(&path, entry, sources).await?;
        if images.is_empty() && components.is_empty() {
            return Err(format!("{} lists no artifacts", entry.source));
        }
        return Ok((roots_for(images, entry, options, &platforms)?, components));
    }
    let source = Address::parse(&entry.source).map_err(|e| e.to_string())?;
    let mut selected: Vec<Address> = Vec::new();
    for tag in &entry.tags {
        selected.push(with(&source, Some(tag), None));
    }
    for digest in &entry.digests {
        let digest = Digest::parse(digest).map_err(|e| e.to_string())?;
        selected.push(with(&source, None, Some(digest)));
    }
    if selected.is_empty() {
        if source.tag().is_some() || source.digest().is_some() {
            selected.push(source.clone());
        } else {
            let store = source.open_read(sources).await.map_err(|e| chain(&e))?;
            let tags = store.tags().await.map_err(|e| chain(&e))?;
            if tags.is_empty() {
                return Err(format!("{source} has no tags"));
            }
            // `sha256-<hex>` tags are referrers indexes (the tag schema): they travel with their
            // subjects, not as images of their own.
            for tag in tags.iter().filter(|t| !is_referrers_tag(t)) {
                selected.push(with(&source, Some(tag), None));
            }
        }
    }
    Ok((roots_for(selected, entry, options, &platforms)?, Vec::new()))
}

/// Every artifact a whole CTF lists: component versions (tagged in `component-descriptors/NAME`),
/// and images by repository and tag (or digest when untagged).
async fn ctf_artifacts(
    path: &Path,
    entry: &ImageSpec,
    sources: &Registries,
) -> Result<(Vec<Address>, Vec<ComponentSpec>), String> {
    let ctf = sources.ctf(path, false).await.map_err(|e| chain(&e))?;
    let mut images = Vec::new();
    let mut components = Vec::new();
    for artifact in ctf.artifacts().await {
        if artifact.tag.as_deref().is_some_and(is_referrers_tag) {
            continue;
        }
        let component = artifact
            .repository
            .strip_prefix(COMPONENT_REPOSITORIES)
            .zip(artifact.tag.as_deref());
        if let Some((name, tag)) = component {
            components.push(ComponentSpec {
                source: format!(
                    "ctf:{}//{name}:{}",
                    path.display(),
                    ocm::tag_to_version(tag)
                ),
                destination: entry.destination.clone(),
                copy_resources: true,
                recursive: false,
            });
            continue;
        }
        images.push(Address::Ctf {
            path: path.to_owned(),
            repository: artifact.repository,
            digest: artifact.tag.is_none().then_some(artifact.digest),
            tag: artifact.tag,
        });
    }
    Ok((images, components))
}

/// Where OCM keeps component versions in a repository.
const COMPONENT_REPOSITORIES: &str = "component-descriptors/";

fn roots_for(
    selected: Vec<Address>,
    entry: &ImageSpec,
    options: &SyncOptions,
    platforms: &[Platform],
) -> Result<Vec<Root>, String> {
    selected
        .into_iter()
        .map(|source| {
            let destination = destination_for(&source, entry.destination.as_deref(), options)?;
            Ok(Root {
                source,
                destination,
                platforms: platforms.to_vec(),
                spec: entry.clone(),
            })
        })
        .collect()
}

/// True for tags of the referrers tag schema: `<algorithm>-<hex digest>`.
fn is_referrers_tag(tag: &str) -> bool {
    tag.split_once('-')
        .is_some_and(|(algorithm, hex)| Digest::parse(&format!("{algorithm}:{hex}")).is_ok())
}

/// `address` with another tag or digest.
fn with(address: &Address, tag: Option<&str>, digest: Option<Digest>) -> Address {
    let mut address = address.clone();
    match &mut address {
        Address::Registry {
            tag: t, digest: d, ..
        }
        | Address::Layout {
            tag: t, digest: d, ..
        }
        | Address::Ctf {
            tag: t, digest: d, ..
        } => {
            *t = tag.map(str::to_owned);
            *d = digest;
        }
    }
    address
}

/// The repository path and tag a source stands for (a layout's `path:tag` names split).
fn source_path(source: &Address) -> (String, Option<String>) {
    match source {
        Address::Registry {
            repository, tag, ..
        } => (repository.path().to_owned(), tag.clone()),
        Address::Ctf {
            repository, tag, ..
        } => (repository.clone(), tag.clone()),
        Address::Layout { path, tag, .. } => {
            match tag.as_deref().and_then(|t| t.rsplit_once(':')) {
                Some((repository, tag)) => (repository.to_owned(), Some(tag.to_owned())),
                None => {
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().to_lowercase())
                        .unwrap_or_default();
                    (name, tag.clone())
                }
            }
        }
    }
}

/// Where a source goes: its own destination, or the prefix plus its (rewritten) repository path.
pub fn destination_for(
    source: &Address,
    explicit: Option<&str>,
    options: &SyncOptions,
) -> Result<Address, String> {
    let (path, tag) = source_path(source);
    if let Some(explicit) = explicit {
        let destination = Address::parse(explicit).map_err(|e| e.to_string())?;
        if destination.tag().is_some() || destination.digest().is_some() {
            return Ok(destination);
        }
        return Ok(with(&destination, tag.as_deref(), None));
    }
    let prefix = options.to.as_deref().ok_or_else(|| {
        format!("{source} has no destination: give one in the sync file or --to PREFIX")
    })?;
    let path = options
        .repo_map
        .iter()
        .find_map(|(from, to)| {
            let rest = path.strip_prefix(from.as_str())?;
            (rest.is_empty() || rest.starts_with('/'))
                .then(|| format!("{to}{rest}").trim_start_matches('/').to_owned())
        })
        .unwrap_or(path);
    let named = |tag: &Option<String>| tag.as_ref().map(|t| format!("{path}:{t}"));
    let layout = |path: &str, archive| Address::Layout {
        path: PathBuf::from(path),
        archive,
        tag: named(&tag),
        digest: None,
    };
    Ok(if let Some(dir) = prefix.strip_prefix("oci:") {
        layout(dir, false)
    } else if let Some(file) = prefix.strip_prefix("oci-archive:") {
        layout(file, true)
    } else if let Some(file) = prefix.strip_prefix("ctf:") {
        Address::Ctf {
            path: PathBuf::from(file),
            repository: path,
            tag,
            digest: None,
        }
    } else {
        let base = prefix.trim_end_matches('/');
        let repository = Reference::parse(&format!("{base}/{path}")).map_err(|e| e.to_string())?;
        Address::Registry {
            repository,
            tag,
            digest: None,
        }
    })
}

/// Copies every root (at most `options.roots_at_once` at a time, through `job`), then every
/// component version, and reports each.
pub async fn run(
    roots: Vec<Root>,
    components: &[ComponentSpec],
    options: &SyncOptions,
    job: Arc<Job>,
    sources: &Registries,
    destinations: &Registries,
    observer: &dyn RootObserver,
) -> SyncReport {
    observer.planned(roots.len() + components.len());
    let mut report = SyncReport::default();
    let results: Vec<(RootResult, Option<ImageSpec>)> = stream::iter(roots)
        .map(|root| {
            let job = job.clone();
            async move {
                let result = copy_root(&job, &root, sources, destinations).await;
                observer.finished(&result);
                let retry = (result.status == Status::Failed).then_some(root.spec);
                (result, retry)
            }
        })
        .buffer_unordered(options.roots_at_once.max(1))
        .collect()
        .await;
    for (result, retry) in results {
        if let Some(spec) = retry
            && !report.retry.images.contains(&spec)
        {
            report.retry.images.push(spec);
        }
        report.roots.push(result);
    }
    for component in components {
        let result = transfer_component(component, options, &job, sources, destinations).await;
        observer.finished(&result);
        if result.status == Status::Failed {
            report.retry.components.push(component.clone());
        }
        report.roots.push(result);
    }
    report.roots.sort_by(|a, b| a.source.cmp(&b.source));
    report
}

async fn copy_root(
    job: &Job,
    root: &Root,
    sources: &Registries,
    destinations: &Registries,
) -> RootResult {
    let mut result =
        RootResult::failed(root.source.to_string(), root.destination.to_string(), None);
    match job
        .copy_image(
            &root.source,
            &root.destination,
            sources,
            destinations,
            &root.platforms,
        )
        .await
    {
        Ok(report) => {
            result.digest = Some(report.root.digest.clone());
            result.bytes = report.bytes_copied;
            result.blobs = report.blobs_copied;
            result.mounted = report.blobs_mounted;
            let moved = report.blobs_copied + report.manifests_copied > 0;
            result.status = match (job.options().dry_run, moved) {
                (true, true) => Status::Planned,
                (_, true) => Status::Copied,
                (_, false) => Status::Skipped,
            };
        }
        Err(e) => {
            tracing::warn!("{} failed: {}", root.source, chain(&e));
            result.error = Some(chain(&e));
        }
    }
    result
}

async fn transfer_component(
    component: &ComponentSpec,
    options: &SyncOptions,
    job: &Job,
    sources: &Registries,
    destinations: &Registries,
) -> RootResult {
    let destination = destination_or_prefix(&component.destination, options);
    let mut result = RootResult::failed(component.source.clone(), destination.clone(), None);
    let outcome = async {
        let address = ComponentAddress::parse(&component.source)?;
        let version = address.version.clone().ok_or_else(|| {
            ocm::OcmError::Location(format!("{}: name the version", component.source))
        })?;
        let src = address.repository.open_read(sources).await?;
        let dst = RepositorySpec::parse(&destination)?
            .open_write(destinations)
            .await?;
        let options = TransferOptions {
            recursive: component.recursive,
            copy_resources: component.copy_resources,
            mode: ResourceMode::Relative,
            overwrite: false,
            rebase: true,
            copy: job.options().clone(),
        };
        ocm::transfer(&src, &dst, &address.name, &version, sources, &options).await
    }
    .await;
    match outcome {
        Ok(done) => {
            result.digest = done.first().map(|t| t.digest.clone());
            result.status = if done.iter().any(|t| t.copied) {
                Status::Copied
            } else {
                Status::Skipped
            };
        }
        Err(e) => result.error = Some(chain(&e)),
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(to: &str, maps: &[(&str, &str)]) -> SyncOptions {
        SyncOptions {
            to: Some(to.to_owned()),
            repo_map: maps
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            roots_at_once: 4,
        }
    }

    #[test]
    fn maps_sources_below_the_prefix() {
        let source = Address::parse("registry.example.com/team/app:1.0").unwrap();
        let mapped = |to, maps: &[(&str, &str)]| {
            destination_for(&source, None, &options(to, maps))
                .unwrap()
                .to_string()
        };
        assert_eq!(
            mapped("mirror.local/copy", &[]),
            "mirror.local/copy/team/app:1.0"
        );
        assert_eq!(
            mapped("mirror.local", &[("team", "platform/team")]),
            "mirror.local/platform/team/app:1.0"
        );
        assert_eq!(
            mapped("mirror.local", &[("tea", "x")]),
            "mirror.local/team/app:1.0",
            "maps whole components only"
        );
        assert_eq!(mapped("oci:./out", &[]), "oci:./out:team/app:1.0");
        assert_eq!(
            mapped("oci-archive:out.tar", &[]),
            "oci-archive:out.tar:team/app:1.0"
        );
        assert_eq!(mapped("ctf:./out.tgz", &[]), "ctf:./out.tgz//team/app:1.0");
        let layout = Address::Layout {
            path: "in".into(),
            archive: false,
            tag: Some("team/app:1.0".into()),
            digest: None,
        };
        assert_eq!(
            destination_for(&layout, None, &options("reg.local/m", &[]))
                .unwrap()
                .to_string(),
            "reg.local/m/team/app:1.0"
        );
        let explicit = destination_for(
            &source,
            Some("other.local/x"),
            &options("ignored.local", &[]),
        )
        .unwrap();
        assert_eq!(explicit.to_string(), "other.local/x:1.0");
    }

    #[test]
    fn recognises_referrers_tags() {
        assert!(is_referrers_tag(&format!("sha256-{}", "a".repeat(64))));
        assert!(!is_referrers_tag("sha256-abc"));
        assert!(!is_referrers_tag("v1.0-rc1"));
    }

    #[test]
    fn reads_sync_files_and_refuses_unknown_keys() {
        let spec: SyncSpec = wharf_bundle::yaml::from_str(
            "images:\n- source: r.local/a\n  tags: [\"1\", \"2\"]\n  platforms: [linux/amd64]\ncomponents:\n- source: ctf:x//acme.org/a:1.0.0\n",
        )
        .unwrap();
        assert_eq!(spec.images[0].tags, ["1", "2"]);
        assert!(spec.components[0].copy_resources && spec.components[0].recursive);
        let err =
            wharf_bundle::yaml::from_str::<SyncSpec>("images:\n- source: x\n  colour: blue\n")
                .unwrap_err();
        assert!(err.contains("colour"), "{err}");
    }
}
