//! Reliability: no hang, no silent loss, no denial of service by a client without credentials. One
//! case per finding of the fault probe and the conformance runs (issue 12), each bounded in time:
//! a run that does not end is killed and fails the test.
//!
//! Cases that need a full disk run wharf in a private mount namespace over a small tmpfs
//! (`unshare --mount`), which goes away with the process.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{
    DockerRegistry, Fault, FaultAction, Run, TestProxy, assert_verified, big_image_layout,
    blob_files, bounded, descriptor_of, finish_within, gen_layout, htpasswd, json, layout_manifest,
    peer, sample_layout, serve, sha256_of, temp, wharf, wharf_command, wharf_within,
};

/// Longest a case's wharf run may take before it counts as hung.
const BOUND: Duration = Duration::from_secs(60);

fn oci(path: &Path) -> String {
    format!("oci:{}", path.display())
}

/// Removes the config blob of image `tag` from a layout.
fn lose_config(layout: &Path, tag: &str) {
    let manifest = layout_manifest(layout, tag);
    let digest = manifest["config"]["digest"].as_str().unwrap();
    std::fs::remove_file(layout.join("blobs/sha256").join(&digest["sha256:".len()..])).unwrap();
}

/// Runs `wharf ARGS` with a tmpfs of `size` mounted at `mount` (created if missing), in a mount
/// namespace of its own; afterwards lists, after a `leftover:` prefix on stdout, every file under
/// `mount` whose name holds `.wharf-tmp-`.
fn wharf_on_small_disk(
    dir: &Path,
    mount: &Path,
    size: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Run {
    std::fs::create_dir_all(mount).unwrap();
    let script = r#"mount -t tmpfs -o size="$1" tmpfs "$2" || exit 99
dir="$2"; shift 2
"$@"; status=$?
find "$dir" -name '*.wharf-tmp-*' -printf 'leftover: %p\n'
exit $status"#;
    let mut command = Command::new("unshare");
    command
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(size)
        .arg(mount)
        .arg(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .current_dir(dir)
        .env("XDG_CACHE_HOME", dir.join(".cache"))
        .envs(env.iter().copied());
    let child = bounded(&mut command)
        .spawn()
        .unwrap_or_else(|e| panic!("unshare is needed for this test ({e})"));
    let run = finish_within(child, BOUND, &args.join(" "));
    assert_ne!(
        run.status.code(),
        Some(99),
        "cannot mount a tmpfs (this test needs root): {}",
        run.stderr
    );
    run
}

// 1. An image that fails while uploading a blob others wait for must not leave them spinning.

#[test]
fn an_image_failing_beside_a_shared_upload_does_not_hang_the_others() {
    let dir = temp();
    let dir = dir.path();
    let layout = dir.join("shared");
    gen_layout(&layout, 4, 2, 1, "8M");
    lose_config(&layout, "img0");
    lose_config(&layout, "img2");
    for round in 0..3 {
        let out = dir.join(format!("out{round}"));
        let run = wharf_within(
            dir,
            &[
                "sync",
                "-q",
                "--output",
                "json",
                &oci(&layout),
                "--to",
                &oci(&out),
            ],
            BOUND,
        );
        assert!(!run.status.success(), "{}", run.stdout);
        let report = json(&run.stdout);
        let statuses: Vec<&str> = report["roots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == "copied").count(),
            2,
            "{report}"
        );
        assert_eq!(statuses.iter().filter(|s| **s == "failed").count(), 2);
    }
}

#[test]
fn a_full_disk_fails_the_sync_without_hanging_or_leaving_temporary_files() {
    let dir = temp();
    let dir = dir.path();
    let layout = dir.join("big");
    gen_layout(&layout, 4, 2, 1, "8M");
    let small = dir.join("small");
    for target in ["oci:out", "oci-archive:out.tar", "ctf:out.tgz", "ctf:out"] {
        let (kind, name) = target.split_once(':').unwrap();
        let destination = format!("{kind}:{}", small.join(name).display());
        let run = wharf_on_small_disk(
            dir,
            &small,
            "20m",
            &["sync", "-q", &oci(&layout), "--to", &destination],
            &[],
        );
        assert!(!run.status.success(), "{target}: {}", run.stdout);
        assert!(
            !run.stdout.contains(" 0 failed;")
                && run.stderr.contains("failed: ")
                && run.stderr.contains("No space left on device"),
            "{target}: the run says what failed, once: {}{}",
            run.stdout,
            run.stderr
        );
        assert!(
            !run.stdout.contains("leftover:"),
            "{target} left temporary files: {}",
            run.stdout
        );
    }
}

// 2. A peer that stops sending, or never answers, costs the idle timeout, not forever.

#[test]
fn a_source_that_stops_sending_mid_blob_is_abandoned_and_resumed() {
    let dir = temp();
    let dir = dir.path();
    let source = serve(dir, &[]);
    let layout = dir.join("big");
    let layer = big_image_layout(&layout, 2 << 20);
    wharf(
        dir,
        &[
            "copy",
            &format!("{}:big", oci(&layout)),
            &format!("{}/app:big", source.addr()),
        ],
    )
    .ok();
    let proxy = TestProxy::start(source.addr(), None);
    proxy.inject(Fault {
        method: Some(reqwest::Method::GET),
        path_contains: layer.digest.hex().to_owned(),
        times: 1,
        action: FaultAction::StallBodyAfter(256 * 1024),
    });
    let out = dir.join("out");
    wharf_within(
        dir,
        &[
            "copy",
            "--idle-timeout",
            "2",
            &format!("{}/app:big", proxy.host()),
            &format!("{}:big", oci(&out)),
        ],
        BOUND,
    )
    .ok();
    let copied = std::fs::read(out.join("blobs/sha256").join(layer.digest.hex())).unwrap();
    assert_eq!(sha256_of(dir, &copied), layer.digest.to_string());
    let layer_gets = proxy
        .records()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains(layer.digest.hex()))
        .count();
    assert_eq!(layer_gets, 2, "the stalled download is resumed once");
}

#[test]
fn a_registry_that_accepts_and_never_answers_fails_after_the_idle_timeout() {
    let dir = temp();
    let dir = dir.path();
    // Connections complete in the kernel's backlog; nothing ever reads or answers them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let started = Instant::now();
    wharf_within(
        dir,
        &["inspect", "--idle-timeout", "1", &format!("{addr}/app:1")],
        BOUND,
    )
    .fails_with(&["sent nothing for 1 s"]);
    assert!(started.elapsed() < Duration::from_secs(30));

    // Behind a proxy that answers the ping, then never answers a manifest request.
    let source = serve(dir, &[]);
    wharf(
        dir,
        &[
            "copy",
            &format!("{}:1.0", oci(&sample_layout(dir))),
            &format!("{}/app:1", source.addr()),
        ],
    )
    .ok();
    let proxy = TestProxy::start(source.addr(), None);
    proxy.inject(Fault {
        method: None,
        path_contains: "/manifests/".into(),
        times: usize::MAX,
        action: FaultAction::BlackHole,
    });
    wharf_within(
        dir,
        &[
            "inspect",
            "--idle-timeout",
            "1",
            &format!("{}/app:1", proxy.host()),
        ],
        BOUND,
    )
    .fails_with(&["app", "sent nothing for 1 s"]);
}

// 3. Two writers of one layout or archive take turns; neither loses the other's images.

#[test]
fn two_writers_of_one_store_take_turns() {
    let dir = temp();
    let dir = dir.path();
    let layout = dir.join("many");
    gen_layout(&layout, 20, 2, 1, "256K");
    let half = |range: std::ops::Range<usize>| -> Vec<String> {
        range.map(|i| format!("{}:img{i}", oci(&layout))).collect()
    };
    for target in ["oci-archive:x.tar", "ctf:x.tgz", "oci:xdir"] {
        let spawn = |sources: Vec<String>| {
            let mut command = wharf_command(dir, &["sync", "-q", "--to", target]);
            command.args(&sources);
            bounded(&mut command).spawn().unwrap()
        };
        let first = spawn(half(0..10));
        let second = spawn(half(10..20));
        finish_within(first, BOUND, target).ok();
        finish_within(second, BOUND, target).ok();
        let verified = wharf_within(dir, &["verify", target], BOUND).ok();
        assert!(
            verified.contains("20 roots") && verified.contains("0 problems"),
            "{target}: {verified}"
        );
    }
    assert!(
        !dir.join("x.tar.wharf-lock").exists(),
        "locks are removed when released"
    );

    // --no-wait refuses at once while another process holds the lock; without it, wharf waits.
    let mut flock = Command::new("flock");
    flock
        .args(["x.tar.wharf-lock", "sleep", "3"])
        .current_dir(dir);
    let holder = bounded(&mut flock)
        .spawn()
        .unwrap_or_else(|e| panic!("flock (util-linux) is needed for this test ({e})"));
    std::thread::sleep(Duration::from_millis(300));
    let one = &half(0..1)[0];
    wharf_within(
        dir,
        &["copy", "--no-wait", one, "oci-archive:x.tar:one"],
        BOUND,
    )
    .fails_with(&["oci-archive:x.tar", "another wharf process is writing it"]);
    let waited = wharf_within(dir, &["copy", one, "oci-archive:x.tar:one"], BOUND);
    assert!(waited.status.success(), "{}", waited.stderr);
    assert!(
        waited.stderr.contains("waiting for another wharf process"),
        "{}",
        waited.stderr
    );
    finish_within(holder, BOUND, "flock");
}

// 4, 5, 6, 12: the embedded registry against clients that misbehave.

/// One HTTP/1.1 exchange on `stream`: the status, the head, and the body (by Content-Length).
fn exchange(stream: &mut TcpStream, request: &[u8]) -> (u16, String, Vec<u8>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("an answer in time");
        assert_eq!(
            n,
            1,
            "connection closed after {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize =
        crate::util::response_header(&head, "content-length").map_or(0, |l| l.parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    (status, head, body)
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: wharf.test\r\n");
    for (name, value) in headers {
        out += &format!("{name}: {value}\r\n");
    }
    out += &format!("Content-Length: {}\r\n\r\n", body.len());
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[test]
fn half_open_connections_do_not_keep_real_requests_out() {
    let dir = temp();
    let dir = dir.path();
    let log = dir.join("serve.log");
    let server = crate::util::WharfServe::start_with(
        Path::new(env!("CARGO_BIN_EXE_wharf")),
        dir,
        1,
        &[],
        crate::util::ServeSetup {
            wrapper: &["prlimit", "--nofile=256:256", "--"],
            stderr: Some(&log),
            ..Default::default()
        },
    );
    let mut held = Vec::new();
    for _ in 0..400 {
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream
            .write_all(b"GET /v2/ HTTP/1.1\r\nHost: slow.test\r\n")
            .unwrap();
        held.push(stream);
    }
    for _ in 0..5 {
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        let (status, _, _) = exchange(&mut stream, &request("GET", "/v2/", &[], b""));
        assert_eq!(status, 200);
    }
    drop(held);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.len() < 2048, "the log stays quiet: {logged}");
}

#[test]
fn an_early_answer_leaves_the_connection_usable_or_says_close() {
    let dir = temp();
    let dir = dir.path();
    let file = htpasswd(dir);
    let server = serve(dir, &["--htpasswd", file.to_str().unwrap()]);
    let auth = basic("alice", "s3cret");

    // A small body sent without credentials is read to its end: the next request on the connection
    // works, as the conformance suite's retry with credentials does.
    let body = vec![7u8; 1000];
    let upload = format!("/v2/a/blobs/uploads/?digest={}", sha256_of(dir, &body));
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    let (status, head, _) = exchange(&mut stream, &request("POST", &upload, &[], &body));
    assert_eq!(status, 401);
    assert!(!head.to_lowercase().contains("connection: close"), "{head}");
    let (status, _, _) = exchange(
        &mut stream,
        &request("POST", &upload, &[("Authorization", &auth)], &body),
    );
    assert_eq!(status, 201);

    // A long one is not: the answer says so.
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    let big = vec![7u8; 4 << 20];
    let head_only = format!(
        "POST /v2/a/blobs/uploads/?digest=sha256:{} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        "0".repeat(64),
        big.len()
    );
    stream.write_all(head_only.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&big);
    });
    let (status, head, _) = exchange(&mut stream, b"");
    assert_eq!(status, 401);
    assert!(head.to_lowercase().contains("connection: close"), "{head}");
    drop(stream);
    sender.join().unwrap();
}

#[test]
fn upload_sessions_are_their_owners_and_honour_ranges() {
    let dir = temp();
    let dir = dir.path();
    let file = dir.join("htpasswd");
    std::fs::write(
        &file,
        format!(
            "alice:{}\nbob:{}\n",
            bcrypt::hash("s3cret", 5).unwrap(),
            bcrypt::hash("hunter2", 5).unwrap()
        ),
    )
    .unwrap();
    let server = serve(
        dir,
        &["--htpasswd", file.to_str().unwrap(), "--anonymous-read"],
    );
    let alice = basic("alice", "s3cret");
    let bob = basic("bob", "hunter2");
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    let (status, head, _) = exchange(
        &mut stream,
        &request(
            "POST",
            "/v2/a/blobs/uploads/",
            &[("Authorization", &alice)],
            b"",
        ),
    );
    assert_eq!(status, 202);
    let location = crate::util::response_header(&head, "location").unwrap();

    // Another user, or nobody, cannot see or touch it.
    for (who, headers) in [
        ("bob", vec![("Authorization", bob.as_str())]),
        ("anonymous", vec![]),
    ] {
        let (status, _, _) = exchange(&mut stream, &request("GET", &location, &headers, b""));
        assert!(
            matches!(status, 401 | 404),
            "{who} read alice's upload: {status}"
        );
        let (status, _, _) = exchange(
            &mut stream,
            &request("PATCH", &location, &headers, &[1u8; 16]),
        );
        assert!(
            matches!(status, 401 | 404),
            "{who} wrote alice's upload: {status}"
        );
    }

    // A closing PUT whose range does not continue the upload is refused with 416.
    let chunk = vec![1u8; 1024];
    let (status, head, _) = exchange(
        &mut stream,
        &request(
            "PATCH",
            &location,
            &[("Authorization", &alice), ("Content-Range", "0-1023")],
            &chunk,
        ),
    );
    assert_eq!(status, 202, "{head}");
    let location = crate::util::response_header(&head, "location").unwrap();
    let last = vec![2u8; 1019];
    let closing = format!("{location}?digest=sha256:{}", "0".repeat(64));
    let (status, _, _) = exchange(
        &mut stream,
        &request(
            "PUT",
            &closing,
            &[("Authorization", &alice), ("Content-Range", "2048-3066")],
            &last,
        ),
    );
    assert_eq!(status, 416);
    let (status, head, _) = exchange(
        &mut stream,
        &request("GET", &location, &[("Authorization", &alice)], b""),
    );
    assert_eq!(status, 204);
    assert_eq!(
        crate::util::response_header(&head, "range").as_deref(),
        Some("0-1023")
    );

    // Manifests come with a manifest media type.
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let (status, _, body) = exchange(
        &mut stream,
        &request(
            "PUT",
            "/v2/a/manifests/v1",
            &[("Authorization", &alice), ("Content-Type", "text/plain")],
            manifest,
        ),
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("MANIFEST_INVALID"));
}

#[test]
fn untouched_upload_sessions_expire() {
    let dir = temp();
    let dir = dir.path();
    let server = serve(dir, &["--upload-expiry", "1s"]);
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    let (status, head, _) = exchange(
        &mut stream,
        &request("POST", "/v2/a/blobs/uploads/", &[], b""),
    );
    assert_eq!(status, 202);
    let location = crate::util::response_header(&head, "location").unwrap();
    let uploads = server.root.join("uploads");
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&uploads).unwrap().count() > 0 {
        assert!(Instant::now() < deadline, "the session was never removed");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    let (status, _, _) = exchange(&mut stream, &request("GET", &location, &[], b""));
    assert_eq!(status, 404);
}

// 7. One mount per blob and repository, however many images need it there.

#[test]
fn images_sharing_a_repository_mount_a_blob_into_it_once() {
    let dir = temp();
    let dir = dir.path();
    let layout = dir.join("shared");
    gen_layout(&layout, 6, 2, 1, "512K");
    let shared = layout_manifest(&layout, "img0")["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let registry = DockerRegistry::start(None);
    let proxy = TestProxy::start(&registry.addr, None);
    // Each round goes into fresh repositories. Looking into the second repository is slowed down, so
    // that its five images all find the shared layer missing there while the first repository's
    // image uploads it: then all five want to mount it at once.
    for round in 0..3 {
        let first = format!("first{round}/app");
        let second = format!("second{round}/app");
        let mut file = String::from("images:\n");
        for i in 0..6 {
            let repository = if i == 0 { &first } else { &second };
            file += &format!(
                "- source: {}:img{i}\n  destination: {}/{repository}:{i}\n",
                oci(&layout),
                proxy.host()
            );
        }
        std::fs::write(dir.join("sync.yaml"), file).unwrap();
        proxy.inject(Fault {
            method: Some(reqwest::Method::HEAD),
            path_contains: format!("/{second}/"),
            times: usize::MAX,
            action: FaultAction::Delay(Duration::from_millis(300)),
        });
        proxy.clear_records();
        let run = wharf_within(dir, &["sync", "-q", "--file", "sync.yaml"], BOUND);
        assert!(run.status.success(), "round {round}: {}", run.stdout);
        let records = proxy.records();
        let shared_query = shared.replace(':', "%3A");
        for repository in [&first, &second] {
            let mounts = records
                .iter()
                .filter(|r| {
                    r.method == "POST"
                        && r.path.contains(repository.as_str())
                        && r.query.contains("mount=")
                        && r.query.contains(&shared_query)
                })
                .count();
            assert!(
                mounts <= 1,
                "round {round}: {mounts} mounts of one blob into {repository}"
            );
        }
        assert!(
            records
                .iter()
                .any(|r| r.query.contains("mount=") && r.query.contains(&shared_query)),
            "round {round}: one repository mounts the shared layer from the other"
        );
    }
}

// 8. Reads cut short, downloads damaged, uploads refused as damaged: each is tried again.

#[test]
fn transient_damage_is_retried_until_the_copy_is_whole() {
    let dir = temp();
    let dir = dir.path();
    let source = serve(dir, &[]);
    let layout = dir.join("big");
    big_image_layout(&layout, 1 << 20);
    for tag in ["1", "2"] {
        wharf(
            dir,
            &[
                "copy",
                &format!("{}:big", oci(&layout)),
                &format!("{}/app:{tag}", source.addr()),
            ],
        )
        .ok();
    }
    let digest = descriptor_of(dir, &format!("{}/app:1", source.addr())).digest;
    let registry = DockerRegistry::start(None);
    let from = TestProxy::start(source.addr(), None);
    let to = TestProxy::start(&registry.addr, None);
    let cases = [
        (
            "manifest-cut",
            &from,
            "GET",
            "/manifests/",
            FaultAction::CutBodyAfter(20),
        ),
        (
            "tags-cut",
            &from,
            "GET",
            "/tags/list",
            FaultAction::CutBodyAfter(5),
        ),
        (
            "blob-corrupt",
            &from,
            "GET",
            "/blobs/",
            FaultAction::CorruptBody,
        ),
        (
            "upload-damaged",
            &to,
            "PUT",
            "/blobs/uploads/",
            FaultAction::AlterRequestBody,
        ),
        (
            "manifest-damaged",
            &to,
            "PUT",
            "/manifests/",
            FaultAction::AlterRequestBody,
        ),
    ];
    for (name, proxy, method, path, action) in cases {
        proxy.inject(Fault {
            method: Some(method.parse().unwrap()),
            path_contains: path.into(),
            times: 1,
            action,
        });
        let prefix = format!("{}/{name}", to.host());
        // Without the blob cache, each case moves the bytes again instead of mounting them from
        // the previous case's copy.
        let run = wharf_within(
            dir,
            &[
                "sync",
                "-q",
                "--no-cache",
                &format!("{}/app", from.host()),
                "--to",
                &prefix,
            ],
            BOUND,
        );
        assert!(run.status.success(), "{name}: {}{}", run.stdout, run.stderr);
        for tag in ["1", "2"] {
            let copied = descriptor_of(dir, &format!("{}/{name}/app:{tag}", registry.addr));
            assert_eq!(copied.digest, digest, "{name}");
        }
        let fired = from
            .records()
            .iter()
            .chain(to.records().iter())
            .filter(|r| r.method == method && r.path.contains(path))
            .count();
        assert!(fired >= 2, "{name}: the damaged request was made again");
        from.clear_records();
        to.clear_records();
    }
}

#[test]
fn upload_requests_whose_answers_were_lost_are_recognised_when_sent_again() {
    let dir = temp();
    let dir = dir.path();
    let layout = dir.join("big");
    big_image_layout(&layout, 1 << 20);
    let source = format!("{}:big", oci(&layout));
    let served = serve(dir, &[]);
    let registry = DockerRegistry::start(None);
    for destination in [served.addr(), registry.addr.as_str()] {
        let proxy = TestProxy::start(destination, None);
        // The registry stores a chunk, then the closing request, but neither answer arrives. The
        // chunk sent again is refused as already there (416, wharf serve: the upload goes on) or
        // cancels the upload (404, docker-registry: it starts over); the closing PUT sent again
        // finds no upload (404) and the blob in place.
        for method in [reqwest::Method::PATCH, reqwest::Method::PUT] {
            proxy.inject(Fault {
                method: Some(method),
                path_contains: "/blobs/uploads/".into(),
                times: 1,
                action: FaultAction::AnswerLost,
            });
        }
        let target = format!("{}/app:1", proxy.host());
        let run = wharf_within(
            dir,
            &[
                "copy",
                "--no-cache",
                "--idle-timeout",
                "1",
                "--chunk-size",
                "262144",
                &source,
                &target,
            ],
            BOUND,
        );
        assert!(run.status.success(), "{destination}: {}", run.stderr);
        let answered = |method: &str, status: u16| {
            proxy.records().iter().any(|r| {
                r.method == method && r.path.contains("/blobs/uploads/") && r.status == status
            })
        };
        assert!(
            answered("PATCH", 416) || answered("PATCH", 404),
            "{destination}: {:?}",
            proxy.records()
        );
        assert!(answered("PUT", 404), "{destination}: {:?}", proxy.records());
        assert_eq!(
            descriptor_of(dir, &target).digest,
            descriptor_of(dir, &source).digest
        );
        assert_verified(dir, &target);
    }
}

// 9. A partial archive with a member written twice resumes with everything after it.

#[test]
fn resuming_past_a_duplicated_member_keeps_what_follows() {
    let dir = temp();
    let dir = dir.path();
    let source = serve(dir, &[]);
    let layout = dir.join("many");
    gen_layout(&layout, 6, 3, 1, "256K");
    let mut sources = Vec::new();
    for i in 0..6 {
        let name = format!("{}/team/app{i}:v1", source.addr());
        wharf(dir, &["copy", &format!("{}:img{i}", oci(&layout)), &name]).ok();
        sources.push(name);
    }
    let proxy = TestProxy::start(source.addr(), None);
    let through = |s: &String| s.replace(source.addr(), &proxy.host());
    let mut args: Vec<String> = vec![
        "sync".into(),
        "-q".into(),
        "--to".into(),
        "ctf:out.tar".into(),
    ];
    args.extend(sources.iter().map(through));
    args.push(format!("{}/team/missing:v1", proxy.host()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = wharf_within(dir, &argv, BOUND);
    assert!(!first.status.success());
    let partial = dir.join("out.tar.wharf-partial");
    assert!(partial.exists(), "a failed export keeps its partial file");

    // Put a second copy of the first member in front, as two racing writes of one blob left it.
    let bytes = std::fs::read(&partial).unwrap();
    let mut archive = tar::Archive::new(&bytes[..]);
    let entry = archive.entries().unwrap().next().unwrap().unwrap();
    let start = entry.raw_header_position() as usize;
    let end = entry.raw_file_position() as usize + (entry.size() as usize).div_ceil(512) * 512;
    let mut doubled = bytes[start..end].to_vec();
    doubled.extend_from_slice(&bytes);
    std::fs::write(&partial, doubled).unwrap();

    proxy.clear_records();
    let argv: Vec<&str> = argv[..argv.len() - 1].to_vec();
    wharf_within(dir, &argv, BOUND).ok();
    let refetched = proxy
        .records()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/blobs/"))
        .count();
    assert_eq!(refetched, 0, "every blob of the partial file was kept");
    let verified = wharf(dir, &["verify", "ctf:out.tar"]).ok();
    assert!(
        verified.contains("6 roots") && verified.contains("0 problems"),
        "{verified}"
    );
}

// 10. A manifest stored as other bytes than were sent never keeps the tag.

#[test]
fn a_manifest_damaged_in_transit_is_sent_again_or_leaves_no_tag() {
    let dir = temp();
    let dir = dir.path();
    let registry = DockerRegistry::start(None);
    let proxy = TestProxy::start(&registry.addr, None);
    let sample = format!("{}:1.0", oci(&sample_layout(dir)));
    let digest = descriptor_of(dir, &sample).digest;
    let damaged_put = |times| Fault {
        method: Some(reqwest::Method::PUT),
        path_contains: "/manifests/1.0".into(),
        times,
        action: FaultAction::AlterRequestBody,
    };

    proxy.inject(damaged_put(1));
    wharf_within(
        dir,
        &["copy", &sample, &format!("{}/once/app:1.0", proxy.host())],
        BOUND,
    )
    .ok();
    assert_eq!(
        descriptor_of(dir, &format!("{}/once/app:1.0", registry.addr)).digest,
        digest
    );

    proxy.inject(damaged_put(2));
    wharf_within(
        dir,
        &["copy", &sample, &format!("{}/twice/app:1.0", proxy.host())],
        BOUND,
    )
    .fails_with(&["twice/app", "not", "deleted"]);
    let left = wharf(
        dir,
        &[
            "inspect",
            "--output",
            "json",
            &format!("{}/twice/app:1.0", registry.addr),
        ],
    );
    if left.status.success() {
        assert_eq!(
            json(&left.stdout)["descriptor"]["digest"],
            digest.to_string()
        );
    } else {
        assert!(left.stderr.contains("not found"), "{}", left.stderr);
    }
}

// 11. Local input that would hang or waste: FIFOs, gzip bombs, leftovers of killed runs.

#[test]
fn a_fifo_among_the_blobs_fails_at_once() {
    let dir = temp();
    let dir = dir.path();
    let layout = dir.join("fifo");
    peer(
        dir,
        "cp",
        &[
            "-r",
            sample_layout(dir).to_str().unwrap(),
            layout.to_str().unwrap(),
        ],
    )
    .ok();
    let victim = blob_files(&layout)
        .into_iter()
        .max_by_key(|p| std::fs::metadata(layout.join(p)).unwrap().len())
        .unwrap();
    std::fs::remove_file(layout.join(&victim)).unwrap();
    peer(dir, "mkfifo", &[layout.join(&victim).to_str().unwrap()]).ok();
    let verified = wharf_within(dir, &["verify", &oci(&layout)], BOUND);
    assert!(!verified.status.success());
    assert!(
        verified.stdout.contains("not a regular file"),
        "{}",
        verified.stdout
    );
    wharf_within(
        dir,
        &["copy", &format!("{}:1.0", oci(&layout)), "oci:out:1.0"],
        BOUND,
    )
    .fails_with(&["not a regular file"]);
}

#[test]
fn compressed_archives_are_unpacked_only_as_far_as_they_are_tar() {
    let dir = temp();
    let dir = dir.path();
    // 400 MiB of zeros, gzip-compressed to a few hundred KiB: nothing of it is a tar member.
    let status = Command::new("python3")
        .args([
            "-c",
            "import gzip,sys\nwith gzip.open(sys.argv[1],'wb',compresslevel=1) as f:\n  z=bytes(1<<20)\n  for _ in range(400): f.write(z)",
            "zeros.tgz",
        ])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success());
    let tmp = dir.join("tmp");
    let run = wharf_on_small_disk(
        dir,
        &tmp,
        "20m",
        &["verify", "ctf:zeros.tgz"],
        &[("TMPDIR", tmp.to_str().unwrap())],
    );
    assert!(!run.status.success());
    assert!(!run.stderr.contains("No space left"), "{}", run.stderr);
    assert!(run.stderr.contains("artifact-index.json"), "{}", run.stderr);

    // A real archive too large for the temporary directory says so, not that it is damaged.
    let layout = dir.join("big");
    gen_layout(&layout, 1, 3, 0, "10M");
    wharf(dir, &["sync", &oci(&layout), "--to", "ctf:big.tgz"]).ok();
    let run = wharf_on_small_disk(
        dir,
        &tmp,
        "20m",
        &["verify", "ctf:big.tgz"],
        &[("TMPDIR", tmp.to_str().unwrap())],
    );
    assert!(!run.status.success());
    let line = run.stderr.lines().next().unwrap_or_default();
    assert!(
        line.contains("No space left on device")
            && line.contains("TMPDIR")
            && !line.contains("damaged"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_next_writer_removes_what_a_killed_one_left() {
    let dir = temp();
    let dir = dir.path();
    let sample = format!("{}:1.0", oci(&sample_layout(dir)));
    wharf(dir, &["copy", &sample, "oci:layout:1.0"]).ok();
    wharf(dir, &["sync", &sample, "--to", "ctf:out.tgz"]).ok();
    let leftovers: Vec<PathBuf> = vec![
        dir.join("layout/.wharf-tmp-killed"),
        dir.join(".out.tgz.wharf-tmp-killed"),
        dir.join("out.tgz.wharf-partial.compact"),
    ];
    for path in &leftovers {
        std::fs::write(path, b"half").unwrap();
    }
    wharf(dir, &["copy", &sample, "oci:layout:2.0"]).ok();
    wharf(dir, &["sync", &sample, "--to", "ctf:out.tgz"]).ok();
    for path in &leftovers {
        assert!(!path.exists(), "{} is still there", path.display());
    }
}

// 12. Input that must be refused, and messages that must say what happened.

#[test]
fn unsafe_or_unusable_input_is_refused_in_one_line() {
    let dir = temp();
    let dir = dir.path();
    let sample = format!("{}:1.0", oci(&sample_layout(dir)));
    wharf(dir, &["sync", &sample, "--to", "ctf:ctf"]).ok();
    let index_path = dir.join("ctf/artifact-index.json");
    let index = std::fs::read_to_string(&index_path).unwrap();
    let repository = json(&index)["artifacts"][0]["repository"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(
        &index_path,
        index.replace(&format!("\"{repository}\""), "\"../../etc\""),
    )
    .unwrap();
    wharf(dir, &["verify", "ctf:ctf"])
        .fails_with(&["ctf:ctf", "\"../../etc\" is not a repository name"]);
    let escaped = wharf(dir, &["sync", "ctf:ctf", "--to", "oci:escaped"]);
    assert!(!escaped.status.success());
    assert!(
        escaped.stderr.contains("\"../../etc\""),
        "{}",
        escaped.stderr
    );
    assert!(!dir.join("escaped").exists());

    let refused = wharf(dir, &["copy", "--chunk-size", "0", &sample, "oci:out"]);
    assert_eq!(refused.status.code(), Some(2), "a usage error");
    assert!(
        refused.stderr.contains("at least 1 byte"),
        "{}",
        refused.stderr
    );

    // A repository whose tags cannot be listed is reported as it fails, not only in the summary.
    let registry = serve(dir, &[]);
    let run = wharf(
        dir,
        &[
            "sync",
            &format!("{}/nothing/here", registry.addr()),
            "--to",
            "oci:out",
        ],
    );
    assert!(!run.status.success());
    assert!(
        run.stderr
            .contains(&format!("failed: {}/nothing/here", registry.addr())),
        "{}",
        run.stderr
    );
}
