use crate::util::{
    blob_files, files, htpasswd, http, peer, response_header, sample_layout, serve, sha256_of,
    skopeo_copy_all, temp, wharf,
};

#[test]
fn skopeo_pushes_and_pulls_a_multi_arch_image_unchanged() {
    let dir = temp();
    let dir = dir.path();
    let sample = sample_layout(dir);
    let source = format!("oci:{}:1.0", sample.display());
    let mut served = serve(dir, &["--access-log", "access.log"]);
    let remote = format!("docker://{}/demo/app:1.0", served.addr());

    skopeo_copy_all(dir, &source, &remote).ok();
    let raw = peer(
        dir,
        "skopeo",
        &["inspect", "--raw", "--tls-verify=false", &remote],
    )
    .ok();
    let local_raw = peer(dir, "skopeo", &["inspect", "--raw", &source]).ok();
    assert_eq!(raw, local_raw, "manifest bytes survive the round trip");
    let tags = peer(
        dir,
        "skopeo",
        &[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{}/demo/app", served.addr()),
        ],
    )
    .ok();
    assert!(tags.contains("\"1.0\""), "{tags}");

    skopeo_copy_all(dir, &remote, "oci:pulled:1.0").ok();
    assert_eq!(blob_files(&sample), blob_files(&dir.join("pulled")));
    let pulled_raw = peer(dir, "skopeo", &["inspect", "--raw", "oci:pulled:1.0"]).ok();
    assert_eq!(
        sha256_of(dir, pulled_raw.as_bytes()),
        sha256_of(dir, local_raw.as_bytes())
    );

    // The access log recorded the pushes, one JSON object per line.
    let log = std::fs::read_to_string(dir.join("access.log")).unwrap();
    let puts = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["method"] == "PUT" && r["path"].as_str().unwrap().contains("/manifests/"))
        .count();
    assert_eq!(puts, 3, "two platform manifests and the index");
    assert!(
        served.stop().success(),
        "SIGTERM stops the registry cleanly"
    );
}

#[test]
fn skopeo_needs_the_right_credentials() {
    let dir = temp();
    let dir = dir.path();
    let sample = sample_layout(dir);
    let source = format!("oci:{}:1.0", sample.display());
    let file = htpasswd(dir);
    let served = serve(dir, &["--htpasswd", file.to_str().unwrap()]);
    let remote = format!("docker://{}/private/app:1.0", served.addr());

    let anonymous = skopeo_copy_all(dir, &source, &remote);
    assert!(!anonymous.status.success());
    assert!(
        anonymous.stderr.contains("unauthorized")
            || anonymous.stderr.contains("authentication required"),
        "{}",
        anonymous.stderr
    );
    let wrong = peer(
        dir,
        "skopeo",
        &[
            "copy",
            "--all",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:wrong",
            &source,
            &remote,
        ],
    );
    assert!(!wrong.status.success());
    peer(
        dir,
        "skopeo",
        &[
            "copy",
            "--all",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:s3cret",
            &source,
            &remote,
        ],
    )
    .ok();
    let raw = peer(
        dir,
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "alice:s3cret",
            &remote,
        ],
    )
    .ok();
    assert!(
        raw.contains("application/vnd.oci.image.index.v1+json"),
        "{raw}"
    );
}

#[test]
fn gc_removes_only_unreferenced_blobs() {
    let dir = temp();
    let dir = dir.path();
    let sample = sample_layout(dir);
    let mut served = serve(dir, &[]);
    let remote = format!("docker://{}/gc/app:1.0", served.addr());
    peer(
        dir,
        "skopeo",
        &[
            "copy",
            "--all",
            "--dest-tls-verify=false",
            &format!("oci:{}:1.0", sample.display()),
            &remote,
        ],
    )
    .ok();
    served.stop();
    let out = wharf(
        dir,
        &[
            "serve",
            "gc",
            "--root",
            served.root.to_str().unwrap(),
            "--grace",
            "0s",
        ],
    )
    .ok();
    assert!(out.starts_with("removed 0 blobs"), "{out}");
    wharf(dir, &["serve", "gc", "--root", "nowhere"])
        .fails_with(&["nowhere", "not a wharf registry"]);
}

#[test]
fn serve_rejects_bad_options_in_one_line() {
    let dir = temp();
    let dir = dir.path();
    std::fs::write(dir.join("plain"), "alice:plaintext\n").unwrap();
    wharf(
        dir,
        &[
            "serve",
            "--root",
            "r",
            "--listen",
            "127.0.0.1:0",
            "--htpasswd",
            "plain",
        ],
    )
    .fails_with(&["htpasswd file plain", "bcrypt"]);
    wharf(dir, &["serve", "--root", "r", "--listen", "nonsense"])
        .fails_with(&["listen address \"nonsense\""]);
    wharf(
        dir,
        &[
            "serve",
            "--root",
            "r",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "missing.pem",
            "--tls-key",
            "missing.key",
        ],
    )
    .fails_with(&["TLS missing.pem"]);

    // One cause, said once; settings from a file, checked like flags.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = busy.local_addr().unwrap().to_string();
    let line = wharf(dir, &["serve", "--root", "r", "--listen", &taken])
        .fails_with(&[&format!("listen on {taken}: Address already in use")]);
    assert_eq!(line.matches("in use").count(), 1, "{line}");
    std::fs::write(dir.join("bad.toml"), "root = \"r\"\ncolour = \"blue\"\n").unwrap();
    wharf(dir, &["serve", "--config", "bad.toml"]).fails_with(&["--config bad.toml", "colour"]);
    std::fs::write(
        dir.join("anon.toml"),
        "root = \"r\"\nanonymous-read = true\n",
    )
    .unwrap();
    wharf(dir, &["serve", "--config", "anon.toml"]).fails_with(&["--htpasswd"]);
}

#[test]
fn operators_get_health_metrics_that_match_the_access_log_and_a_config_file() {
    let dir = temp();
    let dir = dir.path();
    let file = htpasswd(dir);
    std::fs::write(
        dir.join("serve.toml"),
        format!(
            "htpasswd = {:?}\naccess-log = \"access.log\"\nlog-format = \"json\"\n",
            file.display()
        ),
    )
    .unwrap();
    let served = serve(dir, &["--config", "serve.toml"]);
    let addr = served.addr().to_owned();

    // Health needs no credentials; every answer names the API version.
    let (status, response) = crate::util::http_with(&addr, "GET", "/healthz", &[], b"");
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        response_header(&response, "docker-distribution-api-version").as_deref(),
        Some("registry/2.0")
    );
    let (status, _) = http(&addr, "GET", "/v2/", b"");
    assert_eq!(status, 401, "the config file's htpasswd is in force");

    let sample = sample_layout(dir);
    let source = format!("oci:{}:1.0", sample.display());
    let target = format!("{addr}/team/app:1.0");
    let push = {
        let dir = dir.to_owned();
        std::thread::spawn(move || {
            wharf(&dir, &["copy", "--creds", "alice:s3cret", &source, &target]).ok();
        })
    };
    let authorization = [("Authorization", "Basic YWxpY2U6czNjcmV0")];
    let scrape = || {
        let (status, body) = crate::util::http_with(&addr, "GET", "/metrics", &authorization, b"");
        assert_eq!(status, 200, "{body}");
        body
    };
    let during = scrape();
    assert!(
        during.contains("# TYPE wharf_http_requests_total counter"),
        "{during}"
    );
    push.join().unwrap();
    let after = scrape();

    // Every request but the scrapes, by method and status, as the access log has them.
    let mut counted: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for line in after
        .lines()
        .filter(|l| l.starts_with("wharf_http_requests_total{"))
    {
        let field = |name: &str| {
            let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            line[start..].split('"').next().unwrap().to_owned()
        };
        if field("route") == "metrics" {
            continue;
        }
        let count: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *counted
            .entry((field("method"), field("status")))
            .or_default() += count;
    }
    let mut logged: std::collections::BTreeMap<(String, String), u64> = Default::default();
    let log = std::fs::read_to_string(dir.join("access.log")).unwrap();
    for line in log.lines().map(crate::util::json) {
        if line["path"] == "/metrics" {
            continue;
        }
        let key = (
            line["method"].as_str().unwrap().to_owned(),
            line["status"].to_string(),
        );
        *logged.entry(key).or_default() += 1;
    }
    assert_eq!(counted, logged, "{after}");
    assert!(
        counted
            .get(&("PUT".into(), "201".into()))
            .is_some_and(|n| *n >= 4),
        "{counted:?}"
    );
    assert!(after.contains("wharf_uploads_in_flight 0\n"), "{after}");
    assert!(after.contains("wharf_storage_errors_total 0\n"), "{after}");
}

#[test]
fn a_killed_upload_never_becomes_visible() {
    use std::io::Write;
    let dir = temp();
    let dir = dir.path();
    let mut served = serve(dir, &[]);
    let addr = served.addr().to_owned();
    let (status, response) = http(&addr, "POST", "/v2/crash/app/blobs/uploads/", b"");
    assert_eq!(status, 202, "{response}");
    let location = response_header(&response, "location").unwrap();

    // Announce 2 MiB, send half, and kill the registry with SIGKILL while it waits for the rest.
    let full = vec![42u8; 2 << 20];
    let digest = sha256_of(dir, &full);
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "PATCH {location} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        full.len()
    )
    .unwrap();
    stream.write_all(&full[..1 << 20]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    drop(stream);

    let blobs = files(&served.root.join("blobs"));
    assert!(blobs.is_empty(), "a partial blob became visible: {blobs:?}");
    let restarted = serve(dir, &[]);
    let (status, _) = http(
        restarted.addr(),
        "HEAD",
        &format!("/v2/crash/app/blobs/{digest}"),
        b"",
    );
    assert_eq!(status, 404);
    // The session lives in the storage, not in the killed process: another instance carries it
    // on from what was written whole (nothing of the cut chunk), and the blob appears once whole.
    let (status, response) = http(restarted.addr(), "GET", &location, b"");
    assert_eq!(status, 204, "{response}");
    assert_eq!(response_header(&response, "range").as_deref(), Some("0-0"));
    let (status, response) = http(restarted.addr(), "PATCH", &location, &full[..1 << 20]);
    assert_eq!(status, 202, "{response}");
    let (status, response) = http(
        restarted.addr(),
        "PUT",
        &format!("{location}?digest={digest}"),
        &full[1 << 20..],
    );
    assert_eq!(status, 201, "{response}");
    let (status, _) = http(
        restarted.addr(),
        "HEAD",
        &format!("/v2/crash/app/blobs/{digest}"),
        b"",
    );
    assert_eq!(status, 200);

    // An abandoned session goes with gc.
    let (status, response) = http(
        restarted.addr(),
        "POST",
        "/v2/crash/app/blobs/uploads/",
        b"",
    );
    assert_eq!(status, 202, "{response}");
    drop(restarted);
    let out = wharf(
        dir,
        &[
            "serve",
            "gc",
            "--root",
            served.root.to_str().unwrap(),
            "--grace",
            "0s",
        ],
    )
    .ok();
    // The abandoned session, and the temporary file of the chunk the killed instance was writing.
    assert!(out.contains("2 abandoned uploads"), "{out}");
}
