//! Air-gap round trips: images, component versions and referrers exported into every archive kind and
//! imported into wharf serve and docker-registry; an export killed half-way and resumed; `wharf
//! verify` finding damage; hostile tars refused.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{
    DockerRegistry, assert_verified, descriptor_of, http, json, peer, sample_layout, seed_images,
    serve, temp, wharf, wharf_command,
};

const COMPONENTS: [(&str, &str); 2] = [
    ("example.com/frontend", "1.0.0"),
    ("example.com/backend", "2.1.0"),
];

/// Two component versions in `{registry}/components`, each with the multi-arch sample image (by
/// reference) and a file of its own as a local blob.
fn build_components(dir: &Path, registry: &str) {
    let mut constructor = String::from("components:\n");
    for (name, version) in COMPONENTS {
        let file = format!("{}.txt", name.replace('/', "_"));
        std::fs::write(dir.join(&file), format!("notes of {name}\n")).unwrap();
        constructor += &format!(
            "- name: {name}\n  version: {version}\n  provider:\n    name: example.com\n  resources:\n  - name: image\n    type: ociImage\n    version: '1.0'\n    access:\n      type: ociArtifact\n      imageReference: {registry}/multi/app:1.0\n  - name: notes\n    type: blob\n    input:\n      type: file\n      path: {file}\n      mediaType: text/plain\n"
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
            &format!("{registry}/components"),
        ],
    )
    .ok();
}

fn component_digest(dir: &Path, base: &str, (name, version): (&str, &str)) -> String {
    wharf(
        dir,
        &[
            "component",
            "get",
            "--digest",
            &format!("{base}//{name}:{version}"),
        ],
    )
    .ok()
    .trim()
    .to_owned()
}

/// Every image of `names` (repositories under `source`) is under `imported` with the same digest.
fn assert_images_equal(dir: &Path, names: &[String], source: &str, imported: &str) {
    for name in names {
        let tag = if name.contains("multi") { "1.0" } else { "v1" };
        let original = descriptor_of(dir, &format!("{name}:{tag}"));
        let copy = descriptor_of(
            dir,
            &format!("{}:{tag}", name.replacen(source, imported, 1)),
        );
        assert_eq!(original.digest, copy.digest, "{name} under {imported}");
    }
}

#[test]
fn exports_to_every_archive_kind_and_imports_into_both_registries() {
    let dir = temp();
    let dir = dir.path();
    let source = serve(dir, &[]);
    let s = source.addr().to_owned();
    let names = seed_images(dir, &s, 19, "20K");
    build_components(dir, &s);
    let mut images = String::from("images:\n");
    for name in &names {
        images += &format!("- source: {name}\n");
    }
    let mut with_components = images.clone() + "components:\n";
    for (name, version) in COMPONENTS {
        with_components +=
            &format!("- source: {s}/components//{name}:{version}\n  copyResources: true\n");
    }
    std::fs::write(dir.join("export.yaml"), with_components).unwrap();
    // An OCI archive holds images only: the component versions travel as the artifacts they are.
    let mut as_images = images;
    for (name, _) in COMPONENTS {
        as_images += &format!("- source: {s}/components/component-descriptors/{name}\n");
    }
    std::fs::write(dir.join("export-images.yaml"), as_images).unwrap();

    let archives = [
        ("ctf:export-dir", "export.yaml"),
        ("ctf:export.tar", "export.yaml"),
        ("ctf:export.tgz", "export.yaml"),
        ("oci-archive:export-oci.tar", "export-images.yaml"),
    ];
    for (archive, file) in archives {
        let report = json(
            &wharf(
                dir,
                &["sync", "--file", file, "--to", archive, "--output", "json"],
            )
            .ok(),
        );
        let roots = report["roots"].as_array().unwrap();
        assert!(roots.iter().all(|r| r["status"] == "copied"), "{report}");
        assert_verified(dir, archive);
    }
    assert!(
        !std::fs::read_dir(dir).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("wharf-partial")),
        "finished exports leave no partial files"
    );
    // One kind of archive is never written into another, and a compressed file is named as such.
    let ctf_tar = std::fs::read(dir.join("export.tar")).unwrap();
    let first = format!("{}:v1", names[0]);
    wharf(dir, &["copy", &first, "oci-archive:export.tar:x"])
        .fails_with(&["oci-archive:export.tar", "not an OCI image layout"]);
    assert_eq!(std::fs::read(dir.join("export.tar")).unwrap(), ctf_tar);
    wharf(dir, &["copy", &first, "oci-archive:export.tgz:x"])
        .fails_with(&["oci-archive:export.tgz", "gzip-compressed"]);

    std::fs::create_dir_all(dir.join("target")).unwrap();
    let target = crate::util::WharfServe::start(
        Path::new(env!("CARGO_BIN_EXE_wharf")),
        &dir.join("target"),
        1,
        &[],
    );
    let docker = DockerRegistry::start(None);
    let imports = [
        ("ctf:export-dir", format!("{}/from-dir", target.addr())),
        ("ctf:export.tar", format!("{}/from-tar", target.addr())),
        ("ctf:export.tgz", format!("{}/from-tgz", target.addr())),
        (
            "oci-archive:export-oci.tar",
            format!("{}/from-oci", target.addr()),
        ),
        ("ctf:export.tgz", format!("{}/from-tgz", docker.addr)),
        (
            "oci-archive:export-oci.tar",
            format!("{}/from-oci", docker.addr),
        ),
    ];
    let multi = descriptor_of(dir, &format!("{s}/multi/app:1.0"));
    for (archive, prefix) in &imports {
        wharf(dir, &["sync", archive, "--to", prefix]).ok();
        assert_images_equal(dir, &names, &s, prefix);
        // Component versions keep their digests; from a CTF their image resolves under the import.
        let base = if archive.starts_with("ctf:") {
            prefix.clone()
        } else {
            format!("{prefix}/components")
        };
        for component in COMPONENTS {
            assert_eq!(
                component_digest(dir, &base, component),
                component_digest(dir, &format!("{s}/components"), component),
                "{component:?} from {archive}"
            );
        }
        if archive.starts_with("ctf:") {
            let reference = wharf(
                dir,
                &[
                    "component",
                    "image-ref",
                    &format!("{base}//{}:{}", COMPONENTS[0].0, COMPONENTS[0].1),
                    "--resource",
                    "image",
                ],
            )
            .ok();
            assert!(
                reference.trim() == format!("{prefix}/multi/app:1.0@{}", multi.digest),
                "{reference}"
            );
        }
    }
    // The signature travelled: the referrers API on wharf serve, the tag schema on docker-registry.
    for prefix in ["from-dir", "from-tar", "from-tgz", "from-oci"] {
        let (_, listing) = http(
            target.addr(),
            "GET",
            &format!("/v2/{prefix}/multi/app/referrers/{}", multi.digest),
            b"",
        );
        assert!(
            listing.contains("application/vnd.example.signature"),
            "{prefix}: {listing}"
        );
    }
    for prefix in ["from-tgz", "from-oci"] {
        let tags = peer(
            dir,
            "skopeo",
            &[
                "list-tags",
                "--tls-verify=false",
                &format!("docker://{}/{prefix}/multi/app", docker.addr),
            ],
        )
        .ok();
        assert!(tags.contains("sha256-"), "{prefix}: {tags}");
    }
    // skopeo reads wharf's OCI archive.
    let raw = peer(
        dir,
        "skopeo",
        &[
            "inspect",
            "--raw",
            "oci-archive:export-oci.tar:multi/app:1.0",
        ],
    )
    .ok();
    assert_eq!(
        wharf_oci::Algorithm::Sha256.digest(raw.as_bytes()),
        multi.digest
    );
}

/// The members of a tar: name and size, in order.
fn members(path: &Path) -> Vec<(String, u64)> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path().unwrap().display().to_string(), e.size())
        })
        .collect()
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn a_killed_export_resumes_keeping_what_it_wrote() {
    let dir = temp();
    let dir = dir.path();
    let source = serve(dir, &[]);
    let names = seed_images(dir, source.addr(), 12, "2M");
    let mut args: Vec<&str> = vec![
        "sync",
        "-j",
        "1",
        "--images-at-once",
        "1",
        "--output",
        "json",
    ];
    args.extend(names.iter().map(String::as_str));

    // Killed with SIGKILL once a good part is written.
    let archive = dir.join("out.tar");
    let partial = dir.join("out.tar.wharf-partial");
    let mut child = wharf_command(dir, &args)
        .args(["--to", "oci-archive:out.tar"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while file_size(&partial) < 16 << 20 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the export ended before it could be interrupted"
        );
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !archive.exists(),
        "an interrupted export is never the archive"
    );
    assert!(partial.exists());

    // A byte flipped in the first whole member: the resume must not take it for complete.
    let mut bytes = std::fs::read(&partial).unwrap();
    bytes[512] ^= 0xff;
    std::fs::write(&partial, bytes).unwrap();

    let resumed = json(&wharf(dir, &[&args[..], &["--to", "oci-archive:out.tar"]].concat()).ok());
    assert!(archive.exists() && !partial.exists());
    assert_verified(dir, "oci-archive:out.tar");

    let fresh = json(
        &wharf(
            dir,
            &[&args[..], &["--to", "oci-archive:fresh.tar"]].concat(),
        )
        .ok(),
    );
    let moved = |report: &Value| -> u64 {
        report["roots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["bytes"].as_u64().unwrap())
            .sum()
    };
    assert!(
        moved(&resumed) + (12 << 20) <= moved(&fresh),
        "the resumed run moved {} of {} bytes",
        moved(&resumed),
        moved(&fresh)
    );
    let mut resumed_members = members(&archive);
    let mut fresh_members = members(&dir.join("fresh.tar"));
    resumed_members.sort();
    fresh_members.sort();
    let blobs = |list: &[(String, u64)]| -> Vec<(String, u64)> {
        list.iter()
            .filter(|(n, _)| n.starts_with("blobs/"))
            .cloned()
            .collect()
    };
    assert_eq!(blobs(&resumed_members), blobs(&fresh_members));
    let tags = |file: &str| {
        let mut tags: Vec<(String, String)> = wharf(dir, &["tags", &format!("oci-archive:{file}")])
            .ok()
            .lines()
            .map(|tag| {
                let digest = descriptor_of(dir, &format!("oci-archive:{file}:{tag}")).digest;
                (tag.to_owned(), digest.to_string())
            })
            .collect();
        tags.sort();
        tags
    };
    assert_eq!(tags("out.tar"), tags("fresh.tar"));
    assert_eq!(tags("out.tar").len(), 13);
}

/// Flips one byte inside member `name` of the tar at `path`.
fn flip_byte_in_member(path: &Path, name: &str) {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    let offset = archive
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap().to_str() == Some(name))
        .unwrap()
        .raw_file_position();
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize + 3] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn verify_finds_a_flipped_byte_and_a_missing_blob() {
    let dir = temp();
    let dir = dir.path();
    let sample = sample_layout(dir);
    let image = format!("oci:{}:1.0", sample.display());
    wharf(dir, &["copy", &image, "oci-archive:image.tar:1.0"]).ok();
    assert_verified(dir, "oci-archive:image.tar");

    let layer = members(&dir.join("image.tar"))
        .into_iter()
        .filter(|(name, _)| name.starts_with("blobs/"))
        .max_by_key(|(_, size)| *size)
        .unwrap()
        .0;
    flip_byte_in_member(&dir.join("image.tar"), &layer);
    let run = wharf(dir, &["verify", "oci-archive:image.tar"]);
    assert!(!run.status.success());
    let hex = layer.rsplit('/').next().unwrap();
    let problems: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("problem:"))
        .collect();
    assert_eq!(problems.len(), 1, "{}", run.stdout);
    assert!(
        problems[0].contains(&format!("blob sha256:{hex}")) && problems[0].contains("digest"),
        "{}",
        problems[0]
    );

    wharf(dir, &["copy", &image, "oci:copied:1.0"]).ok();
    std::fs::remove_file(dir.join("copied/blobs/sha256").join(hex)).unwrap();
    let run = wharf(dir, &["verify", "--output", "json", "oci:copied"]);
    assert!(!run.status.success());
    let report = json(&run.stdout);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["digest"], format!("sha256:{hex}"));
    assert!(
        problems[0]["error"].as_str().unwrap().contains("not found"),
        "{report}"
    );
}

/// An entry written as is: raw name, type, link target.
type RawEntry<'a> = (&'a str, tar::EntryType, &'a str);

/// How a tar is damaged besides its entries.
#[derive(Clone, Copy, PartialEq)]
enum Damage {
    None,
    /// Cut off inside its last member.
    Cut,
    /// Its last member has more bytes than its header says.
    Longer,
}

/// A tar holding a valid little layout plus one `hostile` entry, damaged as `damage` says.
fn hostile_tar(path: &Path, hostile: Option<RawEntry>, damage: Damage) {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, link: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        let longer = damage == Damage::Longer && name == "blobs/sha256/aa";
        let claimed = if longer { 16 } else { data.len() };
        header.set_size(claimed as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    };
    let regular = tar::EntryType::Regular;
    add(
        "oci-layout",
        regular,
        "",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    );
    add(
        "index.json",
        regular,
        "",
        br#"{"schemaVersion":2,"manifests":[]}"#,
    );
    if let Some((name, kind, link)) = hostile {
        add(
            name,
            kind,
            link,
            if kind == regular { b"owned" } else { b"" },
        );
    }
    if damage != Damage::None {
        add("blobs/sha256/aa", regular, "", &[b'A'; 4096]);
    }
    let mut bytes = builder.into_inner().unwrap();
    if damage == Damage::Cut {
        bytes.truncate(bytes.len() - 1024 - 3000);
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn hostile_tars_are_refused_and_nothing_lands_outside() {
    let dir = temp();
    let dir = dir.path();
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let cases: [(Option<RawEntry>, Damage, &str); 8] = [
        (
            Some(("../escape", tar::EntryType::Regular, "")),
            Damage::None,
            "'..' component",
        ),
        (
            Some(("/tmp/escape", tar::EntryType::Regular, "")),
            Damage::None,
            "absolute path",
        ),
        (
            Some((
                "blobs/sha256/ab",
                tar::EntryType::Symlink,
                "../../../escape",
            )),
            Damage::None,
            "links are not allowed",
        ),
        (
            Some(("blobs/sha256/ab", tar::EntryType::Link, "/etc/passwd")),
            Damage::None,
            "links are not allowed",
        ),
        (
            Some(("blobs/dev", tar::EntryType::Char, "")),
            Damage::None,
            "only files and directories",
        ),
        (
            Some(("index.json", tar::EntryType::Regular, "")),
            Damage::None,
            "holds it twice",
        ),
        (None, Damage::Cut, "cut off"),
        (None, Damage::Longer, "damaged archive"),
    ];
    for (hostile, damage, reason) in cases {
        hostile_tar(&work.join("bad.tar"), hostile, damage);
        wharf(&work, &["copy", "oci-archive:bad.tar", "oci:out"])
            .fails_with(&["oci-archive:bad.tar", reason]);
        wharf(&work, &["verify", "oci-archive:bad.tar"]).fails_with(&["bad.tar", reason]);
        std::fs::copy(work.join("bad.tar"), work.join("bad-ctf.tar")).unwrap();
        wharf(&work, &["copy", "ctf:bad-ctf.tar//x:1", "oci:out"])
            .fails_with(&["ctf:bad-ctf.tar", reason]);
        assert!(!work.join("out").exists(), "{reason}: nothing written");
        assert!(!dir.join("escape").exists() && !Path::new("/tmp/escape").exists());
    }
}
