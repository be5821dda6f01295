//! Syncs at mirror scale: requests per image on no-op re-runs counted at the wire, the blob cache
//! that makes a sync into a new place mount instead of upload (stale entries, processes sharing
//! it), and shares of one sync run as separate processes and merged.

use std::path::{Path, PathBuf};

use crate::util::{
    DockerRegistry, Run, TestProxy, assert_verified, bounded, descriptor_of, finish_within,
    gen_layout, http, json, layout_manifest, seed_images, temp, wharf, wharf_command, wharf_env,
};

/// Requests a proxy saw, without the per-run `GET /v2/` checks (not per image).
fn requests(proxy: &TestProxy) -> usize {
    proxy.records().iter().filter(|r| r.path != "/v2/").count()
}

/// `images` single-platform images of 8K layers pushed to `registry`, as `REPO:v1` references.
fn seeded_images(dir: &Path, registry: &str, images: usize) -> Vec<String> {
    seed_images(dir, registry, images, "8K")
        .iter()
        .filter(|n| n.contains("/team/"))
        .map(|n| format!("{n}:v1"))
        .collect()
}

#[test]
fn no_op_reruns_cost_three_requests_per_image_with_referrers_and_two_without() {
    let dir = temp();
    let dir = dir.path();
    let source = DockerRegistry::start(None);
    let target = DockerRegistry::start(None);
    let src = TestProxy::start(&source.addr, None);
    let dst = TestProxy::start(&target.addr, None);
    let images = 10;
    let sources = seeded_images(dir, &src.host(), images);
    let prefix = format!("{}/mirror", dst.host());
    let sync = |extra: &[&str]| {
        let mut args = vec!["sync", "-q", "--output", "json", "--to", &prefix];
        args.extend(extra);
        args.extend(sources.iter().map(String::as_str));
        json(&wharf(dir, &args).ok())
    };
    let cold = sync(&["--no-referrers"]);
    let copied = cold["roots"].as_array().unwrap();
    assert!(copied.iter().all(|r| r["status"] == "copied"), "{cold}");

    // The first run that reads referrers asks once whether the source has the API (images starting
    // together wait for that answer); the next run knows it from the cache.
    for (extra, most, probes) in [
        (&[][..], 3 * images + 1, 1),
        (&[][..], 3 * images, 0),
        (&["--no-referrers"][..], 2 * images, 0),
    ] {
        src.clear_records();
        dst.clear_records();
        let report = sync(extra);
        let roots = report["roots"].as_array().unwrap();
        assert_eq!(roots.len(), images);
        assert!(roots.iter().all(|r| r["status"] == "skipped"), "{report}");
        let seen = requests(&src) + requests(&dst);
        let asked = src
            .records()
            .iter()
            .filter(|r| r.path.contains("/referrers/"))
            .count();
        assert_eq!(asked, probes, "{extra:?}: referrers API probes");
        assert!(
            seen <= most,
            "{extra:?}: {seen} requests for {images} images, at most {most}: {:?} {:?}",
            src.records(),
            dst.records()
        );
    }
}

#[test]
fn an_export_into_an_archive_reads_each_source_manifest_once() {
    let dir = temp();
    let dir = dir.path();
    let source = DockerRegistry::start(None);
    let src = TestProxy::start(&source.addr, None);
    let images = 6;
    let sources = seeded_images(dir, &src.host(), images);
    src.clear_records();
    let mut args = vec!["sync", "-q", "--no-referrers", "--output", "json"];
    args.extend(["--to", "oci-archive:export.tar"]);
    args.extend(sources.iter().map(String::as_str));
    let report = json(&wharf(dir, &args).ok());
    let roots = report["roots"].as_array().unwrap();
    assert!(roots.iter().all(|r| r["status"] == "copied"), "{report}");
    // The archive has none of them: one GET resolves and reads each manifest, no HEAD first.
    let manifest_requests: Vec<String> = src
        .records()
        .iter()
        .filter(|r| r.path.contains("/manifests/"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(manifest_requests.len(), images, "{manifest_requests:?}");
    assert!(manifest_requests.iter().all(|r| r.starts_with("GET ")));
    assert_verified(dir, "oci-archive:export.tar");

    // A source tag that is not there: nothing created on the other side.
    let missing = format!("{}/team/app0:nowhere", src.host());
    for target in ["oci-archive:never.tar", "oci:never-dir"] {
        wharf(dir, &["copy", &missing, target]).fails_with(&["nowhere"]);
    }
    assert!(!dir.join("never.tar").exists());
    assert!(!dir.join("never-dir").exists());
}

/// Blob uploads started (not mounts) and mounts answered 201 and 202 (refused), as a proxy saw them.
fn uploads_and_mounts(proxy: &TestProxy) -> (usize, usize, usize) {
    let records = proxy.records();
    let posts = records
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("/blobs/uploads/"));
    let (mut uploads, mut mounted, mut refused) = (0, 0, 0);
    for post in posts {
        match (post.query.contains("mount="), post.status) {
            (false, _) => uploads += 1,
            (true, 201) => mounted += 1,
            (true, _) => refused += 1,
        }
    }
    (uploads, mounted, refused)
}

/// Syncs the generated images of `layout` to `HOST/PREFIX/appN:v1` through a sync file.
fn sync_into(dir: &Path, layout: &Path, images: usize, host: &str, prefix: &str, extra: &[&str]) {
    let mut file = String::from("images:\n");
    for i in 0..images {
        file += &format!(
            "- source: oci:{}:img{i}\n  destination: {host}/{prefix}/app{i}:v1\n",
            layout.display()
        );
    }
    let name = format!("{prefix}.yaml");
    std::fs::write(dir.join(&name), file).unwrap();
    let mut args = vec!["sync", "-q", "--file", &name];
    args.extend(extra);
    wharf(dir, &args).ok();
}

/// docker-registry behind a proxy that counts requests, and `images` generated images (3 layers,
/// one shared by all) in a layout at `dir/gen`.
fn counted_registry_and_images(
    dir: &Path,
    images: usize,
    layer_size: &str,
) -> (DockerRegistry, TestProxy, PathBuf) {
    let registry = DockerRegistry::start(None);
    let proxy = TestProxy::start(&registry.addr, None);
    let layout = dir.join("gen");
    gen_layout(&layout, images, 3, 1, layer_size);
    (registry, proxy, layout)
}

#[test]
fn a_sync_into_a_new_place_mounts_what_the_cache_saw_and_survives_a_stale_entry() {
    let dir = temp();
    let dir = dir.path();
    let images = 6;
    let (registry, proxy, layout) = counted_registry_and_images(dir, images, "16K");
    let host = proxy.host();
    sync_into(dir, &layout, images, &host, "one", &[]);
    let (uploads, _, _) = uploads_and_mounts(&proxy);
    assert!(uploads > images, "the first run uploads: {uploads}");

    // A blob only app0 has, deleted from the repository the cache remembers it in.
    let stale = layout_manifest(&layout, "img0")["layers"][2]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = http(
        &registry.addr,
        "DELETE",
        &format!("/v2/one/app0/blobs/{stale}"),
        b"",
    );
    assert_eq!(status, 202);

    proxy.clear_records();
    sync_into(dir, &layout, images, &host, "two", &[]);
    let (uploads, mounted, refused) = uploads_and_mounts(&proxy);
    assert_eq!(
        (uploads, refused),
        (1, 1),
        "only the blob gone from where the cache saw it is uploaded, after one refused mount"
    );
    assert_eq!(mounted, images * 4 - 1, "the rest is mounted");

    proxy.clear_records();
    sync_into(dir, &layout, images, &host, "three", &["--no-cache"]);
    let (without_cache, _, _) = uploads_and_mounts(&proxy);
    assert!(
        without_cache > images,
        "--no-cache uploads again: {without_cache}"
    );

    // The stale entry is gone; the blob's new places serve the next run.
    proxy.clear_records();
    sync_into(dir, &layout, images, &host, "four", &[]);
    assert_eq!(uploads_and_mounts(&proxy), (0, images * 4, 0));
    for prefix in ["two", "four"] {
        assert_verified(dir, &format!("{host}/{prefix}/app0:v1"));
    }
}

#[test]
fn wharf_processes_sharing_the_cache_leave_it_whole() {
    let dir = temp();
    let dir = dir.path();
    let images = 8;
    let (_registry, proxy, layout) = counted_registry_and_images(dir, images, "8K");
    let host = proxy.host();
    let spawn = |range: std::ops::Range<usize>, prefix: &str| {
        let mut command = wharf_command(dir, &["sync", "-q", "--to", &format!("{host}/{prefix}")]);
        command.args(range.map(|i| format!("oci:{}:img{i}", layout.display())));
        bounded(&mut command).spawn().unwrap()
    };
    let runs = [
        spawn(0..images, "p"),
        spawn(0..images, "q"),
        spawn(0..images / 2, "r"),
    ];
    for run in runs {
        finish_within(run, std::time::Duration::from_secs(60), "sync").ok();
    }
    let check = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('pragma integrity_check').fetchone()[0])",
        ])
        .arg(dir.join(".cache/wharf/cache.sqlite"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok");
    // Whatever each process learned is there for the next: nothing is uploaded again.
    proxy.clear_records();
    wharf(
        dir,
        &[
            "sync",
            "-q",
            "--to",
            &format!("{host}/s"),
            &format!("oci:{}:img0", layout.display()),
        ],
    )
    .ok();
    assert_eq!(uploads_and_mounts(&proxy).0, 0);
}

#[test]
fn four_shares_run_as_four_processes_make_the_single_run_and_merge_exactly() {
    let dir = temp();
    let dir = dir.path();
    let source = DockerRegistry::start(None);
    let target = DockerRegistry::start(None);
    let names = seed_images(dir, &source.addr, 12, "4K");
    let mut sources: Vec<String> = names.clone();
    sources.push(format!("{}/team/missing", source.addr));
    let sync = |prefix: &str, extra: &[&str]| {
        let mut command = wharf_command(
            dir,
            &[
                "sync",
                "-q",
                "--output",
                "json",
                "--to",
                &format!("{}/{prefix}", target.addr),
            ],
        );
        command.args(extra).args(&sources);
        command
    };
    let single: Run = finish_within(
        bounded(&mut sync("single", &[])).spawn().unwrap(),
        std::time::Duration::from_secs(60),
        "single",
    );
    assert!(!single.status.success(), "the missing repository fails");
    let single = json(&single.stdout);

    let shares: Vec<_> = (0..4)
        .map(|i| {
            let mut command = if i == 3 {
                let mut command = sync("shards", &["--shard", "auto/4"]);
                command.env("JOB_COMPLETION_INDEX", "3");
                command
            } else {
                sync("shards", &["--shard", &format!("{i}/4")])
            };
            bounded(&mut command).spawn().unwrap()
        })
        .collect();
    let mut files = Vec::new();
    for (i, share) in shares.into_iter().enumerate() {
        let run = finish_within(share, std::time::Duration::from_secs(60), "share");
        let report = json(&run.stdout);
        assert_eq!(report["shard"], format!("{i}/4"));
        let file = format!("share-{i}.json");
        std::fs::write(dir.join(&file), &run.stdout).unwrap();
        files.push(file);
    }
    let mut args = vec!["sync", "report", "merge"];
    args.extend(files.iter().map(String::as_str));
    let merged = json(&wharf(dir, &args).ok());

    let roots = |report: &serde_json::Value, prefix: &str| -> Vec<(String, String, String)> {
        report["roots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["source"].as_str().unwrap().to_owned(),
                    r["destination"]
                        .as_str()
                        .unwrap()
                        .replacen(&format!("/{prefix}/"), "/", 1)
                        .replacen(&format!("/{prefix}"), "", 1),
                    format!("{} {}", r["status"], r["digest"]),
                )
            })
            .collect()
    };
    let mut expected = roots(&single, "single");
    expected.sort();
    let mut got = roots(&merged, "shards");
    got.sort();
    assert_eq!(got, expected, "every image once, as the single run did it");
    assert_eq!(merged["retry"], single["retry"]);

    // The destinations hold the same: every root there, with the same digest.
    for root in single["roots"].as_array().unwrap() {
        let Some(digest) = root["digest"].as_str() else {
            continue;
        };
        let at = root["destination"]
            .as_str()
            .unwrap()
            .replacen("/single/", "/shards/", 1);
        assert_eq!(descriptor_of(dir, &at).digest.as_str(), digest, "{at}");
    }

    let twice = wharf(dir, &["sync", "report", "merge", &files[0], &files[0]]).fails_with(&[
        "share-0.json and share-0.json both report",
        "merge the shares of one run, each once",
    ]);
    assert!(!twice.is_empty());
    let partial = wharf_env(dir, &["sync", "report", "merge", &files[0]], &[]);
    assert!(
        partial.stderr.contains("share 1, 2, 3 of 4 missing"),
        "{}",
        partial.stderr
    );
    let refused = wharf(
        dir,
        &["sync", "--shard", "4/4", "x.local/a", "--to", "y.local"],
    );
    assert_eq!(refused.status.code(), Some(2), "a usage error");
    assert!(
        refused.stderr.contains("numbered 0 to 3"),
        "{}",
        refused.stderr
    );
}
