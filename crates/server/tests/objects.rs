//! The object store contract, kept by both backends: a local directory and an S3-compatible bucket
//! on a real server on loopback (moto's standalone server).

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use wharf_oci::Algorithm;
use wharf_server::s3::Bucket;
use wharf_server::storage::{Files, ObjectStore, ObjectStream};
use wharf_testkit::Moto;

fn chunks(bytes: &[u8], size: usize) -> ObjectStream {
    let pieces: Vec<std::io::Result<Bytes>> = bytes
        .chunks(size)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(pieces).boxed()
}

async fn collect(stream: ObjectStream) -> Vec<u8> {
    stream
        .try_fold(Vec::new(), |mut all, chunk| async move {
            all.extend_from_slice(&chunk);
            Ok(all)
        })
        .await
        .unwrap()
}

async fn keeps_the_contract(store: &dyn ObjectStore) {
    assert!(store.available().await, "{}", store.describe());
    assert_eq!(store.read("repositories/a/_tags/v1").await.unwrap(), None);
    assert_eq!(store.size("repositories/a/_tags/v1").await.unwrap(), None);
    assert_eq!(
        store.modified("repositories/a/_tags/v1").await.unwrap(),
        None
    );

    store
        .write("repositories/a/_tags/v1", b"sha256:1")
        .await
        .unwrap();
    store
        .write("repositories/a/_tags/v1", b"sha256:22")
        .await
        .unwrap();
    store
        .write("repositories/a/b/_tags/v2", b"x")
        .await
        .unwrap();
    store
        .write("repositories/a/_blobs/sha256/ff", b"")
        .await
        .unwrap();
    assert_eq!(
        store
            .read("repositories/a/_tags/v1")
            .await
            .unwrap()
            .unwrap(),
        "sha256:22",
        "a write replaces"
    );
    assert_eq!(
        store.size("repositories/a/_blobs/sha256/ff").await.unwrap(),
        Some(0)
    );
    assert!(
        store
            .modified("repositories/a/_tags/v1")
            .await
            .unwrap()
            .is_some()
    );
    let mut names = store.list("repositories/a").await.unwrap();
    names.sort();
    assert_eq!(
        names,
        ["_blobs", "_tags", "b"],
        "one level, objects and prefixes"
    );
    assert_eq!(store.list("repositories/a/_tags").await.unwrap(), ["v1"]);
    assert!(store.list("repositories/none").await.unwrap().is_empty());

    // Verified writes: only matching bytes appear, streamed in pieces, small or spanning parts.
    for size in [10usize, 9 * 1024 * 1024 + 3] {
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let digest = Algorithm::Sha256.digest(&bytes);
        let key = format!("blobs/sha256/{}", digest.hex());
        let wrong = Algorithm::Sha256.digest(b"something else");
        let refused = store
            .write_verified(&key, chunks(&bytes, 1 << 20), &wrong)
            .await
            .unwrap();
        assert_eq!(refused, None);
        assert_eq!(
            store.size(&key).await.unwrap(),
            None,
            "nothing of it appears"
        );
        let written = store
            .write_verified(&key, chunks(&bytes, 1 << 20), &digest)
            .await
            .unwrap();
        assert_eq!(written, Some(size as u64));
        let whole = collect(store.read_range(&key, 0, size as u64).await.unwrap()).await;
        assert_eq!(whole, bytes);
        let middle = collect(store.read_range(&key, 3, 4).await.unwrap()).await;
        assert_eq!(middle, &bytes[3..7]);
    }
    let failing = || -> ObjectStream {
        stream::iter(vec![
            Ok(Bytes::from_static(b"partial")),
            Err(std::io::Error::other("the client went away")),
        ])
        .boxed()
    };
    let digest = Algorithm::Sha256.digest(b"partial");
    let cut = store.write_verified("blobs/sha256/cut", failing(), &digest);
    assert!(cut.await.is_err());
    assert!(
        store
            .write_stream("uploads/cut.0", failing())
            .await
            .is_err()
    );
    assert_eq!(store.size("blobs/sha256/cut").await.unwrap(), None);
    assert_eq!(store.size("uploads/cut.0").await.unwrap(), None);

    // Streamed writes, joined into one object where the store can do it alone: the exact bytes
    // in order, or nothing.
    let written = store.write_stream("uploads/s.0", chunks(b"chunk bytes", 4));
    assert_eq!(written.await.unwrap(), 11);
    let lone = ["uploads/s.0".to_owned()];
    assert!(store.join(&lone, "blobs/sha256/joined").await.unwrap());
    let joined = store.read("blobs/sha256/joined").await.unwrap();
    assert_eq!(joined.unwrap(), "chunk bytes");
    let large = vec![b'x'; 5 * 1024 * 1024 + 3];
    let parts = [("uploads/t.0", &large[..]), ("uploads/t.1", b"tail!")];
    for (key, bytes) in parts {
        store.write(key, bytes).await.unwrap();
    }
    let keys: Vec<String> = parts.iter().map(|(k, _)| k.to_string()).collect();
    if store.join(&keys, "blobs/sha256/several").await.unwrap() {
        let joined = store.read("blobs/sha256/several").await.unwrap().unwrap();
        assert_eq!(joined.len(), large.len() + 5);
        assert_eq!(&joined[large.len()..], b"tail!");
    } else {
        assert_eq!(store.size("blobs/sha256/several").await.unwrap(), None);
    }
    let small_first = [keys[1].clone(), keys[0].clone()];
    assert!(
        !store
            .join(&small_first, "blobs/sha256/never")
            .await
            .unwrap(),
        "a small part first is joined by neither store"
    );
    assert_eq!(store.size("blobs/sha256/never").await.unwrap(), None);

    store.remove("repositories/a/_tags/v1").await.unwrap();
    store.remove("repositories/a/_tags/v1").await.unwrap();
    assert!(!store.exists("repositories/a/_tags/v1").await.unwrap());
}

#[tokio::test]
async fn a_directory_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["repositories", "tmp", "blobs/sha256"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    keeps_the_contract(&Files::new(dir.path().to_owned())).await;
}

#[tokio::test]
async fn an_s3_bucket_keeps_the_contract() {
    let moto = Moto::start();
    moto.create_bucket("registry");
    let vars = [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let bucket = Bucket::open("s3://registry/site", &|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    keeps_the_contract(&bucket).await;
    assert!(
        bucket.size("blobs/sha256/several").await.unwrap().is_some(),
        "parts of 5 MiB and more, then a small last one, are joined inside the bucket"
    );
}
