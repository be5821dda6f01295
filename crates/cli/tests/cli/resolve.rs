//! `wharf resolve` against skopeo's own endpoint choice: the same configurations and references go
//! through `skopeo --debug inspect --raw` (its `Trying to access` lines give the order, a plain-HTTP
//! ping after a failed HTTPS one marks an insecure endpoint, "is blocked" a blocked one) and through
//! `wharf resolve --output json`, and both must agree on every case. Hosts use the reserved `.test`
//! domain, so every attempt fails at once without network.

use std::path::Path;
use std::process::Command;

use crate::util::{temp, wharf_env};

/// A configuration: the main file and drop-ins for `$HOME/.config/containers/registries.conf.d`.
struct Config {
    main: &'static str,
    drop_ins: &'static [(&'static str, &'static str)],
    references: &'static [&'static str],
}

const D: &str = "sha256:ec15a5bd53cf9507beb851574654669e778a9735f8e605e0ee3d71fd07debbe1";

fn configs() -> Vec<Config> {
    vec![
        Config {
            main: "",
            drop_ins: &[],
            references: &[
                "plain.test/app:1",
                "busybox",
                "library/alpine:3",
                "plain.test:5000/a/b/c:t",
            ],
        },
        Config {
            main: r#"
[[registry]]
prefix = "example.test/foo"
location = "primary.test/bar"
insecure = true
[[registry.mirror]]
location = "mirror-1.test/m"
[[registry.mirror]]
location = "mirror-2.test"
insecure = true
"#,
            drop_ins: &[],
            references: &[
                "example.test/foo/app:1",
                "example.test/foo:1",
                "example.test/foobar/app:1",
                "example.test/other:1",
                "example.test/foo/a/b/c:latest",
            ],
        },
        Config {
            main: r#"
[[registry]]
location = "digests.test"
mirror-by-digest-only = true
[[registry.mirror]]
location = "m1.test"
[[registry.mirror]]
location = "m2.test/sub"
insecure = true
"#,
            drop_ins: &[],
            references: &[
                "digests.test/app:1",
                "digests.test/app@DIGEST",
                "digests.test/a/b@DIGEST",
            ],
        },
        Config {
            main: r#"
[[registry]]
location = "filtered.test"
[[registry.mirror]]
location = "only-digests.test"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "only-tags.test"
pull-from-mirror = "tag-only"
[[registry.mirror]]
location = "everything.test"
pull-from-mirror = "all"
"#,
            drop_ins: &[],
            references: &[
                "filtered.test/app:1",
                "filtered.test/app@DIGEST",
                "filtered.test/ns/app:2",
            ],
        },
        Config {
            main: r#"
[[registry]]
prefix = "*.wild.test"
location = "rewritten.test"
[[registry]]
prefix = "a.wild.test"
location = "plain-a.test"
[[registry]]
prefix = "*.flags.test"
insecure = true
"#,
            drop_ins: &[],
            references: &[
                "a.wild.test/x:1",
                "b.c.wild.test/x:1",
                "deep.sub.wild.test:5000/x/y:1",
                "wild.test/x:1",
                "registry.flags.test/app:1",
                "flags.test/app:1",
            ],
        },
        Config {
            main: r#"
[[registry]]
prefix = "host.test"
location = "short.test"
[[registry]]
prefix = "host.test/team"
location = "long.test/t"
[[registry]]
prefix = "ports.test:5000"
location = "p.test"
"#,
            drop_ins: &[],
            references: &[
                "host.test/team/app:1",
                "host.test/other:1",
                "host.test:5000/x:1",
                "ports.test:5000/a:1",
                "ports.test:50000/a:1",
                "host.test/teamwork:1",
            ],
        },
        Config {
            main: r#"
[[registry]]
prefix = "docker.io/library"
location = "hub-mirror.test/library"
[[registry]]
prefix = "docker.io/alpine"
location = "never.test/alpine"
"#,
            drop_ins: &[],
            references: &[
                "busybox:1",
                "alpine:3",
                "docker.io/library/busybox:1",
                "index.docker.io/library/busybox:1",
                "someone/app:1",
            ],
        },
        Config {
            main: r#"
[[registry]]
location = "blocked.test"
blocked = true
[[registry.mirror]]
location = "fallback.test"
[[registry]]
location = "ok.test"
[[registry.mirror]]
location = "blocked-mirror.test"
[[registry]]
location = "blocked-mirror.test"
blocked = true
[[registry]]
prefix = "remapped.test"
location = "new-home.test"
blocked = true
"#,
            drop_ins: &[],
            references: &[
                "blocked.test/a:1",
                "ok.test/a:1",
                "remapped.test/a:1",
                "blocked-mirror.test/a:1",
            ],
        },
        Config {
            main: r#"
[[registry]]
prefix = "dropped.test"
location = "from-main.test"
insecure = true
[[registry.mirror]]
location = "main-mirror.test"
[[registry]]
location = "kept.test"
[[registry.mirror]]
location = "kept-mirror.test"
"#,
            drop_ins: &[
                (
                    "20-last.conf",
                    "[[registry]]\nprefix = \"dropped.test\"\nlocation = \"from-20.test\"\n[[registry.mirror]]\nlocation = \"m20.test\"\n",
                ),
                (
                    "10-first.conf",
                    "[[registry]]\nprefix = \"dropped.test\"\nlocation = \"from-10.test\"\n[[registry]]\nprefix = \"new.test\"\nlocation = \"from-drop-in.test\"\n",
                ),
                (
                    "30-skipped.txt",
                    "[[registry]]\nprefix = \"kept.test\"\nlocation = \"never.test\"\n",
                ),
            ],
            references: &["dropped.test/a:1", "kept.test/a:1", "new.test/a:1"],
        },
        Config {
            main: r#"
[[registry]]
prefix = "dup.test/ns"
location = "first.test/ns"
[[registry]]
prefix = "dup.test/ns"
location = "second.test/ns"
[[registry]]
prefix = "tagged.test/app:1"
location = "tag-target.test/app:1"
"#,
            drop_ins: &[],
            references: &[
                "dup.test/ns/app:1",
                "tagged.test/app:1",
                "dup.test/nsx/app:1",
            ],
        },
        Config {
            main: r#"
[[registry]]
prefix = "bad-rewrite.test/foo"
location = "docker.io"
[[registry.mirror]]
location = "fine.test"
"#,
            drop_ins: &[],
            references: &["bad-rewrite.test/foo/busybox:1", "bad-rewrite.test/other:1"],
        },
        // Invalid configurations: both tools refuse them.
        Config {
            main: "[[registry]]\nlocation = \"https://scheme.test\"",
            drop_ins: &[],
            references: &["scheme.test/a:1"],
        },
        Config {
            main: "[[registry]]\ninsecure = true",
            drop_ins: &[],
            references: &["x.test/a:1"],
        },
        Config {
            main: "[[registry]]\nprefix = \"noloc.test\"",
            drop_ins: &[],
            references: &["noloc.test/a:1"],
        },
        Config {
            main: "[[registry]]\nlocation = \"r.test\"\n[[registry.mirror]]\nlocation = \"m.test\"\npull-from-mirror = \"sometimes\"",
            drop_ins: &[],
            references: &["r.test/a:1"],
        },
        Config {
            main: "[[registry]]\nlocation = \"r.test\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.test\"\npull-from-mirror = \"all\"",
            drop_ins: &[],
            references: &["r.test/a:1"],
        },
        Config {
            main: "[[registry]]\nlocation = \"r.test\"\ninsecure = true\n[[registry]]\nprefix = \"alias.test\"\nlocation = \"r.test\"",
            drop_ins: &[],
            references: &["r.test/a:1"],
        },
        Config {
            main: "[[registry]]\nprefix = \"*.wild.test/path\"\nlocation = \"x.test\"",
            drop_ins: &[],
            references: &["a.wild.test/a:1"],
        },
        Config {
            main: "[[registry]]\nlocation = \"r.test\"\npull-from-mirror = \"all\"",
            drop_ins: &[],
            references: &["r.test/a:1"],
        },
        Config {
            main: "",
            drop_ins: &[("bad.conf", "[[registry]]\nlocation = \"http://drop.test\"")],
            references: &["drop.test/a:1"],
        },
    ]
}

/// (reference, insecure, blocked) per endpoint, or `None` when the configuration is refused.
type Endpoints = Option<Vec<(String, bool, bool)>>;

fn skopeo_endpoints(home: &Path, conf: &Path, reference: &str) -> Endpoints {
    let output = Command::new("skopeo")
        .env("HOME", home)
        .args(["--debug", "--registries-conf"])
        .arg(conf)
        .args(["inspect", "--raw", &format!("docker://{reference}")])
        .output()
        .unwrap_or_else(|e| {
            panic!("skopeo is needed for this test ({e}); run scripts/setup-peers")
        });
    let log = String::from_utf8_lossy(&output.stderr);
    let mut endpoints: Vec<(String, bool, bool)> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Trying to access \\\"").nth(1) {
            let reference = rest.split("\\\"").next().unwrap().to_owned();
            endpoints.push((reference, false, false));
        } else if line.contains("msg=\"GET http://") {
            endpoints.last_mut().expect("a GET after a Trying line").1 = true;
        } else if let Some(rest) = line.split("msg=\"Accessing \\\"").nth(1)
            && rest.contains("is blocked in")
        {
            let reference = rest.split("\\\"").next().unwrap();
            let endpoint = endpoints
                .iter_mut()
                .find(|e| e.0 == reference)
                .expect("a tried endpoint");
            endpoint.2 = true;
        }
    }
    if endpoints.is_empty() {
        assert!(
            log.contains("level=fatal"),
            "skopeo neither tried nor failed: {log}"
        );
        return None;
    }
    Some(endpoints)
}

fn wharf_endpoints(dir: &Path, home: &Path, conf: &Path, reference: &str) -> Endpoints {
    let home = home.to_str().unwrap();
    let run = wharf_env(
        dir,
        &[
            "resolve",
            "--output",
            "json",
            "--registries-conf",
            conf.to_str().unwrap(),
            reference,
        ],
        &[("HOME", home), ("CONTAINERS_REGISTRIES_CONF", "")],
    );
    if !run.status.success() {
        assert!(
            run.stdout.is_empty(),
            "nothing on stdout after an error: {}",
            run.stdout
        );
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        return None;
    }
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    Some(
        json["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let blocked = e["blocked"].as_bool().unwrap();
                // A blocked endpoint is refused before any connection, so skopeo shows no insecure ping.
                let insecure = e["insecure"].as_bool().unwrap() && !blocked;
                (
                    e["reference"].as_str().unwrap().to_owned(),
                    insecure,
                    blocked,
                )
            })
            .collect(),
    )
}

#[test]
fn endpoints_agree_with_skopeo() {
    let dir = temp();
    let dir = dir.path();
    let mut cases = 0;
    let mut disagreements = Vec::new();
    for (n, config) in configs().iter().enumerate() {
        let home = dir.join(format!("home-{n}"));
        let drop_in_dir = home.join(".config/containers/registries.conf.d");
        std::fs::create_dir_all(&drop_in_dir).unwrap();
        for (name, text) in config.drop_ins {
            std::fs::write(drop_in_dir.join(name), text).unwrap();
        }
        let conf = dir.join(format!("registries-{n}.conf"));
        std::fs::write(&conf, config.main).unwrap();
        for reference in config.references {
            let reference = reference.replace("DIGEST", D);
            let theirs = skopeo_endpoints(&home, &conf, &reference);
            let ours = wharf_endpoints(dir, &home, &conf, &reference);
            cases += 1;
            if theirs != ours {
                disagreements.push(format!(
                    "config {n}, {reference}:\n  skopeo: {theirs:?}\n  wharf:  {ours:?}"
                ));
            }
        }
    }
    assert!(cases >= 50, "only {cases} cases");
    assert!(
        disagreements.is_empty(),
        "{} of {cases} cases differ:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}

/// Requests an access log recorded, one JSON object per line.
fn logged(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn reads_go_to_the_mirror_and_fall_back_to_the_primary() {
    use crate::util::{WharfServe, sample_layout, wharf};
    let dir = temp();
    let dir = dir.path();
    let binary = Path::new(env!("CARGO_BIN_EXE_wharf"));
    let sample = sample_layout(dir);
    let source = format!("oci:{}:1.0", sample.display());
    std::fs::create_dir_all(dir.join("p")).unwrap();
    std::fs::create_dir_all(dir.join("m")).unwrap();
    let primary = WharfServe::start(
        binary,
        &dir.join("p"),
        1,
        &["--access-log", "../primary.log"],
    );
    let mut mirror = WharfServe::start(
        binary,
        &dir.join("m"),
        1,
        &["--access-log", "../mirror.log"],
    );
    let (p, m) = (primary.addr().to_owned(), mirror.addr().to_owned());
    wharf(
        dir,
        &[
            "copy",
            "--no-registries-conf",
            &source,
            &format!("{m}/team/app:1.0"),
        ],
    )
    .ok();
    let conf = dir.join("mirrors.conf");
    std::fs::write(
        &conf,
        format!("[[registry]]\nlocation = \"{p}\"\n[[registry.mirror]]\nlocation = \"{m}\"\n"),
    )
    .unwrap();
    let conf = conf.to_str().unwrap();

    // The image exists only on the mirror: the pull of the primary reference is served from there.
    let out = wharf(
        dir,
        &[
            "resolve",
            "--registries-conf",
            conf,
            &format!("{p}/team/app:1.0"),
        ],
    )
    .ok();
    assert_eq!(out, format!("{m}/team/app:1.0\n{p}/team/app:1.0\n"));
    wharf(
        dir,
        &[
            "copy",
            "--registries-conf",
            conf,
            &format!("{p}/team/app:1.0"),
            "oci:from-mirror",
        ],
    )
    .ok();
    assert!(
        logged(&dir.join("primary.log")).is_empty(),
        "the primary was not needed"
    );
    assert!(
        logged(&dir.join("mirror.log"))
            .iter()
            .any(|r| r["method"] == "GET" && r["path"].as_str().unwrap().contains("/blobs/"))
    );

    // Writes never use mirrors.
    wharf(
        dir,
        &[
            "copy",
            "--registries-conf",
            conf,
            &source,
            &format!("{p}/team/app:1.0"),
        ],
    )
    .ok();
    assert!(
        logged(&dir.join("primary.log"))
            .iter()
            .any(|r| r["method"] == "PUT")
    );

    // With the mirror down, reads fall back to the primary.
    mirror.stop();
    wharf(
        dir,
        &[
            "copy",
            "--registries-conf",
            conf,
            &format!("{p}/team/app:1.0"),
            "oci:from-primary",
        ],
    )
    .ok();
    let inspected = wharf(
        dir,
        &[
            "inspect",
            "--registries-conf",
            conf,
            &format!("{p}/team/app:1.0"),
        ],
    )
    .ok();
    assert!(inspected.contains("linux/arm64"), "{inspected}");

    // When every endpoint fails, the error names each.
    wharf(
        dir,
        &[
            "inspect",
            "--registries-conf",
            conf,
            &format!("{p}/team/app:nope"),
        ],
    )
    .fails_with(&[
        "mirrors failed",
        &format!("{m}/team/app:nope"),
        &format!("{p}/team/app"),
        "not found",
    ]);

    // mirror-by-digest-only: a tag pull goes straight to the primary, a digest pull tries the mirror.
    let mut mirror = WharfServe::start(
        binary,
        &dir.join("m"),
        1,
        &["--access-log", "../mirror2.log"],
    );
    let m2 = mirror.addr().to_owned();
    let digest_only = dir.join("digest-only.conf");
    std::fs::write(&digest_only, format!("[[registry]]\nlocation = \"{p}\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"{m2}\"\n")).unwrap();
    let digest_only = digest_only.to_str().unwrap();
    wharf(
        dir,
        &[
            "copy",
            "--registries-conf",
            digest_only,
            &format!("{p}/team/app:1.0"),
            "oci:by-tag",
        ],
    )
    .ok();
    assert!(
        logged(&dir.join("mirror2.log")).is_empty(),
        "a tag pull does not touch the mirror"
    );
    let digest = crate::util::descriptor_of(dir, "oci:by-tag:1.0").digest;
    wharf(
        dir,
        &[
            "copy",
            "--registries-conf",
            digest_only,
            &format!("{p}/team/app@{digest}"),
            "oci:by-digest",
        ],
    )
    .ok();
    assert!(
        !logged(&dir.join("mirror2.log")).is_empty(),
        "a digest pull tries the mirror first"
    );
    mirror.stop();

    // --no-registries-conf reads from where the reference points, and a blocked registry is refused.
    let blocked = dir.join("blocked.conf");
    std::fs::write(
        &blocked,
        format!("[[registry]]\nlocation = \"{p}\"\nblocked = true\n"),
    )
    .unwrap();
    let blocked = blocked.to_str().unwrap();
    wharf(
        dir,
        &[
            "copy",
            "--registries-conf",
            blocked,
            &format!("{p}/team/app:1.0"),
            "oci:x",
        ],
    )
    .fails_with(&["is blocked in registries.conf"]);
    wharf(
        dir,
        &[
            "copy",
            "--registries-conf",
            blocked,
            &source,
            &format!("{p}/team/other:1"),
        ],
    )
    .fails_with(&["is blocked in registries.conf"]);
    wharf(
        dir,
        &[
            "copy",
            "--no-registries-conf",
            &format!("{p}/team/app:1.0"),
            "oci:direct",
        ],
    )
    .ok();
}
