//! Discovery: the manifests of a graph the destination lacks, the blobs they need, and the order in
//! which the manifests may be pushed. Index children that live in nested repositories are set
//! aside: they are copied into their own repositories, not this one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt, stream};
use wharf_oci::{Descriptor, Digest, Manifest, ManifestBody};
use wharf_store::{ReadStore, Store, StoreError};

use crate::CopyError;

/// A manifest found during discovery, with the successors the destination lacks.
pub(crate) struct Node {
    pub descriptor: Descriptor,
    pub manifest: Manifest,
    /// Child manifests to push before this one.
    pub children: Vec<Digest>,
}

/// An index child whose home is a nested repository.
pub(crate) struct NestedChild {
    /// The index that lists it.
    pub parent: Digest,
    /// Its descriptor, as the index lists it.
    pub child: Descriptor,
    /// Its repository, relative to the index's.
    pub path: String,
    /// The tag it goes by there.
    pub tag: Option<String>,
}

/// Everything discovery learned.
#[derive(Default)]
pub(crate) struct Plan {
    /// Index children that live in nested repositories.
    pub nested: Vec<NestedChild>,
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
) -> Result<(), CopyError> {
    plan.seen.insert(root.digest.clone());
    let mut level = vec![(root, root_manifest)];
    while !level.is_empty() {
        let mut wanted: Vec<Descriptor> = Vec::new();
        let mut blobs: Vec<Descriptor> = Vec::new();
        for (descriptor, manifest) in level {
            let mut children = Vec::new();
            for successor in manifest.successors() {
                let digest = &successor.digest;
                let is_child = matches!(manifest.body(), ManifestBody::Index(_))
                    && manifest.subject() != Some(successor);
                if is_child
                    && let Some(nested) =
                        wharf_oci::nested::nested(successor).map_err(|error| CopyError::Nested {
                            index: descriptor.digest.clone(),
                            error,
                        })?
                {
                    // One digest may live in several nested repositories: each is a child.
                    let known = plan.nested.iter().any(|n| {
                        n.parent == descriptor.digest
                            && n.child.digest == *digest
                            && n.path == nested.path
                    });
                    if !known {
                        plan.nested.push(NestedChild {
                            parent: descriptor.digest.clone(),
                            child: successor.clone(),
                            path: nested.path.to_owned(),
                            tag: nested.tag.map(str::to_owned),
                        });
                    }
                    continue;
                }
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
                } else {
                    blobs.push(successor.clone());
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
        // The level's blobs are looked for all at once, not one after another.
        let present: Vec<(Descriptor, bool)> = stream::iter(blobs)
            .map(|blob| async move {
                let present = dst.exists(&blob).await?;
                Ok::<_, StoreError>((blob, present))
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        for (blob, present) in present {
            if present {
                plan.blobs_present += 1;
            } else {
                plan.blobs.insert(blob.digest.clone(), blob);
            }
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

/// Where an index child is read: the nested repository it names, when that holds it; `None` for
/// the index's own repository (where strict registries keep copies of children, and where plain
/// children are).
pub(crate) async fn child_home(
    here: &dyn ReadStore,
    child: &Descriptor,
) -> Result<Option<Arc<dyn ReadStore>>, CopyError> {
    let Some(nested) = wharf_oci::nested::nested(child).map_err(|error| CopyError::Nested {
        index: child.digest.clone(),
        error,
    })?
    else {
        return Ok(None);
    };
    Ok(match here.nested(nested.path)? {
        Some(store) if matches!(store.exists(child).await, Ok(true)) => Some(store),
        _ => None,
    })
}
