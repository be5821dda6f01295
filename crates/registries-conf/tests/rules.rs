//! Every rule of containers-registries.conf v2 that decides where a pull goes, one test each, on files
//! in temporary directories.

use std::path::Path;

use wharf_oci::Reference;
use wharf_registries_conf::{ConfError, Discovery, RegistriesConf};

fn endpoints(conf: &str, reference: &str) -> Vec<String> {
    let conf = RegistriesConf::from_text(conf).unwrap();
    conf.pull_endpoints(&Reference::parse(reference).unwrap())
        .unwrap()
        .iter()
        .map(|e| {
            let mut s = e.reference.to_string();
            if e.insecure {
                s += " (insecure)";
            }
            if e.blocked {
                s += " (blocked)";
            }
            s
        })
        .collect()
}

const DIGEST: &str = "sha256:ec15a5bd53cf9507beb851574654669e778a9735f8e605e0ee3d71fd07debbe1";

#[test]
fn no_match_means_the_reference_itself() {
    assert_eq!(endpoints("", "example.com/a:1"), ["example.com/a:1"]);
    assert_eq!(
        endpoints("[[registry]]\nlocation = \"other.com\"", "busybox"),
        ["docker.io/library/busybox:latest"]
    );
}

#[test]
fn longest_prefix_wins_by_string_length() {
    let conf = r#"
[[registry]]
prefix = "example.com"
location = "short.com"
[[registry]]
prefix = "example.com/team"
location = "long.com/t"
"#;
    assert_eq!(
        endpoints(conf, "example.com/team/app:1"),
        ["long.com/t/app:1"]
    );
    assert_eq!(
        endpoints(conf, "example.com/other:1"),
        ["short.com/other:1"]
    );
}

#[test]
fn equal_lengths_fall_to_sorted_order_so_wildcards_win() {
    let conf = r#"
[[registry]]
prefix = "a.example.com"
location = "plain.com"
[[registry]]
prefix = "*.example.com"
location = "wild.com"
"#;
    assert_eq!(endpoints(conf, "a.example.com/x:1"), ["wild.com/x:1"]);
}

#[test]
fn prefixes_end_at_repository_boundaries() {
    let conf = "[[registry]]\nprefix = \"example.com/foo\"\nlocation = \"r.com/foo\"";
    assert_eq!(
        endpoints(conf, "example.com/foobar:1"),
        ["example.com/foobar:1"]
    );
    assert_eq!(endpoints(conf, "example.com/foo:1"), ["r.com/foo:1"]);
    assert_eq!(
        endpoints(conf, &format!("example.com/foo@{DIGEST}")),
        [format!("r.com/foo@{DIGEST}")]
    );
}

#[test]
fn a_host_prefix_also_matches_that_host_with_a_port() {
    let conf = "[[registry]]\nprefix = \"example.com\"\nlocation = \"r.com\"\n[[registry]]\nprefix = \"ports.com:5000\"\nlocation = \"p.com\"";
    assert_eq!(endpoints(conf, "example.com:5000/x:1"), ["r.com:5000/x:1"]);
    assert_eq!(
        endpoints(conf, "ports.com:50000/x:1"),
        ["ports.com:50000/x:1"]
    );
}

#[test]
fn docker_hub_references_are_normalised_before_matching() {
    let conf =
        "[[registry]]\nprefix = \"docker.io/library\"\nlocation = \"hub-mirror.local/library\"";
    assert_eq!(
        endpoints(conf, "busybox:1"),
        ["hub-mirror.local/library/busybox:1"]
    );
    assert_eq!(
        endpoints(conf, "index.docker.io/library/busybox:1"),
        ["hub-mirror.local/library/busybox:1"]
    );
    let short = "[[registry]]\nprefix = \"docker.io/alpine\"\nlocation = \"x.com/alpine\"";
    assert_eq!(
        endpoints(short, "alpine:3"),
        ["docker.io/library/alpine:3"],
        "the /library part must be written"
    );
}

#[test]
fn mirrors_come_first_in_file_order_and_the_location_last() {
    let conf = r#"
[[registry]]
prefix = "example.com"
location = "primary.com"
insecure = true
[[registry.mirror]]
location = "m1.com/x"
[[registry.mirror]]
location = "m2.com"
insecure = true
"#;
    assert_eq!(
        endpoints(conf, "example.com/a/b:1"),
        [
            "m1.com/x/a/b:1",
            "m2.com/a/b:1 (insecure)",
            "primary.com/a/b:1 (insecure)"
        ]
    );
}

#[test]
fn mirror_by_digest_only_skips_mirrors_for_tags() {
    let conf = "[[registry]]\nlocation = \"r.com\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.com\"";
    assert_eq!(endpoints(conf, "r.com/a:1"), ["r.com/a:1"]);
    assert_eq!(
        endpoints(conf, &format!("r.com/a@{DIGEST}")),
        [format!("m.com/a@{DIGEST}"), format!("r.com/a@{DIGEST}")]
    );
}

#[test]
fn pull_from_mirror_filters_each_mirror() {
    let conf = r#"
[[registry]]
location = "r.com"
[[registry.mirror]]
location = "digests.com"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "tags.com"
pull-from-mirror = "tag-only"
[[registry.mirror]]
location = "all.com"
pull-from-mirror = "all"
"#;
    assert_eq!(
        endpoints(conf, "r.com/a:1"),
        ["tags.com/a:1", "all.com/a:1", "r.com/a:1"]
    );
    let by_digest = endpoints(conf, &format!("r.com/a@{DIGEST}"));
    assert_eq!(
        by_digest,
        [
            format!("digests.com/a@{DIGEST}"),
            format!("all.com/a@{DIGEST}"),
            format!("r.com/a@{DIGEST}")
        ]
    );
}

#[test]
fn wildcards_rewrite_the_host_and_carry_the_port() {
    let conf = "[[registry]]\nprefix = \"*.example.io\"\nlocation = \"example.com\"";
    assert_eq!(
        endpoints(conf, "another.sub.example.io:5000/x:1"),
        ["example.com:5000/x:1"]
    );
    assert_eq!(endpoints(conf, "a.example.io/x/y:1"), ["example.com/x/y:1"]);
    let ported = RegistriesConf::from_text(
        "[[registry]]\nprefix = \"*.example.io\"\nlocation = \"example.com:6000\"",
    )
    .unwrap();
    let err = ported
        .pull_endpoints(&Reference::parse("a.example.io:5000/x:1").unwrap())
        .unwrap_err();
    assert!(matches!(err, ConfError::Rewrite { .. }), "{err}");
}

#[test]
fn wildcard_without_location_only_sets_flags() {
    let conf = "[[registry]]\nprefix = \"*.internal\"\ninsecure = true";
    assert_eq!(
        endpoints(conf, "r.corp.internal/a:1"),
        ["r.corp.internal/a:1 (insecure)"]
    );
}

#[test]
fn a_rewrite_that_is_not_canonical_fails_the_whole_lookup() {
    let conf = "[[registry]]\nprefix = \"example.com/foo\"\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \"fine.com\"";
    let conf = RegistriesConf::from_text(conf).unwrap();
    let err = conf
        .pull_endpoints(&Reference::parse("example.com/foo/busybox:1").unwrap())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("repository name must be canonical"),
        "{err}"
    );
}

#[test]
fn blocked_is_judged_on_the_rewritten_name() {
    let blocked_primary = r#"
[[registry]]
location = "blocked.com"
blocked = true
[[registry.mirror]]
location = "m.com"
"#;
    assert_eq!(
        endpoints(blocked_primary, "blocked.com/a:1"),
        ["m.com/a:1", "blocked.com/a:1 (blocked)"]
    );
    let blocked_mirror = r#"
[[registry]]
location = "r.com"
[[registry.mirror]]
location = "bad-mirror.com"
[[registry]]
location = "bad-mirror.com"
blocked = true
"#;
    assert_eq!(
        endpoints(blocked_mirror, "r.com/a:1"),
        ["bad-mirror.com/a:1 (blocked)", "r.com/a:1"]
    );
    let remapped = "[[registry]]\nprefix = \"old.com\"\nlocation = \"new.com\"\nblocked = true";
    assert_eq!(
        endpoints(remapped, "old.com/a:1"),
        ["new.com/a:1"],
        "blocked on a remapped entry is not enforced upstream"
    );
}

#[test]
fn tags_in_prefixes_never_match_a_pull() {
    let conf = "[[registry]]\nprefix = \"example.com/a:1\"\nlocation = \"r.com/a:1\"";
    assert_eq!(endpoints(conf, "example.com/a:1"), ["example.com/a:1"]);
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn discovery(root: &Path) -> Discovery {
    Discovery {
        file: None,
        dir: None,
        home: Some(root.join("home")),
        system_root: root.join("sys"),
    }
}

#[test]
fn drop_ins_replace_whole_entries_in_lexical_order() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    write(
        &root.join("sys/etc/containers/registries.conf"),
        "unqualified-search-registries = [\"a.com\"]\n[[registry]]\nlocation = \"r.com\"\ninsecure = true\n[[registry.mirror]]\nlocation = \"old-mirror.com\"",
    );
    let d = root.join("sys/etc/containers/registries.conf.d");
    write(
        &d.join("20-second.conf"),
        "[[registry]]\nprefix = \"r.com\"\nlocation = \"r2.com\"",
    );
    write(
        &d.join("10-first.conf"),
        "[[registry]]\nprefix = \"r.com\"\nlocation = \"r1.com\"\n[aliases]\n\"x\" = \"a.com/x\"\n\"y\" = \"a.com/y\"",
    );
    write(&d.join("30-ignored.txt"), "not toml");
    write(
        &root.join("home/.config/containers/registries.conf.d/99-user.conf"),
        "unqualified-search-registries = []\n[aliases]\n\"y\" = \"\"",
    );
    let conf = RegistriesConf::load(&discovery(root)).unwrap();
    let names: Vec<String> = conf
        .files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "registries.conf",
            "10-first.conf",
            "20-second.conf",
            "99-user.conf"
        ]
    );
    let registry = conf.find("r.com/a").unwrap();
    assert_eq!(registry.location, "r2.com");
    assert!(
        !registry.insecure && registry.mirrors.is_empty(),
        "the whole earlier entry is replaced"
    );
    assert!(
        conf.unqualified_search_registries().is_empty(),
        "an empty list still replaces"
    );
    assert_eq!(
        conf.aliases().into_iter().collect::<Vec<_>>(),
        [("x", "a.com/x")]
    );
    assert_eq!(conf.credential_helpers(), ["containers-auth.json"]);
}

#[test]
fn a_user_file_replaces_the_system_file_and_its_drop_ins() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    write(
        &root.join("sys/etc/containers/registries.conf"),
        "[[registry]]\nlocation = \"system.com\"",
    );
    write(
        &root.join("sys/etc/containers/registries.conf.d/a.conf"),
        "[[registry]]\nlocation = \"system-drop.com\"",
    );
    write(
        &root.join("home/.config/containers/registries.conf"),
        "[[registry]]\nlocation = \"user.com\"",
    );
    let conf = RegistriesConf::load(&discovery(root)).unwrap();
    let prefixes: Vec<&str> = conf
        .registries()
        .iter()
        .map(|r| r.prefix.as_str())
        .collect();
    assert_eq!(prefixes, ["user.com"]);
}

#[test]
fn explicit_files_must_exist_and_explicit_dirs_are_the_only_ones() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    write(
        &root.join("sys/etc/containers/registries.conf.d/a.conf"),
        "[[registry]]\nlocation = \"system-drop.com\"",
    );
    write(
        &root.join("mine/b.conf"),
        "[[registry]]\nlocation = \"mine.com\"",
    );
    write(&root.join("main.conf"), "");
    let mut d = discovery(root);
    d.file = Some(root.join("missing.conf"));
    let err = RegistriesConf::load(&d).unwrap_err().to_string();
    assert!(
        err.starts_with("loading registries configuration") && err.contains("missing.conf"),
        "{err}"
    );
    d.file = Some(root.join("main.conf"));
    let with_system = RegistriesConf::load(&d).unwrap();
    assert_eq!(
        with_system.registries()[0].prefix,
        "system-drop.com",
        "an explicit file still reads the drop-in dirs"
    );
    d.dir = Some(root.join("mine"));
    let only_mine = RegistriesConf::load(&d).unwrap();
    let prefixes: Vec<&str> = only_mine
        .registries()
        .iter()
        .map(|r| r.prefix.as_str())
        .collect();
    assert_eq!(prefixes, ["mine.com"]);
}

#[test]
fn drop_ins_must_be_v2_and_errors_name_the_file() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    write(
        &root.join("sys/etc/containers/registries.conf.d/old.conf"),
        "[registries.insecure]\nregistries = [\"a.com\"]",
    );
    let err = RegistriesConf::load(&discovery(root))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("old.conf") && err.contains("registry must be in v2 format but is in v1"),
        "{err}"
    );
}
