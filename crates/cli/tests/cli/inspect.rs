use crate::util::{peer, sample_layout, sha256_of, temp, wharf};

#[test]
fn shows_an_index_as_text_raw_and_json() {
    let dir = temp();
    let dir = dir.path();
    let location = format!("oci:{}:1.0", sample_layout(dir).display());

    let text = wharf(dir, &["inspect", &location]).ok();
    assert!(
        text.contains("Media type:  application/vnd.oci.image.index.v1+json"),
        "{text}"
    );
    assert!(
        text.contains("linux/amd64") && text.contains("linux/arm64/v8"),
        "{text}"
    );

    let raw = wharf(dir, &["inspect", "--raw", &location]).ok();
    let skopeo_raw = peer(dir, "skopeo", &["inspect", "--raw", &location]).ok();
    assert_eq!(raw, skopeo_raw);

    let json: serde_json::Value =
        serde_json::from_str(&wharf(dir, &["inspect", "--output", "json", &location]).ok())
            .unwrap();
    assert_eq!(
        json["descriptor"]["digest"].as_str().unwrap(),
        sha256_of(dir, raw.as_bytes())
    );
    assert_eq!(json["manifest"]["manifests"].as_array().unwrap().len(), 2);

    let child = json["manifest"]["manifests"][0]["digest"].as_str().unwrap();
    let image = wharf(
        dir,
        &[
            "inspect",
            &format!("oci:{}@{child}", sample_layout(dir).display()),
        ],
    )
    .ok();
    assert!(
        image.contains("Config:") && image.contains("tar+gzip"),
        "{image}"
    );
}

#[test]
fn refuses_raw_with_json_and_unknown_layouts() {
    let dir = temp();
    let dir = dir.path();
    let r = wharf(dir, &["inspect", "--raw", "--output", "json", "oci:x"]);
    assert!(!r.status.success());
    assert!(r.stderr.contains("cannot be used with"), "{}", r.stderr);
    std::fs::create_dir(dir.join("plain")).unwrap();
    wharf(dir, &["inspect", "oci:plain"]).fails_with(&["oci:plain", "no oci-layout file"]);
}
