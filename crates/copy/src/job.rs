//! A copy job: any number of graphs copied concurrently with shared state, so that a blob several
//! images use is uploaded once per destination registry and mounted into the other repositories, and
//! the number of blob transfers in flight is bounded for the whole job.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use tokio::sync::Semaphore;
use wharf_oci::{Descriptor, Digest, ManifestBody, Platform, media_type};
use wharf_store::{Address, Location, ManifestRole, MountSource, ReadStore, Session, Store};

use crate::flight::{Flights, Turn};
use crate::graph::{NestedChild, Plan, child_home, discover, push_order};
use crate::{CopyError, CopyOptions, CopyReport, select_platforms};

/// What the job reports as it goes, for progress displays. Every method defaults to nothing.
pub trait Observer: Send + Sync {
    /// A blob transfer starts (after deduplication: only blobs that will move bytes).
    fn blob_started(&self, _blob: &Descriptor) {}
    /// Bytes of a blob arrived at the destination.
    fn blob_bytes(&self, _blob: &Descriptor, _bytes: u64) {}
    /// A blob is done (streamed, mounted or found present).
    fn blob_finished(&self, _blob: &Descriptor) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// Whether a manifest was pushed to a destination, locked while it is being pushed.
type ManifestPushed = Arc<tokio::sync::Mutex<bool>>;

/// How one blob reached the destination.
enum Transfer {
    Streamed(u64),
    Mounted,
    Present,
}

impl Transfer {
    /// Adds this blob to a report.
    fn count(&self, report: &mut CopyReport) {
        match self {
            Transfer::Streamed(size) => {
                report.blobs_copied += 1;
                report.bytes_copied += size;
            }
            Transfer::Mounted => {
                report.blobs_copied += 1;
                report.blobs_mounted += 1;
            }
            Transfer::Present => report.blobs_present += 1,
        }
    }
}

/// What a whole job has moved so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Blobs streamed to a destination.
    pub blobs_streamed: u64,
    /// Their bytes.
    pub bytes_streamed: u64,
    /// Blobs mounted from another repository of the same registry (no bytes moved).
    pub blobs_mounted: u64,
}

/// What a caller read before a copy, so that it is not asked for again.
#[derive(Default)]
struct Known {
    /// The root manifest.
    manifest: Option<wharf_oci::Manifest>,
    /// What the destination tag names (`Some(None)`: nothing), for a root copied under a tag.
    tagged: Option<Option<Descriptor>>,
    /// The root is a copy beside its index of a child whose own nested children are in place
    /// already (below the child's nested repository): they get copies beside it only.
    beside_index: bool,
}

/// Shared state of many concurrent copies.
pub struct Job {
    options: CopyOptions,
    observer: Arc<dyn Observer>,
    /// Per destination repository and blob: one transfer (upload or mount), which images writing to
    /// the same repository wait for instead of sending identical requests. Concurrent identical mounts
    /// into one repository make docker-registry race on its link files and refuse one.
    transfers_to: Flights<(String, Digest), ()>,
    /// Per destination blob scope (a registry host, a CTF) and blob: one upload, and where it went,
    /// so the other repositories of that registry mount it from there.
    uploads_to: Flights<(String, Digest), Option<MountSource>>,
    /// Per destination and manifest, whether this job has pushed it, behind a lock held while it is
    /// pushed: a manifest shared by two roots is pushed once. Pushing it again would rewrite its
    /// link while the other root's index push checks it, which docker-registry answers with
    /// DIGEST_INVALID.
    manifests: Mutex<HashMap<(String, Digest), ManifestPushed>>,
    transfers: Semaphore,
    /// Blob scopes (registries) that refused an index whose children are in nested repositories:
    /// their indexes get copies of the children beside them from the start.
    sparse_refused: Mutex<HashSet<String>>,
    /// Blobs streamed, their bytes, and blobs mounted, across every copy of the job.
    streamed: AtomicU64,
    bytes: AtomicU64,
    mounted: AtomicU64,
}

impl Job {
    /// A job copying with `options`, reporting to `observer`.
    pub fn new(options: CopyOptions, observer: Arc<dyn Observer>) -> Job {
        let transfers = Semaphore::new(options.concurrency.max(1));
        Job {
            options,
            observer,
            transfers_to: Flights::new(),
            uploads_to: Flights::new(),
            manifests: Mutex::new(HashMap::new()),
            transfers,
            sparse_refused: Mutex::new(HashSet::new()),
            streamed: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            mounted: AtomicU64::new(0),
        }
    }

    /// What the job has moved so far: each blob counts once, however many images needed it.
    pub fn totals(&self) -> Totals {
        Totals {
            blobs_streamed: self.streamed.load(Ordering::Relaxed),
            bytes_streamed: self.bytes.load(Ordering::Relaxed),
            blobs_mounted: self.mounted.load(Ordering::Relaxed),
        }
    }

    /// Copies one blob, as part of this job: moved at most once per destination repository and
    /// uploaded once per registry, verified, retried, and counted like the blobs of any image.
    pub async fn copy_blob(
        &self,
        src: &dyn ReadStore,
        dst: &dyn Store,
        blob: &Descriptor,
    ) -> Result<CopyReport, CopyError> {
        let mut report = CopyReport::empty(blob.clone());
        if self.options.dry_run {
            if dst.exists(blob).await? {
                report.blobs_present = 1;
            } else {
                report.blobs_copied = 1;
                report.bytes_copied = blob.size;
            }
            return Ok(report);
        }
        self.transfer_blob(src, dst, blob).await?.count(&mut report);
        Ok(report)
    }

    /// The job's options.
    pub fn options(&self) -> &CopyOptions {
        &self.options
    }

    /// Copies the image one address names to another. The destination is named by its own tag, else
    /// by the source's tag, else listed as an untagged root. `sources` and `destinations` are the
    /// sessions of each side (credentials, TLS, mirrors, the namespaces opened). With `platforms`,
    /// only those of a multi-platform image are copied, under a new index listing just them.
    pub async fn copy_image(
        &self,
        source: &Address,
        destination: &Address,
        sources: &Session,
        destinations: &Session,
        platforms: &[Platform],
    ) -> Result<CopyReport, CopyError> {
        let mut src = sources.read(source).await?;
        let mut known = Known::default();
        // Copied by tag, the source manifest is read with one GET that also resolves it, when it
        // is needed: to a registry, whose tag is looked at first, only when that names nothing;
        // to a layout or archive (which opening creates) always, first, so that a missing source
        // leaves nothing behind.
        let mut early = None;
        let mut opened = None;
        if platforms.is_empty()
            && source.digest().is_none()
            && destination.digest().is_none()
            && let Some(source_tag) = source.tag()
        {
            let to_registry = matches!(destination.location, Location::Registry { .. });
            if !to_registry {
                early = Some(src.resolve_manifest(source_tag).await?);
            }
            let dst = destinations.write(destination).await?;
            let tag = destination.tag().unwrap_or(source_tag);
            let current = match dst.resolve(tag).await {
                Ok(current) => Some(current),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e.into()),
            };
            if to_registry && current.is_none() {
                early = Some(src.resolve_manifest(source_tag).await?);
            }
            known.tagged = Some(current);
            opened = Some(dst);
        }
        let early = early.map(|(root, manifest)| {
            known.manifest = Some(manifest);
            root
        });
        let mut root = match early {
            Some(root) => root,
            None => match source.resolve_in(src.as_ref()).await {
                Ok(root) => root,
                Err(e) if e.is_not_found() && source.digest().is_some() => {
                    match find_nested_child(src.as_ref(), source).await? {
                        Some((home, root)) => {
                            src = home;
                            root
                        }
                        None => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            },
        };
        let mut chosen = None;
        if !platforms.is_empty() {
            let manifest = src.fetch_manifest(&root).await?;
            if let ManifestBody::Index(index) = manifest.body() {
                let selected = select_platforms(index, platforms, &src.location())?;
                root = selected.descriptor();
                chosen = Some(selected);
            }
        }
        if let Some(wanted) = destination.digest()
            && *wanted != root.digest
        {
            return Err(CopyError::DigestConflict {
                destination: destination.to_string(),
                wanted: wanted.clone(),
                actual: root.digest,
            });
        }
        let dst = match opened {
            Some(dst) => dst,
            None => destinations.write(destination).await?,
        };
        let role = match destination.tag().or(source.tag()) {
            Some(tag) => ManifestRole::Tag(tag),
            None => ManifestRole::Root,
        };
        let report = match chosen {
            None => {
                self.copy_known(src.as_ref(), dst.as_ref(), &root, role, known)
                    .await?
            }
            Some(index) => {
                // Each chosen child graph first, then the new index, so the destination never holds
                // an index naming manifests it lacks.
                let mut report = CopyReport::empty(root.clone());
                let ManifestBody::Index(body) = index.body() else {
                    unreachable!("select_platforms builds an index")
                };
                for child in &body.manifests {
                    let part = self
                        .copy(src.as_ref(), dst.as_ref(), child, ManifestRole::Child)
                        .await?;
                    report.add(&part);
                }
                if dst.exists(&root).await? {
                    report.manifests_present += 1;
                } else {
                    report.manifests_copied += 1;
                }
                if !self.options.dry_run {
                    self.push_manifest(dst.as_ref(), &root, index.raw().clone(), role)
                        .await?;
                }
                report
            }
        };
        Ok(report)
    }

    /// Pushes a manifest, unless it is a child another root of this job has pushed there already
    /// (waiting for that push if it is under way). Roots are always pushed: they are named.
    async fn push_manifest(
        &self,
        dst: &dyn Store,
        descriptor: &Descriptor,
        raw: Bytes,
        role: ManifestRole<'_>,
    ) -> Result<(), CopyError> {
        let entry = self
            .manifests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((dst.location(), descriptor.digest.clone()))
            .or_default()
            .clone();
        let mut pushed = entry.lock().await;
        if *pushed && role == ManifestRole::Child {
            return Ok(());
        }
        dst.push_manifest(descriptor, raw, role).await?;
        *pushed = true;
        Ok(())
    }

    /// Copies the graph below `root` from `src` to `dst`, names the root as `role` says, then (unless
    /// turned off) copies the referrers of every manifest in the graph.
    pub async fn copy(
        &self,
        src: &dyn ReadStore,
        dst: &dyn Store,
        root: &Descriptor,
        role: ManifestRole<'_>,
    ) -> Result<CopyReport, CopyError> {
        self.copy_known(src, dst, root, role, Known::default())
            .await
    }

    /// [`Job::copy`], with what the caller has read already.
    async fn copy_known(
        &self,
        src: &dyn ReadStore,
        dst: &dyn Store,
        root: &Descriptor,
        role: ManifestRole<'_>,
        known: Known,
    ) -> Result<CopyReport, CopyError> {
        // A copy beside its index leaves referrers where the child lives.
        let with_referrers = self.options.referrers && !known.beside_index;
        let (mut report, manifests) = self.copy_one(src, dst, root, role, known).await?;
        if !with_referrers {
            return Ok(report);
        }
        let mut visited: HashSet<Digest> = manifests.iter().map(|d| d.digest.clone()).collect();
        let mut subjects = manifests;
        while let Some(subject) = subjects.pop() {
            for referrer in src.referrers(&subject, None).await? {
                let bound = referrer
                    .artifact_type
                    .as_deref()
                    .is_some_and(|t| media_type::LOCATION_BOUND.contains(&t));
                if bound || !visited.insert(referrer.digest.clone()) {
                    continue;
                }
                tracing::info!(subject = %subject.digest, referrer = %referrer.digest, "copying referrer");
                let (part, found) = self
                    .copy_one(src, dst, &referrer, ManifestRole::Root, Known::default())
                    .await?;
                report.add(&part);
                report.referrers_copied += 1;
                // Referrers can have referrers of their own (a signature on an SBOM).
                for manifest in found {
                    if manifest.digest == referrer.digest || visited.insert(manifest.digest.clone())
                    {
                        subjects.push(manifest);
                    }
                }
            }
        }
        Ok(report)
    }

    /// One graph, without referrers; also returns the manifests known to be in it. `known` is what
    /// the caller has read already.
    async fn copy_one(
        &self,
        src: &dyn ReadStore,
        dst: &dyn Store,
        root: &Descriptor,
        role: ManifestRole<'_>,
        known: Known,
    ) -> Result<(CopyReport, Vec<Descriptor>), CopyError> {
        let concurrency = self.options.concurrency.max(1);
        let beside_index = known.beside_index;
        // One request answers "there and named" for a tagged root: the no-op re-run's only check.
        let named = match (role, known.tagged) {
            (ManifestRole::Tag(_), Some(current)) => {
                current.is_some_and(|c| c.digest == root.digest)
            }
            (ManifestRole::Tag(tag), None) => match dst.resolve(tag).await {
                Ok(current) => current.digest == root.digest,
                Err(e) if e.is_not_found() => false,
                Err(e) => return Err(e.into()),
            },
            (ManifestRole::Child | ManifestRole::Root, _) => false,
        };
        let root_present = named || dst.exists(root).await?;
        let mut manifests = vec![root.clone()];
        let mut root_manifest = known.manifest;
        if root_present {
            let mut report = CopyReport::empty(root.clone());
            report.manifests_present = 1;
            // A present graph is complete; only an index's children may have referrers of their
            // own, so only an index is read.
            let is_index = media_type::kind(&root.media_type) == media_type::Kind::Index;
            let retag = !named && matches!(role, ManifestRole::Tag(_)) && !self.options.dry_run;
            if retag || (self.options.referrers && is_index) {
                let manifest = match root_manifest {
                    Some(manifest) => manifest,
                    None => src.fetch_manifest(root).await?,
                };
                if self.options.referrers {
                    for successor in manifest
                        .successors()
                        .into_iter()
                        .filter(|d| d.is_manifest())
                    {
                        let home = match manifest.subject() {
                            Some(subject) if subject == successor => None,
                            _ => wharf_oci::nested::nested(successor).map_err(|error| {
                                CopyError::Nested {
                                    index: root.digest.clone(),
                                    error,
                                }
                            })?,
                        };
                        // A child in a nested repository has its referrers there; a copy
                        // beside its index leaves them to the child's own copy.
                        match home {
                            None => manifests.push(successor.clone()),
                            Some(_) if beside_index => {}
                            Some(home) => {
                                let nested = NestedChild {
                                    parent: root.digest.clone(),
                                    child: successor.clone(),
                                    path: home.path.to_owned(),
                                    tag: home.tag.map(str::to_owned),
                                };
                                report.add(&self.copy_nested(src, dst, &nested).await?);
                            }
                        }
                    }
                }
                if retag {
                    // A present root needs a push only to set its tag.
                    self.push_manifest(dst, root, manifest.raw().clone(), role)
                        .await?;
                }
            }
            return Ok((report, manifests));
        }
        let root_manifest = match root_manifest.take() {
            Some(manifest) => manifest,
            None => src.fetch_manifest(root).await?,
        };
        let mut plan = Plan::default();
        discover(
            src,
            dst,
            root.clone(),
            root_manifest.clone(),
            &mut plan,
            concurrency,
        )
        .await?;
        manifests.extend(
            plan.nodes
                .values()
                .map(|n| n.descriptor.clone())
                .filter(|d| d.digest != root.digest),
        );
        let mut order = Vec::new();
        push_order(&plan, &root.digest, &mut order);
        let mut blobs: Vec<Descriptor> = plan.blobs.values().cloned().collect();
        blobs.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.digest.cmp(&b.digest)));
        tracing::info!(
            manifests = order.len(),
            blobs = blobs.len(),
            manifests_present = plan.manifests_present,
            blobs_present = plan.blobs_present,
            "discovered what to copy"
        );
        let mut report = CopyReport {
            root: root.clone(),
            manifests_copied: order.len(),
            manifests_present: plan.manifests_present,
            blobs_copied: blobs.len(),
            blobs_mounted: 0,
            blobs_present: plan.blobs_present,
            bytes_copied: blobs.iter().map(|b| b.size).sum(),
            referrers_copied: 0,
        };
        // Children that live in nested repositories go there first: the index names them. Every
        // nested repository is checked (names within limits on both sides) before any is written.
        for nested in &plan.nested {
            src.nested(&nested.path)?;
            dst.nested_mut(&nested.path)?;
        }
        let mut nested_report = CopyReport::empty(root.clone());
        for nested in plan.nested.iter().filter(|_| !beside_index) {
            nested_report.add(&self.copy_nested(src, dst, nested).await?);
        }
        if self.options.dry_run {
            report.add(&nested_report);
            return Ok((report, manifests));
        }

        let outcomes: Vec<Transfer> = stream::iter(blobs)
            .map(|blob| async move { self.transfer_blob(src, dst, &blob).await })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        report.blobs_copied = 0;
        report.bytes_copied = 0;
        for outcome in &outcomes {
            outcome.count(&mut report);
        }
        report.add(&nested_report);

        for digest in order.iter().filter(|d| **d != root.digest) {
            let node = &plan.nodes[digest];
            tracing::info!(digest = %digest, "pushing manifest");
            let raw = node.manifest.raw().clone();
            self.push_index_or_manifest(
                src,
                dst,
                &node.descriptor,
                raw,
                ManifestRole::Child,
                &plan,
            )
            .await?;
        }
        let raw = root_manifest.raw().clone();
        self.push_index_or_manifest(src, dst, root, raw, role, &plan)
            .await?;
        Ok((report, manifests))
    }

    /// Copies an index child into the nested repository it names (read from there in the source,
    /// else from the index's own repository), tagged as the index says or `wharf-<hex>`.
    async fn copy_nested(
        &self,
        src: &dyn ReadStore,
        dst: &dyn Store,
        nested: &NestedChild,
    ) -> Result<CopyReport, CopyError> {
        let from = child_home(src, &nested.child).await?;
        let to = dst.nested_mut(&nested.path)?;
        let tag = nested
            .tag
            .clone()
            .unwrap_or_else(|| colocated_tag(&nested.child.digest));
        let from: &dyn ReadStore = from.as_deref().unwrap_or(src);
        let to: &dyn Store = to.as_deref().unwrap_or(dst);
        Box::pin(self.copy(from, to, &nested.child, ManifestRole::Tag(&tag))).await
    }

    /// Pushes a manifest; an index with children in nested repositories is pushed as it is where
    /// the destination accepts that, else with copies of those children beside it (by digest,
    /// tagged `wharf-<hex>` once the index is in). The destination's refusal is remembered for the
    /// rest of the job.
    async fn push_index_or_manifest(
        &self,
        src: &dyn ReadStore,
        dst: &dyn Store,
        descriptor: &Descriptor,
        raw: Bytes,
        role: ManifestRole<'_>,
        plan: &Plan,
    ) -> Result<(), CopyError> {
        let children: Vec<&NestedChild> = plan
            .nested
            .iter()
            .filter(|n| n.parent == descriptor.digest)
            .collect();
        if children.is_empty() {
            return self.push_manifest(dst, descriptor, raw, role).await;
        }
        let scope = dst.blob_scope();
        let refuses = |set: &HashSet<String>| set.contains(&scope);
        if !refuses(
            &self
                .sparse_refused
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        ) {
            match self.push_manifest(dst, descriptor, raw.clone(), role).await {
                Ok(()) => return Ok(()),
                Err(e) if refuses_sparse(&e) => {
                    tracing::info!(index = %descriptor.digest, "{} wants the children of an index beside it; copying them there", dst.location());
                    self.sparse_refused
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(scope.clone());
                }
                Err(e) => return Err(e),
            }
        }
        for child in &children {
            self.colocate(src, dst, child, ManifestRole::Child).await?;
        }
        match self.push_manifest(dst, descriptor, raw, role).await {
            Ok(()) => {}
            Err(CopyError::Store(error)) => {
                return Err(CopyError::NestedRefused {
                    destination: dst.location(),
                    index: descriptor.digest.clone(),
                    error,
                });
            }
            Err(e) => return Err(e),
        }
        for child in &children {
            let tag = colocated_tag(&child.child.digest);
            self.colocate(src, dst, child, ManifestRole::Tag(&tag))
                .await?;
        }
        Ok(())
    }

    /// Copies a nested child (and what it needs) into the index's own repository.
    async fn colocate(
        &self,
        src: &dyn ReadStore,
        dst: &dyn Store,
        nested: &NestedChild,
        role: ManifestRole<'_>,
    ) -> Result<CopyReport, CopyError> {
        let from = child_home(src, &nested.child).await?;
        let from: &dyn ReadStore = from.as_deref().unwrap_or(src);
        let known = Known {
            beside_index: true,
            ..Known::default()
        };
        Box::pin(self.copy_known(from, dst, &nested.child, role, known)).await
    }

    /// Moves one blob into one repository, at most once for the whole job.
    async fn transfer_blob(
        &self,
        src: &dyn ReadStore,
        dst: &dyn Store,
        blob: &Descriptor,
    ) -> Result<Transfer, CopyError> {
        let claim = match self
            .transfers_to
            .claim((dst.location(), blob.digest.clone()))
            .await
        {
            Turn::Done(()) => {
                self.observer.blob_finished(blob);
                return Ok(Transfer::Present);
            }
            Turn::Mine(claim) => claim,
        };
        let outcome = self.upload_or_mount(src, dst, blob).await?;
        claim.complete(());
        match outcome {
            Transfer::Streamed(size) => {
                self.streamed.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(size, Ordering::Relaxed);
            }
            Transfer::Mounted => {
                self.mounted.fetch_add(1, Ordering::Relaxed);
            }
            Transfer::Present => {}
        }
        Ok(outcome)
    }

    /// Moves one blob, at most once per destination registry (or CTF) for the whole job: the first
    /// image to need it uploads it (or mounts it from its source repository), the others wait and
    /// mount it from there.
    async fn upload_or_mount(
        &self,
        src: &dyn ReadStore,
        dst: &dyn Store,
        blob: &Descriptor,
    ) -> Result<Transfer, CopyError> {
        let here = dst.mount_source();
        match self
            .uploads_to
            .claim((dst.blob_scope(), blob.digest.clone()))
            .await
        {
            Turn::Done(from) => {
                if let (Some(from), Some(here)) = (&from, &here)
                    && from.repository != here.repository
                    && dst.mount(blob, from).await?
                {
                    self.observer.blob_finished(blob);
                    return Ok(Transfer::Mounted);
                }
                if dst.exists(blob).await? {
                    self.observer.blob_finished(blob);
                    return Ok(Transfer::Present);
                }
                self.upload(src, dst, blob).await
            }
            Turn::Mine(claim) => {
                let outcome = if self.mount_from_elsewhere(src, dst, blob).await? {
                    self.observer.blob_finished(blob);
                    Transfer::Mounted
                } else {
                    self.upload(src, dst, blob).await?
                };
                claim.complete(here);
                Ok(outcome)
            }
        }
    }

    /// Mounts a blob the job has not moved yet: from its source repository when that is on the
    /// destination's registry, else from where earlier runs saw it there (a stale place costs one
    /// refused mount, and is forgotten).
    async fn mount_from_elsewhere(
        &self,
        src: &dyn ReadStore,
        dst: &dyn Store,
        blob: &Descriptor,
    ) -> Result<bool, CopyError> {
        let source = src.mount_source();
        if let Some(from) = &source
            && dst.mount(blob, from).await?
        {
            return Ok(true);
        }
        // Asked for after the source's answer, which may have taught that the registry does not
        // mount; the source repository is not asked twice.
        for from in dst.mount_candidates(blob) {
            let tried = source
                .as_ref()
                .is_some_and(|s| s.host == from.host && s.repository == from.repository);
            if !tried && dst.mount(blob, &from).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Streams one blob, starting over (with a fresh read of the source) when the failure may pass:
    /// network trouble up to the job's attempts; bytes that did not match their digest (damaged in
    /// transit, on either side), an upload session the registry lost, or a body refused as too
    /// large (sent in chunks the next time), once more.
    async fn upload(
        &self,
        src: &dyn ReadStore,
        dst: &dyn Store,
        blob: &Descriptor,
    ) -> Result<Transfer, CopyError> {
        let _slot = self
            .transfers
            .acquire()
            .await
            .expect("the semaphore is never closed");
        self.observer.blob_started(blob);
        let mut attempt = 1;
        let mut started_over = false;
        loop {
            tracing::debug!(digest = %blob.digest, size = blob.size, attempt, "copying blob");
            let result = async {
                let observer = self.observer.clone();
                let counted = blob.clone();
                let body = src.fetch(blob).await?.map(move |chunk| {
                    if let Ok(bytes) = &chunk {
                        observer.blob_bytes(&counted, bytes.len() as u64);
                    }
                    chunk
                });
                dst.push(blob, Box::pin(body))
                    .await
                    .map_err(|error| CopyError::Transfer {
                        source_location: src.location(),
                        error,
                    })
            }
            .await;
            match result {
                Ok(()) => {
                    tracing::info!(digest = %blob.digest, size = blob.size, "copied blob");
                    self.observer.blob_finished(blob);
                    return Ok(Transfer::Streamed(blob.size));
                }
                Err(e)
                    if (e.is_retryable() && attempt < self.options.attempts.max(1))
                        || (e.is_worth_one_more_upload() && !started_over) =>
                {
                    let wait = Duration::from_millis(500 << attempt.min(6));
                    tracing::info!(digest = %blob.digest, "blob transfer failed ({}); trying again in {wait:?}", wharf_store::chain(&e));
                    tokio::time::sleep(wait).await;
                    // The one start-over does not use up an attempt meant for network trouble.
                    if e.is_retryable() && attempt < self.options.attempts.max(1) {
                        attempt += 1;
                    } else {
                        started_over = true;
                    }
                    // The failed upload may have completed after all; look before sending it again.
                    if dst.exists(blob).await? {
                        self.observer.blob_finished(blob);
                        return Ok(Transfer::Streamed(blob.size));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The tag of a child copied beside its index: `wharf-<hex>`.
fn colocated_tag(digest: &Digest) -> String {
    format!("wharf-{}", digest.hex())
}

/// True when a registry refused an index because its children are not in the same repository.
fn refuses_sparse(error: &CopyError) -> bool {
    let CopyError::Store(e) = error else {
        return false;
    };
    matches!(
        &*e.kind,
        wharf_store::ErrorKind::Registry { status: 400, code: Some(code), .. }
            if code == "MANIFEST_BLOB_UNKNOWN" || code == "MANIFEST_INVALID"
    )
}

/// Tags looked through for an index that lists a child by digest.
const INDEXES_SEARCHED: usize = 100;

/// A child that `address` names by digest in a repository where only an index lists it, from the
/// nested repository that index names for it: through the index the address's tag names, else
/// through the repository's tagged indexes.
async fn find_nested_child(
    src: &dyn ReadStore,
    address: &Address,
) -> Result<Option<(Arc<dyn ReadStore>, Descriptor)>, CopyError> {
    let Some(wanted) = address.digest() else {
        return Ok(None);
    };
    let tags = match address.tag() {
        Some(tag) => vec![tag.to_owned()],
        None => src.tags().await.unwrap_or_default(),
    };
    for tag in tags.iter().take(INDEXES_SEARCHED) {
        let Ok(index) = src.resolve(tag).await else {
            continue;
        };
        if media_type::kind(&index.media_type) != media_type::Kind::Index {
            continue;
        }
        let manifest = src.fetch_manifest(&index).await?;
        let ManifestBody::Index(body) = manifest.body() else {
            continue;
        };
        for child in body.manifests.iter().filter(|c| c.digest == *wanted) {
            if let Some(home) = child_home(src, child).await? {
                let root = home.resolve(wanted.as_str()).await?;
                return Ok(Some((home, root)));
            }
        }
    }
    Ok(None)
}
