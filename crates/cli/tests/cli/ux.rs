//! What a new user runs into: other tools' notations, skopeo's flags, credentials, usage errors
//! found before any request, and JSON that reads the same everywhere. Each case checks the message,
//! the exit status and that nothing was written.

use crate::util::{TestProxy, htpasswd, json, sample_layout, serve, temp, wharf};

#[test]
fn other_tools_notations_say_which_form_to_use_and_write_nothing() {
    let dir = temp();
    let dir = dir.path();
    let cases = [
        (
            "http://127.0.0.1:5000/team/app:1",
            "write 127.0.0.1:5000/team/app:1",
        ),
        ("dir:./x", "an OCI image layout directory is oci:./x"),
        ("docker-archive:x.tar", "oci-archive:x.tar"),
        ("docker-daemon:app:1", "push the image to a registry"),
    ];
    for (source, advice) in cases {
        let run = wharf(dir, &["copy", source, "oci:out"]);
        assert_eq!(run.status.code(), Some(1));
        run.fails_with(&[source, advice]);
        assert!(!dir.join("out").exists(), "{source}: something was written");
    }
    wharf(dir, &["sync", "dir:./x", "--to", "oci:out"]).fails_with(&["oci:./x"]);
    wharf(dir, &["catalog", "http://127.0.0.1:1"])
        .fails_with(&["list the repositories of 127.0.0.1:1"]);
}

#[test]
fn usage_errors_come_before_any_request() {
    let dir = temp();
    let dir = dir.path();
    let served = serve(dir, &[]);
    let proxy = TestProxy::start(served.addr(), None);
    let repository = format!("{}/team/app", proxy.host());
    let run = wharf(dir, &["sync", &repository]);
    assert_eq!(run.status.code(), Some(2), "a usage error");
    run.fails_with(&[&repository, "has no destination: give --to PREFIX"]);
    let run = wharf(dir, &["sync"]);
    assert_eq!(run.status.code(), Some(2));
    run.fails_with(&["nothing to sync"]);
    assert!(proxy.records().is_empty(), "{:?}", proxy.records());
    wharf(
        dir,
        &[
            "copy",
            "--authfile",
            "missing.json",
            &format!("{repository}:1"),
            "oci:out",
        ],
    )
    .fails_with(&["--authfile missing.json: no such file"]);
    assert!(proxy.records().is_empty(), "{:?}", proxy.records());
    assert!(!dir.join("out").exists());
}

#[test]
fn skopeo_flags_work_as_skopeo_users_type_them() {
    let dir = temp();
    let dir = dir.path();
    let sample = sample_layout(dir);
    let file = htpasswd(dir);
    let served = serve(dir, &["--htpasswd", file.to_str().unwrap()]);
    let target = format!("{}/team/app:1.0", served.addr());
    let source = format!("oci:{}:1.0", sample.display());
    // A bare --tls-verify means true and takes no argument.
    wharf(
        dir,
        &[
            "copy",
            "--tls-verify",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:s3cret",
            &source,
            &target,
        ],
    )
    .ok();
    // Credentials for one side from its own auth file.
    wharf(
        dir,
        &[
            "login",
            served.addr(),
            "-u",
            "alice",
            "-p",
            "s3cret",
            "--authfile",
            "dest.json",
        ],
    )
    .ok();
    let copied = wharf(
        dir,
        &[
            "copy",
            "--dest-authfile",
            "dest.json",
            "--output",
            "json",
            &source,
            &format!("{}/team/other:1.0", served.addr()),
        ],
    )
    .ok();
    assert!(copied.lines().count() > 3, "JSON is indented: {copied}");
    assert!(json(&copied)["digest"].is_string());
    let refused = wharf(
        dir,
        &[
            "copy",
            "--src-authfile",
            "dest.json",
            &source,
            &format!("{}/team/third:1.0", served.addr()),
        ],
    );
    refused.fails_with(&[&format!("{} requires credentials", served.addr())]);
}
