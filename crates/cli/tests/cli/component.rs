//! OCM component versions end to end: the seed-000 story behind a real nginx reverse proxy, OCM's
//! absolute mode rebased, CTF structure, round trips, and bad input.

use std::path::{Path, PathBuf};

use serde_json::json;
use wharf_oci::{Algorithm, Descriptor};

use crate::util::{Nginx, blob_files, files, json, sample_layout, serve, temp, wharf};

const NAME: &str = "example.com/component-1";

/// Publishes the sample image at `registry/upstream/busybox:1.36.1` and writes a constructor for a
/// component with that image and a file resource; returns the constructor's path.
fn constructor(dir: &Path, registry: &str) -> PathBuf {
    let sample = sample_layout(dir);
    wharf(
        dir,
        &[
            "copy",
            &format!("oci:{}:1.0", sample.display()),
            &format!("{registry}/upstream/busybox:1.36.1"),
        ],
    )
    .ok();
    std::fs::write(dir.join("config.yaml"), "replicas: 3\n").unwrap();
    let path = dir.join("component-constructor.yaml");
    std::fs::write(
        &path,
        format!(
            r#"components:
- name: {NAME}
  version: 0.1.0
  provider:
    name: example.com
  labels:
  - name: team
    value: platform
    signing: true
  resources:
  - name: image--busybox
    type: ociImage
    version: v1.36.1
    access:
      type: ociArtifact
      imageReference: {registry}/upstream/busybox:1.36.1
  - name: config
    type: blob
    input:
      type: file
      path: config.yaml
      mediaType: application/yaml
"#
        ),
    )
    .unwrap();
    path
}

fn digest_of(dir: &Path, address: &str) -> String {
    wharf(dir, &["component", "get", "--digest", address])
        .ok()
        .trim()
        .to_owned()
}

/// Checks that every resource resolves through `location` and has the content it should.
fn assert_resolves(dir: &Path, location: &str, image_digest: &str, out: &str) {
    let address = format!("{location}//{NAME}:0.1.0");
    let reference = wharf(
        dir,
        &[
            "component",
            "image-ref",
            &address,
            "--resource",
            "image--busybox",
        ],
    )
    .ok();
    let host = location.split('/').next().unwrap();
    assert!(
        reference.starts_with(&format!("{host}/")),
        "{reference} is not under {location}"
    );
    assert!(reference.trim().ends_with(image_digest), "{reference}");
    let inspected = wharf(dir, &["inspect", "--raw", reference.trim()]).ok();
    assert_eq!(
        Algorithm::Sha256.digest(inspected.as_bytes()).to_string(),
        image_digest
    );
    let layout = dir.join(format!("{out}-image"));
    wharf(
        dir,
        &[
            "component",
            "download",
            &address,
            "--resource",
            "image--busybox",
            "-O",
            layout.to_str().unwrap(),
        ],
    )
    .ok();
    let downloaded = wharf(
        dir,
        &[
            "inspect",
            "--output",
            "json",
            &format!("oci:{}", layout.display()),
        ],
    )
    .ok();
    assert_eq!(json(&downloaded)["descriptor"]["digest"], image_digest);
    let file = dir.join(format!("{out}-config.yaml"));
    wharf(
        dir,
        &[
            "component",
            "download",
            &address,
            "--resource",
            "config",
            "-O",
            file.to_str().unwrap(),
        ],
    )
    .ok();
    assert_eq!(std::fs::read_to_string(file).unwrap(), "replicas: 3\n");
}

#[test]
fn the_seed_story_behind_a_real_reverse_proxy() {
    let dir = temp();
    let dir = dir.path();
    let served = serve(dir, &[]);
    let direct = served.addr().to_owned();
    let proxy = Nginx::start(&direct);
    let via_proxy = proxy.addr.clone();
    let constructor = constructor(dir, &direct);
    wharf(
        dir,
        &[
            "component",
            "build",
            constructor.to_str().unwrap(),
            "--to",
            "ctf:transport",
        ],
    )
    .ok();
    let built = digest_of(dir, &format!("ctf:transport//{NAME}:0.1.0"));
    let image_digest = json(
        &wharf(
            dir,
            &[
                "inspect",
                "--output",
                "json",
                &format!("{direct}/upstream/busybox:1.36.1"),
            ],
        )
        .ok(),
    )["descriptor"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();

    // Transfer through the proxy, read through the direct URL.
    let out = wharf(
        dir,
        &[
            "component",
            "transfer",
            &format!("ctf:transport//{NAME}:0.1.0"),
            &format!("http://{via_proxy}/local/components"),
            "--copy-resources",
        ],
    )
    .ok();
    assert!(out.contains("1 resources copied"), "{out}");
    let descriptor = wharf(
        dir,
        &[
            "component",
            "get",
            "--output",
            "json",
            &format!("{direct}/local/components//{NAME}:0.1.0"),
        ],
    )
    .ok();
    let descriptor = json(&descriptor);
    let access = &descriptor["component"]["resources"][0]["access"];
    assert_eq!(access["type"], "relativeOciReference");
    assert_eq!(
        access["reference"],
        format!("local/components/upstream/busybox:1.36.1@{image_digest}")
    );
    assert!(
        !descriptor
            .to_string()
            .contains(&format!("{via_proxy}/local/components/upstream")),
        "no absolute upload URL in any access"
    );
    assert_resolves(
        dir,
        &format!("{direct}/local/components"),
        &image_digest,
        "direct",
    );
    assert_eq!(
        digest_of(dir, &format!("{direct}/local/components//{NAME}:0.1.0")),
        built,
        "the normalised digest survives"
    );

    // And the other way round: transfer directly, read through the proxy.
    wharf(
        dir,
        &[
            "component",
            "transfer",
            &format!("ctf:transport//{NAME}:0.1.0"),
            &format!("{direct}/other"),
            "--copy-resources",
        ],
    )
    .ok();
    assert_resolves(dir, &format!("{via_proxy}/other"), &image_digest, "proxied");

    // OCM's absolute mode wrote the upload URL into the access; wharf rebases it onto where it reads.
    let absolute = dir.join("absolute");
    write_ocm_ctf(
        &absolute,
        &ocm_absolute_descriptor(&via_proxy, "local/components", &image_digest),
        &[],
    );
    wharf(
        dir,
        &[
            "component",
            "transfer",
            &format!("ctf:{}//{NAME}:0.1.0", absolute.display()),
            &format!("{via_proxy}/local/components"),
            "--overwrite",
        ],
    )
    .ok();
    let reference = wharf(
        dir,
        &[
            "component",
            "image-ref",
            &format!("{direct}/local/components//{NAME}:0.1.0"),
            "--resource",
            "image--busybox",
        ],
    )
    .ok();
    assert_eq!(
        reference.trim(),
        format!("{direct}/local/components/upstream/busybox:1.36.1@{image_digest}")
    );
    let unrebased = wharf(
        dir,
        &[
            "component",
            "image-ref",
            "--no-rebase",
            &format!("{direct}/local/components//{NAME}:0.1.0"),
            "--resource",
            "image--busybox",
        ],
    )
    .ok();
    assert!(unrebased.starts_with(&via_proxy), "{unrebased}");
}

/// A descriptor as OCM's default (absolute) mode writes it after `transfer --copy-resources`.
fn ocm_absolute_descriptor(upload: &str, sub_path: &str, image_digest: &str) -> String {
    let hex = image_digest.trim_start_matches("sha256:");
    format!(
        r#"meta:
  schemaVersion: v2
component:
  componentReferences: []
  creationTime: "2025-04-07T13:01:16Z"
  name: {NAME}
  provider: example.com
  repositoryContexts:
  - baseUrl: http://{upload}
    componentNameMapping: urlPath
    subPath: {sub_path}
    type: OCIRegistry
  resources:
  - access:
      imageReference: http://{upload}/{sub_path}/upstream/busybox:1.36.1@{image_digest}
      type: ociArtifact
    digest:
      hashAlgorithm: SHA-256
      normalisationAlgorithm: ociArtifactDigest/v1
      value: {hex}
    name: image--busybox
    relation: external
    type: ociImage
    version: v1.36.1
  sources: []
  version: 0.1.0
"#
    )
}

/// Writes a CTF directory exactly as OCM lays it out (from the format's documentation): the
/// descriptor as a one-file tar layer, a config naming it, a manifest, `artifact-index.json`.
fn write_ocm_ctf(root: &Path, descriptor_yaml: &str, extra_layers: &[(&str, &[u8])]) -> Descriptor {
    std::fs::create_dir_all(root.join("blobs")).unwrap();
    let blob = |media_type: &str, bytes: &[u8]| {
        let d = Descriptor::for_bytes(media_type, bytes);
        std::fs::write(
            root.join("blobs")
                .join(format!("sha256.{}", d.digest.hex())),
            bytes,
        )
        .unwrap();
        d
    };
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(descriptor_yaml.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(
        &mut header,
        "component-descriptor.yaml",
        descriptor_yaml.as_bytes(),
    )
    .unwrap();
    let layer = blob(
        "application/vnd.ocm.software.component-descriptor.v2+yaml+tar",
        &tar.into_inner().unwrap(),
    );
    let config = blob(
        "application/vnd.ocm.software.component.config.v1+json",
        &serde_json::to_vec(&json!({"componentDescriptorLayer": layer})).unwrap(),
    );
    let mut layers = vec![layer];
    for (media_type, bytes) in extra_layers {
        layers.push(blob(media_type, bytes));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": layers,
        "annotations": {"software.ocm.componentversion": format!("{NAME}:0.1.0"), "software.ocm.creator": "OCM Go Library 0.20.0"},
    });
    let manifest = blob(
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    let index = json!({"schemaVersion": 1, "artifacts": [{
        "repository": format!("component-descriptors/{NAME}"),
        "tag": "0.1.0",
        "digest": manifest.digest,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
    }]});
    std::fs::write(
        root.join("artifact-index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    manifest
}

#[test]
fn writes_and_reads_ctfs_the_way_ocm_does() {
    let dir = temp();
    let dir = dir.path();
    let served = serve(dir, &[]);
    let constructor = constructor(dir, served.addr());
    wharf(
        dir,
        &[
            "component",
            "build",
            constructor.to_str().unwrap(),
            "--to",
            "ctf:built",
        ],
    )
    .ok();
    let names: Vec<String> = files(&dir.join("built"))
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        names.contains(&"artifact-index.json".to_owned()),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .filter(|n| *n != "artifact-index.json")
            .all(|n| n.starts_with("blobs/sha256.") && n.len() == "blobs/sha256.".len() + 64),
        "{names:?}"
    );
    let index = json(&std::fs::read_to_string(dir.join("built/artifact-index.json")).unwrap());
    assert_eq!(index["schemaVersion"], 1);
    let entry = &index["artifacts"][0];
    let mut keys: Vec<&str> = entry
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["digest", "mediaType", "repository", "tag"]);
    assert_eq!(entry["repository"], format!("component-descriptors/{NAME}"));
    let manifest_file = dir
        .join("built/blobs")
        .join(entry["digest"].as_str().unwrap().replace(':', "."));
    let manifest = json(&std::fs::read_to_string(manifest_file).unwrap());
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.ocm.software.component.config.v1+json"
    );
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.ocm.software.component-descriptor.v2+yaml+tar"
    );
    assert_eq!(
        manifest["layers"][1]["mediaType"], "application/yaml",
        "the file input is a local blob layer"
    );

    // As a tar, with OCM's fixed time and modes. OCM writes artifact-index.json first and reads entries
    // in any order; wharf writes blobs as they arrive and the index last.
    wharf(
        dir,
        &[
            "component",
            "transfer",
            &format!("ctf:built//{NAME}:0.1.0"),
            "ctf:built.tar",
        ],
    )
    .ok();
    let mut archive = tar::Archive::new(std::fs::File::open(dir.join("built.tar")).unwrap());
    let entries: Vec<(String, u32, u64)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().display().to_string(),
                e.header().mode().unwrap(),
                e.header().mtime().unwrap(),
            )
        })
        .collect();
    assert_eq!(entries.last().unwrap().0, "artifact-index.json");
    assert_eq!(entries.len(), 5, "the index and four blobs: {entries:?}");
    assert!(
        entries
            .iter()
            .all(|(path, mode, mtime)| *mtime == 1_640_995_200
                && (*mode == 0o644 || path.ends_with('/') || path == "blobs")),
        "{entries:?}"
    );

    // A CTF laid out by OCM reads, local blob included.
    let ocm = dir.join("from-ocm");
    let descriptor = format!(
        "meta:\n  schemaVersion: v2\ncomponent:\n  name: {NAME}\n  version: 0.1.0\n  provider: example.com\n  repositoryContexts: []\n  resources:\n  - name: notes\n    type: blob\n    relation: local\n    access:\n      type: localBlob\n      localReference: {}\n      mediaType: text/plain\n  sources: []\n  componentReferences: []\n",
        Algorithm::Sha256.digest(b"release notes")
    );
    write_ocm_ctf(&ocm, &descriptor, &[("text/plain", b"release notes")]);
    let address = format!("ctf:{}//{NAME}:0.1.0", ocm.display());
    let yaml = wharf(dir, &["component", "get", &address]).ok();
    assert!(yaml.contains("localBlob"), "{yaml}");
    wharf(
        dir,
        &[
            "component",
            "download",
            &address,
            "--resource",
            "notes",
            "-O",
            "notes.txt",
        ],
    )
    .ok();
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "release notes"
    );
    let versions = wharf(
        dir,
        &[
            "component",
            "get",
            &format!("ctf:{}//{NAME}", ocm.display()),
        ],
    )
    .ok();
    assert_eq!(versions.trim(), "0.1.0");
}

#[test]
fn round_trip_keeps_every_digest() {
    let dir = temp();
    let dir = dir.path();
    let served =
        crate::util::WharfServe::start(Path::new(env!("CARGO_BIN_EXE_wharf")), dir, 2, &[]);
    let (first, second) = (served.addrs[0].clone(), served.addrs[1].clone());
    let constructor = constructor(dir, &first);
    wharf(
        dir,
        &[
            "component",
            "build",
            constructor.to_str().unwrap(),
            "--to",
            "ctf:step1.tgz",
        ],
    )
    .ok();
    let digest = digest_of(dir, &format!("ctf:step1.tgz//{NAME}:0.1.0"));
    let steps = [
        (
            format!("ctf:step1.tgz//{NAME}:0.1.0"),
            format!("{first}/stage"),
        ),
        (
            format!("{first}/stage//{NAME}:0.1.0"),
            "ctf:step3".to_owned(),
        ),
        (
            format!("ctf:step3//{NAME}:0.1.0"),
            format!("{second}/final"),
        ),
    ];
    for (from, to) in &steps {
        wharf(
            dir,
            &["component", "transfer", from, to, "--copy-resources"],
        )
        .ok();
        let landed = format!("{to}//{NAME}:0.1.0");
        assert_eq!(digest_of(dir, &landed), digest, "{landed}");
    }
    // The image is byte-identical at the end, read through the other URL.
    let reference = wharf(
        dir,
        &[
            "component",
            "image-ref",
            &format!("{second}/final//{NAME}:0.1.0"),
            "--resource",
            "image--busybox",
        ],
    )
    .ok();
    assert!(
        reference.starts_with(&format!("{second}/final/upstream/busybox:1.36.1@sha256:")),
        "{reference}"
    );
    let original = json(
        &wharf(
            dir,
            &[
                "inspect",
                "--output",
                "json",
                &format!("{first}/upstream/busybox:1.36.1"),
            ],
        )
        .ok(),
    );
    assert!(
        reference
            .trim()
            .ends_with(original["descriptor"]["digest"].as_str().unwrap())
    );
    let ctf_blobs = blob_files(&dir.join("step3"));
    assert!(
        !ctf_blobs.is_empty()
            && ctf_blobs
                .iter()
                .all(|p| p.to_str().unwrap().starts_with("blobs/sha256.")),
        "a CTF keeps flat blobs/sha256.<hex> files: {ctf_blobs:?}"
    );

    // The local-blob mode keeps the image inside the component version.
    wharf(
        dir,
        &[
            "component",
            "transfer",
            &format!("ctf:step3//{NAME}:0.1.0"),
            "ctf:local.tar",
            "--copy-resources",
            "--resource-mode",
            "local-blob",
        ],
    )
    .ok();
    let descriptor = json(
        &wharf(
            dir,
            &[
                "component",
                "get",
                "--output",
                "json",
                &format!("ctf:local.tar//{NAME}:0.1.0"),
            ],
        )
        .ok(),
    );
    assert_eq!(
        descriptor["component"]["resources"][0]["access"]["type"],
        "localBlob"
    );
    assert_eq!(
        digest_of(dir, &format!("ctf:local.tar//{NAME}:0.1.0")),
        digest
    );
    wharf(
        dir,
        &[
            "component",
            "transfer",
            &format!("ctf:local.tar//{NAME}:0.1.0"),
            &format!("{second}/inside"),
        ],
    )
    .ok();
    wharf(
        dir,
        &[
            "component",
            "download",
            &format!("{first}/inside//{NAME}:0.1.0"),
            "--resource",
            "image--busybox",
            "-O",
            "inside-image",
        ],
    )
    .ok();
    let inside = json(&wharf(dir, &["inspect", "--output", "json", "oci:inside-image"]).ok());
    assert_eq!(
        inside["descriptor"]["digest"],
        original["descriptor"]["digest"]
    );

    // A second transfer finds the version there; a different one needs --overwrite.
    let again = wharf(
        dir,
        &[
            "component",
            "transfer",
            &format!("ctf:step3//{NAME}:0.1.0"),
            &format!("{second}/final"),
            "--copy-resources",
        ],
    )
    .ok();
    assert!(again.contains("already present"), "{again}");
}

#[test]
fn bad_input_fails_in_one_line_without_output() {
    let dir = temp();
    let dir = dir.path();
    let served = serve(dir, &[]);
    let constructor = constructor(dir, served.addr());
    let good = std::fs::read_to_string(&constructor).unwrap();
    let cases = [
        (
            "unknown-field.yaml",
            good.replace("  version: 0.1.0\n", "  version: 0.1.0\n  colour: blue\n"),
            "unknown field",
        ),
        (
            "unknown-input.yaml",
            good.replace("type: file", "type: helm"),
            "input type \"helm\" is not supported",
        ),
        (
            "missing-file.yaml",
            good.replace("path: config.yaml", "path: missing.yaml"),
            "input file missing.yaml",
        ),
        (
            "bad-name.yaml",
            good.replace(&format!("name: {NAME}"), "name: Example/Component"),
            "not a valid component name",
        ),
    ];
    for (file, text, needle) in cases {
        std::fs::write(dir.join(file), text).unwrap();
        let target = format!("ctf:out-{file}");
        wharf(dir, &["component", "build", file, "--to", &target]).fails_with(&[file, needle]);
        assert!(
            !dir.join(format!("out-{file}")).exists(),
            "{file}: partial output"
        );
    }

    // A CTF tar with a path-traversal entry is refused before anything is read or written.
    let evil = dir.join("evil.tar");
    let script = format!(
        "import tarfile, io\nt = tarfile.open('{}', 'w')\nfor name, data in [('artifact-index.json', b'{{\"schemaVersion\":1,\"artifacts\":[]}}'), ('../escaped', b'x')]:\n    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))\nt.close()\n",
        evil.display()
    );
    let status = std::process::Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(status.success());
    wharf(
        dir,
        &[
            "component",
            "get",
            &format!("ctf:{}//{NAME}", evil.display()),
        ],
    )
    .fails_with(&["../escaped", "refused"]);
    assert!(!dir.join("escaped").exists() && !std::env::temp_dir().join("escaped").exists());

    // A descriptor layer whose bytes do not match its digest.
    wharf(
        dir,
        &[
            "component",
            "build",
            constructor.to_str().unwrap(),
            "--to",
            "ctf:tampered",
        ],
    )
    .ok();
    let index = json(&std::fs::read_to_string(dir.join("tampered/artifact-index.json")).unwrap());
    let manifest = json(
        &std::fs::read_to_string(
            dir.join("tampered/blobs").join(
                index["artifacts"][0]["digest"]
                    .as_str()
                    .unwrap()
                    .replace(':', "."),
            ),
        )
        .unwrap(),
    );
    let layer = dir.join("tampered/blobs").join(
        manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .replace(':', "."),
    );
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[600] ^= 0x20;
    std::fs::write(&layer, bytes).unwrap();
    wharf(
        dir,
        &["component", "get", &format!("ctf:tampered//{NAME}:0.1.0")],
    )
    .fails_with(&["does not match its digest"]);
    wharf(
        dir,
        &[
            "component",
            "transfer",
            &format!("ctf:tampered//{NAME}:0.1.0"),
            "ctf:never",
        ],
    )
    .fails_with(&["does not match its digest"]);
    assert!(!dir.join("never").exists());
}

#[test]
fn recursive_transfer_brings_referenced_components() {
    let dir = temp();
    let dir = dir.path();
    std::fs::write(dir.join("notes.txt"), "notes").unwrap();
    std::fs::write(
        dir.join("constructor.yaml"),
        r#"components:
- name: acme.org/platform
  version: 2.0.0
  provider: acme.org
  componentReferences:
  - name: base
    componentName: acme.org/base
    version: 1.0.0+build.7
- name: acme.org/base
  version: 1.0.0+build.7
  provider: acme.org
  resources:
  - name: notes
    type: blob
    input:
      type: file
      path: notes.txt
"#,
    )
    .unwrap();
    wharf(
        dir,
        &["component", "build", "constructor.yaml", "--to", "ctf:src"],
    )
    .ok();
    wharf(
        dir,
        &[
            "component",
            "transfer",
            "ctf:src//acme.org/platform:2.0.0",
            "ctf:flat",
        ],
    )
    .ok();
    wharf(
        dir,
        &["component", "get", "ctf:flat//acme.org/base:1.0.0+build.7"],
    )
    .fails_with(&["not found"]);
    let out = wharf(
        dir,
        &[
            "component",
            "transfer",
            "--recursive",
            "ctf:src//acme.org/platform:2.0.0",
            "ctf:deep",
        ],
    )
    .ok();
    assert!(out.contains("acme.org/base:1.0.0+build.7"), "{out}");
    let versions = wharf(dir, &["component", "get", "ctf:deep//acme.org/base"]).ok();
    assert_eq!(
        versions.trim(),
        "1.0.0+build.7",
        "the + survives as .build- in the tag"
    );
    let index = std::fs::read_to_string(dir.join("deep/artifact-index.json")).unwrap();
    assert!(index.contains("\"tag\":\"1.0.0.build-build.7\""), "{index}");
}
