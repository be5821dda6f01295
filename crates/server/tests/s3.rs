//! The S3 bucket client against a real S3-compatible server on loopback (moto's standalone server):
//! whole and ranged reads, conditional writes, listing, multipart uploads, and the errors a
//! misconfigured storage gives at start-up.

use bytes::Bytes;
use wharf_server::s3::{Bucket, S3Error};
use wharf_testkit::Moto;

fn bucket(moto: &Moto, url: &str) -> Bucket {
    let vars = [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    Bucket::open(url, &|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap()
}

#[tokio::test]
async fn objects_are_written_read_listed_and_removed() {
    let moto = Moto::start();
    moto.create_bucket("registry");
    let store = bucket(&moto, "s3://registry/site");
    store.check().await.unwrap();

    assert!(
        store
            .put("a/one", Bytes::from_static(b"first"), false)
            .await
            .unwrap()
    );
    assert!(
        !store
            .put("a/one", Bytes::from_static(b"other"), true)
            .await
            .unwrap(),
        "a conditional write leaves what is there"
    );
    assert_eq!(store.read("a/one").await.unwrap().unwrap(), "first");
    assert!(
        store
            .put("a/two", Bytes::from_static(b"0123456789"), true)
            .await
            .unwrap()
    );
    let part = store
        .get("a/two", Some((2, Some(5))))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(part.bytes().await.unwrap(), "234");
    assert_eq!(store.size("a/two").await.unwrap(), Some(10));
    assert_eq!(store.size("a/none").await.unwrap(), None);
    assert_eq!(store.read("a/none").await.unwrap(), None);

    let listed: Vec<(String, u64)> = store
        .list("a/")
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.key, l.size))
        .collect();
    assert_eq!(listed, [("a/one".into(), 5), ("a/two".into(), 10)]);
    let other = bucket(&moto, "s3://registry");
    assert_eq!(
        other.list("site/a/").await.unwrap().len(),
        2,
        "keys live under the prefix"
    );

    store.delete("a/one").await.unwrap();
    store.delete("a/one").await.unwrap();
    assert_eq!(store.read("a/one").await.unwrap(), None);
    let presigned = store.presigned_get("a/two", std::time::Duration::from_secs(60));
    let fetched = reqwest::get(presigned)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(fetched, "0123456789");
}

#[tokio::test]
async fn a_multipart_upload_appears_whole_only_when_completed() {
    let moto = Moto::start();
    moto.create_bucket("registry");
    let store = bucket(&moto, "s3://registry");
    let first = Bytes::from(vec![7u8; 5 * 1024 * 1024]);
    let last = Bytes::from_static(b"tail");
    let upload = store.start_multipart("blobs/big").await.unwrap();
    let etags = vec![
        store
            .put_part("blobs/big", &upload, 1, first.clone())
            .await
            .unwrap(),
        store
            .put_part("blobs/big", &upload, 2, last.clone())
            .await
            .unwrap(),
    ];
    assert_eq!(
        store.size("blobs/big").await.unwrap(),
        None,
        "not yet visible"
    );
    store
        .complete_multipart("blobs/big", &upload, &etags)
        .await
        .unwrap();
    let whole = store.read("blobs/big").await.unwrap().unwrap();
    assert_eq!(whole.len(), first.len() + last.len());
    assert_eq!(&whole[first.len()..], b"tail");
}

#[tokio::test]
async fn a_missing_bucket_is_named() {
    let moto = Moto::start();
    let error = bucket(&moto, "s3://nowhere").check().await.unwrap_err();
    assert!(matches!(error, S3Error::Settings(_)), "{error}");
    assert!(
        error.to_string().contains("bucket nowhere does not exist"),
        "{error}"
    );
}

#[tokio::test]
async fn unfinished_multipart_uploads_below_the_prefix_are_aborted_once_old_enough() {
    use std::time::{Duration, SystemTime};
    let moto = Moto::start();
    moto.create_bucket("registry");
    let site = bucket(&moto, "s3://registry/site");
    let other = bucket(&moto, "s3://registry/other");
    // Besides wharf's own, an upload of something else sharing the prefix, left alone.
    for (store, key) in [
        (&site, "blobs/killed"),
        (&other, "uploads/killed.0"),
        (&site, "someone-else/upload"),
    ] {
        let upload = store.start_multipart(key).await.unwrap();
        store
            .put_part(key, &upload, 1, Bytes::from_static(b"part"))
            .await
            .unwrap();
    }
    // moto reports every upload as begun on 2010-11-10, so "too young" is judged against 2001.
    let before_begun = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    assert_eq!(
        site.abort_unfinished(before_begun).await.unwrap(),
        0,
        "too young"
    );
    // Begun long ago (as moto says), but its newest part is recent: an upload still moving.
    let minute_ago = SystemTime::now() - Duration::from_secs(60);
    assert_eq!(
        site.abort_unfinished(minute_ago).await.unwrap(),
        0,
        "moving"
    );
    let later = SystemTime::now() + Duration::from_secs(60);
    assert_eq!(site.abort_unfinished(later).await.unwrap(), 1);
    assert_eq!(site.abort_unfinished(later).await.unwrap(), 0, "gone");
    assert_eq!(
        other.abort_unfinished(later).await.unwrap(),
        1,
        "another prefix's upload was left to it"
    );
    assert_eq!(site.size("blobs/killed").await.unwrap(), None);
}
