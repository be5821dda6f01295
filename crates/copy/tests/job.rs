//! The job's shared state, watched directly: a blob several images need is uploaded once per registry
//! and mounted into the other repositories, once per repository; a manifest two roots share is pushed
//! once; and an image that fails or is cancelled while others wait for its upload hands the upload
//! on instead of leaving them waiting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::join_all;
use wharf_copy::{CopyOptions, Job, Silent};
use wharf_oci::{Descriptor, Digest, ImageIndex, ImageManifest, Manifest, media_type};
use wharf_store::memory::MemoryStore;
use wharf_store::{
    ByteStream, ErrorKind, ManifestRole, MountSource, Op, ReadStore, Result, Store, StoreError,
};

/// A registry host of in-memory repositories that can mount blobs between them, counting what it
/// is asked to do. Uploads take `delay`, so that concurrent images meet.
struct FakeHost {
    repositories: Mutex<HashMap<String, Arc<MemoryStore>>>,
    uploads: Mutex<Vec<(String, Digest)>>,
    mounts: Mutex<Vec<(String, Digest)>>,
    manifests: Mutex<Vec<(String, Digest)>>,
    delay: Duration,
}

impl FakeHost {
    fn new(delay: Duration) -> Arc<FakeHost> {
        Arc::new(FakeHost {
            repositories: Mutex::default(),
            uploads: Mutex::default(),
            mounts: Mutex::default(),
            manifests: Mutex::default(),
            delay,
        })
    }

    fn repository(self: &Arc<Self>, name: &str) -> FakeRepository {
        let store = self
            .repositories
            .lock()
            .unwrap()
            .entry(name.to_owned())
            .or_default()
            .clone();
        FakeRepository {
            host: self.clone(),
            name: name.to_owned(),
            store,
        }
    }

    fn count(list: &Mutex<Vec<(String, Digest)>>, digest: &Digest) -> usize {
        list.lock()
            .unwrap()
            .iter()
            .filter(|(_, d)| d == digest)
            .count()
    }
}

struct FakeRepository {
    host: Arc<FakeHost>,
    name: String,
    store: Arc<MemoryStore>,
}

#[async_trait]
impl ReadStore for FakeRepository {
    fn location(&self) -> String {
        format!("fake.test/{}", self.name)
    }
    fn blob_scope(&self) -> String {
        "fake.test".into()
    }
    fn mount_source(&self) -> Option<MountSource> {
        Some(MountSource {
            host: "fake.test".into(),
            repository: self.name.clone(),
            vouched: true,
        })
    }
    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        self.store.resolve(reference).await
    }
    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        self.store.fetch(descriptor).await
    }
    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        self.store.exists(descriptor).await
    }
}

#[async_trait]
impl Store for FakeRepository {
    async fn push(&self, descriptor: &Descriptor, body: ByteStream) -> Result<()> {
        tokio::time::sleep(self.host.delay).await;
        self.store.push(descriptor, body).await?;
        let entry = (self.name.clone(), descriptor.digest.clone());
        self.host.uploads.lock().unwrap().push(entry);
        Ok(())
    }
    async fn push_manifest(
        &self,
        descriptor: &Descriptor,
        raw: Bytes,
        role: ManifestRole<'_>,
    ) -> Result<()> {
        let entry = (self.name.clone(), descriptor.digest.clone());
        self.host.manifests.lock().unwrap().push(entry);
        self.store.push_manifest(descriptor, raw, role).await
    }
    async fn mount(&self, descriptor: &Descriptor, from: &MountSource) -> Result<bool> {
        let source = self.host.repository(&from.repository);
        if from.repository == self.name || !source.store.exists(descriptor).await? {
            return Ok(false);
        }
        self.store
            .push(descriptor, source.store.fetch(descriptor).await?)
            .await?;
        let entry = (self.name.clone(), descriptor.digest.clone());
        self.host.mounts.lock().unwrap().push(entry);
        Ok(true)
    }
}

/// A source whose fetches of one blob fail the first `failures` times.
struct Flaky {
    inner: MemoryStore,
    blob: Digest,
    failures: AtomicUsize,
}

#[async_trait]
impl ReadStore for Flaky {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        self.inner.resolve(reference).await
    }
    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        if descriptor.digest == self.blob
            && self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(StoreError::new(
                Op::Fetch,
                self.location(),
                ErrorKind::Invalid("unreadable, this once".into()),
            ));
        }
        self.inner.fetch(descriptor).await
    }
    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        self.inner.exists(descriptor).await
    }
}

async fn put(store: &dyn Store, media_type: &str, bytes: &[u8]) -> Descriptor {
    let descriptor = Descriptor::for_bytes(media_type, bytes);
    let body: ByteStream = Box::pin(futures_util::stream::iter([Ok(Bytes::from(
        bytes.to_vec(),
    ))]));
    store.push(&descriptor, body).await.unwrap();
    descriptor
}

/// `count` images in `store` tagged `img0..`, each with the shared layer and one of its own.
async fn images(store: &dyn Store, count: usize) -> (Descriptor, Vec<Descriptor>) {
    let shared = put(store, media_type::OCI_LAYER_TAR, &[7u8; 4096]).await;
    let mut roots = Vec::new();
    for i in 0..count {
        let config = put(
            store,
            media_type::OCI_CONFIG,
            format!("{{\"i\":{i}}}").as_bytes(),
        )
        .await;
        let own = put(
            store,
            media_type::OCI_LAYER_TAR,
            format!("own {i}").as_bytes(),
        )
        .await;
        let manifest = Manifest::from_image(&ImageManifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.into()),
            artifact_type: None,
            config,
            layers: vec![shared.clone(), own],
            subject: None,
            annotations: Default::default(),
        });
        let root = manifest.descriptor();
        store
            .push_manifest(
                &root,
                manifest.raw().clone(),
                ManifestRole::Tag(&format!("img{i}")),
            )
            .await
            .unwrap();
        roots.push(root);
    }
    (shared, roots)
}

fn job() -> Job {
    Job::new(CopyOptions::default(), Arc::new(Silent))
}

#[tokio::test]
async fn a_shared_blob_is_uploaded_once_and_mounted_once_per_other_repository() {
    let source = MemoryStore::new();
    let (shared, roots) = images(&source, 6).await;
    let host = FakeHost::new(Duration::from_millis(50));
    let job = job();
    // One image into `first`, which claims the shared layer; then five into `second` at once, while
    // it is being uploaded: they wait, and one of them mounts it.
    let copies = roots.iter().enumerate().map(|(i, root)| {
        let repository = host.repository(if i == 0 { "first" } else { "second" });
        let (job, source) = (&job, &source);
        async move {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let tag = format!("img{i}");
            job.copy(source, &repository, root, ManifestRole::Tag(&tag))
                .await
                .unwrap();
        }
    });
    tokio::time::timeout(Duration::from_secs(10), join_all(copies))
        .await
        .expect("no image waits forever");
    assert_eq!(FakeHost::count(&host.uploads, &shared.digest), 1);
    assert_eq!(FakeHost::count(&host.mounts, &shared.digest), 1);
    let totals = job.totals();
    assert_eq!(totals.blobs_mounted, 1);
    assert_eq!(
        totals.blobs_streamed,
        1 + 6 * 2,
        "the shared layer once, each image's config and own layer"
    );
    for (i, root) in roots.iter().enumerate() {
        let repository = host.repository(if i == 0 { "first" } else { "second" });
        assert_eq!(repository.resolve(&format!("img{i}")).await.unwrap(), *root);
        assert!(repository.exists(&shared).await.unwrap());
    }
}

#[tokio::test]
async fn a_manifest_two_roots_share_is_pushed_once() {
    let source = MemoryStore::new();
    let (_, roots) = images(&source, 1).await;
    let child = roots[0].clone();
    let mut parents = Vec::new();
    for name in ["one", "two"] {
        let mut index = ImageIndex::new();
        index.manifests.push(child.clone());
        index.annotations.insert("name".into(), name.into());
        let index = Manifest::from_index(&index);
        let root = index.descriptor();
        source
            .push_manifest(&root, index.raw().clone(), ManifestRole::Tag(name))
            .await
            .unwrap();
        parents.push((name, root));
    }
    let host = FakeHost::new(Duration::from_millis(20));
    let destination = host.repository("app");
    let job = job();
    join_all(
        parents
            .iter()
            .map(|(name, root)| job.copy(&source, &destination, root, ManifestRole::Tag(name))),
    )
    .await
    .into_iter()
    .for_each(|r| {
        r.unwrap();
    });
    assert_eq!(FakeHost::count(&host.manifests, &child.digest), 1);
    for (name, root) in &parents {
        assert_eq!(destination.resolve(name).await.unwrap().digest, root.digest);
    }
}

#[tokio::test]
async fn an_image_that_fails_hands_its_upload_to_those_waiting() {
    let inner = MemoryStore::new();
    let (shared, roots) = images(&inner, 3).await;
    let source = Flaky {
        inner,
        blob: shared.digest.clone(),
        failures: AtomicUsize::new(1),
    };
    let host = FakeHost::new(Duration::from_millis(30));
    let destination = host.repository("app");
    let job = job();
    let results = tokio::time::timeout(
        Duration::from_secs(10),
        join_all(roots.iter().enumerate().map(|(i, root)| {
            let tag = format!("img{i}");
            let (job, source, destination) = (&job, &source, &destination);
            async move {
                job.copy(source, destination, root, ManifestRole::Tag(&tag))
                    .await
            }
        })),
    )
    .await
    .expect("no image waits forever for an upload that failed");
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 1, "only the image whose fetch failed fails");
    assert!(destination.exists(&shared).await.unwrap());
    assert_eq!(FakeHost::count(&host.uploads, &shared.digest), 1);
}

#[tokio::test]
async fn an_image_cancelled_mid_upload_hands_it_on() {
    let source = MemoryStore::new();
    let (shared, roots) = images(&source, 2).await;
    let host = FakeHost::new(Duration::from_millis(300));
    let destination = host.repository("app");
    let job = job();
    let first = job.copy(&source, &destination, &roots[0], ManifestRole::Tag("img0"));
    let second = async {
        // Starts after the first has claimed the shared layer.
        tokio::time::sleep(Duration::from_millis(50)).await;
        job.copy(&source, &destination, &roots[1], ManifestRole::Tag("img1"))
            .await
    };
    let (cancelled, second) = tokio::join!(
        tokio::time::timeout(Duration::from_millis(100), first),
        tokio::time::timeout(Duration::from_secs(10), second),
    );
    assert!(cancelled.is_err(), "the first copy was cut off mid-upload");
    second
        .expect("the waiting image does not wait forever")
        .unwrap();
    assert!(destination.exists(&shared).await.unwrap());
    assert_eq!(
        destination.resolve("img1").await.unwrap().digest,
        roots[1].digest
    );
}
