//! `wharf serve` on S3-compatible object storage (moto's standalone server on loopback): several
//! instances on one bucket behind one address, none holding state of its own.

use std::path::Path;

use crate::util::{
    Moto, Nginx, ServeSetup, WharfServe, descriptor_of, json, peer, sample_layout, seed_images,
    temp, wharf, wharf_env,
};

/// The AWS settings that reach `moto`.
fn aws(moto: &Moto) -> [(&'static str, String); 3] {
    [
        ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
    ]
}

fn instance(dir: &Path, moto: &Moto, storage: &str) -> WharfServe {
    let env = aws(moto);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    WharfServe::start_with(
        Path::new(env!("CARGO_BIN_EXE_wharf")),
        dir,
        1,
        &[],
        ServeSetup {
            storage: Some(storage),
            env: &env,
            ..Default::default()
        },
    )
}

#[test]
fn two_instances_on_one_bucket_behind_a_balancer_are_one_registry() {
    let dir = temp();
    let dir = dir.path();
    let moto = Moto::start();
    moto.create_bucket("registry");
    let first = instance(dir, &moto, "s3://registry/site");
    let second = instance(dir, &moto, "s3://registry/site");
    let balancer = Nginx::balance(&[first.addr(), second.addr()]);

    // skopeo pushes a multi-arch image through the balancer, each request to either instance,
    // and reads it back whole.
    let sample = sample_layout(dir);
    let source = format!("oci:{}:1.0", sample.display());
    let remote = format!("docker://{}/team/app:1.0", balancer.addr);
    peer(
        dir,
        "skopeo",
        &["copy", "--all", "--dest-tls-verify=false", &source, &remote],
    )
    .ok();
    peer(
        dir,
        "skopeo",
        &[
            "copy",
            "--all",
            "--src-tls-verify=false",
            &remote,
            "oci:back:1.0",
        ],
    )
    .ok();
    assert_eq!(
        descriptor_of(dir, "oci:back:1.0").digest,
        descriptor_of(dir, &source).digest
    );

    // Many images through the balancer, then a no-op re-run; both instances see the same.
    let names = seed_images(dir, &balancer.addr, 6, "16K");
    let mut args = vec!["sync", "-q", "--output", "json", "--to"];
    let prefix = format!("{}/mirror", balancer.addr);
    args.push(&prefix);
    args.extend(names.iter().map(String::as_str));
    let again = json(&wharf(dir, &args).ok());
    let roots = again["roots"].as_array().unwrap();
    assert!(roots.iter().all(|r| r["status"] == "copied"), "{again}");
    let again = json(&wharf(dir, &args).ok());
    assert_eq!(again["totals"]["skipped"], names.len(), "{again}");
    let listings: Vec<String> = [first.addr(), second.addr()]
        .iter()
        .map(|addr| wharf(dir, &["catalog", addr]).ok())
        .collect();
    assert_eq!(listings[0], listings[1]);
    assert!(listings[0].contains("mirror/team/app0"), "{}", listings[0]);
    let verified = wharf(
        dir,
        &["verify", &format!("{}/mirror/multi/app", second.addr())],
    )
    .ok();
    assert!(verified.contains("0 problems"), "{verified}");
}

#[test]
fn unusable_object_storage_is_one_line_at_start_up() {
    let dir = temp();
    let dir = dir.path();
    let moto = Moto::start();
    let env = aws(&moto);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    wharf_env(dir, &["serve", "--storage", "s3://missing"], &env)
        .fails_with(&["bucket missing does not exist"]);
    wharf_env(dir, &["serve", "--storage", "gs://bucket"], &env)
        .fails_with(&["unknown scheme \"gs\"", "s3://BUCKET"]);
    let nowhere = [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    wharf_env(dir, &["serve", "--storage", "s3://registry"], &nowhere)
        .fails_with(&["check registry"]);
}
