//! Indexes whose children live in nested repositories (seed 004): created on wharf serve, copied to
//! docker-registry (which wants children beside the index), to another wharf serve (which does
//! not), through a layout and an archive and back, pulled by skopeo; strict registries and bad
//! paths.

use std::collections::BTreeSet;
use std::path::Path;

use crate::util::{
    DockerRegistry, Fault, FaultAction, TestProxy, WharfServe, add_referrer, assert_verified,
    gen_layout, http, http_with, json, layout_add_root, layout_blob, peer, sample_layout,
    sha256_of, skopeo_copy_all, temp, wharf,
};

fn serve_in(dir: &Path, name: &str) -> WharfServe {
    let root = dir.join(name);
    std::fs::create_dir_all(&root).unwrap();
    WharfServe::start(Path::new(env!("CARGO_BIN_EXE_wharf")), &root, 1, &[])
}

fn digest(dir: &Path, location: &str) -> String {
    json(&wharf(dir, &["inspect", "--output", "json", location]).ok())["descriptor"]["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Tags of a registry repository, read with a plain HTTP request (empty when it has none).
fn tags(addr: &str, repository: &str) -> BTreeSet<String> {
    let (status, response) = http(addr, "GET", &format!("/v2/{repository}/tags/list"), b"");
    if status != 200 {
        return BTreeSet::new();
    }
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    json(body)["tags"]
        .as_array()
        .map(|t| t.iter().map(|t| t.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// An index in `registry/team/app:1.0` with children in `cli`, `docs` and `sbom/spdx` (the last a
/// two-platform index); returns the index digest and the children's (path, digest).
fn create_nested(dir: &Path, registry: &str) -> (String, Vec<(&'static str, String)>) {
    gen_layout(&dir.join("gen"), 2, 2, 1, "8K");
    let sample = sample_layout(dir);
    let sources = [
        ("cli", format!("oci:{}:img0", dir.join("gen").display())),
        ("docs", format!("oci:{}:img1", dir.join("gen").display())),
        ("sbom/spdx", format!("oci:{}:1.0", sample.display())),
    ];
    let mut children = Vec::new();
    for (path, source) in &sources {
        let target = format!("{registry}/team/app/{path}:1.0");
        wharf(dir, &["copy", source, &target]).ok();
        children.push((*path, digest(dir, &target)));
    }
    let created = json(
        &wharf(
            dir,
            &[
                "index",
                "create",
                &format!("{registry}/team/app:1.0"),
                "cli:1.0",
                &format!("{registry}/team/app/docs:1.0"),
                "sbom/spdx:1.0",
                "--output",
                "json",
            ],
        )
        .ok(),
    );
    let index = created["digest"].as_str().unwrap().to_owned();
    (index, children)
}

/// The index and every child are at `base` with their digests, each child in its repository.
fn assert_everything_at(dir: &Path, base: &str, index: &str, children: &[(&str, String)]) {
    assert_eq!(
        digest(dir, &format!("{base}/team/app:1.0")),
        index,
        "{base}"
    );
    for (path, child) in children {
        assert_eq!(
            digest(dir, &format!("{base}/team/app/{path}:1.0")),
            *child,
            "{base} {path}"
        );
    }
    assert_verified(dir, &format!("{base}/team/app:1.0"));
}

#[test]
fn nested_children_travel_to_strict_and_native_registries_and_through_archives() {
    let dir = temp();
    let dir = dir.path();
    let source = serve_in(dir, "s");
    let (index, children) = create_nested(dir, source.addr());
    let manifest = json(
        &wharf(
            dir,
            &[
                "inspect",
                "--raw",
                &format!("{}/team/app:1.0", source.addr()),
            ],
        )
        .ok(),
    );
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.wharf.bundle.v1+json"
    );
    let listed: Vec<&str> = manifest["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["dev.wharf.ref.repository"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(listed, ["cli", "docs", "sbom/spdx"]);
    assert_eq!(
        tags(source.addr(), "team/app"),
        BTreeSet::from(["1.0".to_owned()]),
        "wharf serve took the index without copies of its children"
    );
    let tree = wharf(
        dir,
        &[
            "inspect",
            "--tree",
            &format!("{}/team/app:1.0", source.addr()),
        ],
    )
    .ok();
    assert!(
        tree.contains(&format!("in {}/team/app/sbom/spdx", source.addr()))
            && tree.matches("linux/").count() >= 4,
        "{tree}"
    );

    // docker-registry refuses an index whose children are elsewhere: copies go beside it.
    let docker = DockerRegistry::start(None);
    wharf(
        dir,
        &[
            "copy",
            &format!("{}/team/app:1.0", source.addr()),
            &format!("{}/team/app:1.0", docker.addr),
        ],
    )
    .ok();
    assert_everything_at(dir, &docker.addr, &index, &children);
    let beside = tags(&docker.addr, "team/app");
    for (_, child) in &children {
        assert!(
            beside.contains(&format!("wharf-{}", &child[7..])),
            "{beside:?}"
        );
    }
    // A plain client reads the index there and pulls every child from the index's repository.
    // (skopeo 1.9 cannot `copy --all` through an index whose child is an index itself, nested
    // repositories or not, so each child is pulled on its own.)
    let raw = peer(
        dir,
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/team/app:1.0", docker.addr),
        ],
    )
    .ok();
    assert_eq!(sha256_of(dir, raw.trim_end().as_bytes()), index);
    for (path, child) in &children {
        let pulled = dir.join(format!("skopeo-{}", path.replace('/', "-")));
        skopeo_copy_all(
            dir,
            &format!("docker://{}/team/app@{child}", docker.addr),
            &format!("dir:{}", pulled.display()),
        )
        .ok();
        let raw = std::fs::read(pulled.join("manifest.json")).unwrap();
        assert_eq!(sha256_of(dir, &raw), *child, "{path}");
    }

    // Another wharf serve needs no copies beside the index.
    let native = serve_in(dir, "t");
    wharf(
        dir,
        &[
            "copy",
            &format!("{}/team/app:1.0", docker.addr),
            &format!("{}/team/app:1.0", native.addr()),
        ],
    )
    .ok();
    assert_everything_at(dir, native.addr(), &index, &children);
    assert_eq!(
        tags(native.addr(), "team/app"),
        BTreeSet::from(["1.0".to_owned()])
    );

    // Through a layout and an archive, and back, digests unchanged.
    for (kind, file) in [("oci", "layout"), ("oci-archive", "archive.tar")] {
        let local = format!("{kind}:{}:team/app:1.0", dir.join(file).display());
        wharf(
            dir,
            &["copy", &format!("{}/team/app:1.0", source.addr()), &local],
        )
        .ok();
        let whole = format!("{kind}:{}", dir.join(file).display());
        assert_verified(dir, &whole);
        let back = format!("{}/from-{file}", native.addr());
        wharf(dir, &["copy", &local, &format!("{back}/team/app:1.0")]).ok();
        assert_everything_at(dir, &back, &index, &children);
    }

    // gc keeps every child a kept index needs.
    let collected = wharf(
        dir,
        &[
            "serve",
            "gc",
            "--root",
            dir.join("s/registry").to_str().unwrap(),
            "--grace",
            "0s",
        ],
    )
    .ok();
    assert!(!collected.is_empty());
    assert_verified(dir, &format!("{}/team/app:1.0", source.addr()));

    // One child, by digest, through the index's repository.
    let (path, docs) = &children[1];
    assert_eq!(*path, "docs");
    let one = dir.join("one");
    wharf(
        dir,
        &[
            "copy",
            &format!("{}/team/app@{docs}", source.addr()),
            &format!("oci:{}:docs", one.display()),
        ],
    )
    .ok();
    assert_eq!(digest(dir, &format!("oci:{}:docs", one.display())), *docs);
}

#[test]
fn a_registry_that_refuses_even_the_colocated_index_gets_one_line_and_no_tag() {
    let dir = temp();
    let dir = dir.path();
    let source = serve_in(dir, "s");
    create_nested(dir, source.addr());
    let docker = DockerRegistry::start(None);
    let proxy = TestProxy::start(&docker.addr, None);
    proxy.inject(Fault {
        method: Some(reqwest::Method::PUT),
        path_contains: "/team/app/manifests/1.0".into(),
        times: 10,
        action: FaultAction::Refuse {
            code: 400,
            error: "MANIFEST_BLOB_UNKNOWN",
            message: "blob unknown to registry".into(),
        },
    });
    wharf(
        dir,
        &[
            "copy",
            &format!("{}/team/app:1.0", source.addr()),
            &format!("{}/team/app:1.0", proxy.host()),
        ],
    )
    .fails_with(&[
        "refused index",
        "MANIFEST_BLOB_UNKNOWN",
        "blob unknown to registry",
    ]);
    let left = tags(&docker.addr, "team/app");
    assert!(left.is_empty(), "nothing tagged: {left:?}");
}

#[test]
fn paths_that_leave_the_index_are_refused_at_create_and_when_read() {
    let dir = temp();
    let dir = dir.path();
    let served = serve_in(dir, "s");
    let index = format!("{}/team/app:1.0", served.addr());
    for (child, why) in [
        ("../cli:1.0", "leaves the index's repository"),
        ("/abs/cli:1.0", "absolute"),
        ("registry.example.com/team/cli:1.0", "host"),
        ("cli", "name a tag or a digest"),
    ] {
        wharf(dir, &["index", "create", &index, child]).fails_with(&[child, why]);
    }
    let long = format!("{}:1.0", "x".repeat(250));
    wharf(dir, &["index", "create", &index, &long]).fails_with(&["more than the 255"]);
    assert!(tags(served.addr(), "team/app").is_empty());

    // Someone else's index naming `../up` for a child: refused when read, nothing copied.
    let layout = dir.join("foreign");
    gen_layout(&layout, 1, 1, 0, "4K");
    let child = json(
        &wharf(
            dir,
            &[
                "inspect",
                "--output",
                "json",
                &format!("oci:{}:img0", layout.display()),
            ],
        )
        .ok(),
    )["descriptor"]
        .clone();
    let mut child: wharf_oci::Descriptor = serde_json::from_value(child).unwrap();
    child
        .annotations
        .insert("dev.wharf.ref.repository".into(), "../up".into());
    let bad = wharf_oci::Manifest::from_index(&wharf_oci::ImageIndex {
        manifests: vec![child],
        ..wharf_oci::ImageIndex::new()
    });
    let bad = layout_blob(&layout, wharf_oci::media_type::OCI_INDEX, bad.raw());
    let bad_hex = bad.digest.hex().to_owned();
    layout_add_root(&layout, bad, Some("bad"));
    let source = format!("oci:{}:bad", layout.display());
    wharf(
        dir,
        &["copy", &source, &format!("{}/x/app:1.0", served.addr())],
    )
    .fails_with(&["names nested repository \"../up\"", "leaves"]);
    assert!(tags(served.addr(), "x/app").is_empty());
    let verified = wharf(dir, &["verify", &source]);
    assert!(
        !verified.status.success() && verified.stdout.contains("../up"),
        "{}",
        verified.stdout
    );
    // wharf serve refuses it, pushed as it is by a client that does not know the annotation.
    let raw = std::fs::read(layout.join("blobs/sha256").join(bad_hex)).unwrap();
    let content_type = [("Content-Type", wharf_oci::media_type::OCI_INDEX)];
    let path = "/v2/x/app/manifests/1.0";
    let (status, response) = http_with(served.addr(), "PUT", path, &content_type, &raw);
    assert_eq!(status, 400, "{response}");
    assert!(
        response.contains("MANIFEST_INVALID") && response.contains("../up"),
        "{response}"
    );
    assert!(tags(served.addr(), "x/app").is_empty());
}

#[test]
fn a_child_index_with_nested_children_of_its_own_lands_beside_its_index_without_strays() {
    let dir = temp();
    let dir = dir.path();
    let source = serve_in(dir, "s");
    gen_layout(&dir.join("gen"), 1, 2, 0, "8K");
    let base = format!("{}/team/app", source.addr());
    let image = format!("{base}/c/g:1.0");
    wharf(
        dir,
        &[
            "copy",
            &format!("oci:{}:img0", dir.join("gen").display()),
            &image,
        ],
    )
    .ok();
    wharf(dir, &["index", "create", &format!("{base}/c:1.0"), "g:1.0"]).ok();
    wharf(dir, &["index", "create", &format!("{base}:1.0"), "c:1.0"]).ok();

    // docker-registry wants every child beside its index: the grandchild goes to `c/g` as its
    // index names it, and beside both indexes, never to a repository nobody names (`team/app/g`).
    let docker = DockerRegistry::start(None);
    let target = format!("{}/team/app:1.0", docker.addr);
    wharf(dir, &["copy", &format!("{base}:1.0"), &target]).ok();
    let (_, response) = http(&docker.addr, "GET", "/v2/_catalog", b"");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let repositories: BTreeSet<String> = json(body)["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        repositories,
        ["team/app", "team/app/c", "team/app/c/g"]
            .map(str::to_owned)
            .into(),
    );
    let child = digest(dir, &format!("{base}/c:1.0"));
    let grandchild = digest(dir, &image);
    let beside = tags(&docker.addr, "team/app");
    for copied in [&child, &grandchild] {
        let tag = format!("wharf-{}", copied.trim_start_matches("sha256:"));
        assert!(beside.contains(&tag), "{tag} in {beside:?}");
    }
    assert_eq!(digest(dir, &target), digest(dir, &format!("{base}:1.0")));
    assert_eq!(
        digest(dir, &format!("{}/team/app/c/g:1.0", docker.addr)),
        grandchild
    );
    assert_verified(dir, &target);

    // A signature added later to the grandchild travels with the next copy of the unchanged
    // index, into the grandchild's own repository (docker-registry: the tag schema).
    let layout = dir.join("gen");
    let subject = wharf_oci::Descriptor::new(
        wharf_oci::media_type::OCI_MANIFEST,
        wharf_oci::Digest::parse(&grandchild).unwrap(),
        json(&wharf(dir, &["inspect", "--output", "json", &image]).ok())["descriptor"]["size"]
            .as_u64()
            .unwrap(),
    );
    add_referrer(&layout, &subject, "application/vnd.example.sig", b"sig");
    wharf(
        dir,
        &["copy", &format!("oci:{}:img0", layout.display()), &image],
    )
    .ok();
    wharf(dir, &["copy", &format!("{base}:1.0"), &target]).ok();
    let schema_tag = format!("sha256-{}", grandchild.trim_start_matches("sha256:"));
    assert!(
        tags(&docker.addr, "team/app/c/g").contains(&schema_tag),
        "{:?}",
        tags(&docker.addr, "team/app/c/g")
    );
}
