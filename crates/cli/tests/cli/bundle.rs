//! `wharf bundle`: imgpkg bundles pushed, copied with location records and pulled, on wharf serve
//! and docker-registry, checked with skopeo and tar, never with wharf's own reader alone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use wharf_oci::media_type::{DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST};

use crate::util::{
    DockerRegistry, Fault, FaultAction, TestProxy, WharfServe, gen_layout, htpasswd, json,
    layout_add_root, layout_blob, peer, sample_layout, sha256_of, skopeo_copy_all, temp, wharf,
};

const API: &str = "apiVersion: imgpkg.carvel.dev/v1alpha1";

/// `wharf serve` with its storage in `dir/NAME`.
fn serve_in(dir: &Path, name: &str, args: &[&str]) -> WharfServe {
    let root = dir.join(name);
    std::fs::create_dir_all(&root).unwrap();
    WharfServe::start(Path::new(env!("CARGO_BIN_EXE_wharf")), &root, 1, args)
}

/// The digest `wharf inspect` reports for a location, with extra arguments (credentials).
fn digest(dir: &Path, location: &str, extra: &[&str]) -> String {
    let mut args = vec!["inspect", "--output", "json", location];
    args.extend(extra);
    json(&wharf(dir, &args).ok())["descriptor"]["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A bundle directory: a config file and `.imgpkg/images.yml` locking `images` (reference,
/// optional kbld id).
fn bundle_dir(dir: &Path, name: &str, images: &[(String, Option<&str>)]) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.join(".imgpkg")).unwrap();
    std::fs::create_dir_all(path.join("config")).unwrap();
    std::fs::write(path.join("config/values.yml"), format!("name: {name}\n")).unwrap();
    let mut lock = format!("---\n{API}\nkind: ImagesLock\nimages:\n");
    for (image, id) in images {
        lock += &format!("- image: {image}\n");
        if let Some(id) = id {
            lock += &format!("  annotations:\n    kbld.carvel.dev/id: {id}\n");
        }
    }
    std::fs::write(path.join(".imgpkg/images.yml"), lock).unwrap();
    path
}

/// Pushes the bundle at `path` to `destination`; returns its digest.
fn push(dir: &Path, path: &Path, destination: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "bundle",
        "push",
        path.to_str().unwrap(),
        destination,
        "--output",
        "json",
    ];
    args.extend(extra);
    json(&wharf(dir, &args).ok())["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `count` generated images in `registry` (as `images/imgN:v1`) and a bundle locking them pushed
/// to `registry/bundles/app:1.0`: returns the bundle's reference, its digest and the locked
/// references.
fn seed_bundle(dir: &Path, registry: &str, count: usize) -> (String, String, Vec<String>) {
    gen_layout(&dir.join("gen"), count, 2, 1, "8K");
    let mut locked = Vec::new();
    for i in 0..count {
        let name = format!("{registry}/images/img{i}");
        let source = format!("oci:{}:img{i}", dir.join("gen").display());
        wharf(dir, &["copy", &source, &format!("{name}:v1")]).ok();
        locked.push(format!(
            "{name}@{}",
            digest(dir, &format!("{name}:v1"), &[])
        ));
    }
    let entries: Vec<(String, Option<&str>)> = locked.iter().map(|l| (l.clone(), None)).collect();
    let path = bundle_dir(dir, "bundle", &entries);
    let source = format!("{registry}/bundles/app:1.0");
    let bundle = push(dir, &path, &source, &[]);
    (source, bundle, locked)
}

fn record_tag(bundle: &str) -> String {
    format!(
        "sha256-{}.image-locations.imgpkg",
        bundle.strip_prefix("sha256:").unwrap()
    )
}

/// The record YAML imgpkg writes for `entries` (image, isBundle).
fn expected_record(entries: &[(&str, bool)]) -> String {
    let mut sorted = entries.to_vec();
    sorted.sort();
    let mut out = format!("---\n{API}\nimages:\n");
    for (image, is_bundle) in sorted {
        out += &format!("- image: {image}\n  isBundle: {is_bundle}\n");
    }
    out + "kind: ImageLocations\n"
}

/// The record of `bundle` in `repository`, read by skopeo and tar: checks imgpkg's image shape and
/// returns the YAML.
fn record_by_skopeo(dir: &Path, repository: &str, bundle: &str) -> String {
    let out = dir.join(format!("record-{}", &bundle[7..19]));
    let _ = std::fs::remove_dir_all(&out);
    peer(
        dir,
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{repository}:{}", record_tag(bundle)),
            &format!("dir:{}", out.display()),
        ],
    )
    .ok();
    let manifest = json(&std::fs::read_to_string(out.join("manifest.json")).unwrap());
    assert_eq!(manifest["mediaType"], DOCKER_MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], DOCKER_CONFIG);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], DOCKER_LAYER_GZIP);
    let layer = out.join(&layers[0]["digest"].as_str().unwrap()["sha256:".len()..]);
    let listing = peer(dir, "tar", &["-tzvf", layer.to_str().unwrap()]).ok();
    assert!(
        listing.contains("drwx------ 0/0") && listing.contains("-rw------- 0/0"),
        "{listing}"
    );
    peer(
        dir,
        "tar",
        &["-xzOf", layer.to_str().unwrap(), "image-locations.yml"],
    )
    .ok()
}

/// skopeo pulls `reference` and the manifest hashes to `digest`.
fn skopeo_pulls(dir: &Path, reference: &str, digest: &str) {
    let out = dir.join(format!("pulled-{}", &digest[7..19]));
    let _ = std::fs::remove_dir_all(&out);
    skopeo_copy_all(
        dir,
        &format!("docker://{reference}"),
        &format!("dir:{}", out.display()),
    )
    .ok();
    let manifest = std::fs::read(out.join("manifest.json")).unwrap();
    assert_eq!(sha256_of(dir, &manifest), digest, "{reference}");
}

/// Tags of a repository, as skopeo lists them.
fn skopeo_tags(dir: &Path, repository: &str) -> BTreeSet<String> {
    let out = peer(
        dir,
        "skopeo",
        &[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{repository}"),
        ],
    )
    .ok();
    json(&out)["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn seed_scenario_bundle_and_images_behind_other_credentials_relocated_then_pulled_after_both_are_gone()
 {
    let dir = temp();
    let dir = dir.path();
    // A: the bundle's registry (wharf serve, alice); B: the images' registry (docker-registry, bob).
    let alice = htpasswd(dir);
    let mut a = serve_in(dir, "a", &["--htpasswd", alice.to_str().unwrap()]);
    let bob = dir.join("htpasswd-bob");
    std::fs::write(
        &bob,
        format!("bob:{}\n", bcrypt::hash("hunter2", 5).unwrap()),
    )
    .unwrap();
    let b = DockerRegistry::start(Some(&bob));
    let c = serve_in(dir, "c", &[]);
    let auth = dir.join("auth.json");
    let auth = auth.to_str().unwrap();
    wharf(
        dir,
        &[
            "login",
            a.addr(),
            "-u",
            "alice",
            "-p",
            "s3cret",
            "--authfile",
            auth,
        ],
    )
    .ok();
    wharf(
        dir,
        &[
            "login",
            &b.addr,
            "-u",
            "bob",
            "-p",
            "hunter2",
            "--authfile",
            auth,
        ],
    )
    .ok();
    let creds = ["--authfile", auth];

    gen_layout(&dir.join("gen"), 1, 3, 1, "16K");
    let sample = sample_layout(dir);
    let app = format!("{}/team/app", b.addr);
    let multi = format!("{}/library/multi", b.addr);
    let gen_source = format!("oci:{}:img0", dir.join("gen").display());
    let sample_source = format!("oci:{}:1.0", sample.display());
    for (source, target) in [(&gen_source, &app), (&sample_source, &multi)] {
        let target = format!("{target}:1.0");
        let mut args = vec!["copy", source.as_str(), target.as_str()];
        args.extend(creds);
        wharf(dir, &args).ok();
    }
    let app_digest = digest(dir, &format!("{app}:1.0"), &creds);
    let multi_digest = digest(dir, &format!("{multi}:1.0"), &creds);
    let path = bundle_dir(
        dir,
        "bundle",
        &[
            (format!("{app}@{app_digest}"), Some("team/app:1.0")),
            (format!("{multi}@{multi_digest}"), None),
        ],
    );
    let source = format!("{}/bundles/app:1.0", a.addr());
    let lock = dir.join("push.lock.yml");
    let mut extra = vec!["--lock-output", lock.to_str().unwrap()];
    extra.extend(creds);
    let bundle = push(dir, &path, &source, &extra);
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap(),
        format!(
            "---\n{API}\nbundle:\n  image: {}/bundles/app@{bundle}\n  tag: \"1.0\"\nkind: BundleLock\n",
            a.addr()
        )
    );
    // Deterministic: the same files give the same digest, wherever they go.
    let layout = format!("oci:{}:again", dir.join("again").display());
    assert_eq!(push(dir, &path, &layout, &[]), bundle);

    // Copy into C, reading A and B with their own credentials.
    let target = format!("{}/copy/app", c.addr());
    let mut args = vec!["bundle", "copy", &source, &target, "--output", "json"];
    args.extend(creds);
    let copied = json(&wharf(dir, &args).ok());
    assert_eq!(copied["bundles"], 1);
    assert_eq!(copied["images"], 2);
    assert_eq!(copied["records"][0]["tag"], record_tag(&bundle));
    let tags = skopeo_tags(dir, &target);
    for expected in [
        "1.0".to_owned(),
        record_tag(&bundle),
        format!("sha256-{}.imgpkg", &bundle[7..]),
        format!("sha256-{}.imgpkg", &app_digest[7..]),
        format!("sha256-{}.imgpkg", &multi_digest[7..]),
        format!(
            "sha256-{}.imgpkg",
            &copied["records"][0]["digest"].as_str().unwrap()[7..]
        ),
    ] {
        assert!(tags.contains(&expected), "{expected} not in {tags:?}");
    }

    // A and B go away; everything resolves from C.
    a.stop();
    drop(b);
    let out = dir.join("out");
    wharf(
        dir,
        &[
            "bundle",
            "pull",
            &format!("{target}:1.0"),
            "-O",
            out.to_str().unwrap(),
        ],
    )
    .ok();
    assert_eq!(
        std::fs::read_to_string(out.join(".imgpkg/images.yml")).unwrap(),
        format!(
            "---\n{API}\nimages:\n- annotations:\n    kbld.carvel.dev/id: team/app:1.0\n  image: {target}@{app_digest}\n- image: {target}@{multi_digest}\nkind: ImagesLock\n"
        )
    );
    assert_eq!(
        std::fs::read_to_string(out.join("config/values.yml")).unwrap(),
        "name: bundle\n"
    );
    skopeo_pulls(dir, &format!("{target}@{app_digest}"), &app_digest);
    skopeo_pulls(dir, &format!("{target}@{multi_digest}"), &multi_digest);
    let record = expected_record(&[
        (&format!("{app}@{app_digest}"), false),
        (&format!("{multi}@{multi_digest}"), false),
    ]);
    assert_eq!(record_by_skopeo(dir, &target, &bundle), record);
    let located = json(
        &wharf(
            dir,
            &[
                "bundle",
                "locations",
                &format!("{target}:1.0"),
                "--output",
                "json",
            ],
        )
        .ok(),
    );
    assert_eq!(located["rule"], "record");
    // The record is also an OCI referrer of the bundle, naming where it was copied.
    let (_, listing) = crate::util::http(
        c.addr(),
        "GET",
        &format!("/v2/copy/app/referrers/{bundle}"),
        b"",
    );
    assert!(
        listing.contains(&format!(
            "\"dev.wharf.image-locations.repository\":\"{target}\""
        )),
        "{listing}"
    );

    // Copied on from C (A and B still gone) into a namespace path of docker-registry: the images
    // come from C's bundle repository, as its record says; the new record lists the same original
    // references, and a pull finds everything at the second location.
    let d = DockerRegistry::start(None);
    let second = format!("{}/some/namespace/new-location", d.addr);
    wharf(dir, &["bundle", "copy", &format!("{target}:1.0"), &second]).ok();
    assert_eq!(record_by_skopeo(dir, &second, &bundle), record);
    let tags = skopeo_tags(dir, &second);
    assert!(
        tags.contains(&format!("sha256-{}", &bundle[7..])),
        "the record artifact travels by the referrers tag schema: {tags:?}"
    );
    let out = dir.join("out-second");
    wharf(
        dir,
        &[
            "bundle",
            "pull",
            &format!("{second}:1.0"),
            "-O",
            out.to_str().unwrap(),
        ],
    )
    .ok();
    let lock = std::fs::read_to_string(out.join(".imgpkg/images.yml")).unwrap();
    assert!(
        lock.contains(&format!("image: {second}@{app_digest}"))
            && lock.contains(&format!("image: {second}@{multi_digest}")),
        "{lock}"
    );
    skopeo_pulls(dir, &format!("{second}@{multi_digest}"), &multi_digest);
    // The referrer that described C stayed behind: D's lists only D.
    let inspected = json(
        &wharf(
            dir,
            &["inspect", "--output", "json", &format!("{second}:1.0")],
        )
        .ok(),
    );
    let locations = inspected["imgpkgBundle"]["locations"].as_array().unwrap();
    assert_eq!(locations.len(), 1, "{inspected}");
    assert_eq!(locations[0]["repository"], second);
}

#[test]
fn nested_bundles_three_levels_deep_with_a_shared_sub_bundle() {
    let dir = temp();
    let dir = dir.path();
    let s = serve_in(dir, "s", &[]);
    gen_layout(&dir.join("gen"), 4, 2, 1, "8K");
    let mut images = Vec::new();
    for i in 0..4 {
        let name = format!("{}/images/img{i}", s.addr());
        wharf(
            dir,
            &[
                "copy",
                &format!("oci:{}:img{i}", dir.join("gen").display()),
                &format!("{name}:v1"),
            ],
        )
        .ok();
        images.push(format!(
            "{name}@{}",
            digest(dir, &format!("{name}:v1"), &[])
        ));
    }
    let bundles = format!("{}/bundles", s.addr());
    let push_level = |name: &str, entries: Vec<String>| {
        let path = bundle_dir(
            dir,
            name,
            &entries.into_iter().map(|e| (e, None)).collect::<Vec<_>>(),
        );
        let digest = push(dir, &path, &format!("{bundles}/{name}:1"), &[]);
        format!("{bundles}/{name}@{digest}")
    };
    let l3 = push_level("l3", vec![images[3].clone()]);
    let l2a = push_level("l2a", vec![images[1].clone(), l3.clone()]);
    let l2b = push_level("l2b", vec![images[2].clone(), l3.clone()]);
    let root = push_level("root", vec![images[0].clone(), l2a.clone(), l2b.clone()]);
    let digest_of = |reference: &str| reference.rsplit_once('@').unwrap().1.to_owned();

    let t = DockerRegistry::start(None);
    let target = format!("{}/dest", t.addr);
    let copied = json(
        &wharf(
            dir,
            &[
                "copy",
                "--bundle",
                &format!("{bundles}/root:1"),
                &target,
                "--output",
                "json",
            ],
        )
        .ok(),
    );
    assert_eq!(copied["bundles"], 4, "{copied}");
    assert_eq!(copied["images"], 4, "{copied}");
    assert_eq!(copied["records"].as_array().unwrap().len(), 4);
    for (bundle, entries) in [
        (&root, vec![(&images[0], false), (&l2a, true), (&l2b, true)]),
        (&l2a, vec![(&images[1], false), (&l3, true)]),
        (&l2b, vec![(&images[2], false), (&l3, true)]),
        (&l3, vec![(&images[3], false)]),
    ] {
        let entries: Vec<(&str, bool)> = entries.iter().map(|(i, b)| (i.as_str(), *b)).collect();
        assert_eq!(
            record_by_skopeo(dir, &target, &digest_of(bundle)),
            expected_record(&entries),
            "record of {bundle}"
        );
    }

    let out = dir.join("out");
    let said = wharf(
        dir,
        &[
            "bundle",
            "pull",
            "--recursive",
            &format!("{target}:1"),
            "-O",
            out.to_str().unwrap(),
        ],
    )
    .ok();
    assert_eq!(said.matches("Pulled nested bundle").count(), 3, "{said}");
    let nested: BTreeSet<String> = std::fs::read_dir(out.join(".imgpkg/bundles"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = [&l2a, &l2b, &l3]
        .iter()
        .map(|b| digest_of(b).replace(':', "-"))
        .collect();
    assert_eq!(nested, expected, "nested bundles side by side, each once");
    for (path, locked) in [
        (out.clone(), vec![&images[0], &l2a, &l2b]),
        (
            out.join(".imgpkg/bundles")
                .join(digest_of(&l2a).replace(':', "-")),
            vec![&images[1], &l3],
        ),
        (
            out.join(".imgpkg/bundles")
                .join(digest_of(&l3).replace(':', "-")),
            vec![&images[3]],
        ),
    ] {
        let lock = std::fs::read_to_string(path.join(".imgpkg/images.yml")).unwrap();
        let expected: String = locked
            .iter()
            .map(|r| format!("- image: {target}@{}\n", digest_of(r)))
            .collect();
        assert_eq!(
            lock,
            format!("---\n{API}\nimages:\n{expected}kind: ImagesLock\n")
        );
        assert!(!path.join(".imgpkg/bundles").exists() || path == out);
    }
}

#[test]
fn a_copy_that_fails_part_way_writes_no_record_and_no_tag_and_a_rerun_sends_only_the_rest() {
    let dir = temp();
    let dir = dir.path();
    let s = serve_in(dir, "s", &[]);
    let source = TestProxy::start(s.addr(), None);
    let (bundle_ref, bundle, locked) = seed_bundle(dir, &source.host(), 3);
    // The last image's own layer (not the shared one) cannot be read, once.
    let manifest = json(&wharf(dir, &["inspect", "--raw", &locked[2]]).ok());
    let own_layer = manifest["layers"][1]["digest"].as_str().unwrap().to_owned();
    source.inject(Fault {
        method: None,
        path_contains: format!("/blobs/{own_layer}"),
        times: 1,
        action: FaultAction::Status {
            code: 404,
            retry_after: None,
        },
    });

    let t = serve_in(dir, "t", &[]);
    let destination = TestProxy::start(t.addr(), None);
    let target = format!("{}/dest", destination.host());
    let failed = wharf(dir, &["bundle", "copy", &bundle_ref, &target]);
    failed.fails_with(&[
        "1 of 4 images (bundles included) could not be copied",
        "no location record or tag was written",
        &locked[2],
    ]);
    let direct = format!("{}/dest", t.addr());
    let tags = skopeo_tags(dir, &direct);
    assert!(!tags.contains("1.0"), "{tags:?}");
    assert!(!tags.contains(&record_tag(&bundle)), "{tags:?}");
    let uploaded = |records: Vec<wharf_testkit::Record>| -> BTreeSet<String> {
        records
            .into_iter()
            .filter(|r| r.method == "PUT" && r.path.contains("/blobs/uploads/"))
            .map(|r| r.query)
            .collect()
    };
    let first = uploaded(destination.records());
    assert!(!first.is_empty());
    destination.clear_records();

    let rerun = json(
        &wharf(
            dir,
            &["bundle", "copy", &bundle_ref, &target, "--output", "json"],
        )
        .ok(),
    );
    let second = uploaded(destination.records());
    assert!(
        first.is_disjoint(&second),
        "nothing that landed is sent again: {:?}",
        first.intersection(&second).collect::<Vec<_>>()
    );
    assert!(
        second.iter().any(|q| q.contains(&own_layer[7..])),
        "the missing layer is sent: {second:?}"
    );
    assert_eq!(rerun["records"].as_array().unwrap().len(), 1);
    let tags = skopeo_tags(dir, &direct);
    assert!(
        tags.contains("1.0") && tags.contains(&record_tag(&bundle)),
        "{tags:?}"
    );
}

/// Adds an image of `layers` (media type, bytes) with `config` to a layout under `tag`.
fn layout_image(layout: &Path, tag: &str, config: &[u8], layers: &[(&str, &[u8])]) -> String {
    let config = layout_blob(layout, DOCKER_CONFIG, config);
    let layers: Vec<wharf_oci::Descriptor> = layers
        .iter()
        .map(|(media_type, bytes)| layout_blob(layout, media_type, bytes))
        .collect();
    let manifest = wharf_oci::Manifest::from_image(&wharf_oci::ImageManifest {
        schema_version: 2,
        media_type: Some(DOCKER_MANIFEST.into()),
        artifact_type: None,
        config,
        layers,
        subject: None,
        annotations: Default::default(),
    });
    let descriptor = layout_blob(layout, DOCKER_MANIFEST, manifest.raw());
    layout_add_root(layout, descriptor.clone(), Some(tag));
    descriptor.digest.to_string()
}

/// A tar holding one file.
fn tar_of(name: &str, content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(content.len() as u64);
    header.set_mode(0o600);
    header.set_cksum();
    builder.append_data(&mut header, name, content).unwrap();
    builder.into_inner().unwrap()
}

#[test]
fn bad_input_gets_one_line_and_writes_nothing() {
    let dir = temp();
    let dir = dir.path();
    let target = dir.join("target");
    let to = format!("oci:{}:b", target.display());
    let untouched = || assert!(!target.exists(), "the destination was written");
    let digest_ref = format!("r.example/a@sha256:{}", "a".repeat(64));

    let tagged = bundle_dir(dir, "tagged", &[("nginx:1.27".into(), None)]);
    wharf(dir, &["bundle", "push", tagged.to_str().unwrap(), &to]).fails_with(&[
        "images.yml",
        "\"nginx:1.27\"",
        "not locked to a digest",
    ]);
    untouched();
    let bare = dir.join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    wharf(dir, &["bundle", "push", bare.to_str().unwrap(), &to])
        .fails_with(&["bare", "has no .imgpkg/images.yml"]);
    let twice = bundle_dir(dir, "twice", &[(digest_ref.clone(), None)]);
    std::fs::create_dir_all(twice.join("config/.imgpkg")).unwrap();
    wharf(dir, &["bundle", "push", twice.to_str().unwrap(), &to])
        .fails_with(&["config/.imgpkg", "another .imgpkg"]);
    let good = bundle_dir(dir, "good", &[(digest_ref.clone(), None)]);
    wharf(
        dir,
        &[
            "bundle",
            "push",
            good.to_str().unwrap(),
            &to,
            "--label",
            "dev.carvel.imgpkg.bundle=x",
        ],
    )
    .fails_with(&["dev.carvel.imgpkg.bundle", "reserved"]);
    untouched();

    // Bundles and records that are not what imgpkg writes, in a layout.
    let layout = dir.join("layout");
    let source = |tag: &str| format!("oci:{}:{tag}", layout.display());
    let bundle_config = br#"{"config":{"Labels":{"dev.carvel.imgpkg.bundle":"true"}}}"#;
    let lock = format!("{API}\nkind: ImagesLock\nimages:\n- image: {digest_ref}\n");
    let lock_tar = tar_of(".imgpkg/images.yml", lock.as_bytes());
    layout_image(
        &layout,
        "two-layers",
        bundle_config,
        &[
            (DOCKER_LAYER_GZIP, &lock_tar),
            (DOCKER_LAYER_GZIP, &lock_tar),
        ],
    );
    layout_image(
        &layout,
        "not-a-tar",
        bundle_config,
        &[(DOCKER_LAYER_GZIP, "this is no tar\n".repeat(40).as_bytes())],
    );
    // A plain tar under the gzip media type reads fine: any compression is accepted.
    let plain = layout_image(
        &layout,
        "plain",
        bundle_config,
        &[(DOCKER_LAYER_GZIP, &lock_tar)],
    );
    let other = {
        let lock = lock.replace(&"a".repeat(64), &"b".repeat(64));
        let tar = tar_of(".imgpkg/images.yml", lock.as_bytes());
        layout_image(
            &layout,
            "other",
            bundle_config,
            &[(DOCKER_LAYER_GZIP, &tar)],
        )
    };
    let record = |kind: &str| {
        let yaml =
            format!("{API}\nkind: {kind}\nimages:\n- image: {digest_ref}\n  isBundle: false\n");
        tar_of("image-locations.yml", yaml.as_bytes())
    };
    let valid = record("ImageLocations");
    layout_image(
        &layout,
        &record_tag(&plain),
        b"{}",
        &[(DOCKER_LAYER_GZIP, &valid), (DOCKER_LAYER_GZIP, &valid)],
    );
    layout_image(
        &layout,
        &record_tag(&other),
        b"{}",
        &[(DOCKER_LAYER_GZIP, &record("ImagesLock"))],
    );

    let out = dir.join("out");
    let pull = |tag: &str| {
        wharf(
            dir,
            &["bundle", "pull", &source(tag), "-O", out.to_str().unwrap()],
        )
    };
    pull("two-layers").fails_with(&["bundle", "has 2 layers", "exactly one"]);
    pull("not-a-tar").fails_with(&["not a readable tar"]);
    pull("plain").fails_with(&["location record", "the record has 2 layers"]);
    pull("other").fails_with(&[
        "location record",
        "kind \"ImagesLock\" is not ImageLocations",
    ]);
    assert!(!out.exists(), "nothing pulled");
    wharf(dir, &["bundle", "copy", &source("plain"), &to]).fails_with(&["the record has 2 layers"]);
    wharf(dir, &["bundle", "copy", &source("not-a-tar"), &to]).fails_with(&["not a readable tar"]);
    untouched();
    let sample = sample_layout(dir);
    wharf(
        dir,
        &[
            "bundle",
            "copy",
            &format!("oci:{}:1.0", sample.display()),
            &to,
        ],
    )
    .fails_with(&["is not an imgpkg bundle"]);
    untouched();
    let bad_lock = dir.join("bad.lock.yml");
    std::fs::write(
        &bad_lock,
        format!("{API}\nkind: BundleLock\nbundle:\n  image: r.example/b:1.0\n"),
    )
    .unwrap();
    wharf(dir, &["bundle", "copy", bad_lock.to_str().unwrap(), &to])
        .fails_with(&["bad.lock.yml", "not locked to a digest"]);
    untouched();
}

#[test]
fn bundles_travel_through_archives_sync_files_and_plain_copies() {
    let dir = temp();
    let dir = dir.path();
    let s = serve_in(dir, "s", &[]);
    let (source, bundle, _) = seed_bundle(dir, s.addr(), 2);

    // Without --bundle, the bundle image travels alone.
    let t = serve_in(dir, "t", &[]);
    let alone = format!("{}/alone/app:1.0", t.addr());
    let copied = json(&wharf(dir, &["copy", &source, &alone, "--output", "json"]).ok());
    assert_eq!(copied["manifestsCopied"], 1);
    assert_eq!(
        skopeo_tags(dir, &format!("{}/alone/app", t.addr())),
        BTreeSet::from(["1.0".to_owned()])
    );

    // Into an archive and out again, by tag and by the archive alone.
    let archive = dir.join("bundle.tar");
    let archived = format!("oci-archive:{}", archive.display());
    wharf(dir, &["bundle", "copy", &source, &archived]).ok();
    let located = json(&wharf(dir, &["bundle", "locations", &archived, "--output", "json"]).ok());
    assert_eq!(located["rule"], "record");
    assert_eq!(located["digest"], bundle);
    let restored = format!("{}/restored/app", t.addr());
    let copied = json(
        &wharf(
            dir,
            &["bundle", "copy", &archived, &restored, "--output", "json"],
        )
        .ok(),
    );
    assert_eq!(copied["destination"], format!("{restored}:1.0"));
    assert_eq!(copied["images"], 2);
    // Pulls into an empty directory, and over a full one only when asked, never over the one
    // the command runs in.
    let out = dir.join("from-archive");
    std::fs::create_dir_all(&out).unwrap();
    let pull = |extra: &[&str]| {
        let reference = format!("{restored}:1.0");
        let mut args = vec![
            "bundle",
            "pull",
            reference.as_str(),
            "-O",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        wharf(dir, &args)
    };
    pull(&[]).ok();
    let lock = std::fs::read_to_string(out.join(".imgpkg/images.yml")).unwrap();
    assert!(lock.contains(&format!("image: {restored}@")), "{lock}");
    std::fs::write(out.join("mine.txt"), "kept?").unwrap();
    pull(&[]).fails_with(&["from-archive", "not empty", "--replace"]);
    assert!(out.join("mine.txt").exists());
    pull(&["--replace"]).ok();
    assert!(!out.join("mine.txt").exists() && out.join(".imgpkg/images.yml").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".wharf-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let reference = format!("{restored}:1.0");
    wharf(
        &out,
        &["bundle", "pull", &reference, "-O", ".", "--replace"],
    )
    .fails_with(&["current directory"]);

    // Through a CTF repository the same way.
    let ctf = format!("ctf:{}//bundles/app", dir.join("transport.tgz").display());
    wharf(dir, &["bundle", "copy", &source, &ctf]).ok();
    let from_ctf = format!("{}/from-ctf/app", t.addr());
    let copied = json(
        &wharf(
            dir,
            &[
                "bundle",
                "copy",
                &format!("{ctf}:1.0"),
                &from_ctf,
                "--output",
                "json",
            ],
        )
        .ok(),
    );
    assert_eq!(
        (copied["digest"].as_str(), copied["images"].as_u64()),
        (Some(bundle.as_str()), Some(2))
    );
    assert_eq!(record_by_skopeo(dir, &from_ctf, &bundle).lines().count(), 8);

    // A sync file's bundles: entry, beside an image, in one run; then again, a no-op.
    let sync = dir.join("sync.yaml");
    std::fs::write(
        &sync,
        format!(
            "bundles:\n- source: {source}\nimages:\n- source: {}/images/img0:v1\n",
            s.addr()
        ),
    )
    .unwrap();
    let prefix = format!("{}/mirror", t.addr());
    let sync = || {
        let file = sync.to_str().unwrap();
        let args = ["sync", "--file", file, "--to", &prefix, "--output", "json"];
        json(&wharf(dir, &args).ok())
    };
    let report = sync();
    let roots = report["roots"].as_array().unwrap();
    assert!(roots.iter().all(|r| r["status"] == "copied"), "{report}");
    let tags = skopeo_tags(dir, &format!("{prefix}/bundles/app"));
    assert!(
        tags.contains(&record_tag(&bundle)) && tags.contains("1.0"),
        "{tags:?}"
    );
    let again = sync();
    assert_eq!(again["moved"]["blobsUploaded"], 0, "{again}");

    // A BundleLock as the source, and --lock-output naming the copy.
    let lock = dir.join("bundle.lock.yml");
    std::fs::write(
        &lock,
        format!(
            "---\n{API}\nbundle:\n  image: {}/bundles/app@{bundle}\n  tag: v9\nkind: BundleLock\n",
            s.addr()
        ),
    )
    .unwrap();
    let copied_lock = dir.join("copied.lock.yml");
    let via_lock = format!("{}/via-lock/app", t.addr());
    wharf(
        dir,
        &[
            "bundle",
            "copy",
            lock.to_str().unwrap(),
            &via_lock,
            "--lock-output",
            copied_lock.to_str().unwrap(),
        ],
    )
    .ok();
    assert_eq!(
        std::fs::read_to_string(&copied_lock).unwrap(),
        format!("---\n{API}\nbundle:\n  image: {via_lock}@{bundle}\n  tag: v9\nkind: BundleLock\n")
    );
    assert_eq!(digest(dir, &format!("{via_lock}:v9"), &[]), bundle);
}

#[test]
fn an_immutable_record_tag_is_fine_when_a_readable_record_is_already_there() {
    let dir = temp();
    let dir = dir.path();
    let s = serve_in(dir, "s", &[]);
    let (source, bundle, locked) = seed_bundle(dir, s.addr(), 1);
    let t = serve_in(dir, "t", &[]);
    let proxy = TestProxy::start(t.addr(), None);
    let immutable = || {
        Fault {
        method: Some(reqwest::Method::PUT),
        path_contains: format!("/manifests/{}", record_tag(&bundle)),
        times: 1,
        action: FaultAction::Refuse {
            code: 400,
            error: "TAG_INVALID",
            message: "The image tag already exists in the repository and cannot be overwritten because the repository is immutable.".into(),
        },
    }
    };

    // A record written by another tool: the same entries, other bytes (an uncompressed layer).
    let layout = dir.join("foreign");
    let yaml = format!(
        "---\n{API}\nimages:\n- image: {}\n  isBundle: false\nkind: ImageLocations\n",
        locked[0]
    );
    layout_image(
        &layout,
        "record",
        b"{}",
        &[(
            DOCKER_LAYER_GZIP,
            &tar_of("image-locations.yml", yaml.as_bytes()),
        )],
    );
    let kept = format!("{}/kept", t.addr());
    wharf(
        dir,
        &[
            "copy",
            &format!("oci:{}:record", layout.display()),
            &format!("{kept}:{}", record_tag(&bundle)),
        ],
    )
    .ok();
    proxy.inject(immutable());
    let copied = json(
        &wharf(
            dir,
            &[
                "bundle",
                "copy",
                &source,
                &format!("{}/kept", proxy.host()),
                "--output",
                "json",
            ],
        )
        .ok(),
    );
    assert_eq!(copied["records"][0]["kept"], true, "{copied}");
    assert!(skopeo_tags(dir, &kept).contains("1.0"));

    // Without a readable record there, the refusal is an error, and no tag is written.
    proxy.inject(immutable());
    wharf(
        dir,
        &[
            "bundle",
            "copy",
            &source,
            &format!("{}/fresh", proxy.host()),
        ],
    )
    .fails_with(&["TAG_INVALID", "immutable"]);
    assert!(!skopeo_tags(dir, &format!("{}/fresh", t.addr())).contains("1.0"));
}
