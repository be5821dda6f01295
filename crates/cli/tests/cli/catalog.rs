//! The component catalog: concurrent writers into wharf serve and docker-registry (no referrers
//! API) lose no entry, listings filter, scans find what other tools copied in, OCM's per-component
//! anchor survives a transfer, and broken catalogs never give a wrong listing.

use std::collections::BTreeSet;
use std::path::Path;

use crate::util::{
    DockerRegistry, Fault, FaultAction, TestProxy, WharfServe, http, json, layout_add_root,
    layout_blob, layout_manifest, peer, temp, wharf,
};

/// 12 components, 40 versions: the first four have six versions each (one a `+build`, one a
/// pre-release), the others two; even components are acme's, odd ones globex's.
fn versions() -> Vec<(String, String, &'static str)> {
    let mut out = Vec::new();
    for c in 0..12 {
        let provider = if c % 2 == 0 { "acme" } else { "globex" };
        let versions: &[&str] = if c < 4 {
            &[
                "0.9.0-rc.1",
                "1.0.0",
                "1.0.1",
                "1.1.0+build.7",
                "1.10.0",
                "2.0.0",
            ]
        } else {
            &["1.0.0", "1.1.0"]
        };
        for v in versions {
            out.push((format!("acme.org/c{c}"), (*v).to_owned(), provider));
        }
    }
    out
}

/// The 40 versions built into a CTF at `dir/source.ctf`.
fn source_ctf(dir: &Path) -> String {
    let mut constructor = String::from("components:\n");
    for (name, version, provider) in versions() {
        constructor +=
            &format!("- name: {name}\n  version: {version}\n  provider:\n    name: {provider}\n");
    }
    std::fs::write(dir.join("constructor.yaml"), constructor).unwrap();
    let ctf = format!("ctf:{}", dir.join("source.ctf").display());
    wharf(
        dir,
        &["component", "build", "constructor.yaml", "--to", &ctf],
    )
    .ok();
    ctf
}

/// `wharf component list LOCATION ARGS --output json` as (name, version, provider) triples.
fn listed(dir: &Path, location: &str, args: &[&str]) -> BTreeSet<(String, String, String)> {
    let mut all = vec!["component", "list", location, "--output", "json"];
    all.extend(args);
    json(&wharf(dir, &all).ok())
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let field = |key: &str| row[key].as_str().unwrap_or_default().to_owned();
            (field("name"), field("version"), field("provider"))
        })
        .collect()
}

fn expected(keep: impl Fn(&str, &str) -> bool) -> BTreeSet<(String, String, String)> {
    versions()
        .into_iter()
        .filter(|(name, _, provider)| keep(name, provider))
        .map(|(n, v, p)| (n, v, p.to_owned()))
        .collect()
}

/// Transfers every version from `ctf` to `target` with 8 `wharf component transfer` processes
/// running at once, each taking every eighth version.
fn transfer_concurrently(dir: &Path, ctf: &str, target: &str) {
    let all = versions();
    std::thread::scope(|scope| {
        for worker in 0..8 {
            let all = &all;
            scope.spawn(move || {
                for (name, version, _) in all.iter().skip(worker).step_by(8) {
                    let source = format!("{ctf}//{name}:{version}");
                    wharf(dir, &["component", "transfer", &source, target]).ok();
                }
            });
        }
    });
}

#[test]
fn concurrent_writers_into_both_registries_lose_no_entry_in_twenty_rounds() {
    let dir = temp();
    let dir = dir.path();
    let ctf = source_ctf(dir);
    assert_eq!(
        listed(dir, &ctf, &[]),
        expected(|_, _| true),
        "the CTF lists them"
    );
    std::fs::create_dir_all(dir.join("w")).unwrap();
    let served = WharfServe::start(
        Path::new(env!("CARGO_BIN_EXE_wharf")),
        &dir.join("w"),
        1,
        &[],
    );
    let docker = DockerRegistry::start(None);
    for round in 0..20 {
        for host in [served.addr(), docker.addr.as_str()] {
            let target = format!("{host}/round{round}");
            transfer_concurrently(dir, &ctf, &target);
            assert_eq!(
                listed(dir, &target, &[]),
                expected(|_, _| true),
                "round {round} on {host}"
            );
        }
    }
    // Filters, on both.
    for host in [served.addr(), docker.addr.as_str()] {
        let target = format!("{host}/round0");
        assert_eq!(
            listed(dir, &target, &["--filter", "provider=globex"]),
            expected(|_, provider| provider == "globex")
        );
        assert_eq!(
            listed(dir, &target, &["--filter", "name=acme.org/c1*"]),
            expected(|name, _| name.starts_with("acme.org/c1"))
        );
        assert_eq!(
            listed(
                dir,
                &target,
                &[
                    "--filter",
                    "name=acme.org/c2",
                    "--filter",
                    "version=1.1.0+build.7"
                ]
            ),
            expected(|name, _| name == "acme.org/c2")
                .into_iter()
                .filter(|(_, v, _)| v == "1.1.0+build.7")
                .collect()
        );
    }
    // Newest first, loosely semantic.
    let text = wharf(
        dir,
        &["component", "list", &format!("{}/round0", served.addr())],
    )
    .ok();
    let c0: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("acme.org/c0 "))
        .skip(1)
        .take(6)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        c0,
        [
            "2.0.0",
            "1.10.0",
            "1.1.0+build.7",
            "1.0.1",
            "1.0.0",
            "0.9.0-rc.1"
        ]
    );
}

#[test]
fn component_versions_copied_in_as_plain_images_are_found_by_a_scan_and_after_a_rebuild() {
    let dir = temp();
    let dir = dir.path();
    let ctf = source_ctf(dir);
    let docker = DockerRegistry::start(None);
    // Plain OCI copies of two components' repositories: no catalog anywhere.
    let mut copied = BTreeSet::new();
    for (name, version, provider) in versions()
        .into_iter()
        .filter(|(n, _, _)| n == "acme.org/c3" || n == "acme.org/c6")
    {
        let tag = version.replace('+', ".build-");
        wharf(
            dir,
            &[
                "copy",
                &format!("{ctf}//component-descriptors/{name}:{tag}"),
                &format!("{}/plain/component-descriptors/{name}:{tag}", docker.addr),
            ],
        )
        .ok();
        copied.insert((name, version, provider.to_owned()));
    }
    let plain = format!("{}/plain", docker.addr);
    let run = wharf(dir, &["component", "list", &plain, "--output", "json"]);
    assert!(run.stderr.contains("has no catalog"), "{}", run.stderr);
    assert_eq!(listed(dir, &plain, &[]), copied, "found by the scan");
    let rebuilt = wharf(dir, &["component", "index", "rebuild", &plain]).ok();
    assert!(
        rebuilt.contains("8 component versions found, 8 added"),
        "{rebuilt}"
    );
    let run = wharf(dir, &["component", "list", &plain, "--output", "json"]);
    assert!(!run.stderr.contains("has no catalog"), "{}", run.stderr);
    assert_eq!(listed(dir, &plain, &[]), copied, "read from the catalog");
    let again = wharf(dir, &["component", "index", "rebuild", &plain]).ok();
    assert!(
        again.contains("8 component versions found, 0 added"),
        "{again}"
    );
    // A version deleted behind the catalog's back is left out with --verify.
    let gone = format!(
        "{}/plain/component-descriptors/acme.org/c6:1.0.0",
        docker.addr
    );
    let digest =
        json(&wharf(dir, &["inspect", "--output", "json", &gone]).ok())["descriptor"]["digest"]
            .as_str()
            .unwrap()
            .to_owned();
    let (status, _) = http(
        &docker.addr,
        "DELETE",
        &format!("/v2/plain/component-descriptors/acme.org/c6/manifests/{digest}"),
        b"",
    );
    assert_eq!(status, 202);
    let verified = listed(dir, &plain, &["--verify"]);
    assert_eq!(verified.len(), copied.len() - 1);
    assert!(
        !verified
            .iter()
            .any(|(n, v, _)| n == "acme.org/c6" && v == "1.0.0")
    );
}

#[test]
fn ocm_component_index_anchored_versions_travel_unchanged_and_stay_listable_through_it() {
    let dir = temp();
    let dir = dir.path();
    std::fs::write(
        dir.join("c.yaml"),
        "components:\n- name: acme.org/anchored\n  version: 1.0.0\n  provider:\n    name: acme\n",
    )
    .unwrap();
    let layout = dir.join("layout");
    let ctf = format!("ctf:{}", dir.join("built.ctf").display());
    wharf(dir, &["component", "build", "c.yaml", "--to", &ctf]).ok();
    wharf(
        dir,
        &[
            "copy",
            &format!("{ctf}//component-descriptors/acme.org/anchored:1.0.0"),
            &format!("oci:{}:plain", layout.display()),
        ],
    )
    .ok();
    // Rewritten as OCM's referrer tracking writes it: subject the component index.
    let index = wharf_bundle::ocm::COMPONENT_INDEX.as_bytes();
    assert_eq!(index.len(), 837);
    let anchor = layout_blob(&layout, wharf_oci::media_type::OCI_MANIFEST, index);
    assert_eq!(
        anchor.digest.as_str(),
        "sha256:9717cda41c478af11cba7ed29f4aa3e4882bab769d006788169cbccafc0fcd05"
    );
    layout_blob(&layout, wharf_oci::media_type::OCI_EMPTY, b"{}");
    let mut manifest = layout_manifest(&layout, "plain");
    manifest["artifactType"] = "application/vnd.ocm.software.component-descriptor.v2".into();
    manifest["subject"] = serde_json::json!({
        "mediaType": anchor.media_type, "digest": anchor.digest, "size": anchor.size,
    });
    let raw = serde_json::to_vec(&manifest).unwrap();
    let anchored = layout_blob(&layout, wharf_oci::media_type::OCI_MANIFEST, &raw);
    layout_add_root(&layout, anchored.clone(), Some("anchored"));
    std::fs::create_dir_all(dir.join("s")).unwrap();
    let source = WharfServe::start(
        Path::new(env!("CARGO_BIN_EXE_wharf")),
        &dir.join("s"),
        1,
        &[],
    );
    wharf(
        dir,
        &[
            "copy",
            &format!("oci:{}:anchored", layout.display()),
            &format!(
                "{}/ocm/component-descriptors/acme.org/anchored:1.0.0",
                source.addr()
            ),
        ],
    )
    .ok();

    // Into docker-registry, which has no referrers API: the fallback index lists the version.
    let docker = DockerRegistry::start(None);
    wharf(
        dir,
        &[
            "component",
            "transfer",
            &format!("{}/ocm//acme.org/anchored:1.0.0", source.addr()),
            &format!("{}/ocm", docker.addr),
        ],
    )
    .ok();
    let repository = format!(
        "{}/ocm/component-descriptors/acme.org/anchored",
        docker.addr
    );
    let at_destination = json(
        &wharf(
            dir,
            &[
                "inspect",
                "--output",
                "json",
                &format!("{repository}:1.0.0"),
            ],
        )
        .ok(),
    );
    assert_eq!(
        at_destination["descriptor"]["digest"],
        anchored.digest.as_str(),
        "unchanged"
    );
    let fallback = peer(
        dir,
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{repository}:sha256-{}", anchor.digest.hex()),
        ],
    )
    .ok();
    let fallback = json(&fallback);
    let entry = &fallback["manifests"][0];
    assert_eq!(entry["digest"], anchored.digest.as_str(), "{fallback}");
    assert_eq!(
        entry["artifactType"],
        "application/vnd.ocm.software.component-descriptor.v2"
    );
    assert_eq!(
        entry["annotations"]["software.ocm.componentversion"],
        "acme.org/anchored:1.0.0"
    );

    // Into wharf serve: the referrers API lists it.
    std::fs::create_dir_all(dir.join("d")).unwrap();
    let served = WharfServe::start(
        Path::new(env!("CARGO_BIN_EXE_wharf")),
        &dir.join("d"),
        1,
        &[],
    );
    wharf(
        dir,
        &[
            "component",
            "transfer",
            &format!("{}/ocm//acme.org/anchored:1.0.0", docker.addr),
            &format!("{}/ocm", served.addr()),
        ],
    )
    .ok();
    let (_, listing) = http(
        served.addr(),
        "GET",
        &format!(
            "/v2/ocm/component-descriptors/acme.org/anchored/referrers/{}",
            anchor.digest
        ),
        b"",
    );
    assert!(listing.contains(anchored.digest.as_str()), "{listing}");
    assert_eq!(
        listed(dir, &format!("{}/ocm", served.addr()), &[]),
        BTreeSet::from([(
            "acme.org/anchored".to_owned(),
            "1.0.0".to_owned(),
            "acme".to_owned()
        )])
    );
}

#[test]
fn broken_catalogs_never_give_a_wrong_listing() {
    let dir = temp();
    let dir = dir.path();
    std::fs::write(
        dir.join("c.yaml"),
        "components:\n- name: acme.org/a\n  version: 1.0.0\n  provider:\n    name: acme\n- name: acme.org/b\n  version: 2.0.0\n  provider:\n    name: acme\n",
    )
    .unwrap();
    let docker = DockerRegistry::start(None);
    let base = format!("{}/ocm", docker.addr);
    wharf(dir, &["component", "build", "c.yaml", "--to", &base]).ok();
    let good = || {
        BTreeSet::from([
            (
                "acme.org/a".to_owned(),
                "1.0.0".to_owned(),
                "acme".to_owned(),
            ),
            (
                "acme.org/b".to_owned(),
                "2.0.0".to_owned(),
                "acme".to_owned(),
            ),
        ])
    };

    // An entry with no digest annotation, tagged as entries are: skipped, said so in one line.
    let catalog = dir.join("catalog-layout");
    let empty = layout_blob(&catalog, wharf_oci::media_type::OCI_EMPTY, b"{}");
    let anchor = layout_blob(
        &catalog,
        wharf_oci::media_type::OCI_MANIFEST,
        wharf_bundle::catalog::ANCHOR.as_bytes(),
    );
    let bad = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": wharf_oci::media_type::OCI_MANIFEST,
        "artifactType": wharf_bundle::catalog::ENTRY_ARTIFACT_TYPE,
        "config": empty, "layers": [empty],
        "subject": {"mediaType": anchor.media_type, "digest": anchor.digest, "size": anchor.size},
        "annotations": {
            "dev.wharf.catalog.repository": "component-descriptors/acme.org/ghost",
            "dev.wharf.catalog.kind": "ocm-component-version",
            "software.ocm.component.name": "acme.org/ghost",
            "software.ocm.component.version": "9.9.9",
        },
    });
    let bad = layout_blob(
        &catalog,
        wharf_oci::media_type::OCI_MANIFEST,
        &serde_json::to_vec(&bad).unwrap(),
    );
    layout_add_root(&catalog, bad.clone(), Some("bad"));
    wharf(
        dir,
        &[
            "copy",
            &format!("oci:{}:bad", catalog.display()),
            &format!("{base}/wharf-catalog:wharf-{}", bad.digest.hex()),
        ],
    )
    .ok();
    let run = wharf(dir, &["component", "list", &base, "--output", "json"]);
    assert!(run.status.success());
    let warnings: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(
        warnings[0].contains(bad.digest.as_str())
            && warnings[0].contains("no dev.wharf.catalog.digest"),
        "{}",
        warnings[0]
    );
    assert_eq!(listed(dir, &base, &[]), good());

    // The fallback tag resolving to the anchor itself, as GitLab answers: the entries' own tags
    // still list everything.
    layout_add_root(&catalog, anchor.clone(), Some("anchor"));
    wharf(
        dir,
        &[
            "copy",
            &format!("oci:{}:anchor", catalog.display()),
            &format!("{base}/wharf-catalog:sha256-{}", anchor.digest.hex()),
        ],
    )
    .ok();
    assert_eq!(listed(dir, &base, &[]), good());

    // A referrers answer that is not an index: the listing falls back, and is still right.
    std::fs::create_dir_all(dir.join("w")).unwrap();
    let served = WharfServe::start(
        Path::new(env!("CARGO_BIN_EXE_wharf")),
        &dir.join("w"),
        1,
        &[],
    );
    wharf(
        dir,
        &[
            "component",
            "build",
            "c.yaml",
            "--to",
            &format!("{}/ocm", served.addr()),
        ],
    )
    .ok();
    let proxy = TestProxy::start(served.addr(), None);
    proxy.inject(Fault {
        method: None,
        path_contains: "/referrers/".into(),
        times: 10,
        action: FaultAction::Refuse {
            code: 200,
            error: "NOT_AN_INDEX",
            message: "this is not a referrers index".into(),
        },
    });
    assert_eq!(listed(dir, &format!("{}/ocm", proxy.host()), &[]), good());
}
