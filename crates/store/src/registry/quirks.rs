//! Per-registry behaviour differences, in one table. Other code reads these flags, never host names.

/// What a registry host does differently from the distribution spec's happy path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// The host that serves the API when it differs from the name in references.
    pub api_host: Option<&'static str>,
    /// Cross-repository mount is worth trying.
    pub mount: bool,
    /// Uploads must be chunked (the registry limits request bodies).
    pub chunked_upload: bool,
    /// Chunked uploads are broken; always upload in one request.
    pub monolithic_only: bool,
    /// A `sha256-<hex>` tag may resolve to the subject itself rather than a referrers index.
    pub digest_tags_alias_digests: bool,
}

const DEFAULT: Quirks = Quirks {
    api_host: None,
    mount: true,
    chunked_upload: false,
    monolithic_only: false,
    digest_tags_alias_digests: false,
};

/// Host patterns (`*.` matches any subdomain) and how they differ. First match wins.
const TABLE: &[(&str, Quirks)] = &[
    // References say docker.io; the API lives elsewhere, and mounts answer 401 across namespaces.
    (
        "docker.io",
        Quirks {
            api_host: Some("registry-1.docker.io"),
            mount: false,
            ..DEFAULT
        },
    ),
    (
        "registry-1.docker.io",
        Quirks {
            mount: false,
            ..DEFAULT
        },
    ),
    // GitLab resolves `sha256-<hex>` tags to the manifest with that digest.
    (
        "registry.gitlab.com",
        Quirks {
            digest_tags_alias_digests: true,
            ..DEFAULT
        },
    ),
    (
        "*.gitlab.com",
        Quirks {
            digest_tags_alias_digests: true,
            ..DEFAULT
        },
    ),
    // GHCR's multi-request uploads are unreliable.
    (
        "ghcr.io",
        Quirks {
            monolithic_only: true,
            ..DEFAULT
        },
    ),
    // Google Artifact Registry and GCR have no chunked upload.
    (
        "*.pkg.dev",
        Quirks {
            monolithic_only: true,
            ..DEFAULT
        },
    ),
    (
        "gcr.io",
        Quirks {
            monolithic_only: true,
            ..DEFAULT
        },
    ),
    (
        "*.gcr.io",
        Quirks {
            monolithic_only: true,
            ..DEFAULT
        },
    ),
    // ECR answers every mount with 202, so trying costs a request and never helps.
    (
        "*.amazonaws.com",
        Quirks {
            mount: false,
            ..DEFAULT
        },
    ),
];

/// The quirks of `host` (with or without port).
pub fn for_host(host: &str) -> Quirks {
    let name = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    TABLE
        .iter()
        .find(|(pattern, _)| match pattern.strip_prefix("*.") {
            Some(domain) => name.ends_with(&format!(".{domain}")),
            None => name == *pattern,
        })
        .map_or(DEFAULT, |(_, quirks)| *quirks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hosts_and_wildcards() {
        assert_eq!(for_host("docker.io").api_host, Some("registry-1.docker.io"));
        assert!(!for_host("123.dkr.ecr.us-east-1.amazonaws.com").mount);
        assert!(for_host("europe-docker.pkg.dev").monolithic_only);
        assert!(for_host("registry.gitlab.com:443").digest_tags_alias_digests);
        assert_eq!(for_host("localhost:5000"), DEFAULT);
        assert_eq!(for_host("pkg.dev"), DEFAULT, "a wildcard needs a subdomain");
    }
}
