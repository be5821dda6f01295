use crate::util::{temp, wharf};

#[test]
fn demo_narrates_and_cleans_up() {
    let dir = temp();
    let out = wharf(dir.path(), &["demo"]).ok();
    assert!(out.contains("Demo finished"), "{out}");
    assert!(out.contains("6 blobs"), "{out}");
    let cluster = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("cluster URL http://"))
        .unwrap();
    let cluster = cluster.split_whitespace().next().unwrap();
    let reference = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("image reference for this URL: "))
        .unwrap();
    assert!(
        reference.starts_with(cluster),
        "{reference} does not use {cluster}"
    );
    assert!(
        out.contains("stored access: relativeOciReference local/components/"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "the demo left files behind"
    );
}

#[test]
fn help_has_examples_everywhere() {
    let dir = temp();
    for command in ["copy", "inspect", "demo"] {
        let help = wharf(dir.path(), &[command, "--help"]).ok();
        assert!(help.contains("Examples:"), "{command}: {help}");
    }
    let version = wharf(dir.path(), &["--version"]).ok();
    assert!(version.starts_with("wharf "), "{version}");
}
