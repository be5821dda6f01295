//! `wharf inspect LOCATION`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;
use wharf_bundle::imgpkg::{Bundle, ImageLocations, ImagesLock, REPOSITORY_ANNOTATION};
use wharf_copy::TreeNode;
use wharf_oci::{Descriptor, Digest, ManifestBody, media_type};
use wharf_store::{Address, ReadStore};

use super::parse_image_address;
use super::registry_args::session;
use crate::args::{Format, InspectArgs};
use crate::output::{human_bytes, out, out_json};

pub async fn run(args: InspectArgs) -> Result<ExitCode> {
    let location = parse_image_address(&args.location, "inspected")?;
    let store = session(&args.registry)?.read(&location).await?;
    let descriptor = location.resolve_in(store.as_ref()).await?;
    if args.tree {
        let root = wharf_copy::tree(store.as_ref(), &descriptor).await?;
        match args.output {
            Format::Json => out_json(&tree_json(&root))?,
            Format::Text => print_tree(&root, 0),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let manifest = store.fetch_manifest(&descriptor).await?;
    if args.raw {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(manifest.raw())
            .context("writing to stdout")?;
        stdout.flush().context("writing to stdout")?;
        return Ok(ExitCode::SUCCESS);
    }
    let bundle = match manifest.body() {
        ManifestBody::Image(_) => BundleFacts::of(&store, &location, &descriptor).await,
        ManifestBody::Index(_) => None,
    };
    if args.output == Format::Json {
        let body: serde_json::Value =
            serde_json::from_slice(manifest.raw()).context("manifest is not JSON")?;
        let mut document = json!({
            "location": location.to_string(),
            "descriptor": descriptor,
            "manifest": body,
        });
        if let Some(facts) = &bundle {
            document["imgpkgBundle"] = facts.to_json();
        }
        out_json(&document)?;
        return Ok(ExitCode::SUCCESS);
    }
    out!("{location}");
    out!("Digest:      {}", descriptor.digest);
    out!("Media type:  {}", manifest.media_type());
    out!("Size:        {} bytes", descriptor.size);
    match manifest.body() {
        ManifestBody::Index(index) => {
            out!("Manifests:");
            for entry in &index.manifests {
                let platform = entry
                    .platform
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "-".into());
                out!("  {platform:<16} {}", line(entry));
            }
        }
        ManifestBody::Image(image) => {
            if let Some(artifact_type) = &image.artifact_type {
                out!("Artifact:    {artifact_type}");
            }
            out!("Config:      {}", line(&image.config));
            out!("Layers:");
            for layer in &image.layers {
                out!("  {}", line(layer));
            }
        }
    }
    if let Some(subject) = manifest.subject() {
        out!("Subject:     {}", line(subject));
    }
    if !manifest.annotations().is_empty() {
        out!("Annotations:");
        for (key, value) in manifest.annotations() {
            out!("  {key}: {value}");
        }
    }
    if let Some(facts) = &bundle {
        facts.print();
    }
    Ok(ExitCode::SUCCESS)
}

/// What `inspect` shows of an imgpkg bundle: its lock, its location record, and the location
/// artifacts attached to it.
struct BundleFacts {
    lock: ImagesLock,
    record: Option<String>,
    /// Each location artifact: its digest and the repository it describes.
    copies: Vec<(Digest, String)>,
}

impl BundleFacts {
    /// The facts of the image at `descriptor` if it is a bundle. What cannot be read of a bundle is
    /// a warning: the rest of what inspect shows still stands.
    async fn of(
        store: &Arc<dyn ReadStore>,
        location: &Address,
        descriptor: &Descriptor,
    ) -> Option<BundleFacts> {
        let read = async {
            match Bundle::at(
                store.clone(),
                &location.with(None, None),
                descriptor.clone(),
            )
            .await?
            {
                Some(bundle) => BundleFacts::read(&bundle).await.map(Some),
                None => Ok(None),
            }
        };
        read.await.unwrap_or_else(|e: anyhow::Error| {
            tracing::warn!("{location} looks like an imgpkg bundle, but: {e:#}");
            None
        })
    }

    async fn read(bundle: &Bundle) -> Result<BundleFacts> {
        let lock = bundle.lock().await?;
        let record = bundle
            .record()
            .await?
            .map(|_| ImageLocations::tag(bundle.digest()));
        let copies = bundle
            .store
            .referrers(&bundle.descriptor, Some(media_type::WHARF_IMAGE_LOCATIONS))
            .await?
            .into_iter()
            .map(|d| {
                let repository = d
                    .annotations
                    .get(REPOSITORY_ANNOTATION)
                    .cloned()
                    .unwrap_or_default();
                (d.digest, repository)
            })
            .collect();
        Ok(BundleFacts {
            lock,
            record,
            copies,
        })
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "images": self.lock.images.iter().map(|i| json!({
                "image": i.image,
                "annotations": i.annotations,
            })).collect::<Vec<_>>(),
            "record": self.record,
            "locations": self.copies.iter().map(|(digest, repository)| json!({
                "digest": digest,
                "repository": repository,
            })).collect::<Vec<_>>(),
        })
    }

    fn print(&self) {
        out!("imgpkg bundle: {} images locked", self.lock.images.len());
        for image in &self.lock.images {
            out!("  {}", image.image);
        }
        match &self.record {
            Some(tag) => out!("Location record: {tag} (every image is in this repository)"),
            None => out!("Location record: none here"),
        }
        for (digest, repository) in &self.copies {
            out!("Copied to:   {repository}  (record artifact {digest})");
        }
    }
}

/// One line per manifest, children indented below their index.
fn print_tree(node: &TreeNode, depth: usize) {
    let platform = node
        .descriptor
        .platform
        .as_ref()
        .map(|p| format!("  {p}"))
        .unwrap_or_default();
    out!(
        "{:indent$}{}  {}{platform}  in {}",
        "",
        node.descriptor.digest,
        node.descriptor.media_type,
        node.location,
        indent = depth * 2
    );
    for child in &node.children {
        print_tree(child, depth + 1);
    }
}

fn tree_json(node: &TreeNode) -> serde_json::Value {
    json!({
        "descriptor": node.descriptor,
        "location": node.location,
        "children": node.children.iter().map(tree_json).collect::<Vec<_>>(),
    })
}

fn line(d: &Descriptor) -> String {
    format!("{}  {}  {}", d.digest, d.media_type, human_bytes(d.size))
}
