//! `wharf sync`: many images into wharf serve and docker-registry, no-op re-runs counted at the wire,
//! and failures retried from the report.

use std::path::Path;

use crate::util::{
    DockerRegistry, TestProxy, blob_files, descriptor_of, json, peer, sample_layout, seed_images,
    serve, temp, wharf,
};

/// Every image of `names` (under `from`) arrived under `to` with the same digest, and pulling all of
/// them back yields exactly the source's blobs.
fn assert_mirrored(dir: &Path, names: &[String], from: &str, to: &str, check: &str) {
    for name in names {
        let tag = if name.contains("multi") { "1.0" } else { "v1" };
        let source = descriptor_of(dir, &format!("{name}:{tag}"));
        let mirrored = descriptor_of(dir, &format!("{}:{tag}", name.replacen(from, to, 1)));
        assert_eq!(source.digest, mirrored.digest, "{name}");
    }
    let mirrored: Vec<String> = names.iter().map(|n| n.replacen(from, to, 1)).collect();
    let mut args = vec!["sync", "--to"];
    let target = format!("oci:{check}");
    args.push(&target);
    args.extend(mirrored.iter().map(String::as_str));
    wharf(dir, &args).ok();
    let originals = format!("oci:{check}-original");
    let mut args = vec!["sync", "--to", &originals];
    args.extend(names.iter().map(String::as_str));
    wharf(dir, &args).ok();
    let mirrored = blob_files(&dir.join(check));
    let original = blob_files(&dir.join(format!("{check}-original")));
    let differ: Vec<_> = mirrored.symmetric_difference(&original).collect();
    assert!(differ.is_empty(), "{check}: blobs differ: {differ:?}");
}

#[test]
fn syncs_thirty_images_into_both_registries_and_reruns_for_free() {
    let dir = temp();
    let dir = dir.path();
    let source = serve(dir, &[]);
    let names = seed_images(dir, source.addr(), 30, "20K");
    let sources: Vec<&str> = names.iter().map(String::as_str).collect();

    // Into wharf serve.
    std::fs::create_dir_all(dir.join("w")).unwrap();
    let target = crate::util::WharfServe::start(
        Path::new(env!("CARGO_BIN_EXE_wharf")),
        &dir.join("w"),
        1,
        &[],
    );
    let prefix = format!("{}/mirror", target.addr());
    let mut args = vec!["sync", "--output", "json", "--to", &prefix];
    args.extend(&sources);
    let report = json(&wharf(dir, &args).ok());
    let roots = report["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 31);
    assert!(roots.iter().all(|r| r["status"] == "copied"), "{report}");
    let mounted: u64 = roots.iter().map(|r| r["mounted"].as_u64().unwrap()).sum();
    assert!(
        mounted >= 29 * 3,
        "shared base layers are mounted, not uploaded again: {mounted}"
    );
    assert_mirrored(dir, &names, source.addr(), &prefix, "check-wharf");
    let (_, listing) = crate::util::http(
        target.addr(),
        "GET",
        &format!(
            "/v2/mirror/multi/app/referrers/{}",
            descriptor_of(dir, &format!("{}/multi/app:1.0", source.addr())).digest
        ),
        b"",
    );
    assert!(
        listing.contains("application/vnd.example.signature"),
        "{listing}"
    );

    // Into docker-registry, counted at the wire.
    let docker = DockerRegistry::start(None);
    let proxy = TestProxy::start(&docker.addr, None);
    let prefix = format!("{}/mirror", proxy.host());
    let mut args = vec!["sync", "--output", "json", "--to", &prefix];
    args.extend(&sources);
    let report = json(&wharf(dir, &args).ok());
    assert!(
        report["roots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "copied"),
        "{report}"
    );
    assert_mirrored(dir, &names, source.addr(), &prefix, "check-docker");
    let fallback = peer(
        dir,
        "skopeo",
        &[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{}/mirror/multi/app", docker.addr),
        ],
    )
    .ok();
    assert!(
        fallback.contains("sha256-"),
        "the signature travels by the tag schema: {fallback}"
    );

    // The re-run: everything skipped, not one blob request, about one request per image.
    proxy.clear_records();
    let mut args = vec![
        "sync",
        "--no-referrers",
        "--output",
        "json",
        "--to",
        &prefix,
    ];
    args.extend(&sources);
    let report = json(&wharf(dir, &args).ok());
    assert!(
        report["roots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "skipped"),
        "{report}"
    );
    let records = proxy.records();
    assert!(
        records.iter().all(|r| !r.path.contains("/blobs/")),
        "blob requests on a no-op run: {records:?}"
    );
    let per_image = records
        .iter()
        .filter(|r| r.path.contains("/manifests/"))
        .count() as f64
        / 31.0;
    assert!(
        per_image <= 1.0,
        "{per_image} destination requests per image"
    );
}

#[test]
fn failures_do_not_stop_the_rest_and_retry_reruns_only_them() {
    let dir = temp();
    let dir = dir.path();
    let source = serve(dir, &[]);
    let sample = sample_layout(dir);
    let s = source.addr().to_owned();
    wharf(
        dir,
        &[
            "copy",
            &format!("oci:{}:1.0", sample.display()),
            &format!("{s}/present/one:1.0"),
        ],
    )
    .ok();
    wharf(
        dir,
        &[
            "copy",
            &format!("oci:{}:1.0", sample.display()),
            &format!("{s}/present/two:1.0"),
        ],
    )
    .ok();
    std::fs::create_dir_all(dir.join("t")).unwrap();
    let target = crate::util::WharfServe::start(
        Path::new(env!("CARGO_BIN_EXE_wharf")),
        &dir.join("t"),
        1,
        &[],
    );
    let prefix = format!("{}/m", target.addr());
    let sources = [
        format!("{s}/present/one"),
        format!("{s}/absent/first"),
        format!("{s}/present/two:1.0"),
        format!("{s}/absent/second:9.9"),
    ];
    let mut args = vec!["sync", "--output", "json", "--to", &prefix];
    args.extend(sources.iter().map(String::as_str));
    let run = wharf(dir, &args);
    assert!(
        !run.status.success(),
        "failures make the exit status non-zero"
    );
    let report = json(&run.stdout);
    std::fs::write(dir.join("report.json"), &run.stdout).unwrap();
    let status = |source: &str| {
        report["roots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["source"].as_str().unwrap().starts_with(source))
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status(&format!("{s}/present/one")), "copied");
    assert_eq!(status(&format!("{s}/present/two")), "copied");
    assert_eq!(status(&format!("{s}/absent/first")), "failed");
    assert_eq!(status(&format!("{s}/absent/second")), "failed");
    assert_eq!(report["retry"]["images"].as_array().unwrap().len(), 2);

    // The missing images appear; the retry reruns exactly those two.
    wharf(
        dir,
        &[
            "copy",
            &format!("oci:{}:1.0", sample.display()),
            &format!("{s}/absent/first:1.0"),
        ],
    )
    .ok();
    wharf(
        dir,
        &[
            "copy",
            &format!("oci:{}:1.0", sample.display()),
            &format!("{s}/absent/second:9.9"),
        ],
    )
    .ok();
    let retry = json(
        &wharf(
            dir,
            &[
                "sync",
                "--retry-failed",
                "report.json",
                "--to",
                &prefix,
                "--output",
                "json",
            ],
        )
        .ok(),
    );
    let roots = retry["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 2, "{retry}");
    assert!(
        roots
            .iter()
            .all(|r| r["status"] == "copied" && r["source"].as_str().unwrap().contains("/absent/")),
        "{retry}"
    );

    // A dry run writes nothing.
    let plan = wharf(
        dir,
        &[
            "sync",
            "--dry-run",
            "--to",
            &format!("{}/planned", target.addr()),
            &format!("{s}/present/one"),
        ],
    )
    .ok();
    assert!(plan.contains("would copy"), "{plan}");
    wharf(
        dir,
        &["tags", &format!("{}/planned/present/one", target.addr())],
    )
    .fails_with(&["not found"]);
    wharf(dir, &["sync", "--to", &prefix]).fails_with(&["nothing to sync"]);
}

#[test]
fn images_and_component_versions_share_one_job() {
    let dir = temp();
    let dir = dir.path();
    let source = serve(dir, &[]);
    let layout = dir.join("set");
    crate::util::gen_layout(&layout, 20, 4, 2, "64K");
    let mut images = String::from("images:\n");
    for i in 0..20 {
        let name = format!("{}/team/app{i}:v1", source.addr());
        wharf(
            dir,
            &["copy", &format!("oci:{}:img{i}", layout.display()), &name],
        )
        .ok();
        images += &format!("- source: {name}\n");
    }
    // Five component versions whose images are five of the twenty, built into a CTF.
    let mut constructor = String::from("components:\n");
    for i in 0..5 {
        constructor += &format!(
            "- name: example.com/c{i}\n  version: 1.0.0\n  provider:\n    name: example.com\n  resources:\n  - name: image\n    type: ociImage\n    access:\n      type: ociArtifact\n      imageReference: {}/team/app{i}:v1\n",
            source.addr()
        );
    }
    std::fs::write(dir.join("constructor.yaml"), constructor).unwrap();
    wharf(
        dir,
        &[
            "component",
            "build",
            "constructor.yaml",
            "--to",
            "ctf:components",
        ],
    )
    .ok();
    let mut file = images;
    file += "components:\n";
    for i in 0..5 {
        file += &format!("- source: ctf:components//example.com/c{i}:1.0.0\n");
    }
    std::fs::write(dir.join("sync.yaml"), file).unwrap();

    std::fs::create_dir_all(dir.join("target")).unwrap();
    let target = crate::util::WharfServe::start(
        Path::new(env!("CARGO_BIN_EXE_wharf")),
        &dir.join("target"),
        1,
        &["--access-log", "access.log"],
    );
    let prefix = format!("{}/mirror", target.addr());
    let report = json(
        &wharf(
            dir,
            &[
                "sync",
                "--file",
                "sync.yaml",
                "--to",
                &prefix,
                "--output",
                "json",
            ],
        )
        .ok(),
    );
    let roots = report["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 25);
    assert!(roots.iter().all(|r| r["status"] == "copied"), "{report:#}");
    // Every blob of the set (configs and layers: all but the 20 manifests) moved exactly once, over
    // images and component versions together.
    let distinct = blob_files(&layout).len() as u64 - 20;
    assert_eq!(report["moved"]["blobsUploaded"], distinct, "{report:#}");
    let log = std::fs::read_to_string(dir.join("target/access.log")).unwrap();
    let mut uploads: Vec<String> = log
        .lines()
        .map(|l| json(l))
        .filter(|r| r["method"] == "PUT" && r["path"].as_str().unwrap().contains("/blobs/uploads/"))
        .filter_map(|r| {
            r["query"]
                .as_str()
                .and_then(|q| q.split("digest=").nth(1))
                .map(str::to_owned)
        })
        .collect();
    let total = uploads.len();
    uploads.sort();
    uploads.dedup();
    assert_eq!(uploads.len(), total, "a blob was uploaded twice");
    // The component versions' images resolve where the images themselves went.
    for i in 0..5 {
        let image_ref = wharf(
            dir,
            &[
                "component",
                "image-ref",
                &format!("{prefix}//example.com/c{i}:1.0.0"),
                "--resource",
                "image",
            ],
        )
        .ok();
        assert!(
            image_ref
                .trim()
                .starts_with(&format!("{prefix}/team/app{i}:v1@sha256:")),
            "{image_ref}"
        );
    }
}
