//! The registry's HTTP API, driven over real sockets: uploads of every kind, manifests, referrers,
//! pagination, deletes, bad input, authentication, TLS and garbage collection.

use std::net::SocketAddr;
use std::path::Path;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wharf_oci::{Algorithm, media_type};
use wharf_server::{Registry, ServeOptions};

/// A registry running in this process until dropped.
struct TestRegistry {
    base: String,
    addrs: Vec<SocketAddr>,
    client: Client,
    root: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestRegistry {
    async fn start() -> TestRegistry {
        TestRegistry::with(|_| {}).await
    }

    async fn with(configure: impl FnOnce(&mut ServeOptions)) -> TestRegistry {
        let root = tempfile::tempdir().unwrap();
        let mut options = ServeOptions::new(vec!["127.0.0.1:0".parse().unwrap()]);
        configure(&mut options);
        let registry = Registry::bind(root.path().join("storage"), options)
            .await
            .unwrap();
        let addrs = registry.local_addrs().to_vec();
        let base = format!("{}://{}", registry.scheme(), addrs[0]);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            registry
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        });
        let client = Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        TestRegistry {
            base,
            addrs,
            client,
            root,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, method: Method, path: &str) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .send()
            .await
            .unwrap()
    }

    async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = Algorithm::Sha256.digest(bytes).to_string();
        let r = self
            .client
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        digest
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        manifest: &Value,
    ) -> reqwest::Response {
        let media = manifest["mediaType"]
            .as_str()
            .unwrap_or(media_type::OCI_MANIFEST)
            .to_owned();
        self.client
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("content-type", media)
            .body(serde_json::to_vec(manifest).unwrap())
            .send()
            .await
            .unwrap()
    }

    /// An image manifest with one layer, all pushed; returns (manifest JSON, its digest).
    async fn push_image(&self, repo: &str, tag: &str, layer: &[u8]) -> (Value, String) {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let config_digest = self.push_blob(repo, config).await;
        let layer_digest = self.push_blob(repo, layer).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": {"mediaType": media_type::OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": media_type::OCI_LAYER_TAR, "digest": layer_digest, "size": layer.len()}],
        });
        let r = self.put_manifest(repo, tag, &manifest).await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
        let digest = Algorithm::Sha256
            .digest(&serde_json::to_vec(&manifest).unwrap())
            .to_string();
        (manifest, digest)
    }

    fn storage(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["errors"][0]["code"].as_str().unwrap().to_owned()
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn pings_and_serves_blobs_with_ranges() {
    let reg = TestRegistry::start().await;
    let r = reg.send(Method::GET, "/v2/").await;
    assert_eq!(r.status(), StatusCode::OK);

    let bytes: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let digest = reg.push_blob("a/b", &bytes).await;
    let head = reg
        .send(Method::HEAD, &format!("/v2/a/b/blobs/{digest}"))
        .await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header(&head, "content-length"), "100000");
    assert_eq!(header(&head, "docker-content-digest"), digest);
    let get = reg
        .send(Method::GET, &format!("/v2/a/b/blobs/{digest}"))
        .await;
    assert_eq!(get.bytes().await.unwrap(), bytes);

    let partial = reg
        .client
        .get(reg.url(&format!("/v2/a/b/blobs/{digest}")))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&partial, "content-range"), "bytes 10-19/100000");
    assert_eq!(partial.bytes().await.unwrap(), bytes[10..20]);
    let bad = reg
        .client
        .get(reg.url(&format!("/v2/a/b/blobs/{digest}")))
        .header("range", "bytes=200000-")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // Another repository does not see the blob.
    let other = reg
        .send(Method::HEAD, &format!("/v2/other/blobs/{digest}"))
        .await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let missing = reg
        .send(
            Method::GET,
            &format!("/v2/a/b/blobs/{}", Algorithm::Sha256.digest(b"x")),
        )
        .await;
    assert_eq!(error_code(missing).await, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn chunked_uploads_check_order_and_digest() {
    let reg = TestRegistry::start().await;
    let start = reg.send(Method::POST, "/v2/repo/blobs/uploads/").await;
    assert_eq!(start.status(), StatusCode::ACCEPTED);
    let location = header(&start, "location");
    assert!(
        location.starts_with("/v2/repo/blobs/uploads/"),
        "{location}"
    );

    let patch = |range: &str, body: &'static [u8]| {
        reg.client
            .patch(reg.url(&location))
            .header("content-range", range)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
    };
    let r = patch("0-4", b"hello").await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range"), "0-4");
    let r = patch("3-8", b"xxxxxx").await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::RANGE_NOT_SATISFIABLE,
        "a chunk out of order"
    );
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_INVALID");
    let r = patch("5-10", b" world").await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let status = reg.send(Method::GET, &location).await;
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&status, "range"), "0-10");

    let wrong = Algorithm::Sha256.digest(b"hello worle");
    let r = reg
        .client
        .put(reg.url(&format!("{location}?digest={wrong}")))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    assert_eq!(
        reg.send(Method::HEAD, &format!("/v2/repo/blobs/{wrong}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        reg.send(Method::GET, &location).await.status(),
        StatusCode::NOT_FOUND,
        "upload is gone"
    );

    // A fresh upload: two chunks then a final PUT carrying the last bytes.
    let start = reg.send(Method::POST, "/v2/repo/blobs/uploads/").await;
    let location = header(&start, "location");
    reg.client
        .patch(reg.url(&location))
        .header("content-range", "0-4")
        .body("hello")
        .send()
        .await
        .unwrap();
    let digest = Algorithm::Sha256.digest(b"hello world");
    let r = reg
        .client
        .put(reg.url(&format!("{location}?digest={digest}")))
        .body(" world")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "location"), format!("/v2/repo/blobs/{digest}"));
    let got = reg
        .send(Method::GET, &format!("/v2/repo/blobs/{digest}"))
        .await;
    assert_eq!(got.bytes().await.unwrap(), "hello world");

    // Cancel.
    let start = reg.send(Method::POST, "/v2/repo/blobs/uploads/").await;
    let location = header(&start, "location");
    assert_eq!(
        reg.send(Method::DELETE, &location).await.status(),
        StatusCode::NO_CONTENT
    );
    let r = reg.send(Method::GET, &location).await;
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn enforces_the_advertised_minimum_chunk() {
    let reg = TestRegistry::with(|o| o.chunk_min_length = Some(8)).await;
    let start = reg.send(Method::POST, "/v2/repo/blobs/uploads/").await;
    assert_eq!(header(&start, "oci-chunk-min-length"), "8");
    let location = header(&start, "location");
    let r = reg
        .client
        .patch(reg.url(&location))
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = reg
        .client
        .patch(reg.url(&location))
        .body("defghijk")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::RANGE_NOT_SATISFIABLE,
        "a short chunk must be the last"
    );
}

#[tokio::test]
async fn streamed_post_put_and_cross_repository_mount() {
    let reg = TestRegistry::start().await;
    let bytes = vec![7u8; 3 * 1024 * 1024];
    let digest = Algorithm::Sha256.digest(&bytes).to_string();
    let start = reg.send(Method::POST, "/v2/src/blobs/uploads/").await;
    let location = header(&start, "location");
    let r = reg
        .client
        .put(reg.url(&format!("{location}?digest={digest}")))
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let mount = reg
        .send(
            Method::POST,
            &format!("/v2/dst/blobs/uploads/?mount={digest}&from=src"),
        )
        .await;
    assert_eq!(mount.status(), StatusCode::CREATED);
    assert_eq!(
        header(&mount, "location"),
        format!("/v2/dst/blobs/{digest}")
    );
    assert_eq!(
        reg.send(Method::HEAD, &format!("/v2/dst/blobs/{digest}"))
            .await
            .status(),
        StatusCode::OK
    );

    // Mounting what the source lacks opens an ordinary upload session instead.
    let unknown = Algorithm::Sha256.digest(b"nowhere");
    let fallback = reg
        .send(
            Method::POST,
            &format!("/v2/dst/blobs/uploads/?mount={unknown}&from=src"),
        )
        .await;
    assert_eq!(fallback.status(), StatusCode::ACCEPTED);
    assert!(header(&fallback, "location").starts_with("/v2/dst/blobs/uploads/"));
}

#[tokio::test]
async fn manifests_are_validated_negotiated_and_deleted() {
    let reg = TestRegistry::start().await;
    let (manifest, digest) = reg.push_image("app", "v1", b"layer").await;

    let get = reg
        .client
        .get(reg.url("/v2/app/manifests/v1"))
        .header(
            "accept",
            format!(
                "{}, {}",
                media_type::OCI_MANIFEST,
                media_type::DOCKER_MANIFEST
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(header(&get, "content-type"), media_type::OCI_MANIFEST);
    assert_eq!(header(&get, "docker-content-digest"), digest);
    assert_eq!(
        get.bytes().await.unwrap(),
        serde_json::to_vec(&manifest).unwrap()
    );
    let head = reg
        .send(Method::HEAD, &format!("/v2/app/manifests/{digest}"))
        .await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        header(&head, "content-length"),
        serde_json::to_vec(&manifest).unwrap().len().to_string()
    );
    let refused = reg
        .client
        .get(reg.url("/v2/app/manifests/v1"))
        .header("accept", media_type::DOCKER_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(refused).await, "MANIFEST_UNKNOWN");

    // A manifest naming a blob the repository lacks is refused and leaves nothing behind.
    let mut dangling = manifest.clone();
    dangling["layers"][0]["digest"] = json!(Algorithm::Sha256.digest(b"absent").to_string());
    let r = reg.put_manifest("app", "dangling", &dangling).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(
        reg.send(Method::GET, "/v2/app/manifests/dangling")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let wrong = Algorithm::Sha256.digest(b"other");
    assert_eq!(
        error_code(reg.put_manifest("app", wrong.as_str(), &manifest).await).await,
        "DIGEST_INVALID"
    );
    assert_eq!(
        error_code(reg.put_manifest("app", "-bad", &manifest).await).await,
        "MANIFEST_INVALID"
    );
    let schema1 = json!({"schemaVersion": 1, "name": "app", "tag": "x", "fsLayers": []});
    assert_eq!(
        error_code(reg.put_manifest("app", "old", &schema1).await).await,
        "MANIFEST_INVALID"
    );
    let mut huge = manifest.clone();
    huge["annotations"] = json!({"pad": "x".repeat(4 * 1024 * 1024)});
    let r = reg.put_manifest("app", "huge", &huge).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(r).await, "SIZE_INVALID");

    // Tag delete removes only the tag; digest delete removes the manifest and its tags.
    reg.put_manifest("app", "v2", &manifest).await;
    assert_eq!(
        reg.send(Method::DELETE, "/v2/app/manifests/v2")
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        reg.send(Method::GET, "/v2/app/manifests/v2").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        reg.send(Method::GET, "/v2/app/manifests/v1").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        reg.send(Method::DELETE, &format!("/v2/app/manifests/{digest}"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        reg.send(Method::GET, "/v2/app/manifests/v1").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        reg.send(Method::GET, &format!("/v2/app/manifests/{digest}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(
        reg.send(Method::DELETE, &format!("/v2/app/blobs/{layer}"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        reg.send(Method::HEAD, &format!("/v2/app/blobs/{layer}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn index_children_must_exist() {
    let reg = TestRegistry::start().await;
    let (_, child) = reg.push_image("multi", "amd64", b"l").await;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": [{"mediaType": media_type::OCI_MANIFEST, "digest": child, "size": 1,
                       "platform": {"os": "linux", "architecture": "amd64"}}],
    });
    assert_eq!(
        reg.put_manifest("multi", "all", &index).await.status(),
        StatusCode::CREATED
    );
    let mut missing = index.clone();
    missing["manifests"][0]["digest"] = json!(Algorithm::Sha256.digest(b"nope").to_string());
    assert_eq!(
        error_code(reg.put_manifest("multi", "bad", &missing).await).await,
        "MANIFEST_BLOB_UNKNOWN"
    );
}

#[tokio::test]
async fn a_push_by_digest_sets_the_tags_it_names() {
    let reg = TestRegistry::start().await;
    let index = json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": []});
    let bytes = serde_json::to_vec(&index).unwrap();
    let digest = Algorithm::Sha512.digest(&bytes);
    let pushed = reg
        .client
        .put(reg.url(&format!("/v2/app/manifests/{digest}?tag=one&tag=two")))
        .header("content-type", media_type::OCI_INDEX)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), StatusCode::CREATED);
    assert_eq!(header(&pushed, "oci-tag"), "one, two");
    for tag in ["one", "two"] {
        let head = reg
            .send(Method::HEAD, &format!("/v2/app/manifests/{tag}"))
            .await;
        assert_eq!(header(&head, "docker-content-digest"), digest.to_string());
    }
    let refused = reg
        .client
        .put(reg.url(&format!("/v2/app/manifests/{digest}?tag=-bad")))
        .header("content-type", media_type::OCI_INDEX)
        .body(serde_json::to_vec(&index).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(refused).await, "MANIFEST_INVALID");
}

#[tokio::test]
async fn tags_and_catalog_paginate_with_link_headers() {
    let reg = TestRegistry::start().await;
    for tag in ["e", "a", "d", "b", "c"] {
        reg.push_image("lib/app", tag, b"x").await;
    }
    for repo in ["z", "m"] {
        reg.push_image(repo, "t", b"y").await;
    }
    let r = reg.send(Method::GET, "/v2/lib/app/tags/list?n=2").await;
    let link = header(&r, "link");
    assert_eq!(link, "</v2/lib/app/tags/list?n=2&last=b>; rel=\"next\"");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"name": "lib/app", "tags": ["a", "b"]}));
    let r = reg
        .send(Method::GET, "/v2/lib/app/tags/list?n=2&last=b")
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["tags"], json!(["c", "d"]));
    let r = reg
        .send(Method::GET, "/v2/lib/app/tags/list?n=2&last=d")
        .await;
    assert_eq!(header(&r, "link"), "");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["tags"], json!(["e"]));
    let all: Value = reg
        .send(Method::GET, "/v2/lib/app/tags/list")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["tags"], json!(["a", "b", "c", "d", "e"]));

    let r = reg.send(Method::GET, "/v2/_catalog?n=2").await;
    assert_eq!(
        header(&r, "link"),
        "</v2/_catalog?n=2&last=m>; rel=\"next\""
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["repositories"], json!(["lib/app", "m"]));
    let r: Value = reg
        .send(Method::GET, "/v2/_catalog?n=2&last=m")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["repositories"], json!(["z"]));

    let unknown = reg.send(Method::GET, "/v2/nothing/tags/list").await;
    assert_eq!(error_code(unknown).await, "NAME_UNKNOWN");
}

#[tokio::test]
async fn referrers_are_listed_and_filtered() {
    let reg = TestRegistry::start().await;
    let (subject, subject_digest) = reg.push_image("app", "v1", b"image layer").await;
    let subject_size = serde_json::to_vec(&subject).unwrap().len();
    let empty = reg.push_blob("app", b"{}").await;
    let mut digests = Vec::new();
    for (kind, note) in [
        ("application/vnd.example.sig", "a"),
        ("application/vnd.example.sbom", "b"),
    ] {
        let artifact = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "artifactType": kind,
            "config": {"mediaType": media_type::OCI_EMPTY, "digest": empty, "size": 2},
            "layers": [{"mediaType": media_type::OCI_EMPTY, "digest": empty, "size": 2}],
            "subject": {"mediaType": media_type::OCI_MANIFEST, "digest": subject_digest, "size": subject_size},
            "annotations": {"note": note},
        });
        let digest = Algorithm::Sha256
            .digest(&serde_json::to_vec(&artifact).unwrap())
            .to_string();
        let r = reg.put_manifest("app", &digest, &artifact).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(header(&r, "oci-subject"), subject_digest);
        digests.push(digest);
    }
    let r = reg
        .send(Method::GET, &format!("/v2/app/referrers/{subject_digest}"))
        .await;
    assert_eq!(header(&r, "content-type"), media_type::OCI_INDEX);
    assert_eq!(header(&r, "oci-filters-applied"), "");
    let index: Value = r.json().await.unwrap();
    let listed: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    digests.sort();
    assert_eq!(listed, digests);
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["note"] == "a")
        .unwrap();
    assert_eq!(entry["artifactType"], "application/vnd.example.sig");

    let r = reg
        .send(
            Method::GET,
            &format!(
                "/v2/app/referrers/{subject_digest}?artifactType=application%2Fvnd.example.sbom"
            ),
        )
        .await;
    assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
    let index: Value = r.json().await.unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(index["manifests"][0]["annotations"]["note"], "b");

    let none: Value = reg
        .send(
            Method::GET,
            &format!("/v2/app/referrers/{}", Algorithm::Sha256.digest(b"z")),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["manifests"], json!([]));

    // Pages: `n` at a time, the filter kept in the link to the next page.
    let sig = "application/vnd.example.sig";
    let r = reg
        .send(
            Method::GET,
            &format!("/v2/app/referrers/{subject_digest}?n=1"),
        )
        .await;
    let link = header(&r, "link");
    assert_eq!(
        link,
        format!(
            "</v2/app/referrers/{subject_digest}?n=1&last={}>; rel=\"next\"",
            digests[0]
        )
    );
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["manifests"][0]["digest"], digests[0]);
    let next = link.trim_start_matches('<').split('>').next().unwrap();
    let page: Value = reg.send(Method::GET, next).await.json().await.unwrap();
    assert_eq!(page["manifests"][0]["digest"], digests[1]);
    let r = reg
        .send(
            Method::GET,
            &format!(
                "/v2/app/referrers/{subject_digest}?n=1&artifactType=application%2Fvnd.example.sig"
            ),
        )
        .await;
    assert_eq!(header(&r, "link"), "", "one {sig} entry: no next page");

    // Deleting a referrer removes it from the list.
    reg.send(Method::DELETE, &format!("/v2/app/manifests/{}", digests[0]))
        .await;
    let index: Value = reg
        .send(Method::GET, &format!("/v2/app/referrers/{subject_digest}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
}

/// Sends a request line exactly as written, bypassing URL normalisation in HTTP clients.
async fn raw_request(addr: SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn rejects_bad_names_and_path_traversal() {
    let reg = TestRegistry::start().await;
    for path in [
        "/v2/../../etc/tags/list",
        "/v2/a/../b/tags/list",
        "/v2/%2e%2e/x/tags/list",
        "/v2/UP/tags/list",
    ] {
        let response = raw_request(reg.addrs[0], path).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{path}: {response}");
        assert!(response.contains("NAME_INVALID"), "{path}: {response}");
    }
    let r = reg.send(Method::POST, "/v2/Bad/blobs/uploads/").await;
    assert_eq!(error_code(r).await, "NAME_INVALID");
    let entries: Vec<_> = std::fs::read_dir(reg.storage().join("storage/repositories"))
        .unwrap()
        .collect();
    assert!(entries.is_empty(), "a bad name created a repository");
}

fn htpasswd(dir: &Path) -> std::path::PathBuf {
    let hash = bcrypt::hash("s3cret", 5).unwrap();
    let path = dir.join("htpasswd");
    std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
    path
}

#[tokio::test]
async fn basic_auth_challenges_and_admits() {
    let dir = tempfile::tempdir().unwrap();
    let file = htpasswd(dir.path());
    let reg = TestRegistry::with(|o| o.htpasswd = Some(file.clone())).await;
    let r = reg.send(Method::GET, "/v2/").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&r, "www-authenticate"), "Basic realm=\"wharf\"");
    assert_eq!(error_code(r).await, "UNAUTHORIZED");
    let wrong = reg
        .client
        .get(reg.url("/v2/"))
        .basic_auth("alice", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = reg
        .client
        .get(reg.url("/v2/"))
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    let push = reg
        .client
        .post(reg.url("/v2/x/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), StatusCode::UNAUTHORIZED);

    let open = TestRegistry::with(|o| {
        o.htpasswd = Some(file.clone());
        o.anonymous_read = true;
    })
    .await;
    assert_eq!(
        open.send(Method::GET, "/v2/").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        open.send(Method::POST, "/v2/x/blobs/uploads/")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn read_only_refuses_writes() {
    let reg = TestRegistry::with(|o| o.read_only = true).await;
    assert_eq!(reg.send(Method::GET, "/v2/").await.status(), StatusCode::OK);
    let r = reg.send(Method::POST, "/v2/x/blobs/uploads/").await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(r).await, "UNSUPPORTED");
}

#[tokio::test]
async fn one_storage_under_two_addresses() {
    let reg = TestRegistry::with(|o| o.listen.push("127.0.0.1:0".parse().unwrap())).await;
    assert_eq!(reg.addrs.len(), 2);
    let (_, digest) = reg.push_image("shared", "v1", b"x").await;
    let other = reg
        .client
        .get(format!("http://{}/v2/shared/manifests/v1", reg.addrs[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&other, "docker-content-digest"), digest);
}

#[tokio::test]
async fn serves_https() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed for this test");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let reg = TestRegistry::with(|o| o.tls = Some((cert.clone(), key.clone()))).await;
    assert!(reg.base.starts_with("https://"));
    assert_eq!(reg.send(Method::GET, "/v2/").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn garbage_collection_keeps_what_manifests_reference() {
    let reg = TestRegistry::start().await;
    let (manifest, _) = reg.push_image("app", "v1", b"kept layer").await;
    let orphan = reg.push_blob("app", b"orphan").await;
    let storage = wharf_server::storage::Storage::open(reg.storage().join("storage"))
        .await
        .unwrap();
    let young = storage
        .gc(std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(young.blobs_removed, 0, "nothing is old enough yet");
    let report = storage.gc(std::time::Duration::ZERO).await.unwrap();
    assert_eq!(report.blobs_removed, 1);
    assert_eq!(
        reg.send(Method::HEAD, &format!("/v2/app/blobs/{orphan}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(
        reg.send(Method::HEAD, &format!("/v2/app/blobs/{layer}"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        reg.send(Method::GET, "/v2/app/manifests/v1").await.status(),
        StatusCode::OK
    );
}
