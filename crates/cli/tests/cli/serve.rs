use crate::util::{
    blob_files, files, htpasswd, http, peer, response_header, sample_layout, serve, sha256_of,
    temp, wharf,
};

#[test]
fn skopeo_pushes_and_pulls_a_multi_arch_image_unchanged() {
    let dir = temp();
    let dir = dir.path();
    let sample = sample_layout(dir);
    let source = format!("oci:{}:1.0", sample.display());
    let mut served = serve(dir, &["--access-log", "access.log"]);
    let remote = format!("docker://{}/demo/app:1.0", served.addr());

    peer(
        dir,
        "skopeo",
        &["copy", "--all", "--dest-tls-verify=false", &source, &remote],
    )
    .ok();
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

    peer(
        dir,
        "skopeo",
        &[
            "copy",
            "--all",
            "--src-tls-verify=false",
            &remote,
            "oci:pulled:1.0",
        ],
    )
    .ok();
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

    let anonymous = peer(
        dir,
        "skopeo",
        &["copy", "--all", "--dest-tls-verify=false", &source, &remote],
    );
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
    let (status, _) = http(restarted.addr(), "GET", &location, b"");
    assert_eq!(status, 404, "the interrupted session is gone");
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
    assert!(out.contains("1 abandoned uploads"), "{out}");
}
