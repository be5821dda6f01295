//! Generated OCI images for wharf's demo, tests and benchmarks.
//!
//! A [`Sample`] describes an image by its shape (platforms, layers, layer size, a seed); [`Sample::push`]
//! builds real content into any store: each layer is a gzip-compressed tar holding one file of seeded
//! random bytes, each config lists the layers' diff IDs, and several platforms make an OCI index. The same
//! sample always produces the same digests. Layers are built in memory, so samples are meant to be small
//! (the demo and tests use kilobytes to a few megabytes).
//!
//! ```no_run
//! # async fn demo(store: &dyn wharf_store::Store) -> wharf_store::Result<()> {
//! use wharf_sample::Sample;
//! use wharf_store::ManifestRole;
//! let image = Sample::multi_arch("demo/app", 7).push(store, ManifestRole::Tag("1.0")).await?;
//! println!("{} blobs, root {}", image.blobs.len(), image.root.digest);
//! # Ok(()) }
//! ```

use std::io::Write;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use futures_util::stream;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use serde_json::json;
use wharf_oci::{Algorithm, Descriptor, ImageIndex, ImageManifest, Manifest, Platform, media_type};
use wharf_store::{ManifestRole, Result, Store};

/// The shape of a generated image.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Written into each layer's file name, so different names give different content.
    pub name: String,
    /// One manifest per platform; more than one makes an index.
    pub platforms: Vec<Platform>,
    /// Layers per platform.
    pub layers: usize,
    /// Bytes of random data in each layer's file.
    pub layer_bytes: usize,
    /// Seeds the random data.
    pub seed: u64,
}

/// What [`Sample::push`] wrote.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The root: an index, or the single manifest.
    pub root: Descriptor,
    /// Every manifest, children first, the root last.
    pub manifests: Vec<Descriptor>,
    /// Every config and layer.
    pub blobs: Vec<Descriptor>,
}

impl Sample {
    /// A linux/amd64 + linux/arm64 image with two 16 KiB layers per platform.
    pub fn multi_arch(name: &str, seed: u64) -> Sample {
        Sample {
            name: name.to_owned(),
            platforms: vec![
                Platform::new("linux", "amd64", None),
                Platform::new("linux", "arm64", Some("v8")),
            ],
            layers: 2,
            layer_bytes: 16 * 1024,
            seed,
        }
    }

    /// A single-platform image (linux/amd64).
    pub fn single(name: &str, layers: usize, layer_bytes: usize, seed: u64) -> Sample {
        Sample {
            name: name.to_owned(),
            platforms: vec![Platform::new("linux", "amd64", None)],
            layers,
            layer_bytes,
            seed,
        }
    }

    /// Builds the image and pushes it into `store`, naming the root as `role` says.
    pub async fn push(&self, store: &dyn Store, role: ManifestRole<'_>) -> Result<Pushed> {
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let mut pushed = Pushed {
            root: Descriptor::for_bytes(media_type::OCI_MANIFEST, b""),
            manifests: Vec::new(),
            blobs: Vec::new(),
        };
        let mut index = ImageIndex::new();
        for platform in &self.platforms {
            let mut layers = Vec::new();
            let mut diff_ids = Vec::new();
            for n in 0..self.layers {
                let (tar, gz) = self.layer(&mut rng, platform, n);
                diff_ids.push(Algorithm::Sha256.digest(&tar).to_string());
                layers.push(push_blob(store, media_type::OCI_LAYER_GZIP, gz, &mut pushed).await?);
            }
            let config = json!({
                "architecture": platform.architecture,
                "os": platform.os,
                "variant": platform.variant,
                "config": {"Labels": {"org.opencontainers.image.title": self.name}},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            });
            let config = Bytes::from(serde_json::to_vec(&config).expect("json"));
            let config = push_blob(store, media_type::OCI_CONFIG, config, &mut pushed).await?;
            let manifest = Manifest::from_image(&ImageManifest {
                schema_version: 2,
                media_type: Some(media_type::OCI_MANIFEST.to_owned()),
                artifact_type: None,
                config,
                layers,
                subject: None,
                annotations: Default::default(),
            });
            let mut descriptor = manifest.descriptor();
            let single = self.platforms.len() == 1;
            let manifest_role = if single { role } else { ManifestRole::Child };
            store
                .push_manifest(&descriptor, manifest.raw().clone(), manifest_role)
                .await?;
            pushed.manifests.push(descriptor.clone());
            descriptor.platform = Some(platform.clone());
            index.manifests.push(descriptor);
        }
        if self.platforms.len() == 1 {
            pushed.root = pushed.manifests[0].clone();
            return Ok(pushed);
        }
        let index = Manifest::from_index(&index);
        let descriptor = index.descriptor();
        store
            .push_manifest(&descriptor, index.raw().clone(), role)
            .await?;
        pushed.manifests.push(descriptor.clone());
        pushed.root = descriptor;
        Ok(pushed)
    }

    /// One layer: the tar and its gzip compression.
    fn layer(&self, rng: &mut SmallRng, platform: &Platform, n: usize) -> (Vec<u8>, Bytes) {
        let mut data = vec![0u8; self.layer_bytes];
        rng.fill_bytes(&mut data);
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        let file = format!(
            "{}/{}-{}-layer{n}.bin",
            self.name.replace('/', "_"),
            platform.os,
            platform.architecture
        );
        tar.append_data(&mut header, file, data.as_slice())
            .expect("writing a tar to memory cannot fail");
        let tar = tar.into_inner().expect("in-memory tar");
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&tar).expect("in-memory gzip");
        let gz = gz.finish().expect("in-memory gzip");
        (tar, Bytes::from(gz))
    }
}

async fn push_blob(
    store: &dyn Store,
    media_type: &str,
    bytes: Bytes,
    pushed: &mut Pushed,
) -> Result<Descriptor> {
    let descriptor = Descriptor::for_bytes(media_type, &bytes);
    if !pushed.blobs.contains(&descriptor) {
        store
            .push(&descriptor, Box::pin(stream::once(async { Ok(bytes) })))
            .await?;
        pushed.blobs.push(descriptor.clone());
    }
    Ok(descriptor)
}

#[cfg(test)]
mod tests {
    use wharf_store::ReadStore;
    use wharf_store::memory::MemoryStore;

    use super::*;

    #[tokio::test]
    async fn same_sample_same_digests() {
        let a = MemoryStore::new();
        let b = MemoryStore::new();
        let sample = Sample::multi_arch("x", 1);
        let pa = sample.push(&a, ManifestRole::Tag("t")).await.unwrap();
        let pb = sample.push(&b, ManifestRole::Tag("t")).await.unwrap();
        assert_eq!(pa.root, pb.root);
        assert_eq!(pa.blobs.len(), 2 * 3);
        assert_eq!(pa.manifests.len(), 3);
        assert_eq!(a.resolve("t").await.unwrap().digest, pa.root.digest);
        let other = Sample::multi_arch("x", 2)
            .push(&b, ManifestRole::Root)
            .await
            .unwrap();
        assert_ne!(other.root.digest, pa.root.digest);
    }
}
