//! Discovery: the manifests of a graph the destination lacks, the blobs they need, and the order in
//! which the manifests may be pushed.

use std::collections::{HashMap, HashSet};

use futures_util::{StreamExt, TryStreamExt, stream};
use wharf_oci::{Descriptor, Digest, Manifest};
use wharf_store::{ReadStore, Store, StoreError};

/// A manifest found during discovery, with the successors the destination lacks.
pub(crate) struct Node {
    pub descriptor: Descriptor,
    pub manifest: Manifest,
    /// Child manifests to push before this one.
    pub children: Vec<Digest>,
}

/// Everything discovery learned.
#[derive(Default)]
pub(crate) struct Plan {
    /// Every digest already looked at, so shared content is considered once.
    pub seen: HashSet<Digest>,
    pub nodes: HashMap<Digest, Node>,
    pub blobs: HashMap<Digest, Descriptor>,
    pub manifests_present: usize,
    pub blobs_present: usize,
}

/// Walks the graph level by level, fetching each level's manifests concurrently.
pub(crate) async fn discover(
    src: &dyn ReadStore,
    dst: &dyn Store,
    root: Descriptor,
    root_manifest: Manifest,
    plan: &mut Plan,
    concurrency: usize,
) -> Result<(), StoreError> {
    plan.seen.insert(root.digest.clone());
    let mut level = vec![(root, root_manifest)];
    while !level.is_empty() {
        let mut wanted: Vec<Descriptor> = Vec::new();
        for (descriptor, manifest) in level {
            let mut children = Vec::new();
            for successor in manifest.successors() {
                let digest = &successor.digest;
                // The subject is copied along when the source has it; a referrer may outlive its subject.
                if manifest.subject() == Some(successor) && !src.exists(successor).await? {
                    tracing::debug!(subject = %digest, "subject not in the source; not copied");
                    continue;
                }
                if successor.is_manifest() {
                    children.push(digest.clone());
                }
                if !plan.seen.insert(digest.clone()) {
                    continue;
                }
                if successor.is_manifest() {
                    wanted.push(successor.clone());
                } else if dst.exists(successor).await? {
                    plan.blobs_present += 1;
                } else {
                    plan.blobs.insert(digest.clone(), successor.clone());
                }
            }
            plan.nodes.insert(
                descriptor.digest.clone(),
                Node {
                    descriptor,
                    manifest,
                    children,
                },
            );
        }
        let fetched: Vec<Option<(Descriptor, Manifest)>> = stream::iter(wanted)
            .map(|descriptor| async move {
                if dst.exists(&descriptor).await? {
                    return Ok(None);
                }
                let manifest = src.fetch_manifest(&descriptor).await?;
                Ok::<_, StoreError>(Some((descriptor, manifest)))
            })
            .buffered(concurrency)
            .try_collect()
            .await?;
        plan.manifests_present += fetched.iter().filter(|f| f.is_none()).count();
        level = fetched.into_iter().flatten().collect();
    }
    Ok(())
}

/// Children before parents: the order in which manifests may be pushed.
pub(crate) fn push_order(plan: &Plan, digest: &Digest, order: &mut Vec<Digest>) {
    let Some(node) = plan.nodes.get(digest) else {
        return; // present in the destination already, or an absent subject
    };
    if order.contains(digest) {
        return; // reached through another parent; graphs are small enough for a linear check
    }
    for child in &node.children {
        push_order(plan, child, order);
    }
    order.push(digest.clone());
}
