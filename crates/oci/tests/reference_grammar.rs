//! Property tests of the reference grammar: generated valid references round-trip, arbitrary input never
//! panics, and known corruptions are always rejected.

use proptest::prelude::*;
use wharf_oci::{Digest, Reference};

fn path_component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,6}((\\.|_|__|-{1,3})[a-z0-9]{1,6}){0,2}"
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(path_component(), 1..4).prop_map(|c| c.join("/"))
}

/// Domains that the normaliser recognises as domains: with a dot, a port, `localhost`, or IPv6.
fn domain() -> impl Strategy<Value = String> {
    let label = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,5}[a-zA-Z0-9])?";
    let port = prop::option::of(1u16..);
    prop_oneof![
        (label, label, port.clone()).prop_map(|(a, b, p)| with_port(format!("{a}.{b}"), p)),
        (label, 1u16..).prop_map(|(a, p)| with_port(a, Some(p))),
        port.clone().prop_map(|p| with_port("localhost".into(), p)),
        ("[0-9a-f]{1,4}(:[0-9a-f]{0,4}){1,5}", port)
            .prop_map(|(v6, p)| with_port(format!("[{v6}]"), p)),
    ]
    .prop_filter("docker hub names are normalised", |d| {
        !d.eq_ignore_ascii_case("docker.io") && !d.eq_ignore_ascii_case("index.docker.io")
    })
}

fn with_port(host: String, port: Option<u16>) -> String {
    match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

fn tag() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
}

fn digest() -> impl Strategy<Value = String> {
    "[0-9a-f]{64}".prop_map(|hex| format!("sha256:{hex}"))
}

/// A fully qualified reference string, as `Display` prints it.
fn qualified() -> impl Strategy<Value = String> {
    (
        domain(),
        path(),
        prop::option::of(tag()),
        prop::option::of(digest()),
    )
        .prop_filter("name within 255 characters", |(d, p, _, _)| {
            d.len() + 1 + p.len() <= 255
        })
        .prop_map(|(domain, path, tag, digest)| {
            let mut s = format!("{domain}/{path}");
            match (tag, digest) {
                (tag, Some(digest)) => {
                    if let Some(tag) = tag {
                        s += &format!(":{tag}");
                    }
                    s += &format!("@{digest}");
                }
                (Some(tag), None) => s += &format!(":{tag}"),
                (None, None) => s += ":latest",
            }
            s
        })
}

proptest! {
    #[test]
    fn qualified_references_round_trip(input in qualified()) {
        let parsed = Reference::parse(&input).unwrap();
        prop_assert_eq!(parsed.to_string(), input.clone());
        prop_assert_eq!(Reference::parse(&parsed.to_string()).unwrap(), parsed);
    }

    #[test]
    fn familiar_names_normalise_to_docker_hub(path in path(), tag in tag()) {
        // A first component with a dot would be a domain.
        prop_assume!(!path.split_once('/').is_some_and(|(first, _)| first.contains('.')));
        let parsed = Reference::parse(&format!("{path}:{tag}")).unwrap();
        prop_assert_eq!(parsed.domain(), "docker.io");
        let want = if path.contains('/') { path.clone() } else { format!("library/{path}") };
        prop_assert_eq!(parsed.path(), want.as_str());
        prop_assert_eq!(Reference::parse(&parsed.to_string()).unwrap(), parsed);
    }

    #[test]
    fn arbitrary_input_never_panics_and_valid_output_is_stable(input in "\\PC{0,80}") {
        if let Ok(parsed) = Reference::parse(&input) {
            let printed = parsed.to_string();
            prop_assert_eq!(Reference::parse(&printed).unwrap(), parsed);
        }
    }

    #[test]
    fn near_miss_input_never_panics(input in "[a-zA-Z0-9:/@._\\[\\]-]{0,40}") {
        let _ = Reference::parse(&input);
        let _ = Digest::parse(&input);
    }

    #[test]
    fn uppercase_in_the_path_is_rejected(domain in domain(), path in path(), at in any::<prop::sample::Index>()) {
        let mut chars: Vec<char> = path.chars().collect();
        let i = at.index(chars.len());
        prop_assume!(chars[i].is_ascii_lowercase());
        chars[i] = chars[i].to_ascii_uppercase();
        let bad: String = chars.into_iter().collect();
        let input = format!("{domain}/{bad}");
        prop_assert!(Reference::parse(&input).is_err());
    }

    #[test]
    fn over_long_tags_are_rejected(domain in domain(), path in path(), extra in "[a-z]{129,140}") {
        let input = format!("{domain}/{path}:{extra}");
        prop_assert!(Reference::parse(&input).is_err());
    }

    #[test]
    fn separators_at_component_edges_are_rejected(domain in domain(), c in path_component(), sep in "[._-]") {
        let leading = format!("{domain}/{sep}{c}");
        let trailing = format!("{domain}/{c}{sep}");
        prop_assert!(Reference::parse(&leading).is_err());
        prop_assert!(Reference::parse(&trailing).is_err());
    }
}
