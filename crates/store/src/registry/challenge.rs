//! `WWW-Authenticate` challenges (RFC 7235): the scheme and its parameters.

use std::collections::HashMap;

/// How a registry wants to be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP basic authentication on every request.
    Basic,
    /// Tokens from an authorization service.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to pass along.
        service: Option<String>,
        /// The scope the failed request needed, if the registry said.
        scope: Option<String>,
    },
}

/// The first challenge wharf can answer, preferring Bearer over Basic.
pub fn parse(header: &str) -> Option<Challenge> {
    let challenges = parse_all(header);
    challenges
        .iter()
        .find(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .or_else(|| {
            challenges
                .iter()
                .find(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        })
        .and_then(|(scheme, params)| {
            if scheme.eq_ignore_ascii_case("basic") {
                return Some(Challenge::Basic);
            }
            Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            })
        })
}

/// Every challenge in a header: `Scheme k=v, k="v", Scheme2 ...`.
fn parse_all(header: &str) -> Vec<(String, HashMap<String, String>)> {
    let mut out: Vec<(String, HashMap<String, String>)> = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        let token_end = rest.find([' ', ',', '=']).unwrap_or(rest.len());
        let token = &rest[..token_end];
        let after = rest[token_end..].trim_start();
        if let Some(value_part) = after.strip_prefix('=') {
            // A parameter of the current challenge.
            let (value, remaining) = read_value(value_part.trim_start());
            if let Some((_, params)) = out.last_mut() {
                params.insert(token.to_ascii_lowercase(), value);
            }
            rest = remaining.trim_start().trim_start_matches(',').trim_start();
        } else {
            if !token.is_empty() {
                out.push((token.to_owned(), HashMap::new()));
            }
            rest = after.trim_start_matches(',').trim_start();
        }
    }
    out
}

/// A quoted string (with `\` escapes) or a bare token; returns it and the rest.
fn read_value(text: &str) -> (String, &str) {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => return (value, &quoted[i + 1..]),
                c => value.push(c),
            }
        }
        (value, "")
    } else {
        let end = text.find(',').unwrap_or(text.len());
        (text[..end].trim().to_owned(), &text[end..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic() {
        let docker = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        assert_eq!(
            parse(docker),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        assert_eq!(parse(r#"Basic realm="wharf""#), Some(Challenge::Basic));
        assert_eq!(
            parse(
                r#"Basic realm="x", Bearer realm=https://t.example/token, error="insufficient_scope""#
            ),
            Some(Challenge::Bearer {
                realm: "https://t.example/token".into(),
                service: None,
                scope: None
            })
        );
        assert_eq!(
            parse(r#"Bearer realm="a\"b""#),
            Some(Challenge::Bearer {
                realm: "a\"b".into(),
                service: None,
                scope: None
            })
        );
        assert_eq!(parse("Negotiate"), None);
        assert_eq!(parse(""), None);
        assert_eq!(
            parse("Bearer service=x"),
            None,
            "a bearer challenge needs a realm"
        );
    }
}
