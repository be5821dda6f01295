//! The contract every store and namespace keeps, run against each backend: memory, an OCI layout
//! directory and archive, a CTF directory and `.tgz`, and registry repositories on `wharf serve` and on
//! Debian's docker-registry; plus layout-specific file checks.

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use wharf_oci::{Descriptor, ImageIndex, ImageManifest, Manifest, media_type};
use wharf_store::layout::Layout;
use wharf_store::memory::{MemoryNamespace, MemoryStore};
use wharf_store::{
    Address, ByteStream, ErrorKind, Location, ManifestRole, Mode, Namespace, ReadStore, Session,
    SessionOptions, Store,
};

/// The error and its sources on one line, as the CLI prints them.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out += &format!(": {e}");
        source = e.source();
    }
    out
}

fn body(bytes: &'static [u8]) -> ByteStream {
    Box::pin(stream::iter(
        bytes.chunks(3).map(|c| Ok(Bytes::from_static(c))),
    ))
}

async fn read_all(store: &dyn ReadStore, d: &Descriptor) -> Vec<u8> {
    let mut s = store.fetch(d).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

fn image(config: &Descriptor, layer: &Descriptor) -> Manifest {
    Manifest::from_image(&ImageManifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        artifact_type: None,
        config: config.clone(),
        layers: vec![layer.clone()],
        subject: None,
        annotations: Default::default(),
    })
}

/// The shared contract: verified pushes, manifests, tags, resolution.
async fn contract(store: &dyn Store) {
    let config_bytes: &'static [u8] = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}";
    let config = Descriptor::for_bytes(media_type::OCI_CONFIG, config_bytes);
    let layer = Descriptor::for_bytes(media_type::OCI_LAYER_TAR, b"layer bytes");

    assert!(!store.exists(&layer).await.unwrap());
    // Wrong bytes are refused and leave nothing visible.
    let err = store.push(&layer, body(b"layer bytez")).await.unwrap_err();
    assert!(
        matches!(*err.kind, ErrorKind::DigestMismatch { .. }),
        "{}",
        chain(&err)
    );
    assert!(!store.exists(&layer).await.unwrap());
    let err = store
        .push(&layer, body(b"layer bytes and more"))
        .await
        .unwrap_err();
    assert!(
        matches!(*err.kind, ErrorKind::SizeMismatch { .. }),
        "{}",
        chain(&err)
    );
    assert!(!store.exists(&layer).await.unwrap());

    store.push(&layer, body(b"layer bytes")).await.unwrap();
    store.push(&config, body(config_bytes)).await.unwrap();
    assert!(store.exists(&layer).await.unwrap());
    assert_eq!(read_all(store, &layer).await, b"layer bytes");

    let manifest = image(&config, &layer);
    let desc = manifest.descriptor();
    let bad = Bytes::from(
        manifest
            .raw()
            .to_vec()
            .into_iter()
            .rev()
            .collect::<Vec<u8>>(),
    );
    assert!(
        store
            .push_manifest(&desc, bad, ManifestRole::Tag("v1"))
            .await
            .is_err()
    );
    assert!(store.resolve("v1").await.unwrap_err().is_not_found());

    store
        .push_manifest(&desc, manifest.raw().clone(), ManifestRole::Tag("v1"))
        .await
        .unwrap();
    let resolved = store.resolve("v1").await.unwrap();
    assert_eq!(resolved.digest, desc.digest);
    assert_eq!(resolved.media_type, media_type::OCI_MANIFEST);
    assert_eq!(
        store.resolve(desc.digest.as_str()).await.unwrap().digest,
        desc.digest
    );
    let fetched = store.fetch_manifest(&resolved).await.unwrap();
    assert_eq!(fetched.raw(), manifest.raw());

    // Re-tagging moves the tag; the old content stays reachable by digest.
    let mut index = ImageIndex::new();
    index.manifests.push(desc.clone());
    let index = Manifest::from_index(&index);
    store
        .push_manifest(
            &index.descriptor(),
            index.raw().clone(),
            ManifestRole::Tag("v1"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.resolve("v1").await.unwrap().digest,
        index.descriptor().digest
    );
    store
        .push_manifest(&desc, manifest.raw().clone(), ManifestRole::Tag("v2"))
        .await
        .unwrap();
    assert_eq!(store.tags().await.unwrap(), ["v1", "v2"]);

    let missing = Descriptor::for_bytes(media_type::OCI_LAYER_TAR, b"absent");
    let err = match store.fetch(&missing).await {
        Ok(_) => panic!("fetched absent content"),
        Err(e) => e,
    };
    assert!(err.is_not_found(), "{}", chain(&err));
    assert!(store.resolve("nope").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    contract(&MemoryStore::new()).await;
}

/// The namespace contract: two repositories written apart, listed, and read back as written.
async fn namespace_contract(namespace: &dyn Namespace) {
    contract(namespace.write("team/app").unwrap().as_ref()).await;
    let other = namespace.write("team/other").unwrap();
    let config = Descriptor::for_bytes(media_type::OCI_CONFIG, b"{}");
    other.push(&config, body(b"{}")).await.unwrap();
    let manifest = image(&config, &config);
    other
        .push_manifest(
            &manifest.descriptor(),
            manifest.raw().clone(),
            ManifestRole::Tag("only"),
        )
        .await
        .unwrap();
    assert_eq!(other.tags().await.unwrap(), ["only"]);
    let read = namespace.read("team/app").unwrap();
    assert_eq!(read.tags().await.unwrap(), ["v1", "v2"]);
    let repositories = namespace.repositories().await.unwrap();
    for name in ["team/app", "team/other"] {
        assert!(repositories.iter().any(|r| r == name), "{repositories:?}");
    }
    namespace.finish().await.unwrap();
}

/// Writes `location` through one session, then reads it back through a fresh one.
async fn session_contract(location: Location) {
    let writer = Session::new(SessionOptions::default()).unwrap();
    namespace_contract(
        writer
            .namespace(&location, Mode::Write)
            .await
            .unwrap()
            .as_ref(),
    )
    .await;
    writer.finish().await.unwrap();
    let reader = Session::new(SessionOptions::default()).unwrap();
    let address = Address {
        location: location.clone(),
        repository: "team/other".into(),
        tag: Some("only".into()),
        digest: None,
    };
    let store = reader.read(&address).await.unwrap();
    let root = address.resolve_in(store.as_ref()).await.unwrap();
    let manifest = store.fetch_manifest(&root).await.unwrap();
    assert_eq!(manifest.successors().len(), 2, "{location}");
}

#[tokio::test]
async fn every_namespace_keeps_the_contract() {
    namespace_contract(&MemoryNamespace::new()).await;
    let dir = tempfile::tempdir().unwrap();
    for location in [
        Location::Layout {
            path: dir.path().join("layout"),
            archive: false,
        },
        Location::Layout {
            path: dir.path().join("layout.tar"),
            archive: true,
        },
        Location::Ctf(dir.path().join("ctf")),
        Location::Ctf(dir.path().join("ctf.tgz")),
    ] {
        session_contract(location).await;
    }
}

#[tokio::test]
async fn registries_keep_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let options = wharf_server::ServeOptions::new(vec!["127.0.0.1:0".parse().unwrap()]);
    let served = wharf_server::Registry::bind(dir.path().join("registry"), options)
        .await
        .unwrap();
    let wharf_serve = served.local_addrs()[0].to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(served.run(async {
        let _ = stopped.await;
    }));
    session_contract(Location::parse(&wharf_serve).unwrap()).await;
    session_contract(Location::parse(&format!("{wharf_serve}/base/path")).unwrap()).await;
    let _ = stop.send(());
    server.await.unwrap();

    let docker = wharf_testkit::DockerRegistry::start(None);
    session_contract(Location::parse(&docker.addr).unwrap()).await;
}

#[tokio::test]
async fn layout_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/layout");
    let layout = Layout::create(&path).await.unwrap();
    assert!(!path.exists(), "nothing is created before the first write");
    contract(&layout).await;

    // What other tools expect on disk.
    let layout_file = std::fs::read_to_string(path.join("oci-layout")).unwrap();
    assert_eq!(layout_file, r#"{"imageLayoutVersion":"1.0.0"}"#);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path.join("index.json")).unwrap()).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(names, ["v1", "v2"]);
    let leftovers: Vec<_> = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // A reopened layout reads the same.
    let reopened = Layout::open(&path).await.unwrap();
    assert_eq!(reopened.tags().await.unwrap(), ["v1", "v2"]);
}

#[tokio::test]
async fn layout_default_image_and_untagged_roots() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(dir.path()).await.unwrap();
    let err = layout.resolve_default().await.unwrap_err();
    assert!(chain(&err).contains("holds no images"), "{}", chain(&err));

    let config = Descriptor::for_bytes(media_type::OCI_CONFIG, b"{}");
    layout.push(&config, body(b"{}")).await.unwrap();
    let one = image(&config, &config);
    layout
        .push_manifest(&one.descriptor(), one.raw().clone(), ManifestRole::Root)
        .await
        .unwrap();
    // Pushing the same root twice lists it once.
    layout
        .push_manifest(&one.descriptor(), one.raw().clone(), ManifestRole::Root)
        .await
        .unwrap();
    assert_eq!(
        layout.resolve_default().await.unwrap().digest,
        one.descriptor().digest
    );

    let mut other = ImageIndex::new();
    other.manifests.push(one.descriptor());
    let other = Manifest::from_index(&other);
    layout
        .push_manifest(
            &other.descriptor(),
            other.raw().clone(),
            ManifestRole::Tag("t"),
        )
        .await
        .unwrap();
    let err = chain(&layout.resolve_default().await.unwrap_err());
    assert!(
        err.contains("holds 2 images") && err.contains("tags: t"),
        "{err}"
    );
}

#[tokio::test]
async fn layout_rejects_bad_directories_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = chain(&Layout::open(&missing).await.err().unwrap());
    assert!(err.contains("no such directory"), "{err}");

    std::fs::write(dir.path().join("stray"), b"x").unwrap();
    let err = chain(&Layout::create(dir.path()).await.err().unwrap());
    assert!(
        err.contains("not empty and not an OCI image layout"),
        "{err}"
    );
    let err = chain(&Layout::open(dir.path()).await.err().unwrap());
    assert!(err.contains("no oci-layout file"), "{err}");

    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("oci-layout"), br#"{"imageLayoutVersion":"2.0.0"}"#).unwrap();
    let err = chain(&Layout::open(&bad).await.err().unwrap());
    assert!(err.contains("unsupported imageLayoutVersion"), "{err}");

    std::fs::write(bad.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        bad.join("index.json"),
        br#"{"schemaVersion":2,"manifests":[{"mediaType":"#,
    )
    .unwrap();
    let layout = Layout::open(&bad).await.unwrap();
    let err = chain(&layout.resolve("latest").await.unwrap_err());
    assert!(err.contains("index.json") && err.contains("EOF"), "{err}");

    std::fs::write(
        bad.join("index.json"),
        br#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"md5:d41d8cd98f00b204e9800998ecf8427e","size":1}]}"#,
    )
    .unwrap();
    let err = chain(&layout.resolve("latest").await.unwrap_err());
    assert!(
        err.contains("unsupported digest algorithm \"md5\""),
        "{err}"
    );
}
