use std::path::Path;

use crate::util::{blob_files, files, peer, sample_layout, sha256_of, temp, wharf};

/// Writes a single-platform image as a docker-archive tar with skopeo, then converts it to an OCI layout
/// with skopeo: a layout wharf never touched.
fn skopeo_layout_from_docker_archive(dir: &Path) -> &'static str {
    let sample = sample_layout(dir);
    let src = format!("oci:{}:1.0", sample.display());
    peer(
        dir,
        "skopeo",
        &[
            "copy",
            "--override-arch",
            "arm64",
            &src,
            "docker-archive:app.tar:app:1",
        ],
    )
    .ok();
    peer(
        dir,
        "skopeo",
        &["copy", "docker-archive:app.tar", "oci:from-docker:1"],
    )
    .ok();
    "from-docker"
}

#[test]
fn copies_a_layout_written_by_skopeo_with_identical_digests() {
    let dir = temp();
    let dir = dir.path();
    let source = skopeo_layout_from_docker_archive(dir);

    let out = wharf(dir, &["copy", "oci:from-docker:1", "oci:copied:1"]).ok();
    assert!(
        out.contains("Copied oci:from-docker:1 to oci:copied:1"),
        "{out}"
    );
    assert_eq!(
        blob_files(&dir.join(source)),
        blob_files(&dir.join("copied"))
    );
    for blob in blob_files(&dir.join("copied")) {
        let bytes = std::fs::read(dir.join("copied").join(&blob)).unwrap();
        let want = blob.to_str().unwrap().replace("blobs/sha256/", "sha256:");
        assert_eq!(sha256_of(dir, &bytes), want);
    }
    let theirs = peer(dir, "skopeo", &["inspect", "--raw", "oci:from-docker:1"]).ok();
    let ours = peer(dir, "skopeo", &["inspect", "--raw", "oci:copied:1"]).ok();
    assert_eq!(theirs, ours, "manifest bytes are copied verbatim");
}

#[test]
fn copies_a_multi_arch_index_whole_through_skopeo_and_back() {
    let dir = temp();
    let dir = dir.path();
    let sample = sample_layout(dir);
    let src = format!("oci:{}:1.0", sample.display());
    peer(
        dir,
        "skopeo",
        &["copy", "--all", &src, "oci:skopeo-all:1.0"],
    )
    .ok();

    let json = wharf(
        dir,
        &[
            "copy",
            "--output",
            "json",
            "oci:skopeo-all:1.0",
            "oci:mirror",
        ],
    )
    .ok();
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["manifestsCopied"], 3, "{json}");
    assert_eq!(report["blobsCopied"], 6, "{json}");
    assert_eq!(
        blob_files(&dir.join("skopeo-all")),
        blob_files(&dir.join("mirror"))
    );

    // The destination took the source's tag and skopeo reads it back with the same digest.
    let raw = peer(dir, "skopeo", &["inspect", "--raw", "oci:mirror:1.0"]).ok();
    assert_eq!(
        sha256_of(dir, raw.as_bytes()),
        report["digest"].as_str().unwrap()
    );
    let arm = peer(
        dir,
        "skopeo",
        &[
            "inspect",
            "--override-arch",
            "arm64",
            "--override-variant",
            "v8",
            "oci:mirror:1.0",
        ],
    )
    .ok();
    assert!(arm.contains("\"Architecture\": \"arm64\""), "{arm}");

    // A second run copies nothing.
    let again = wharf(
        dir,
        &[
            "copy",
            "--output",
            "json",
            "oci:skopeo-all:1.0",
            "oci:mirror",
        ],
    )
    .ok();
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(
        (
            again["blobsCopied"].as_u64(),
            again["manifestsPresent"].as_u64()
        ),
        (Some(0), Some(1))
    );
}

#[test]
fn copies_by_digest_into_a_new_tag() {
    let dir = temp();
    let dir = dir.path();
    let sample = sample_layout(dir);
    let digest = wharf(
        dir,
        &[
            "inspect",
            "--output",
            "json",
            &format!("oci:{}:1.0", sample.display()),
        ],
    )
    .ok();
    let digest: serde_json::Value = serde_json::from_str(&digest).unwrap();
    let digest = digest["descriptor"]["digest"].as_str().unwrap().to_owned();
    let by_digest = format!("oci:{}@{digest}", sample.display());
    wharf(dir, &["copy", &by_digest, "oci:pinned:stable"]).ok();
    let inspected = wharf(dir, &["inspect", "oci:pinned:stable"]).ok();
    assert!(inspected.contains(&digest), "{inspected}");
    // Without any tag the copy is recorded as an untagged root, which inspect finds as the only image.
    wharf(dir, &["copy", &by_digest, "oci:untagged"]).ok();
    let only = wharf(dir, &["inspect", "oci:untagged"]).ok();
    assert!(only.contains(&digest), "{only}");
}

#[test]
fn bad_input_fails_in_one_line_and_leaves_no_partial_files() {
    let dir = temp();
    let dir = dir.path();
    let sample = sample_layout(dir);
    let sample_str = sample.display().to_string();
    let untouched = |name: &str| {
        assert!(
            !dir.join(name).exists(),
            "{name} was created by a failed copy"
        );
    };

    wharf(dir, &["copy", "oci:x:Bad Tag!", "oci:out1"])
        .fails_with(&["oci:x:Bad Tag!", "image name"]);
    wharf(dir, &["copy", "ocidir:x", "oci:out1"])
        .fails_with(&["ocidir:x", "unknown kind of location"]);
    wharf(
        dir,
        &[
            "copy",
            &format!("oci:{sample_str}:1.0"),
            "oci:out1@sha256:abc",
        ],
    )
    .fails_with(&["oci:out1@sha256:abc", "64 hex characters"]);
    wharf(dir, &["copy", "oci:missing:1", "oci:out1"])
        .fails_with(&["oci:missing", "no such directory"]);
    wharf(
        dir,
        &["copy", &format!("oci:{sample_str}:nope"), "oci:out1"],
    )
    .fails_with(&["tag \"nope\"", "not found", "tags here: 1.0"]);
    untouched("out1");

    // A truncated index.json.
    let truncated = dir.join("truncated");
    copy_dir(&sample, &truncated);
    let index = std::fs::read(truncated.join("index.json")).unwrap();
    std::fs::write(truncated.join("index.json"), &index[..index.len() / 2]).unwrap();
    wharf(dir, &["copy", "oci:truncated:1.0", "oci:out2"])
        .fails_with(&["oci:truncated index.json", "EOF"]);
    untouched("out2");

    // An unknown digest algorithm in index.json.
    let md5 = dir.join("md5");
    copy_dir(&sample, &md5);
    let index = std::fs::read_to_string(md5.join("index.json")).unwrap();
    let digest_start = index.find("sha256:").unwrap();
    let bad = format!(
        "{}md5:{}",
        &index[..digest_start],
        &index[digest_start + 7 + 32..]
    );
    std::fs::write(md5.join("index.json"), bad).unwrap();
    wharf(dir, &["copy", "oci:md5:1.0", "oci:out3"])
        .fails_with(&["oci:md5 index.json", "unsupported digest algorithm \"md5\""]);
    untouched("out3");

    // A layer whose bytes do not match its digest: the copy fails naming that blob, and the destination
    // has neither a file for it, nor a temporary file, nor a tag.
    let corrupt = dir.join("corrupt");
    copy_dir(&sample, &corrupt);
    let victim = blob_files(&corrupt)
        .into_iter()
        .max_by_key(|p| std::fs::metadata(corrupt.join(p)).unwrap().len())
        .unwrap();
    let path = corrupt.join(&victim);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let hex = victim.file_name().unwrap().to_str().unwrap();
    wharf(dir, &["copy", "oci:corrupt:1.0", "oci:out4:1.0"]).fails_with(&[
        "copy from oci:corrupt: push oci:out4 blob sha256:",
        hex,
        "does not match its digest",
    ]);
    let written = files(&dir.join("out4"));
    assert!(
        !written.contains(&victim),
        "the corrupt blob became visible"
    );
    assert!(
        written
            .iter()
            .all(|p| !p.to_str().unwrap().contains(".wharf-tmp")),
        "{written:?}"
    );
    let index = std::fs::read_to_string(dir.join("out4/index.json")).unwrap_or_default();
    assert!(
        !index.contains("ref.name"),
        "a tag points at incomplete content: {index}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for file in files(from) {
        std::fs::create_dir_all(to.join(&file).parent().unwrap()).unwrap();
        std::fs::copy(from.join(&file), to.join(&file)).unwrap();
    }
}
