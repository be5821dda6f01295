//! Many images, component versions and imgpkg bundles in one run.
//!
//! A [`SyncSpec`] (a sync file, or sources and a destination prefix from the command line) expands
//! into roots: every tag of a repository, every image and component version of a whole layout,
//! archive or CTF, or the tags, digests and platforms listed. [`run`] copies them concurrently through
//! one [`Job`], images and component versions interleaved, so blobs shared between any of them move
//! once per destination registry and discovery of some roots overlaps the transfer of others. A
//! failed root never stops the others; each root's result is reported, and the failed ones can be
//! rerun from the report.
//!
//! Destinations keep each source's repository path below the prefix (after `--repo-map` rewrites):
//! `registry.example.com/team/app:1.0` synced `--to mirror.local/copy` lands at
//! `mirror.local/copy/team/app:1.0`. In an OCI layout the image is named `team/app:1.0`, in a CTF
//! it is repository `team/app`, tag `1.0`, so the same path comes back when the archive is synced on.

mod shard;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use wharf_bundle::catalog;
use wharf_bundle::imgpkg::{self, BundleSource, ImgpkgError};
use wharf_bundle::ocm::{
    self, COMPONENT_REPOSITORIES, ComponentAddress, OcmError, OcmRepository, ResourceMode,
    TransferOptions,
};
use wharf_copy::{CopyReport, Job};
use wharf_oci::{Digest, DigestError, Platform};
use wharf_store::{Address, AddressError, Location, Mode, Session, StoreError, chain};

pub use shard::{JOB_INDEX_VARIABLE, Shard, ShardError};

/// Entries expanded at once (their tags listed).
const EXPANSIONS_AT_ONCE: usize = 8;

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
    /// imgpkg bundles to copy with every image they lock.
    #[serde(default)]
    pub bundles: Vec<BundleSpec>,
}

/// One `images:` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// A repository (all tags), a whole layout, archive or CTF, or one image by tag or digest.
    pub source: String,
    /// Only these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Only these digests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub digests: Vec<String>,
    /// Only these platforms of multi-platform images (`os/arch[/variant]`).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "platforms_as_text"
    )]
    pub platforms: Vec<Platform>,
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

/// One `bundles:` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSpec {
    /// The bundle: a location with a tag or digest, or a BundleLock file.
    pub source: String,
    /// The repository it goes to with everything it locks, instead of the prefix mapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

fn yes() -> bool {
    true
}

/// Platforms written as `os/arch[/variant]` in sync files and reports.
mod platforms_as_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use wharf_oci::Platform;

    pub fn serialize<S: Serializer>(platforms: &[Platform], out: S) -> Result<S::Ok, S::Error> {
        let texts: Vec<String> = platforms.iter().map(ToString::to_string).collect();
        texts.serialize(out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<Vec<Platform>, D::Error> {
        Vec::<String>::deserialize(input)?
            .iter()
            .map(|text| Platform::parse(text).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// Why a sync, or one of its entries, cannot be done.
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
    /// A source or destination that cannot be parsed.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// A digest in a sync file that cannot be parsed.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// Reading a source failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A component version entry that cannot be transferred.
    #[error(transparent)]
    Component(#[from] OcmError),
    /// A bundle entry that cannot be copied.
    #[error(transparent)]
    Bundle(#[from] ImgpkgError),
    /// Two reports to merge both report one root.
    #[error("{first} and {second} both report {root}: merge the shares of one run, each once")]
    Overlap {
        /// `SOURCE -> DESTINATION`.
        root: String,
        /// The reports.
        first: PathBuf,
        /// The reports.
        second: PathBuf,
    },
    /// Neither the entry nor the run says where to.
    #[error("{0} has no destination: give one in the sync file or --to PREFIX")]
    NoDestination(String),
    /// A repository without tags.
    #[error("{0} has no tags")]
    NoTags(String),
    /// A layout, archive or CTF without content.
    #[error("{0} holds nothing to sync")]
    Empty(String),
    /// A component entry without a version.
    #[error("{0}: name the version (LOCATION//NAME:VERSION)")]
    NoVersion(String),
}

impl SyncSpec {
    /// Reads a sync file (YAML or JSON).
    pub fn read(path: &Path) -> Result<SyncSpec, SyncError> {
        let fail = |message: String| SyncError::File {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        wharf_bundle::yaml::from_str(&text).map_err(|e| fail(e.to_string()))
    }

    /// The entries of a previous run's report that failed, as a sync file.
    pub fn failed_in(path: &Path) -> Result<SyncSpec, SyncError> {
        Ok(SyncReport::read(path)?.retry)
    }
}

/// How the destination of each root is chosen, and how the run goes.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Destination prefix: a registry `HOST[/PATH]`, `oci:DIR`, `oci-archive:FILE` or `ctf:PATH`.
    pub to: Option<Location>,
    /// `FROM=TO` rewrites of source repository paths (first match wins).
    pub repo_map: Vec<(String, String)>,
    /// Roots in flight at once (images and component versions).
    pub roots_at_once: usize,
    /// The catalog repository component versions transferred are recorded in, if any.
    pub catalog: Option<String>,
    /// Only this share of the roots (`--shard I/N`).
    pub shard: Option<Shard>,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RootResult {
    /// The source.
    pub source: String,
    /// The destination.
    pub destination: String,
    /// The root's digest (a component version's normalised descriptor digest), when known.
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
    /// How long the root took, in seconds.
    #[serde(default)]
    pub seconds: f64,
}

impl RootResult {
    /// Fills in what copying the root moved, or why it failed.
    fn settle(&mut self, outcome: Result<&CopyReport, &dyn std::error::Error>, dry_run: bool) {
        match outcome {
            Ok(report) => {
                self.digest = Some(report.root.digest.clone());
                self.bytes = report.bytes_copied;
                self.blobs = report.blobs_copied;
                self.mounted = report.blobs_mounted;
                let moved = report.blobs_copied + report.manifests_copied > 0;
                self.status = status(dry_run, moved);
            }
            Err(e) => {
                tracing::debug!("{} failed: {}", self.source, chain(e));
                self.error = Some(chain(e));
            }
        }
    }

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
            seconds: 0.0,
        }
    }
}

/// An entry's own destination, else the run's prefix, for reports.
fn destination_or_prefix(destination: &Option<String>, options: &SyncOptions) -> String {
    destination
        .clone()
        .or_else(|| options.to.as_ref().map(ToString::to_string))
        .unwrap_or_default()
}

/// What the whole run moved: each blob counts once, however many images and component versions
/// needed it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Moved {
    /// Blobs streamed.
    pub blobs_uploaded: u64,
    /// Their bytes.
    pub bytes_uploaded: u64,
    /// Blobs mounted from another repository of the same registry.
    pub blobs_mounted: u64,
}

/// The version of the report format, written into every report; a change that readers of version
/// 1 cannot ignore gets a new number.
pub const REPORT_VERSION: u32 = 1;

/// How many roots ended in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Roots copied.
    pub copied: usize,
    /// Roots the destination had.
    pub skipped: usize,
    /// Roots a dry run would copy.
    pub planned: usize,
    /// Roots that failed.
    pub failed: usize,
}

/// The result of a run (`--output json`; documented in the README).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    /// [`REPORT_VERSION`].
    #[serde(default)]
    pub version: u32,
    /// The share of a larger sync this run did, if it did one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// One entry per image root and per component version.
    pub roots: Vec<RootResult>,
    /// Roots by status.
    #[serde(default)]
    pub totals: Totals,
    /// What the run's one job moved, all roots together.
    #[serde(default)]
    pub moved: Moved,
    /// Wall time of the run in seconds, as its caller measured it (of the longest share, for merged
    /// reports).
    #[serde(default)]
    pub seconds: f64,
    /// A sync file with exactly the failed entries, for `--retry-failed`.
    pub retry: SyncSpec,
}

impl SyncReport {
    /// Reads a report written with `--output json`.
    pub fn read(path: &Path) -> Result<SyncReport, SyncError> {
        let fail = |message: String| SyncError::File {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        serde_json::from_str(&text)
            .map_err(|e| fail(format!("not a wharf sync report (--output json): {e}")))
    }

    /// Joins the reports of the shares of one sync (each read from its path) into the report a
    /// single run would have written: every root once, what moved added up, one retry list. A root
    /// in two reports is refused: the reports are not shares of one run, or one is given twice.
    pub fn merge(reports: Vec<(PathBuf, SyncReport)>) -> Result<SyncReport, SyncError> {
        let mut merged = SyncReport {
            version: REPORT_VERSION,
            ..SyncReport::default()
        };
        let mut seen: std::collections::HashMap<(String, String), PathBuf> = Default::default();
        for (path, report) in reports {
            for root in report.roots {
                let key = (root.source.clone(), root.destination.clone());
                if let Some(first) = seen.insert(key, path.clone()) {
                    return Err(SyncError::Overlap {
                        root: format!("{} -> {}", root.source, root.destination),
                        first,
                        second: path,
                    });
                }
                merged.roots.push(root);
            }
            merged.moved.blobs_uploaded += report.moved.blobs_uploaded;
            merged.moved.bytes_uploaded += report.moved.bytes_uploaded;
            merged.moved.blobs_mounted += report.moved.blobs_mounted;
            merged.seconds = merged.seconds.max(report.seconds);
            let retry = &mut merged.retry;
            add_missing(&mut retry.images, report.retry.images);
            add_missing(&mut retry.components, report.retry.components);
            add_missing(&mut retry.bundles, report.retry.bundles);
        }
        merged.roots.sort_by(|a, b| a.source.cmp(&b.source));
        merged.count();
        Ok(merged)
    }

    /// Counts the roots by status into `totals`.
    fn count(&mut self) {
        let count = |status: Status| self.roots.iter().filter(|r| r.status == status).count();
        self.totals = Totals {
            copied: count(Status::Copied),
            skipped: count(Status::Skipped),
            planned: count(Status::Planned),
            failed: count(Status::Failed),
        };
    }

    /// Number of failed roots.
    pub fn failures(&self) -> usize {
        self.roots
            .iter()
            .filter(|r| r.status == Status::Failed)
            .count()
    }
}

/// Appends the entries of `more` that `list` lacks.
fn add_missing<T: PartialEq>(list: &mut Vec<T>, more: Vec<T>) {
    for entry in more {
        if !list.contains(&entry) {
            list.push(entry);
        }
    }
}

/// Called as each root finishes (progress displays).
pub trait RootObserver: Send + Sync {
    /// A root starts.
    fn started(&self) {}
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
    /// Bundles to copy: the spec's.
    pub bundles: Vec<BundleSpec>,
    /// Entries that could not be expanded, as failed results.
    pub failures: Vec<RootResult>,
    /// Those entries, for `--retry-failed`.
    pub retry: SyncSpec,
}

/// Expands `spec` into roots, listing tags where a repository is given without one. A whole layout,
/// archive or CTF brings everything it holds: a CTF's component versions are transferred as
/// components, so that their references are rewritten for where they land, the rest copied as
/// images. Entries that cannot be expanded (a repository that does not exist) come back as failed
/// results. With a shard, only the roots (and failed entries) of that share are kept.
pub async fn expand(spec: &SyncSpec, options: &SyncOptions, sources: &Session) -> Expanded {
    let mut expanded = Expanded {
        components: spec.components.clone(),
        bundles: spec.bundles.clone(),
        ..Expanded::default()
    };
    // Listing tags is one request per repository or more: several at once, results in order.
    let expansions: Vec<_> = stream::iter(&spec.images)
        .map(|entry| async move { (entry, expand_image(entry, options, sources).await) })
        .buffered(EXPANSIONS_AT_ONCE)
        .collect()
        .await;
    for (entry, expansion) in expansions {
        match expansion {
            Ok((mut roots, mut components)) => {
                expanded.roots.append(&mut roots);
                expanded.components.append(&mut components);
            }
            Err(e) => {
                let message = chain(&e);
                tracing::debug!("{} failed: {message}", entry.source);
                expanded.failures.push(RootResult::failed(
                    entry.source.clone(),
                    destination_or_prefix(&entry.destination, options),
                    Some(message),
                ));
                expanded.retry.images.push(entry.clone());
            }
        }
    }
    refuse_shared_destinations(&mut expanded);
    if let Some(shard) = options.shard {
        expanded
            .roots
            .retain(|r| shard.takes(&r.source.to_string()));
        expanded.components.retain(|c| shard.takes(&c.source));
        expanded.bundles.retain(|b| shard.takes(&b.source));
        expanded.failures.retain(|f| shard.takes(&f.source));
        expanded.retry.images.retain(|i| shard.takes(&i.source));
    }
    expanded
}

/// Roots of different sources that would write the same destination tag are not copied (which
/// one ended there would depend on timing): each fails naming the other. The same root listed
/// twice is copied once.
fn refuse_shared_destinations(expanded: &mut Expanded) {
    let mut by_destination: std::collections::BTreeMap<String, Vec<Root>> = Default::default();
    for root in expanded.roots.drain(..) {
        let sources = by_destination
            .entry(root.destination.to_string())
            .or_default();
        if !sources.iter().any(|r| r.source == root.source) {
            sources.push(root);
        }
    }
    for (destination, roots) in by_destination {
        if roots.len() == 1 || roots.iter().all(|r| r.destination.tag.is_none()) {
            expanded.roots.extend(roots);
            continue;
        }
        for root in &roots {
            let others: Vec<String> = roots
                .iter()
                .filter(|r| r.source != root.source)
                .map(|r| r.source.to_string())
                .collect();
            expanded.failures.push(RootResult::failed(
                root.source.to_string(),
                destination.clone(),
                Some(format!(
                    "{destination} is also the destination of {}: give one of them another destination",
                    others.join(", ")
                )),
            ));
            add_missing(&mut expanded.retry.images, vec![root.spec.clone()]);
        }
    }
}

async fn expand_image(
    entry: &ImageSpec,
    options: &SyncOptions,
    sources: &Session,
) -> Result<(Vec<Root>, Vec<ComponentSpec>), SyncError> {
    let source = Address::parse(&entry.source)?;
    let mut selected: Vec<Address> = Vec::new();
    let mut components = Vec::new();
    for tag in &entry.tags {
        selected.push(source.with(Some(tag), None));
    }
    for digest in &entry.digests {
        selected.push(source.with(None, Some(Digest::parse(digest)?)));
    }
    if selected.is_empty() {
        if source.tag().is_some() || source.digest().is_some() {
            selected.push(source.clone());
        } else {
            components = everything_in(&source, entry, sources, &mut selected).await?;
        }
    }
    Ok((roots_for(selected, entry, options)?, components))
}

/// Every image `source` holds, into `images`, and the component versions, returned: every tag of a
/// repository, or of every repository of a whole layout, archive or CTF, referrers-index tags and
/// catalogs aside; untagged roots by digest.
async fn everything_in(
    source: &Address,
    entry: &ImageSpec,
    sources: &Session,
    images: &mut Vec<Address>,
) -> Result<Vec<ComponentSpec>, SyncError> {
    let namespace = sources.namespace(&source.location, Mode::Read).await?;
    let repositories = match (&source.location, source.repository.is_empty()) {
        // A layout's root holds every image name as it is.
        (Location::Layout { .. }, _) | (_, false) => vec![source.repository.clone()],
        (_, true) => namespace.repositories().await?,
    };
    let mut components = Vec::new();
    for repository in repositories {
        // A catalog describes its own registry: the destination keeps its own.
        if repository.rsplit('/').next() == Some(catalog::DEFAULT_REPOSITORY) {
            continue;
        }
        let store = namespace.read(&repository)?;
        let component = repository.strip_prefix(COMPONENT_REPOSITORIES);
        // A whole CTF brings its untagged artifacts too, by digest; elsewhere tags name the images.
        let named: Vec<(Option<String>, Option<Digest>)> =
            if matches!(source.location, Location::Ctf(_)) {
                let roots = store.roots().await?;
                roots
                    .into_iter()
                    .map(|(t, d)| (t, Some(d.digest)))
                    .collect()
            } else {
                let tags = store.tags().await?;
                tags.into_iter().map(|t| (Some(t), None)).collect()
            };
        for (tag, digest) in named {
            match (tag, component) {
                (Some(tag), _) if is_referrers_tag(&tag) => {}
                (Some(tag), Some(name)) => components.push(ComponentSpec {
                    source: format!("{}//{name}:{}", source.location, ocm::tag_to_version(&tag)),
                    destination: entry.destination.clone(),
                    copy_resources: true,
                    recursive: false,
                }),
                (Some(tag), None) => images.push(Address {
                    location: source.location.clone(),
                    repository: repository.clone(),
                    tag: Some(tag),
                    digest: None,
                }),
                (None, _) => images.push(Address {
                    location: source.location.clone(),
                    repository: repository.clone(),
                    tag: None,
                    digest,
                }),
            }
        }
    }
    if images.is_empty() && components.is_empty() {
        return Err(if source.is_whole() {
            SyncError::Empty(source.to_string())
        } else {
            SyncError::NoTags(source.to_string())
        });
    }
    Ok(components)
}

fn roots_for(
    selected: Vec<Address>,
    entry: &ImageSpec,
    options: &SyncOptions,
) -> Result<Vec<Root>, SyncError> {
    selected
        .into_iter()
        .map(|source| {
            let destination = destination_for(&source, entry.destination.as_deref(), options)?;
            Ok(Root {
                source,
                destination,
                platforms: entry.platforms.clone(),
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

/// The repository path and tag a source stands for (a layout's `repository:tag` names split; an
/// image named without a repository takes the layout's file name).
fn source_path(source: &Address) -> (String, Option<String>) {
    match &source.location {
        Location::Layout { path, .. } if source.repository.is_empty() => {
            match source.tag().and_then(|t| t.rsplit_once(':')) {
                Some((repository, tag)) => (repository.to_owned(), Some(tag.to_owned())),
                None => {
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().to_lowercase())
                        .unwrap_or_default();
                    (name, source.tag.clone())
                }
            }
        }
        Location::Registry { base, .. } if !base.is_empty() => {
            (format!("{base}/{}", source.repository), source.tag.clone())
        }
        _ => (source.repository.clone(), source.tag.clone()),
    }
}

/// Where a source goes: its own destination, or the prefix plus its (rewritten) repository path.
pub fn destination_for(
    source: &Address,
    explicit: Option<&str>,
    options: &SyncOptions,
) -> Result<Address, SyncError> {
    let (path, tag) = source_path(source);
    if let Some(explicit) = explicit {
        let destination = Address::parse(explicit)?;
        if destination.tag().is_some() || destination.digest().is_some() {
            return Ok(destination);
        }
        return Ok(destination.with(tag.as_deref(), None));
    }
    let prefix = options
        .to
        .as_ref()
        .ok_or_else(|| SyncError::NoDestination(source.to_string()))?;
    let path = options
        .repo_map
        .iter()
        .find_map(|(from, to)| {
            let rest = path.strip_prefix(from.as_str())?;
            (rest.is_empty() || rest.starts_with('/'))
                .then(|| format!("{to}{rest}").trim_start_matches('/').to_owned())
        })
        .unwrap_or(path);
    Ok(Address {
        location: prefix.clone(),
        repository: path,
        tag,
        digest: None,
    })
}

/// One thing a run copies.
enum Work<'a> {
    Image(Box<Root>),
    Component(&'a ComponentSpec),
    Bundle(&'a BundleSpec),
}

/// What to put in the retry list when a piece of work failed.
enum Retry {
    Image(ImageSpec),
    Component(ComponentSpec),
    Bundle(BundleSpec),
}

/// Copies every root, transfers every component version and copies every bundle of `expanded`
/// through `job`, at most `options.roots_at_once` at a time, all interleaved, and reports each,
/// the entries that could not be expanded among them.
pub async fn run(
    expanded: Expanded,
    options: &SyncOptions,
    job: Arc<Job>,
    sources: &Session,
    destinations: &Session,
    observer: &dyn RootObserver,
) -> SyncReport {
    let Expanded {
        roots,
        components,
        bundles,
        failures,
        retry,
    } = expanded;
    observer.planned(roots.len() + components.len() + bundles.len() + failures.len());
    for failure in &failures {
        observer.finished(failure);
    }
    let work = roots
        .into_iter()
        .map(|root| Work::Image(Box::new(root)))
        .chain(components.iter().map(Work::Component))
        .chain(bundles.iter().map(Work::Bundle));
    let results: Vec<(RootResult, Option<Retry>)> = stream::iter(work)
        .map(|work| {
            let job = job.clone();
            async move {
                observer.started();
                let started = std::time::Instant::now();
                let (mut result, retry) = match work {
                    Work::Image(root) => {
                        let result = copy_root(&job, &root, sources, destinations).await;
                        (result, Retry::Image(root.spec.clone()))
                    }
                    Work::Component(component) => {
                        let result =
                            transfer_component(component, options, &job, sources, destinations)
                                .await;
                        (result, Retry::Component(component.clone()))
                    }
                    Work::Bundle(bundle) => {
                        let result =
                            copy_bundle(bundle, options, &job, sources, destinations).await;
                        (result, Retry::Bundle(bundle.clone()))
                    }
                };
                result.seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
                observer.finished(&result);
                let retry = (result.status == Status::Failed).then_some(retry);
                (result, retry)
            }
        })
        .buffer_unordered(options.roots_at_once.max(1))
        .collect()
        .await;
    let mut report = SyncReport {
        version: REPORT_VERSION,
        shard: options.shard,
        ..SyncReport::default()
    };
    for (result, retry) in results {
        match retry {
            Some(Retry::Image(spec)) => add_missing(&mut report.retry.images, vec![spec]),
            Some(Retry::Component(spec)) => add_missing(&mut report.retry.components, vec![spec]),
            Some(Retry::Bundle(spec)) => add_missing(&mut report.retry.bundles, vec![spec]),
            None => {}
        }
        report.roots.push(result);
    }
    report.roots.sort_by(|a, b| a.source.cmp(&b.source));
    report.roots.extend(failures);
    report.retry.images.extend(retry.images);
    report.retry.components.extend(retry.components);
    report.retry.bundles.extend(retry.bundles);
    let totals = job.totals();
    report.moved = Moved {
        blobs_uploaded: totals.blobs_streamed,
        bytes_uploaded: totals.bytes_streamed,
        blobs_mounted: totals.blobs_mounted,
    };
    report.count();
    report
}

/// The status of a root that moved `moved` pieces of content (none: it was all there).
fn status(dry_run: bool, moved: bool) -> Status {
    match (dry_run, moved) {
        (true, true) => Status::Planned,
        (_, true) => Status::Copied,
        (_, false) => Status::Skipped,
    }
}

async fn copy_root(
    job: &Job,
    root: &Root,
    sources: &Session,
    destinations: &Session,
) -> RootResult {
    let mut result =
        RootResult::failed(root.source.to_string(), root.destination.to_string(), None);
    let outcome = job
        .copy_image(
            &root.source,
            &root.destination,
            sources,
            destinations,
            &root.platforms,
        )
        .await;
    result.settle(
        outcome.as_ref().map_err(|e| e as &dyn std::error::Error),
        job.options().dry_run,
    );
    result
}

async fn transfer_component(
    component: &ComponentSpec,
    options: &SyncOptions,
    job: &Job,
    sources: &Session,
    destinations: &Session,
) -> RootResult {
    let destination = destination_or_prefix(&component.destination, options);
    let mut result = RootResult::failed(component.source.clone(), destination.clone(), None);
    let outcome = async {
        let address = ComponentAddress::parse(&component.source)?;
        let version = address
            .version
            .clone()
            .ok_or_else(|| SyncError::NoVersion(component.source.clone()))?;
        let to = match &component.destination {
            Some(text) => Location::parse(text)?,
            None => options
                .to
                .clone()
                .ok_or_else(|| SyncError::NoDestination(component.source.clone()))?,
        };
        let src = OcmRepository::open(sources, &address.location, Mode::Read).await?;
        let dst = OcmRepository::open(destinations, &to, Mode::Write)
            .await?
            .with_catalog(options.catalog.as_deref());
        let options = TransferOptions {
            recursive: component.recursive,
            copy_resources: component.copy_resources,
            mode: ResourceMode::Relative,
            overwrite: false,
            rebase: true,
        };
        Ok::<_, SyncError>(
            ocm::transfer(&src, &dst, &address.name, &version, sources, job, &options).await?,
        )
    }
    .await;
    match outcome {
        Ok(done) => {
            result.digest = done.first().map(|t| t.digest.clone());
            result.bytes = done.iter().map(|t| t.bytes_copied).sum();
            result.blobs = done.iter().map(|t| t.blobs_copied).sum();
            result.mounted = done.iter().map(|t| t.blobs_mounted).sum();
            result.status = status(job.options().dry_run, done.iter().any(|t| t.copied));
        }
        Err(e) => {
            tracing::debug!("{} failed: {}", component.source, chain(&e));
            result.error = Some(chain(&e));
        }
    }
    result
}

async fn copy_bundle(
    bundle: &BundleSpec,
    options: &SyncOptions,
    job: &Job,
    sources: &Session,
    destinations: &Session,
) -> RootResult {
    let destination = destination_or_prefix(&bundle.destination, options);
    let mut result = RootResult::failed(bundle.source.clone(), destination, None);
    let outcome = async {
        let source = BundleSource::parse(&bundle.source)?;
        let to = destination_for(&source.address, bundle.destination.as_deref(), options)?;
        result.destination = to.to_string();
        Ok::<_, SyncError>(imgpkg::copy(&source, &to, sources, destinations, job).await?)
    }
    .await;
    result.settle(
        outcome
            .as_ref()
            .map(|copied| &copied.report)
            .map_err(|e| e as &dyn std::error::Error),
        job.options().dry_run,
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(to: &str, maps: &[(&str, &str)]) -> SyncOptions {
        SyncOptions {
            to: Some(Location::parse(to).unwrap()),
            repo_map: maps
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            roots_at_once: 4,
            catalog: None,
            shard: None,
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
        let layout = Address::parse("oci:in:team/app:1.0").unwrap();
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
        let unnamed = SyncOptions::default();
        assert!(matches!(
            destination_for(&source, None, &unnamed),
            Err(SyncError::NoDestination(_))
        ));
    }

    #[test]
    fn merges_shares_exactly_and_refuses_overlaps() {
        let root = |source: &str, status: Status| RootResult {
            status,
            ..RootResult::failed(source.into(), format!("m.local/{source}"), None)
        };
        let share = |roots: Vec<RootResult>, retry: &[&str], uploaded: u64| SyncReport {
            seconds: uploaded as f64,
            roots,
            moved: Moved {
                blobs_uploaded: uploaded,
                bytes_uploaded: uploaded * 10,
                blobs_mounted: 1,
            },
            retry: SyncSpec {
                images: retry
                    .iter()
                    .map(|s| ImageSpec {
                        source: s.to_string(),
                        ..ImageSpec::default()
                    })
                    .collect(),
                ..SyncSpec::default()
            },
            ..SyncReport::default()
        };
        let a = share(
            vec![root("b", Status::Copied), root("x", Status::Failed)],
            &["x", "shared"],
            2,
        );
        let b = share(vec![root("a", Status::Skipped)], &["shared"], 3);
        let merged =
            SyncReport::merge(vec![("a.json".into(), a.clone()), ("b.json".into(), b)]).unwrap();
        let sources: Vec<&str> = merged.roots.iter().map(|r| r.source.as_str()).collect();
        assert_eq!(sources, ["a", "b", "x"]);
        assert_eq!(
            merged.moved,
            Moved {
                blobs_uploaded: 5,
                bytes_uploaded: 50,
                blobs_mounted: 2
            }
        );
        let retried: Vec<&str> = merged
            .retry
            .images
            .iter()
            .map(|i| i.source.as_str())
            .collect();
        assert_eq!(retried, ["x", "shared"]);
        assert_eq!(merged.failures(), 1);
        assert_eq!(
            (
                merged.version,
                merged.totals.copied,
                merged.totals.failed,
                merged.seconds
            ),
            (REPORT_VERSION, 1, 1, 3.0)
        );
        let twice = SyncReport::merge(vec![("a.json".into(), a.clone()), ("c.json".into(), a)])
            .unwrap_err()
            .to_string();
        assert!(
            twice.contains("a.json and c.json both report b -> m.local/b"),
            "{twice}"
        );
    }

    #[test]
    fn recognises_referrers_tags() {
        assert!(is_referrers_tag(&format!("sha256-{}", "a".repeat(64))));
        assert!(!is_referrers_tag("sha256-abc"));
        assert!(!is_referrers_tag("v1.0-rc1"));
    }

    #[test]
    fn reads_sync_files_and_refuses_unknown_keys_and_bad_platforms() {
        let spec: SyncSpec = wharf_bundle::yaml::from_str(
            "images:\n- source: r.local/a\n  tags: [\"1\", \"2\"]\n  platforms: [linux/amd64]\ncomponents:\n- source: ctf:x//acme.org/a:1.0.0\n",
        )
        .unwrap();
        assert_eq!(spec.images[0].tags, ["1", "2"]);
        assert_eq!(
            spec.images[0].platforms,
            [Platform::new("linux", "amd64", None)]
        );
        assert!(spec.components[0].copy_resources && spec.components[0].recursive);
        let err =
            wharf_bundle::yaml::from_str::<SyncSpec>("images:\n- source: x\n  colour: blue\n")
                .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        let err = wharf_bundle::yaml::from_str::<SyncSpec>(
            "images:\n- source: x\n  platforms: [linux]\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("invalid platform \"linux\""),
            "{err}"
        );
    }
}
