//! What a new user runs into: other tools' notations, skopeo's flags, credentials, usage errors
//! found before any request, and JSON that reads the same everywhere. Each case checks the message,
//! the exit status and that nothing was written.

use crate::util::{
    TestProxy, assert_verified, bounded, finish_within, gen_layout, htpasswd, json,
    layout_manifest, sample_layout, serve, temp, wharf, wharf_command,
};

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

/// The subcommands `wharf ARGS --help` lists.
fn subcommands(dir: &std::path::Path, path: &[String]) -> Vec<String> {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let help = wharf(dir, &args).ok();
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_help_fits_80_columns_and_completions_and_the_manual_are_generated() {
    let dir = temp();
    let dir = dir.path();
    let mut pending: Vec<Vec<String>> = vec![Vec::new()];
    let mut seen = 0;
    while let Some(path) = pending.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = wharf(dir, &args).ok();
        for line in help.lines() {
            assert!(
                line.chars().count() <= 80,
                "wharf {path:?} --help: {line:?}"
            );
        }
        seen += 1;
        for sub in subcommands(dir, &path) {
            let mut deeper = path.clone();
            deeper.push(sub);
            pending.push(deeper);
        }
    }
    assert!(seen > 25, "only {seen} help pages");
    for shell in ["bash", "zsh", "fish"] {
        let script = wharf(dir, &["completion", shell]).ok();
        assert!(
            script.contains("sync") && script.contains("--tls-verify"),
            "{shell}"
        );
    }
    let manual = wharf(dir, &["man"]).ok();
    assert!(
        manual.starts_with(".ie") || manual.contains(".TH wharf"),
        "{manual}"
    );
}

#[test]
fn two_entries_writing_one_tag_are_both_refused_and_the_rest_copied() {
    let dir = temp();
    let dir = dir.path();
    gen_layout(&dir.join("gen"), 2, 1, 0, "4K");
    std::fs::write(
        dir.join("sync.yaml"),
        "images:\n\
         - {source: \"oci:gen:img0\", destination: \"oci:out:app:1\"}\n\
         - {source: \"oci:gen:img1\", destination: \"oci:out:app:1\"}\n\
         - {source: \"oci:gen:img0\", destination: \"oci:out:ok:1\"}\n",
    )
    .unwrap();
    let run = wharf(dir, &["sync", "--file", "sync.yaml", "--output", "json"]);
    assert!(!run.status.success());
    let report = json(&run.stdout);
    assert_eq!(report["totals"]["failed"], 2, "{report}");
    assert_eq!(report["totals"]["copied"], 1, "{report}");
    assert!(
        run.stderr
            .contains("oci:out:app:1 is also the destination of oci:gen:img1"),
        "{}",
        run.stderr
    );
    assert!(layout_manifest(&dir.join("out"), "ok:1").is_object());
    let index = std::fs::read_to_string(dir.join("out/index.json")).unwrap();
    assert!(!index.contains("app:1"), "{index}");
}

#[test]
fn ctrl_c_says_what_was_kept_and_the_same_command_carries_on() {
    let dir = temp();
    let dir = dir.path();
    gen_layout(&dir.join("gen"), 4, 2, 0, "64M");
    let served = serve(dir, &[]);
    let args = [
        "sync",
        "--no-cache",
        "-j",
        "1",
        "--images-at-once",
        "1",
        "--to",
        served.addr(),
        "oci:gen:img0",
        "oci:gen:img1",
        "oci:gen:img2",
        "oci:gen:img3",
    ];
    let child = bounded(&mut wharf_command(dir, &args)).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let interrupted = finish_within(child, std::time::Duration::from_secs(20), "sync");
    assert_eq!(
        interrupted.status.code(),
        Some(130),
        "{}",
        interrupted.stderr
    );
    let said: Vec<&str> = interrupted
        .stderr
        .lines()
        .filter(|l| l.starts_with("interrupted: "))
        .collect();
    assert_eq!(said.len(), 1, "{}", interrupted.stderr);
    assert!(
        said[0].contains("run the same command again"),
        "{}",
        said[0]
    );
    let report = json(&wharf(dir, &[&args[..], &["--output", "json"]].concat()).ok());
    assert_eq!(report["totals"]["failed"], 0, "{report}");
    assert_eq!(report["version"], 1);
    assert_verified(dir, &format!("{}/gen:img3", served.addr()));
}

#[test]
fn serve_listens_on_every_interface_for_a_bare_port() {
    let dir = temp();
    let dir = dir.path();
    let mut child = wharf_command(dir, &["serve", "--root", "r", "--listen", ":0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(first.starts_with("listening on http://0.0.0.0:"), "{first}");
}
