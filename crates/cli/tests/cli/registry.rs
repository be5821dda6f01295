//! `wharf copy`, `inspect`, `tags`, `login` against real registries: wharf serve and Debian's
//! docker-registry (no referrers API), directly and through a proxy that issues tokens and injects faults.

use std::path::Path;

use wharf_oci::Algorithm;

use crate::util::{
    DockerRegistry, Fault, FaultAction, Nginx, TestProxy, TlsFiles, TokenAuth, add_referrer,
    assert_verified, big_image_layout, blob_files, descriptor_of, gen_layout, htpasswd, http, json,
    peer, sample_layout, serve, temp, wharf, wharf_env, wharf_stdin,
};

const SIG: &str = "application/vnd.example.signature";

/// `sha256:<hex>` of what skopeo reads as the manifest at `reference` (its own view of the digest).
fn skopeo_digest(dir: &Path, reference: &str, creds: Option<&str>) -> String {
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    if let Some(creds) = creds {
        args.extend(["--creds", creds]);
    }
    let location = format!("docker://{reference}");
    args.push(&location);
    let raw = peer(dir, "skopeo", &args).ok();
    Algorithm::Sha256.digest(raw.as_bytes()).to_string()
}

#[test]
fn copies_between_registries_and_layouts_with_referrers_on_both_servers() {
    let dir = temp();
    let dir = dir.path();
    let sample = sample_layout(dir);
    let root = descriptor_of(dir, &format!("oci:{}:1.0", sample.display()));
    let signature = add_referrer(&sample, &root, SIG, b"signature bytes");
    let wharf_reg = serve(dir, &[]);
    let docker = DockerRegistry::start(None);
    let w = wharf_reg.addr();
    let d = &docker.addr;

    // layout -> wharf serve: the signature comes along (found among the layout's roots).
    let out = json(
        &wharf(
            dir,
            &[
                "copy",
                "--output",
                "json",
                &format!("oci:{}:1.0", sample.display()),
                &format!("{w}/src/app"),
            ],
        )
        .ok(),
    );
    assert_eq!(out["referrersCopied"], 1, "{out}");
    assert_eq!(out["digest"], root.digest.as_str());
    assert_eq!(
        skopeo_digest(dir, &format!("{w}/src/app:1.0"), None),
        root.digest.as_str()
    );
    let (status, listing) = http(
        w,
        "GET",
        &format!("/v2/src/app/referrers/{}", root.digest),
        b"",
    );
    assert_eq!(status, 200);
    assert!(listing.contains(signature.digest.as_str()), "{listing}");

    // wharf serve -> docker-registry: no referrers API there, so the sha256-<hex> tag schema is written.
    let out = json(
        &wharf(
            dir,
            &[
                "copy",
                "--output",
                "json",
                &format!("{w}/src/app:1.0"),
                &format!("{d}/mirror/app:1.0"),
            ],
        )
        .ok(),
    );
    assert_eq!(out["referrersCopied"], 1, "{out}");
    assert_eq!(
        skopeo_digest(dir, &format!("{d}/mirror/app:1.0"), None),
        root.digest.as_str()
    );
    let fallback_tag = format!("sha256-{}", root.digest.hex());
    let tags = wharf(dir, &["tags", &format!("{d}/mirror/app")]).ok();
    assert!(tags.lines().any(|t| t == fallback_tag), "{tags}");
    let fallback = peer(
        dir,
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{d}/mirror/app:{fallback_tag}"),
        ],
    )
    .ok();
    let fallback = json(&fallback);
    assert_eq!(
        fallback["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        fallback["manifests"][0]["digest"],
        signature.digest.as_str()
    );
    assert_eq!(fallback["manifests"][0]["artifactType"], SIG);

    // docker-registry -> layout -> wharf serve: read back through the fallback, written as a layout root.
    let out = json(
        &wharf(
            dir,
            &[
                "copy",
                "--output",
                "json",
                &format!("{d}/mirror/app:1.0"),
                "oci:back",
            ],
        )
        .ok(),
    );
    assert_eq!(out["referrersCopied"], 1, "{out}");
    assert!(
        blob_files(&dir.join("back")).is_superset(&blob_files(&sample)),
        "every blob arrived"
    );
    wharf(
        dir,
        &["copy", "oci:back:1.0", &format!("{w}/final/app:1.0")],
    )
    .ok();
    assert_eq!(
        skopeo_digest(dir, &format!("{w}/final/app:1.0"), None),
        root.digest.as_str()
    );
    let (_, listing) = http(
        w,
        "GET",
        &format!("/v2/final/app/referrers/{}", root.digest),
        b"",
    );
    assert!(listing.contains(signature.digest.as_str()), "{listing}");

    // --no-referrers leaves them behind.
    let out = json(
        &wharf(
            dir,
            &[
                "copy",
                "--no-referrers",
                "--output",
                "json",
                &format!("{w}/src/app:1.0"),
                &format!("{d}/bare/app:1.0"),
            ],
        )
        .ok(),
    );
    assert_eq!(out["referrersCopied"], 0);
    let tags = wharf(dir, &["tags", "--output", "json", &format!("{d}/bare/app")]).ok();
    assert_eq!(json(&tags)["tags"], serde_json::json!(["1.0"]));
}

#[test]
fn a_second_copy_uploads_no_blobs() {
    let dir = temp();
    let dir = dir.path();
    let sample = sample_layout(dir);
    let docker = DockerRegistry::start(None);
    let proxy = TestProxy::start(&docker.addr, None);
    let target = format!("{}/app:1.0", proxy.host());
    let source = format!("oci:{}:1.0", sample.display());
    wharf(dir, &["copy", &source, &target]).ok();
    let first = proxy.records();
    assert!(
        first
            .iter()
            .any(|r| r.method == "PUT" && r.path.contains("/blobs/uploads/")),
        "blobs were uploaded"
    );
    proxy.clear_records();

    let out = json(&wharf(dir, &["copy", "--output", "json", &source, &target]).ok());
    assert_eq!(out["blobsCopied"], 0);
    let again = proxy.records();
    // Manifest HEADs (and the referrers lookup of the tag schema) only: no writes, no blob requests.
    assert!(
        again
            .iter()
            .all(|r| r.method == "GET" || r.method == "HEAD"),
        "{again:?}"
    );
    assert!(
        again.iter().all(|r| !r.path.contains("/blobs/")),
        "{again:?}"
    );
    let heads = again
        .iter()
        .filter(|r| r.method == "HEAD" && r.path.contains("/manifests/"))
        .count();
    assert!(heads <= 3, "about one request per root: {again:?}");
}

#[test]
fn copies_one_platform_as_a_new_index_and_mounts_within_a_registry() {
    let dir = temp();
    let dir = dir.path();
    let sample = sample_layout(dir);
    let served = serve(dir, &[]);
    let w = served.addr();
    wharf(
        dir,
        &[
            "copy",
            &format!("oci:{}:1.0", sample.display()),
            &format!("{w}/multi/app:1.0"),
        ],
    )
    .ok();

    let out = json(
        &wharf(
            dir,
            &[
                "copy",
                "--output",
                "json",
                "--platform",
                "linux/arm64",
                &format!("{w}/multi/app:1.0"),
                &format!("{w}/arm/app:1.0"),
            ],
        )
        .ok(),
    );
    assert_eq!(
        out["blobsMounted"], 3,
        "same registry: mounted, not streamed: {out}"
    );
    assert_eq!(out["bytesCopied"], 0);
    let index = json(
        &peer(
            dir,
            "skopeo",
            &[
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{w}/arm/app:1.0"),
            ],
        )
        .ok(),
    );
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["platform"]["architecture"], "arm64");
    let original = json(
        &peer(
            dir,
            "skopeo",
            &["inspect", "--raw", &format!("oci:{}:1.0", sample.display())],
        )
        .ok(),
    );
    let arm = original["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "arm64")
        .unwrap();
    assert_eq!(
        entries[0]["digest"], arm["digest"],
        "the platform manifest itself is unchanged"
    );

    wharf(
        dir,
        &[
            "copy",
            "--platform",
            "linux/s390x",
            &format!("{w}/multi/app:1.0"),
            "oci:none",
        ],
    )
    .fails_with(&["no manifest for linux/s390x", "linux/amd64, linux/arm64/v8"]);
    assert!(!dir.join("none").exists());
}

#[test]
fn basic_auth_credential_helpers_and_login() {
    let dir = temp();
    let dir = dir.path();
    let sample = sample_layout(dir);
    let file = htpasswd(dir);
    let docker = DockerRegistry::start(Some(&file));
    let d = &docker.addr;
    let source = format!("oci:{}:1.0", sample.display());
    let empty_auth = dir.join("empty.json");
    std::fs::write(&empty_auth, "{}").unwrap();
    let authfile = empty_auth.to_str().unwrap();

    wharf(
        dir,
        &[
            "copy",
            "--authfile",
            authfile,
            &source,
            &format!("{d}/app:1.0"),
        ],
    )
    .fails_with(&[&format!(
        "{d} requires credentials (run `wharf login {d}` or pass --creds)"
    )]);
    let wrong = wharf(
        dir,
        &[
            "copy",
            "--authfile",
            authfile,
            "--dest-creds",
            "alice:wrong",
            &source,
            &format!("{d}/app:1.0"),
        ],
    );
    let line = wrong.fails_with(&[&format!(
        "credentials rejected by {d} (run `wharf login {d}`"
    )]);
    assert!(
        !line.contains("wrong"),
        "the password leaked into the error: {line}"
    );
    wharf(
        dir,
        &[
            "copy",
            "--dest-creds",
            "alice:s3cret",
            &source,
            &format!("{d}/app:1.0"),
        ],
    )
    .ok();
    assert_eq!(
        skopeo_digest(dir, &format!("{d}/app:1.0"), Some("alice:s3cret")),
        descriptor_of(dir, &source).digest.as_str()
    );

    // A credential helper named in the auth file.
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-testkit");
    std::fs::write(&helper, "#!/bin/sh\nread host\n[ \"$1\" = get ] && printf '{\"ServerURL\":\"%s\",\"Username\":\"alice\",\"Secret\":\"s3cret\"}' \"$host\"\n").unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&helper)
        .status()
        .unwrap();
    let helper_auth = dir.join("helper.json");
    std::fs::write(
        &helper_auth,
        format!(r#"{{"credHelpers":{{"{d}":"testkit"}}}}"#),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let tags = wharf_env(
        dir,
        &[
            "tags",
            "--authfile",
            helper_auth.to_str().unwrap(),
            &format!("{d}/app"),
        ],
        &[("PATH", &path)],
    )
    .ok();
    assert_eq!(tags.trim(), "1.0");

    // login checks, stores, and logout removes.
    let login_file = dir.join("login.json");
    let login = login_file.to_str().unwrap();
    wharf_stdin(
        dir,
        &[
            "login",
            d,
            "-u",
            "alice",
            "--password-stdin",
            "--authfile",
            login,
        ],
        "nope\n",
    )
    .fails_with(&[&format!(
        "login to {d}: {d} refused user \"alice\" with this password"
    )]);
    assert!(!login_file.exists(), "a failed login wrote credentials");
    let out = wharf_stdin(
        dir,
        &[
            "login",
            d,
            "-u",
            "alice",
            "--password-stdin",
            "--authfile",
            login,
        ],
        "s3cret\n",
    )
    .ok();
    assert!(out.contains("Login succeeded"), "{out}");
    let stored = json(&std::fs::read_to_string(&login_file).unwrap());
    assert!(stored["auths"][d.as_str()]["auth"].is_string(), "{stored}");
    assert_eq!(
        wharf(dir, &["tags", "--authfile", login, &format!("{d}/app")])
            .ok()
            .trim(),
        "1.0"
    );
    wharf(dir, &["logout", d, "--authfile", login]).ok();
    wharf(dir, &["logout", d, "--authfile", login]).fails_with(&["not logged in"]);
    wharf(dir, &["tags", "--authfile", login, &format!("{d}/app")])
        .fails_with(&["requires credentials"]);
}

#[test]
fn bearer_tokens_are_fetched_reused_and_renewed() {
    let dir = temp();
    let dir = dir.path();
    let sample = sample_layout(dir);
    let served = serve(dir, &[]);
    let auth = TokenAuth {
        username: "bot".into(),
        password: "t0ken".into(),
        lifetime: 300,
    };
    let proxy = TestProxy::start(served.addr(), Some(auth));
    let source = format!("oci:{}:1.0", sample.display());
    let target = format!("{}/secure/app:1.0", proxy.host());

    wharf(dir, &["copy", &source, &target]).fails_with(&["requires credentials"]);
    wharf(dir, &["copy", "--creds", "bot:t0ken", &source, &target]).ok();
    let first = proxy.tokens_issued();
    assert!(
        (1..=3).contains(&first),
        "tokens are reused across requests: {first}"
    );

    // A revoked token (401 mid-copy) is renewed and the copy completes.
    proxy.inject(Fault {
        method: Some(reqwest::Method::GET),
        path_contains: "/blobs/".into(),
        times: 1,
        action: FaultAction::Unauthorized,
    });
    wharf(
        dir,
        &[
            "copy",
            "--no-referrers",
            "--creds",
            "bot:t0ken",
            &target,
            "oci:pulled",
        ],
    )
    .ok();
    assert!(
        proxy.tokens_issued() > first + 1,
        "a new token was fetched after the 401"
    );
    assert_eq!(blob_files(&dir.join("pulled")), blob_files(&sample));
}

#[test]
fn survives_dropped_connections_rate_limits_and_server_errors() {
    let dir = temp();
    let dir = dir.path();
    let layout = dir.join("big");
    let layer = big_image_layout(&layout, 3 << 20);
    let served = serve(dir, &[]);
    let proxy = TestProxy::start(served.addr(), None);
    let p = proxy.host();

    proxy.inject(Fault {
        method: Some(reqwest::Method::PUT),
        path_contains: "/manifests/".into(),
        times: 1,
        action: FaultAction::Status {
            code: 429,
            retry_after: Some(1),
        },
    });
    proxy.inject(Fault {
        method: Some(reqwest::Method::HEAD),
        path_contains: "/blobs/".into(),
        times: 2,
        action: FaultAction::Status {
            code: 503,
            retry_after: None,
        },
    });
    wharf(dir, &["copy", "oci:big:big", &format!("{p}/big/app:1")]).ok();
    let records = proxy.records();
    assert!(
        records.iter().any(|r| r.status == 429)
            && records.iter().filter(|r| r.status == 503).count() == 2
    );

    // The download first meets a 503, then is cut mid-blob, and the resume meets a server that
    // ignores Range.
    let blob_path = format!("/blobs/{}", layer.digest);
    for action in [
        FaultAction::Status {
            code: 503,
            retry_after: None,
        },
        FaultAction::CutBodyAfter(1 << 20),
        FaultAction::IgnoreRange,
    ] {
        proxy.inject(Fault {
            method: Some(reqwest::Method::GET),
            path_contains: blob_path.clone(),
            times: 1,
            action,
        });
    }
    proxy.clear_records();
    wharf(dir, &["copy", &format!("{p}/big/app:1"), "oci:copy"]).ok();
    assert_eq!(blob_files(&dir.join("copy")), blob_files(&layout));
    let gets = proxy
        .records()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains(&blob_path))
        .count();
    assert!(
        gets >= 3,
        "the blob was fetched again after the cut: {gets}"
    );

    // Wrong bytes from the source fail the copy naming the blob, and nothing is tagged.
    proxy.inject(Fault {
        method: Some(reqwest::Method::GET),
        path_contains: blob_path,
        times: 5,
        action: FaultAction::CorruptBody,
    });
    let target = format!("{}/corrupt/app:1", served.addr());
    wharf(dir, &["copy", &format!("{p}/big/app:1"), &target])
        .fails_with(&[layer.digest.as_str(), "does not match its digest"]);
    // The repository may exist (other blobs arrived) but has no tag.
    let tags = wharf(dir, &["tags", &format!("{}/corrupt/app", served.addr())]);
    if tags.status.success() {
        assert_eq!(tags.stdout, "", "a tag points at incomplete content");
    } else {
        tags.fails_with(&["not found"]);
    }
}

#[test]
fn chunked_uploads_honour_the_registry_minimum() {
    let dir = temp();
    let dir = dir.path();
    let layout = dir.join("big");
    big_image_layout(&layout, 3 << 20);
    let served = serve(
        dir,
        &[
            "--chunk-min-length",
            "1048576",
            "--access-log",
            "access.log",
        ],
    );
    // Asked for 512 KiB chunks, wharf sends the registry's 1 MiB minimum instead.
    wharf(
        dir,
        &[
            "copy",
            "--chunk-size",
            "524288",
            "oci:big:big",
            &format!("{}/chunked/app:1", served.addr()),
        ],
    )
    .ok();
    let log = std::fs::read_to_string(dir.join("access.log")).unwrap();
    let patches = log.lines().filter(|l| l.contains("\"PATCH\"")).count();
    assert_eq!(
        patches, 4,
        "3 MiB in 1 MiB chunks, plus the config's single chunk"
    );
    wharf(
        dir,
        &[
            "copy",
            &format!("{}/chunked/app:1", served.addr()),
            "oci:back",
        ],
    )
    .ok();
    assert_eq!(blob_files(&dir.join("back")), blob_files(&layout));
}

#[test]
fn a_proxy_body_limit_is_learned_and_blobs_go_in_chunks_it_takes() {
    let dir = temp();
    let dir = dir.path();
    gen_layout(&dir.join("gen"), 2, 1, 0, "3M");
    let registry = DockerRegistry::start(None);
    // nginx in front refuses bodies over 1 MiB with 413, before they reach the registry.
    let limited = Nginx::with_body_limit(&registry.addr, "1m");
    let counting = TestProxy::start(&limited.addr, None);
    let refused = |counting: &TestProxy| {
        counting
            .records()
            .iter()
            .filter(|r| r.status == 413)
            .count()
    };
    let source = |image: &str| format!("oci:{}:{image}", dir.join("gen").display());
    let first = format!("{}/team/first:1", counting.host());
    wharf(dir, &["copy", &source("img0"), &first]).ok();
    assert!(refused(&counting) > 0, "{:?}", counting.records());
    assert_eq!(
        descriptor_of(dir, &first).digest,
        descriptor_of(dir, &source("img0")).digest
    );
    assert_verified(dir, &first);

    // The limit is kept for later runs: the next image goes in 1 MiB chunks from the start.
    counting.clear_records();
    let second = format!("{}/team/second:1", counting.host());
    wharf(dir, &["copy", &source("img1"), &second]).ok();
    assert_eq!(refused(&counting), 0, "{:?}", counting.records());
    let patches = counting
        .records()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count();
    assert_eq!(patches, 3, "3 MiB in chunks of 1 MiB");
    wharf(dir, &["copy", &second, "oci:back"]).ok();
    assert_eq!(
        descriptor_of(dir, "oci:back").digest,
        descriptor_of(dir, &source("img1")).digest
    );

    // A limit below any sensible chunk: one line saying what to change.
    let tiny = Nginx::with_body_limit(&registry.addr, "16k");
    wharf(
        dir,
        &[
            "copy",
            &source("img0"),
            &format!("{}/team/tiny:1", tiny.addr),
        ],
    )
    .fails_with(&["413", "client_max_body_size"]);
}

#[test]
fn a_registry_that_does_not_mount_is_learned_and_not_asked_again() {
    let dir = temp();
    let dir = dir.path();
    let sample = sample_layout(dir);
    let registry = DockerRegistry::start(None);
    let proxy = TestProxy::start(&registry.addr, None);
    let at = |repository: &str| format!("{}/{repository}:1.0", proxy.host());
    wharf(
        dir,
        &["copy", &format!("oci:{}:1.0", sample.display()), &at("a")],
    )
    .ok();
    // The registry opens an upload instead of mounting, as registries without mounts do.
    proxy.inject(Fault {
        method: Some(reqwest::Method::POST),
        path_contains: "mount=".into(),
        times: usize::MAX,
        action: FaultAction::Status {
            code: 202,
            retry_after: None,
        },
    });
    let mounts = |proxy: &TestProxy| {
        let asked = proxy
            .records()
            .iter()
            .filter(|r| r.method == "POST" && r.query.contains("mount="))
            .count();
        proxy.clear_records();
        asked
    };
    proxy.clear_records();
    wharf(dir, &["copy", "-j", "1", &at("a"), &at("b")]).ok();
    assert_eq!(mounts(&proxy), 2, "two refusals of blobs known to be there");
    // Later runs remember it (the blob cache's host facts) and upload straight away.
    wharf(dir, &["copy", &at("a"), &at("c")]).ok();
    assert_eq!(mounts(&proxy), 0);
    wharf(dir, &["copy", "--no-cache", &at("a"), &at("d")]).ok();
    assert!(mounts(&proxy) > 0, "without the cache it asks again");
    for copied in ["b", "c", "d"] {
        assert_eq!(
            descriptor_of(dir, &at(copied)).digest,
            descriptor_of(dir, &at("a")).digest
        );
        assert_verified(dir, &at(copied));
    }
}

#[test]
fn tls_with_a_private_ca() {
    let dir = temp();
    let dir = dir.path();
    let tls = TlsFiles::create(dir);
    let served = serve(
        dir,
        &[
            "--tls-cert",
            tls.cert.to_str().unwrap(),
            "--tls-key",
            tls.key.to_str().unwrap(),
        ],
    );
    let sample = sample_layout(dir);
    let target = format!("{}/tls/app:1.0", served.addr());
    let source = format!("oci:{}:1.0", sample.display());
    let cert_dir = tls.ca.parent().unwrap().to_str().unwrap();
    // A certificate from an unknown CA is refused, even on loopback, in words with the fix.
    let refused = wharf(dir, &["copy", &source, &target]).fails_with(&[
        served.addr(),
        "signed by an unknown authority",
        "--cert-dir",
        "--tls-verify=false",
    ]);
    assert!(!refused.contains("plain HTTP"), "{refused}");
    wharf(dir, &["copy", "--cert-dir", cert_dir, &source, &target]).ok();
    wharf(
        dir,
        &[
            "copy",
            "--tls-verify=false",
            &source,
            &format!("{}/tls/other:1", served.addr()),
        ],
    )
    .ok();
    let out = wharf(dir, &["inspect", "--cert-dir", cert_dir, &target]).ok();
    assert!(
        out.contains("Media type:  application/vnd.oci.image.index.v1+json"),
        "{out}"
    );
    wharf(dir, &["inspect", "--cert-dir", "nowhere", &target])
        .fails_with(&["certificate directory nowhere"]);

    // A self-signed certificate from a plain `openssl req -x509` (marked as a CA), used directly
    // as the server's: accepted from --cert-dir, as skopeo accepts it.
    let own = dir.join("own");
    std::fs::create_dir_all(&own).unwrap();
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(own.join("key.pem"))
        .arg("-out")
        .arg(own.join("cert.crt"))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let selfsigned = serve(
        &own,
        &[
            "--tls-cert",
            own.join("cert.crt").to_str().unwrap(),
            "--tls-key",
            own.join("key.pem").to_str().unwrap(),
        ],
    );
    let target = format!("{}/tls/app:1.0", selfsigned.addr());
    let certs = dir.join("own-certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(own.join("cert.crt"), certs.join("cert.crt")).unwrap();
    wharf(dir, &["copy", &source, &target]).fails_with(&["not trusted"]);
    wharf(
        dir,
        &[
            "copy",
            "--cert-dir",
            certs.to_str().unwrap(),
            &source,
            &target,
        ],
    )
    .ok();
}

#[test]
fn bad_registry_input_fails_in_one_line() {
    let dir = temp();
    let dir = dir.path();
    let served = serve(dir, &[]);
    let w = served.addr();
    wharf(dir, &["copy", &format!("{w}/Upper/app:1"), "oci:x"]).fails_with(&["must be lowercase"]);
    wharf(dir, &["copy", &format!("{w}/missing/app:1"), "oci:x"])
        .fails_with(&[&format!("{w}/missing/app"), "not found"]);
    wharf(dir, &["inspect", "127.0.0.1:1/app:1"]).fails_with(&["cannot reach 127.0.0.1:1"]);
    wharf(
        dir,
        &["copy", "--creds", "nocolon", &format!("{w}/a:1"), "oci:x"],
    )
    .fails_with(&["USER:PASSWORD"]);
    assert!(!dir.join("x").exists());
}
