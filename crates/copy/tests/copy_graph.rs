//! The copy engine between real stores: whole graphs, skipping, shared blobs, referrers' subjects, and
//! failures that leave the destination without dangling names.

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use wharf_copy::{CopyOptions, copy_graph};
use wharf_oci::{Descriptor, ImageManifest, Manifest, media_type};
use wharf_sample::Sample;
use wharf_store::layout::Layout;
use wharf_store::memory::MemoryStore;
use wharf_store::{ByteStream, ManifestRole, ReadStore, Store};

async fn bytes_of(store: &dyn ReadStore, d: &Descriptor) -> Vec<u8> {
    let mut s = store.fetch(d).await.unwrap();
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

#[tokio::test]
async fn copies_a_multi_arch_index_whole_and_skips_on_rerun() {
    let src = MemoryStore::new();
    let pushed = Sample::multi_arch("app", 3)
        .push(&src, ManifestRole::Tag("1.0"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dst = Layout::create(dir.path().join("out")).await.unwrap();

    let root = src.resolve("1.0").await.unwrap();
    let report = copy_graph(
        &src,
        &dst,
        &root,
        ManifestRole::Tag("1.0"),
        &CopyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.manifests_copied, 3);
    assert_eq!(report.blobs_copied, pushed.blobs.len());
    assert_eq!(
        report.bytes_copied,
        pushed.blobs.iter().map(|b| b.size).sum::<u64>()
    );
    for d in pushed.blobs.iter().chain(&pushed.manifests) {
        assert_eq!(
            bytes_of(&dst, d).await,
            bytes_of(&src, d).await,
            "{}",
            d.digest
        );
    }
    assert_eq!(dst.resolve("1.0").await.unwrap().digest, root.digest);

    // A second copy finds the root present and writes nothing but the tag.
    let again = copy_graph(
        &src,
        &dst,
        &root,
        ManifestRole::Tag("again"),
        &CopyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            again.manifests_copied,
            again.blobs_copied,
            again.manifests_present
        ),
        (0, 0, 1)
    );
    assert_eq!(dst.tags().await.unwrap(), ["1.0", "again"]);
}

#[tokio::test]
async fn reuses_blobs_the_destination_already_has() {
    let src = MemoryStore::new();
    let dst = MemoryStore::new();
    let one = Sample::multi_arch("one", 1)
        .push(&src, ManifestRole::Tag("a"))
        .await
        .unwrap();
    // The destination holds one platform manifest already (and so its whole subtree).
    let child = &one.manifests[0];
    copy_graph(
        &src,
        &dst,
        child,
        ManifestRole::Child,
        &CopyOptions::default(),
    )
    .await
    .unwrap();
    let report = copy_graph(
        &src,
        &dst,
        &one.root,
        ManifestRole::Tag("a"),
        &CopyOptions {
            concurrency: 1,
            ..CopyOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.manifests_present, 1);
    assert_eq!(
        report.manifests_copied, 2,
        "the other platform and the index"
    );
    assert_eq!(report.blobs_copied, 3);
}

fn artifact_for(subject: &Descriptor, config: &Descriptor) -> Manifest {
    Manifest::from_image(&ImageManifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        artifact_type: Some("application/vnd.example.signature".into()),
        config: config.clone(),
        layers: vec![config.clone()],
        subject: Some(subject.clone()),
        annotations: Default::default(),
    })
}

fn once(bytes: &'static [u8]) -> ByteStream {
    Box::pin(stream::once(async move { Ok(Bytes::from_static(bytes)) }))
}

#[tokio::test]
async fn copies_a_referrer_with_its_subject_and_tolerates_an_absent_subject() {
    let src = MemoryStore::new();
    let image = Sample::single("img", 1, 100, 5)
        .push(&src, ManifestRole::Tag("v"))
        .await
        .unwrap();
    let empty = Descriptor::for_bytes(media_type::OCI_EMPTY, b"{}");
    src.push(&empty, once(b"{}")).await.unwrap();
    let sig = artifact_for(&image.root, &empty);
    src.push_manifest(
        &sig.descriptor(),
        sig.raw().clone(),
        ManifestRole::Tag("sig"),
    )
    .await
    .unwrap();

    let dst = MemoryStore::new();
    let report = copy_graph(
        &src,
        &dst,
        &sig.descriptor(),
        ManifestRole::Tag("sig"),
        &CopyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.manifests_copied, 2, "the signature and its subject");
    assert!(dst.exists(&image.root).await.unwrap());

    let orphan = artifact_for(
        &Descriptor::for_bytes(media_type::OCI_MANIFEST, b"gone"),
        &empty,
    );
    src.push_manifest(
        &orphan.descriptor(),
        orphan.raw().clone(),
        ManifestRole::Root,
    )
    .await
    .unwrap();
    let report = copy_graph(
        &src,
        &dst,
        &orphan.descriptor(),
        ManifestRole::Root,
        &CopyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.manifests_copied, 1);
}

/// A source that serves wrong bytes for one blob.
struct Corrupting {
    inner: MemoryStore,
    victim: Descriptor,
}

#[async_trait::async_trait]
impl ReadStore for Corrupting {
    fn location(&self) -> String {
        "corrupting".into()
    }
    async fn resolve(&self, r: &str) -> wharf_store::Result<Descriptor> {
        self.inner.resolve(r).await
    }
    async fn fetch(&self, d: &Descriptor) -> wharf_store::Result<ByteStream> {
        if d.digest == self.victim.digest {
            let junk = Bytes::from(vec![0u8; d.size as usize]);
            return Ok(Box::pin(stream::once(async move { Ok(junk) })));
        }
        self.inner.fetch(d).await
    }
    async fn exists(&self, d: &Descriptor) -> wharf_store::Result<bool> {
        self.inner.exists(d).await
    }
}

#[tokio::test]
async fn a_corrupt_blob_fails_the_copy_and_names_nothing() {
    let inner = MemoryStore::new();
    let pushed = Sample::multi_arch("bad", 9)
        .push(&inner, ManifestRole::Tag("t"))
        .await
        .unwrap();
    let victim = pushed.blobs[1].clone();
    let src = Corrupting {
        inner,
        victim: victim.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let dst = Layout::create(dir.path()).await.unwrap();
    let err = copy_graph(
        &src,
        &dst,
        &pushed.root,
        ManifestRole::Tag("t"),
        &CopyOptions::default(),
    )
    .await
    .unwrap_err();
    let message = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(message.contains(victim.digest.as_str()), "{message}");
    assert!(!dst.exists(&victim).await.unwrap());
    assert!(dst.tags().await.unwrap().is_empty());
    for manifest in &pushed.manifests {
        assert!(
            !dst.exists(manifest).await.unwrap(),
            "no manifest above missing content"
        );
    }
}
