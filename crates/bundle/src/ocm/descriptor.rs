//! Component descriptors, schema v2, kept as the document they were read from so that fields wharf
//! does not know survive every transfer.

use serde_json::{Map, Value, json};
use wharf_oci::{Algorithm, Digest};

use super::access::{Access, AccessError};
use crate::yaml::{self, YamlError};

/// Why a component descriptor cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DescriptorError {
    /// The bytes are not text.
    #[error("component descriptor: not UTF-8 text")]
    NotText,
    /// Neither JSON nor YAML.
    #[error("component descriptor: invalid YAML: {0}")]
    Yaml(#[from] YamlError),
    /// Another schema.
    #[error("component descriptor: meta.schemaVersion is {0}, wharf reads v2")]
    Schema(String),
    /// No `component` object.
    #[error("component descriptor: no component section")]
    NoComponent,
    /// The component's name.
    #[error("component descriptor: {0}")]
    Name(#[from] InvalidName),
    /// The component's version.
    #[error("component descriptor: {0}")]
    Version(#[from] InvalidVersion),
    /// A field that must be a list is not.
    #[error("component descriptor: component.{0} must be a list")]
    NotAList(&'static str),
    /// A resource without a name.
    #[error("component descriptor: resource {0} has no name")]
    UnnamedResource(usize),
    /// A resource whose access cannot be read.
    #[error("component descriptor: resource {index}: {error}")]
    Access {
        /// Position in `component.resources`.
        index: usize,
        /// What is wrong with it.
        #[source]
        error: AccessError,
    },
}

/// A string that is not an OCM component name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a valid component name: use a lower-case domain you own and a path, e.g. acme.org/app"
)]
pub struct InvalidName(pub String);

/// A string that is not an OCM component version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a valid component version (relaxed semver, e.g. 1.2.3 or v1.0.0-rc.1+build.5)"
)]
pub struct InvalidVersion(pub String);

/// A component descriptor (`meta.schemaVersion: v2`): the document as read, so that fields wharf
/// does not know survive every transfer.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentDescriptor {
    /// Everything but `component` (meta, signatures, unknown fields).
    top: Map<String, Value>,
    /// `component`.
    component: Map<String, Value>,
    /// `component.name` and `component.version`, validated.
    name: String,
    version: String,
}

/// A resource as the descriptor lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// Position in `component.resources`.
    pub index: usize,
    /// `name`.
    pub name: String,
    /// `version`, if any.
    pub version: Option<String>,
    /// `type` (`ociImage`, `blob`, …).
    pub kind: String,
    /// `access`, if any.
    pub access: Option<Access>,
    /// `digest` as written.
    pub digest: Option<Value>,
}

/// A component reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentReference {
    /// The reference's own name.
    pub name: String,
    /// The referenced component.
    pub component_name: String,
    /// Its version.
    pub version: String,
}

impl ComponentDescriptor {
    /// Parses JSON or YAML and validates the essentials.
    pub fn parse(bytes: &[u8]) -> Result<ComponentDescriptor, DescriptorError> {
        let text = std::str::from_utf8(bytes).map_err(|_| DescriptorError::NotText)?;
        let doc: Value = match serde_json::from_str(text) {
            Ok(doc) => doc,
            Err(_) => yaml::from_str(text)?,
        };
        ComponentDescriptor::from_value(doc)
    }

    /// Validates a document.
    pub fn from_value(doc: Value) -> Result<ComponentDescriptor, DescriptorError> {
        let schema = doc.pointer("/meta/schemaVersion").and_then(Value::as_str);
        if schema != Some("v2") {
            return Err(DescriptorError::Schema(
                schema.map_or("missing".to_owned(), |s| format!("{s:?}")),
            ));
        }
        let Value::Object(mut top) = doc else {
            return Err(DescriptorError::NoComponent);
        };
        let Some(Value::Object(component)) = top.remove("component") else {
            return Err(DescriptorError::NoComponent);
        };
        let text = |key: &str| {
            component
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (name, version) = (text("name"), text("version"));
        validate_name(&name)?;
        validate_version(&version)?;
        for list in [
            "resources",
            "sources",
            "componentReferences",
            "repositoryContexts",
            "labels",
        ] {
            if component
                .get(list)
                .is_some_and(|v| !v.is_array() && !v.is_null())
            {
                return Err(DescriptorError::NotAList(list));
            }
        }
        let descriptor = ComponentDescriptor {
            top,
            component,
            name,
            version,
        };
        for (index, resource) in descriptor.list("resources").iter().enumerate() {
            if resource
                .get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(DescriptorError::UnnamedResource(index));
            }
            if let Some(access) = resource.get("access") {
                Access::from_value(access)
                    .map_err(|error| DescriptorError::Access { index, error })?;
            }
        }
        Ok(descriptor)
    }

    /// A new descriptor with the given identity and provider.
    pub fn new(
        name: &str,
        version: &str,
        provider: Value,
    ) -> Result<ComponentDescriptor, DescriptorError> {
        ComponentDescriptor::from_value(json!({
            "meta": {"schemaVersion": "v2"},
            "component": {
                "name": name,
                "version": version,
                "provider": provider,
                "repositoryContexts": [],
                "resources": [],
                "sources": [],
                "componentReferences": [],
            }
        }))
    }

    fn list(&self, key: &str) -> Vec<Value> {
        self.component
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    /// Changes list `key` of the component (made a list if it is not one).
    fn edit_list(&mut self, key: &str, edit: impl FnOnce(&mut Vec<Value>)) {
        let mut items = match self.component.remove(key) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        edit(&mut items);
        self.component.insert(key.to_owned(), Value::Array(items));
    }

    /// `component.name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `component.version`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The provider's name (a string, or the `name` of an object).
    pub fn provider(&self) -> String {
        match self.component.get("provider") {
            Some(Value::String(name)) => name.clone(),
            Some(Value::Object(object)) => object
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            _ => String::new(),
        }
    }

    /// The resources.
    pub fn resources(&self) -> Vec<Resource> {
        self.list("resources")
            .iter()
            .enumerate()
            .map(|(index, r)| Resource {
                index,
                name: r["name"].as_str().unwrap_or_default().to_owned(),
                version: r.get("version").and_then(Value::as_str).map(str::to_owned),
                kind: r
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                access: r.get("access").and_then(|a| Access::from_value(a).ok()),
                digest: r.get("digest").cloned(),
            })
            .collect()
    }

    /// Adds a resource (a JSON object with at least `name` and `type`).
    pub fn add_resource(&mut self, resource: Value) {
        self.edit_list("resources", |resources| resources.push(resource));
    }

    /// Replaces the access of resource `index`.
    pub fn set_access(&mut self, index: usize, access: &Access) {
        self.set_resource_field(index, "access", access.to_value());
    }

    /// Sets the digest of resource `index`.
    pub fn set_digest(&mut self, index: usize, digest: Value) {
        self.set_resource_field(index, "digest", digest);
    }

    fn set_resource_field(&mut self, index: usize, field: &str, value: Value) {
        self.edit_list("resources", |resources| {
            if let Some(resource) = resources.get_mut(index).and_then(Value::as_object_mut) {
                resource.insert(field.to_owned(), value);
            }
        });
    }

    /// Component references.
    pub fn references(&self) -> Vec<ComponentReference> {
        self.list("componentReferences")
            .iter()
            .map(|r| ComponentReference {
                name: r
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                component_name: r
                    .get("componentName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                version: r
                    .get("version")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect()
    }

    /// Adds a component reference.
    pub fn add_reference(&mut self, reference: Value) {
        self.edit_list("componentReferences", |references| {
            references.push(reference);
        });
    }

    /// `component.repositoryContexts`, oldest first.
    pub fn repository_contexts(&self) -> Vec<Value> {
        self.list("repositoryContexts")
    }

    /// Appends a repository context unless it is already the last one.
    pub fn push_repository_context(&mut self, context: Value) {
        self.edit_list("repositoryContexts", |contexts| {
            if contexts.last() != Some(&context) {
                contexts.push(context);
            }
        });
    }

    /// Sets `component.labels`.
    pub fn set_labels(&mut self, labels: Value) {
        self.component.insert("labels".to_owned(), labels);
    }

    /// The document as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // A JSON value always serialises; writing to memory cannot fail.
        let _ = serde_json::to_writer_pretty(&mut out, &self.to_value());
        out
    }

    /// The document as YAML.
    pub fn to_yaml(&self) -> String {
        yaml::to_string(&self.to_value())
    }

    /// The document.
    pub fn to_value(&self) -> Value {
        let mut doc = self.top.clone();
        doc.insert(
            "component".to_owned(),
            Value::Object(self.component.clone()),
        );
        Value::Object(doc)
    }

    /// The signing-relevant content, normalised (OCM `jsonNormalisation/v3`, byte-identical to
    /// `v4alpha1`): no meta, signatures, repository contexts or accesses, only labels marked for
    /// signing, provider as an object, serialised with JSON canonicalisation (RFC 8785).
    pub fn normalised(&self) -> Vec<u8> {
        let component = &self.component;
        let mut out = Map::new();
        for key in ["name", "version"] {
            if let Some(value) = component.get(key) {
                out.insert(key.to_owned(), value.clone());
            }
        }
        out.insert("provider".to_owned(), json!({"name": self.provider()}));
        if let Some(labels) = signing_labels(component.get("labels")) {
            out.insert("labels".to_owned(), labels);
        }
        let strip = |items: Vec<Value>, drop: &[&str]| -> Value {
            Value::Array(
                items
                    .into_iter()
                    .map(|mut item| {
                        if let Some(object) = item.as_object_mut() {
                            let no_access = object
                                .get("access")
                                .and_then(|a| a.get("type"))
                                .and_then(Value::as_str)
                                .is_some_and(|t| t.eq_ignore_ascii_case("none"));
                            for key in drop {
                                object.remove(*key);
                            }
                            if no_access {
                                object.remove("digest");
                            }
                            match signing_labels(object.get("labels")) {
                                Some(labels) => object.insert("labels".to_owned(), labels),
                                None => object.remove("labels"),
                            };
                        }
                        item
                    })
                    .collect(),
            )
        };
        out.insert(
            "resources".to_owned(),
            strip(self.list("resources"), &["access", "srcRefs"]),
        );
        out.insert(
            "sources".to_owned(),
            strip(self.list("sources"), &["access"]),
        );
        out.insert(
            "references".to_owned(),
            strip(self.list("componentReferences"), &[]),
        );
        canonical_json(&json!({ "component": out }))
    }

    /// SHA-256 of [`normalised`](Self::normalised): the digest signatures cover, unchanged by transfers.
    pub fn normalised_digest(&self) -> Digest {
        Algorithm::Sha256.digest(&self.normalised())
    }
}

/// Labels with `signing: true`, reduced to name, version, value and signing; `None` when none remain.
fn signing_labels(labels: Option<&Value>) -> Option<Value> {
    let kept: Vec<Value> = labels?
        .as_array()?
        .iter()
        .filter(|label| {
            matches!(label.get("signing"), Some(Value::Bool(true)))
                || label.get("signing").and_then(Value::as_str) == Some("true")
        })
        .map(|label| {
            let mut reduced = Map::new();
            for key in ["name", "version", "value", "signing"] {
                if let Some(value) = label.get(key) {
                    reduced.insert(key.to_owned(), value.clone());
                }
            }
            Value::Object(reduced)
        })
        .collect();
    (!kept.is_empty()).then_some(Value::Array(kept))
}

/// RFC 8785 serialisation: sorted keys, no whitespace, minimal escaping. (Keys are compared as UTF-8
/// rather than UTF-16, which differs only for characters outside the Basic Multilingual Plane.)
pub fn canonical_json(value: &Value) -> Vec<u8> {
    fn write(value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push(b'{');
                for (i, key) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend(serde_json::to_vec(key).expect("string"));
                    out.push(b':');
                    write(&map[*key], out);
                }
                out.push(b'}');
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out);
                }
                out.push(b']');
            }
            other => out.extend(serde_json::to_vec(other).expect("scalar")),
        }
    }
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

/// OCM component names: a DNS domain (at least two labels, the last two or more letters) and a path
/// of at least one element, all lower case, at most 255 characters.
pub fn validate_name(name: &str) -> Result<(), InvalidName> {
    let fail = || Err(InvalidName(name.to_owned()));
    if name.len() > 255 {
        return fail();
    }
    let Some((domain, path)) = name.split_once('/') else {
        return fail();
    };
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        l.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    let tld_ok = labels
        .last()
        .is_some_and(|t| t.len() >= 2 && t.bytes().all(|b| b.is_ascii_lowercase()));
    if labels.len() < 2 || !labels.iter().all(label_ok) || !tld_ok {
        return fail();
    }
    let element_ok = |e: &str| {
        e.split('.').all(|part| {
            part.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
    };
    if path.split('/').all(element_ok) {
        Ok(())
    } else {
        fail()
    }
}

/// Relaxed semantic versions: an optional `v`, one to three numbers, an optional pre-release and build.
pub fn validate_version(version: &str) -> Result<(), InvalidVersion> {
    let fail = || Err(InvalidVersion(version.to_owned()));
    let core = version.strip_prefix('v').unwrap_or(version);
    let (core, build) = match core.split_once('+') {
        Some((core, build)) => (core, Some(build)),
        None => (core, None),
    };
    let (core, pre) = match core.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (core, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    let identifiers_ok = |s: &str| {
        s.split('.')
            .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    let valid = (1..=3).contains(&numbers.len())
        && numbers
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && pre.is_none_or(identifiers_ok)
        && build.is_none_or(identifiers_ok);
    if valid { Ok(()) } else { fail() }
}

/// A version as an OCI tag: `+` is not allowed in tags, OCM writes `.build-` instead.
pub fn version_to_tag(version: &str) -> String {
    version.replace('+', ".build-")
}

/// The inverse of [`version_to_tag`].
pub fn tag_to_version(tag: &str) -> String {
    tag.replace(".build-", "+")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_the_specification_example() {
        let descriptor = ComponentDescriptor::parse(
            br#"
meta:
  schemaVersion: v2
component:
  name: ocm.software/example
  version: 1.0.0
  provider: acme.org
  repositoryContexts:
    - baseUrl: ghcr.io
      type: OCIRegistry
  resources:
    - name: my-binary
      type: executable
      version: 1.0.0
      relation: local
      access:
        type: localBlob
        localReference: sha256:abc123
        mediaType: application/octet-stream
      digest:
        hashAlgorithm: SHA-256
        normalisationAlgorithm: genericBlobDigest/v1
        value: abc123
      labels:
        - name: downloadName
          value: my-binary
        - name: config-hash
          value: def456
          signing: true
  sources: []
  componentReferences: []
signatures: []
"#,
        )
        .unwrap();
        let expected = r#"{"component":{"name":"ocm.software/example","provider":{"name":"acme.org"},"references":[],"resources":[{"digest":{"hashAlgorithm":"SHA-256","normalisationAlgorithm":"genericBlobDigest/v1","value":"abc123"},"labels":[{"name":"config-hash","signing":true,"value":"def456"}],"name":"my-binary","relation":"local","type":"executable","version":"1.0.0"}],"sources":[],"version":"1.0.0"}}"#;
        assert_eq!(
            String::from_utf8(descriptor.normalised()).unwrap(),
            expected
        );
    }

    #[test]
    fn transfer_relevant_changes_keep_the_digest() {
        let mut descriptor =
            ComponentDescriptor::new("acme.org/app", "1.0.0", json!("acme")).unwrap();
        descriptor.add_resource(
            json!({"name": "img", "type": "ociImage", "version": "1", "relation": "external",
            "access": {"type": "ociArtifact", "imageReference": "a.com/img:1"}}),
        );
        let before = descriptor.normalised_digest();
        descriptor.set_access(
            0,
            &Access::RelativeOciReference {
                reference: "img:1".into(),
            },
        );
        descriptor.push_repository_context(json!({"type": "OCIRegistry", "baseUrl": "b.com"}));
        assert_eq!(descriptor.normalised_digest(), before);
        descriptor.set_labels(json!([{"name": "x", "value": 1, "signing": true}]));
        assert_ne!(descriptor.normalised_digest(), before);
    }

    #[test]
    fn names_versions_and_tags() {
        for ok in [
            "acme.org/app",
            "github.com/acme.org/hello-world",
            "a-b.example.io/x_y/z.w",
        ] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "acme/app",
            "Acme.org/app",
            "acme.org",
            "acme.o/app",
            "acme.org/App",
            "1acme.org/app",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        for ok in ["1.0.0", "v1", "1.2", "1.2.3-rc.1+build.5", "v0.1.0"] {
            assert!(validate_version(ok).is_ok(), "{ok}");
        }
        for bad in ["", "latest", "1.2.3.4", "1..2", "1.2.3-", "x1.0"] {
            assert!(validate_version(bad).is_err(), "{bad}");
        }
        assert_eq!(version_to_tag("1.2.3+ci.42"), "1.2.3.build-ci.42");
        assert_eq!(tag_to_version("1.2.3.build-ci.42"), "1.2.3+ci.42");
    }

    #[test]
    fn refuses_broken_descriptors() {
        let err = |text: &str| {
            ComponentDescriptor::parse(text.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert!(err("meta: {schemaVersion: v3}").contains("wharf reads v2"));
        assert!(err("meta: {schemaVersion: v2}").contains("no component"));
        assert!(
            err("meta: {schemaVersion: v2}\ncomponent: {name: Bad, version: 1.0.0}")
                .contains("not a valid component name")
        );
        assert!(err("{nope").contains("invalid YAML"));
        let bad_access = "meta: {schemaVersion: v2}\ncomponent: {name: a.org/b, version: 1.0.0, resources: [{name: r, type: x, access: {type: localBlob}}]}";
        assert!(
            err(bad_access).contains("resource 0"),
            "{}",
            err(bad_access)
        );
    }
}
