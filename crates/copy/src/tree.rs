//! The shape of a graph, for people: each manifest with the repository it was read from, index
//! children from the nested repositories they name.

use std::sync::Arc;

use wharf_oci::{Descriptor, ManifestBody};
use wharf_store::ReadStore;

use crate::CopyError;
use crate::graph::child_home;

/// A manifest and the manifests below it.
#[derive(Debug, Clone)]
pub struct TreeNode {
    /// The manifest, as its parent lists it.
    pub descriptor: Descriptor,
    /// Where it was read.
    pub location: String,
    /// Its children, for an index.
    pub children: Vec<TreeNode>,
}

/// The manifests below `root` in `store`.
pub async fn tree(store: &dyn ReadStore, root: &Descriptor) -> Result<TreeNode, CopyError> {
    node(store, None, root.clone()).await
}

async fn node(
    here: &dyn ReadStore,
    place: Option<Arc<dyn ReadStore>>,
    descriptor: Descriptor,
) -> Result<TreeNode, CopyError> {
    let store: &dyn ReadStore = place.as_deref().unwrap_or(here);
    let manifest = store.fetch_manifest(&descriptor).await?;
    let mut children = Vec::new();
    if let ManifestBody::Index(index) = manifest.body() {
        for child in &index.manifests {
            let home = child_home(store, child).await?;
            let home = home.or_else(|| place.clone());
            children.push(Box::pin(node(here, home, child.clone())).await?);
        }
    }
    Ok(TreeNode {
        descriptor,
        location: store.location(),
        children,
    })
}
