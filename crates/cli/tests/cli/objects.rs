//! `wharf serve` on S3-compatible object storage (moto's standalone server on loopback): several
//! instances on one bucket behind one address, none holding state of its own.

use std::path::Path;

use crate::util::{
    Fault, FaultAction, Moto, Nginx, ServeSetup, TestProxy, WharfServe, add_referrer,
    assert_verified, descriptor_of, gen_layout, http, json, sample_layout, seed_images,
    skopeo_copy_all, temp, wharf, wharf_env,
};

/// The body of a raw HTTP answer.
fn body(response: &str) -> &str {
    response.split("\r\n\r\n").nth(1).unwrap_or("")
}

/// The AWS settings that reach `moto`.
fn aws(moto: &Moto) -> [(&'static str, &str); 3] {
    [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ]
}

fn instance(dir: &Path, moto: &Moto, storage: &str) -> WharfServe {
    instance_with(dir, moto, storage, &[])
}

fn instance_with(dir: &Path, moto: &Moto, storage: &str, args: &[&str]) -> WharfServe {
    let env = aws(moto);
    WharfServe::start_with(
        Path::new(env!("CARGO_BIN_EXE_wharf")),
        dir,
        1,
        args,
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
    skopeo_copy_all(dir, &source, &remote).ok();
    skopeo_copy_all(dir, &remote, "oci:back:1.0").ok();
    assert_eq!(
        descriptor_of(dir, "oci:back:1.0").digest,
        descriptor_of(dir, &source).digest
    );

    // Ten more repositories of it, and a chunked upload whose chunks go to either instance.
    for i in 0..10 {
        let remote = format!("docker://{}/pushed/app{i}:1.0", balancer.addr);
        skopeo_copy_all(dir, &source, &remote).ok();
    }
    gen_layout(&dir.join("gen"), 1, 1, 0, "3M");
    wharf(
        dir,
        &[
            "copy",
            "--chunk-size",
            "262144",
            "oci:gen:img0",
            &format!("{}/chunked/app:1", balancer.addr),
        ],
    )
    .ok();
    assert_verified(dir, &format!("{}/chunked/app:1", first.addr()));

    // Referrers and paged tags read the same from either instance.
    let root = descriptor_of(dir, &format!("{}/team/app:1.0", first.addr()));
    add_referrer(&sample, &root, "application/vnd.example.sbom", b"sbom");
    for tag in ["1.0", "2.0"] {
        let target = format!("{}/team/app:{tag}", balancer.addr);
        wharf(dir, &["copy", &source, &target]).ok();
    }
    let referrers: Vec<String> = [first.addr(), second.addr()]
        .iter()
        .map(|addr| {
            http(
                addr,
                "GET",
                &format!("/v2/team/app/referrers/{}", root.digest),
                b"",
            )
            .1
        })
        .collect();
    assert!(
        referrers[0].contains("application/vnd.example.sbom"),
        "{}",
        referrers[0]
    );
    assert_eq!(body(&referrers[0]), body(&referrers[1]));
    for addr in [first.addr(), second.addr()] {
        let (status, page) = http(addr, "GET", "/v2/team/app/tags/list?n=1", b"");
        assert_eq!(status, 200);
        assert!(page.to_lowercase().contains("link:"), "paged: {page}");
        assert!(body(&page).contains("\"1.0\""), "{page}");
    }

    // Many images through the balancer, then a no-op re-run; both instances see the same.
    let names = seed_images(dir, &balancer.addr, 29, "4K");
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
    assert_verified(dir, &format!("{}/mirror/multi/app", second.addr()));
}

#[test]
fn unusable_object_storage_is_one_line_at_start_up() {
    let dir = temp();
    let dir = dir.path();
    let moto = Moto::start();
    let env = aws(&moto);
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

    // Credentials the store refuses (moto takes any; a proxy answers as S3 does).
    moto.create_bucket("registry");
    let proxy = TestProxy::start(moto.endpoint.trim_start_matches("http://"), None);
    proxy.inject(Fault {
        method: Some(reqwest::Method::HEAD),
        path_contains: "/registry".into(),
        times: 10,
        action: FaultAction::Refuse {
            code: 403,
            error: "AccessDenied",
            message: "Access Denied".into(),
        },
    });
    let endpoint = format!("http://{}", proxy.host());
    let refused = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "wrong"),
        ("AWS_SECRET_ACCESS_KEY", "wrong"),
    ];
    wharf_env(dir, &["serve", "--storage", "s3://registry"], &refused)
        .fails_with(&["bucket registry: the credentials were refused"]);
}

#[test]
fn an_instance_killed_mid_push_loses_nothing_and_gc_takes_only_the_abandoned_session() {
    let dir = temp();
    let dir = dir.path();
    let moto = Moto::start();
    moto.create_bucket("registry");
    let mut first = instance(dir, &moto, "s3://registry");
    let second = instance(dir, &moto, "s3://registry");
    let balancer = Nginx::balance(&[first.addr(), second.addr()]);
    gen_layout(&dir.join("gen"), 1, 2, 0, "24M");

    // A chunked push through the balancer; one instance dies with SIGKILL while it goes on.
    let target = format!("{}/team/big:1", balancer.addr);
    let push = {
        let dir = dir.to_owned();
        let target = target.clone();
        std::thread::spawn(move || {
            wharf(
                &dir,
                &[
                    "copy",
                    "--chunk-size",
                    "1048576",
                    "--idle-timeout",
                    "5",
                    "oci:gen:img0",
                    &target,
                ],
            )
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(400));
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let pushed = push.join().unwrap();
    assert!(
        pushed.status.success(),
        "the retry through the other instance completes: {}",
        pushed.stderr
    );
    assert_verified(dir, &target);
    assert_eq!(
        descriptor_of(dir, &target).digest,
        descriptor_of(dir, "oci:gen:img0").digest
    );

    // An upload left behind, as a killed client would; gc removes it and nothing else.
    let (status, response) = http(second.addr(), "POST", "/v2/team/left/blobs/uploads/", b"");
    assert_eq!(status, 202, "{response}");
    let env = aws(&moto);
    let collected = wharf_env(
        dir,
        &["serve", "gc", "--storage", "s3://registry", "--grace", "0s"],
        &env,
    )
    .ok();
    assert!(collected.contains("removed 0 blobs"), "{collected}");
    assert!(!collected.contains(" 0 abandoned uploads"), "{collected}");
    assert_verified(dir, &target);
}

#[test]
fn with_redirect_blobs_come_straight_from_the_bucket() {
    let dir = temp();
    let dir = dir.path();
    let moto = Moto::start();
    moto.create_bucket("registry");
    let served = instance_with(dir, &moto, "s3://registry", &["--redirect"]);
    let sample = sample_layout(dir);
    let source = format!("oci:{}:1.0", sample.display());
    let target = format!("{}/team/app:1.0", served.addr());
    wharf(dir, &["copy", &source, &target]).ok();

    let root = descriptor_of(dir, &target);
    let (_, manifest) = http(
        served.addr(),
        "GET",
        &format!("/v2/team/app/manifests/{}", root.digest),
        b"",
    );
    let index = json(body(&manifest));
    let child = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let (_, manifest) = http(
        served.addr(),
        "GET",
        &format!("/v2/team/app/manifests/{child}"),
        b"",
    );
    let layer = json(body(&manifest))["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, response) = http(
        served.addr(),
        "GET",
        &format!("/v2/team/app/blobs/{layer}"),
        b"",
    );
    assert_eq!(status, 307, "{response}");
    let location = crate::util::response_header(&response, "location").unwrap();
    assert!(location.starts_with(&moto.endpoint), "{location}");

    // Clients follow it: wharf and skopeo pull the image whole.
    wharf(dir, &["copy", &target, "oci:back:1.0"]).ok();
    assert_eq!(descriptor_of(dir, "oci:back:1.0").digest, root.digest);
    assert_verified(dir, &target);
    skopeo_copy_all(dir, &format!("docker://{target}"), "oci:skopeo:1.0").ok();

    wharf(dir, &["serve", "--root", "r", "--redirect"])
        .fails_with(&["--redirect needs object storage"]);
}
