//! Running the real `wharf` binary and peer tools, and looking at what they leave on disk.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use wharf_testkit::{
    DockerRegistry, Fault, FaultAction, Moto, Nginx, ServeSetup, TestProxy, TlsFiles, TokenAuth,
    WharfServe,
};

/// The result of a command, with text output.
pub struct Run {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        assert!(
            self.status.success(),
            "failed: {}\n{}",
            self.stderr,
            self.stdout
        );
        self.stdout
    }

    /// Asserts the failure contract: non-zero exit, nothing on stdout, exactly one `error:` line on
    /// stderr containing every one of `needles`. Returns that line.
    #[track_caller]
    pub fn fails_with(self, needles: &[&str]) -> String {
        assert!(
            !self.status.success(),
            "unexpectedly succeeded: {}",
            self.stdout
        );
        assert_eq!(self.stdout, "", "stdout must stay empty on failure");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line on stderr, got {:?}",
            self.stderr
        );
        assert!(lines[0].starts_with("error: "), "{}", lines[0]);
        for needle in needles {
            assert!(
                lines[0].contains(needle),
                "{:?} not in {:?}",
                needle,
                lines[0]
            );
        }
        lines[0].to_owned()
    }
}

/// `wharf` with `args`, run in `dir`, with a blob cache of the test's own (`dir/.cache`), so that
/// tests never share what one of them learned.
pub fn wharf_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("XDG_CACHE_HOME", dir.join(".cache"));
    command
}

/// Runs `wharf` with `args` in `dir`.
pub fn wharf(dir: &Path, args: &[&str]) -> Run {
    Run::from(wharf_command(dir, args).output().expect("wharf runs"))
}

/// Runs a peer tool, failing the test with a setup hint when it is not installed: interop tests never
/// skip.
pub fn peer(dir: &Path, program: &str, args: &[&str]) -> Run {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} is needed for this test ({e}); run scripts/setup-peers")
        });
    Run::from(output)
}

/// A fresh temporary directory.
pub fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

/// Relative paths of every file under `root`, sorted.
pub fn files(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_owned());
            }
        }
    }
    out
}

/// The blob files of a layout (`blobs/sha256/<hex>`).
pub fn blob_files(layout: &Path) -> BTreeSet<PathBuf> {
    files(layout)
        .into_iter()
        .filter(|p| p.starts_with("blobs"))
        .collect()
}

/// `sha256:<hex>` of a file's bytes, computed independently of wharf.
pub fn sha256_of(dir: &Path, text: &[u8]) -> String {
    let file = dir.join(".sha-input");
    std::fs::write(&file, text).unwrap();
    let out = peer(dir, "sha256sum", &[file.to_str().unwrap()]).ok();
    std::fs::remove_file(&file).unwrap();
    format!("sha256:{}", out.split_whitespace().next().unwrap())
}

/// The demo's multi-arch sample image in an OCI layout at `dir/sample`, tagged `1.0`.
pub fn sample_layout(dir: &Path) -> PathBuf {
    let path = dir.join("sample");
    if !path.exists() {
        wharf_testkit::sample_layout(&path, "1.0");
    }
    path
}

/// `wharf serve --root DIR/registry --listen 127.0.0.1:0 ARGS...`, stopped when dropped.
pub fn serve(dir: &Path, args: &[&str]) -> WharfServe {
    WharfServe::start(Path::new(env!("CARGO_BIN_EXE_wharf")), dir, 1, args)
}

/// An htpasswd file with user `alice`, password `s3cret` (bcrypt).
pub fn htpasswd(dir: &Path) -> PathBuf {
    let path = dir.join("htpasswd");
    std::fs::write(
        &path,
        format!("alice:{}\n", bcrypt::hash("s3cret", 5).unwrap()),
    )
    .unwrap();
    path
}

/// A minimal HTTP/1.1 exchange over a fresh connection: returns the status code and the raw response.
pub fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    http_with(addr, method, path, &[], body)
}

/// [`http`] with extra request headers.
pub fn http_with(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

/// The value of a header in a raw response.
pub fn response_header(response: &str, name: &str) -> Option<String> {
    response.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

/// Runs `wharf` with extra environment variables.
pub fn wharf_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = wharf_command(dir, args)
        .envs(env.iter().copied())
        .output()
        .expect("wharf runs");
    Run::from(output)
}

/// Runs `wharf` with `stdin` as standard input.
pub fn wharf_stdin(dir: &Path, args: &[&str], stdin: &str) -> Run {
    use std::io::Write;
    let mut child = wharf_command(dir, args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wharf runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    Run::from(child.wait_with_output().unwrap())
}

/// Writes a blob into a layout and returns its descriptor.
pub fn layout_blob(layout: &Path, media_type: &str, bytes: &[u8]) -> wharf_oci::Descriptor {
    let descriptor = wharf_oci::Descriptor::for_bytes(media_type, bytes);
    let path = layout.join("blobs/sha256").join(descriptor.digest.hex());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    descriptor
}

/// Adds an entry to a layout's index.json (tagged or not).
pub fn layout_add_root(layout: &Path, mut entry: wharf_oci::Descriptor, tag: Option<&str>) {
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value = std::fs::read(&index_path)
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or_else(|_| serde_json::json!({"schemaVersion": 2, "manifests": []}));
    if let Some(tag) = tag {
        entry
            .annotations
            .insert(wharf_oci::ANNOTATION_REF_NAME.into(), tag.into());
    }
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::to_value(&entry).unwrap());
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
}

/// Adds a signature-like artifact whose subject is `subject` to a layout, as an untagged root (the way
/// oras stores referrers); returns its descriptor.
pub fn add_referrer(
    layout: &Path,
    subject: &wharf_oci::Descriptor,
    artifact_type: &str,
    payload: &[u8],
) -> wharf_oci::Descriptor {
    use wharf_oci::media_type;
    let config = layout_blob(layout, media_type::OCI_EMPTY, b"{}");
    let layer = layout_blob(layout, "application/vnd.example.payload", payload);
    let mut subject = subject.clone();
    subject.annotations.clear();
    subject.platform = None;
    let manifest = wharf_oci::Manifest::from_image(&wharf_oci::ImageManifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        artifact_type: Some(artifact_type.into()),
        config,
        layers: vec![layer],
        subject: Some(subject),
        annotations: [("org.example.note".to_owned(), "signed".to_owned())].into(),
    });
    let descriptor = layout_blob(layout, media_type::OCI_MANIFEST, manifest.raw());
    layout_add_root(layout, descriptor.clone(), None);
    descriptor
}

/// A single-platform image with one layer of `size` pseudo-random bytes, tagged `big`.
pub fn big_image_layout(layout: &Path, size: usize) -> wharf_oci::Descriptor {
    use wharf_oci::media_type;
    let mut state: u64 = 0x9e3779b97f4a7c15;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let layer = layout_blob(layout, media_type::OCI_LAYER_GZIP, &bytes);
    let config = layout_blob(
        layout,
        media_type::OCI_CONFIG,
        br#"{"architecture":"amd64","os":"linux"}"#,
    );
    let manifest = wharf_oci::Manifest::from_image(&wharf_oci::ImageManifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        artifact_type: None,
        config,
        layers: vec![layer.clone()],
        subject: None,
        annotations: Default::default(),
    });
    let descriptor = layout_blob(layout, media_type::OCI_MANIFEST, manifest.raw());
    layout_add_root(layout, descriptor, Some("big"));
    layer
}

/// `skopeo copy --all` from `source` to `destination`, registries on either side over plain HTTP.
pub fn skopeo_copy_all(dir: &Path, source: &str, destination: &str) -> Run {
    peer(
        dir,
        "skopeo",
        &[
            "copy",
            "--all",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            source,
            destination,
        ],
    )
}

/// Runs `wharf verify` on `location` and asserts that it found nothing wrong.
pub fn assert_verified(dir: &Path, location: &str) {
    let verified = wharf(dir, &["verify", location]).ok();
    assert!(verified.contains("; 0 problems"), "{location}: {verified}");
}

/// The descriptor `wharf inspect --output json` reports for a location.
pub fn descriptor_of(dir: &Path, location: &str) -> wharf_oci::Descriptor {
    let json: serde_json::Value =
        serde_json::from_str(&wharf(dir, &["inspect", "--output", "json", location]).ok()).unwrap();
    serde_json::from_value(json["descriptor"].clone()).unwrap()
}

/// `count` generated single-platform images with 5 layers of `layer_size`, 3 of them shared by all
/// (as `team/app0..:v1`), and the multi-arch sample with a signature referrer (as `multi/app:1.0`),
/// pushed into `registry`; returns the repositories.
pub fn seed_images(dir: &Path, registry: &str, count: usize, layer_size: &str) -> Vec<String> {
    let layout = dir.join("generated");
    let status = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/gen-layout.py"))
        .arg(&layout)
        .args(["--images", &count.to_string(), "--layers", "5"])
        .args(["--layer-size", layer_size, "--shared", "3"])
        .status()
        .unwrap();
    assert!(status.success());
    let mut file = String::from("images:\n");
    let mut names = Vec::new();
    for i in 0..count {
        file += &format!(
            "- source: oci:{}:img{i}\n  destination: {registry}/team/app{i}:v1\n",
            layout.display()
        );
        names.push(format!("{registry}/team/app{i}"));
    }
    let sample = sample_layout(dir);
    let root = descriptor_of(dir, &format!("oci:{}:1.0", sample.display()));
    add_referrer(
        &sample,
        &root,
        "application/vnd.example.signature",
        b"signed",
    );
    file += &format!(
        "- source: oci:{}:1.0\n  destination: {registry}/multi/app:1.0\n",
        sample.display()
    );
    names.push(format!("{registry}/multi/app"));
    std::fs::write(dir.join("seed.yaml"), file).unwrap();
    let out = wharf(dir, &["sync", "--file", "seed.yaml", "--output", "json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["roots"].as_array().unwrap().len(), count + 1);
    names
}

/// Runs `wharf` with `args` in `dir`, killing it and failing the test if it has not ended within
/// `limit`: for runs that must not hang.
#[track_caller]
pub fn wharf_within(dir: &Path, args: &[&str], limit: std::time::Duration) -> Run {
    let child = bounded(&mut wharf_command(dir, args))
        .spawn()
        .expect("wharf runs");
    finish_within(child, limit, &args.join(" "))
}

/// `command` with its output captured, in a process group of its own, for [`finish_within`].
pub fn bounded(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
}

/// Waits for `child` (started through [`bounded`]), killing its whole process group and failing the
/// test after `limit`.
#[track_caller]
pub fn finish_within(
    mut child: std::process::Child,
    limit: std::time::Duration,
    what: &str,
) -> Run {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if child.try_wait().expect("wait").is_some() {
            return Run::from(child.wait_with_output().expect("output"));
        }
        if std::time::Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let output = child.wait_with_output().expect("output");
            panic!(
                "still running after {limit:?}, killed: {what}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// An OCI layout of `images` generated images at `layout`, tagged `img0`, `img1`, ..., each with
/// `layers` layers of `layer_size` random bytes (`512K`, `8M`), the first `shared` of them common to
/// all (see `bench/gen-layout.py`).
pub fn gen_layout(layout: &Path, images: usize, layers: usize, shared: usize, layer_size: &str) {
    let status = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/gen-layout.py"))
        .arg(layout)
        .args([
            "--images",
            &images.to_string(),
            "--layers",
            &layers.to_string(),
        ])
        .args(["--shared", &shared.to_string(), "--layer-size", layer_size])
        .status()
        .expect("python3 runs");
    assert!(status.success());
}

/// The manifest a layout's `index.json` names `tag`, parsed.
pub fn layout_manifest(layout: &Path, tag: &str) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"][wharf_oci::ANNOTATION_REF_NAME] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {}", layout.display()));
    let digest = entry["digest"].as_str().unwrap();
    let path = layout.join("blobs/sha256").join(&digest["sha256:".len()..]);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Parses JSON output, failing the test with the text when it is not JSON.
#[track_caller]
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}
