//! `LOCATION//component.name[:version]`, OCM's own notation, and the locations themselves.

use std::fmt;
use std::path::PathBuf;

use wharf_store::registry::Registries;

use super::descriptor::{validate_name, validate_version};
use super::{OcmError, OcmRepository};

/// An OCM repository as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositorySpec {
    /// `[http://|https://|oci://]host[:port][/base]`.
    Registry(String),
    /// `ctf:PATH` (a directory, `.tar` or `.tgz`).
    Ctf(PathBuf),
}

impl RepositorySpec {
    /// Parses a repository location.
    pub fn parse(text: &str) -> Result<RepositorySpec, OcmError> {
        if let Some(path) = text.strip_prefix("ctf:") {
            if path.is_empty() {
                return Err(OcmError::Location(format!(
                    "{text:?}: the CTF path is empty"
                )));
            }
            return Ok(RepositorySpec::Ctf(PathBuf::from(path)));
        }
        let bare = ["https://", "http://", "oci://"]
            .iter()
            .find_map(|scheme| text.strip_prefix(scheme))
            .unwrap_or(text)
            .trim_end_matches('/');
        let host = bare.split('/').next().unwrap_or_default();
        if host.is_empty() || !wharf_oci::is_valid_domain(host) {
            return Err(OcmError::Location(format!(
                "{text:?}: expected ctf:PATH or a registry HOST[:PORT][/PATH]"
            )));
        }
        Ok(RepositorySpec::Registry(bare.to_owned()))
    }

    /// Opens it for reading; a CTF must exist.
    pub async fn open_read(&self, registries: &Registries) -> Result<OcmRepository, OcmError> {
        match self {
            RepositorySpec::Registry(text) => OcmRepository::registry(registries.clone(), text),
            RepositorySpec::Ctf(path) => Ok(OcmRepository::Ctf(registries.ctf(path, false).await?)),
        }
    }

    /// Opens it for writing; a CTF is created if missing, and written out by
    /// [`Registries::finish`].
    pub async fn open_write(&self, registries: &Registries) -> Result<OcmRepository, OcmError> {
        match self {
            RepositorySpec::Registry(text) => OcmRepository::registry(registries.clone(), text),
            RepositorySpec::Ctf(path) => Ok(OcmRepository::Ctf(registries.ctf(path, true).await?)),
        }
    }
}

impl fmt::Display for RepositorySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepositorySpec::Registry(text) => f.write_str(text),
            RepositorySpec::Ctf(path) => write!(f, "ctf:{}", path.display()),
        }
    }
}

/// `LOCATION//name[:version]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentAddress {
    /// Where the component lives.
    pub repository: RepositorySpec,
    /// The component name.
    pub name: String,
    /// The version, if given.
    pub version: Option<String>,
}

impl ComponentAddress {
    /// Parses `LOCATION//name[:version]`.
    pub fn parse(text: &str) -> Result<ComponentAddress, OcmError> {
        let fail = |why: &str| OcmError::Location(format!("{text:?}: {why}"));
        let scheme_end = text.find("://").map_or(0, |i| i + 3);
        let split = text[scheme_end..]
            .find("//")
            .map(|i| i + scheme_end)
            .ok_or_else(|| fail("expected LOCATION//component.name[:version]"))?;
        let repository = RepositorySpec::parse(&text[..split])?;
        let component = &text[split + 2..];
        let (name, version) = match component.rsplit_once(':') {
            Some((name, version)) => (name, Some(version.to_owned())),
            None => (component, None),
        };
        validate_name(name).map_err(|e| fail(&e))?;
        if let Some(version) = &version {
            validate_version(version).map_err(|e| fail(&e))?;
        }
        Ok(ComponentAddress {
            repository,
            name: name.to_owned(),
            version,
        })
    }
}

impl fmt::Display for ComponentAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}//{}", self.repository, self.name)?;
        if let Some(version) = &self.version {
            write!(f, ":{version}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ocm_notation() {
        let a = ComponentAddress::parse("localhost:5000/ocm//acme.org/app:1.0.0").unwrap();
        assert_eq!(
            a.repository,
            RepositorySpec::Registry("localhost:5000/ocm".into())
        );
        assert_eq!(
            (a.name.as_str(), a.version.as_deref()),
            ("acme.org/app", Some("1.0.0"))
        );
        let b = ComponentAddress::parse(
            "http://localhost:9999/local/components//example.com/component-1",
        )
        .unwrap();
        assert_eq!(
            b.repository,
            RepositorySpec::Registry("localhost:9999/local/components".into())
        );
        assert_eq!(b.version, None);
        let c = ComponentAddress::parse("ctf:./out.tgz//acme.org/app:1.0.0+build.1").unwrap();
        assert_eq!(c.repository, RepositorySpec::Ctf("./out.tgz".into()));
        assert_eq!(c.to_string(), "ctf:./out.tgz//acme.org/app:1.0.0+build.1");
        for bad in [
            "localhost:5000/ocm/acme.org/app",
            "localhost:5000//Acme.org/app",
            "ctf://acme.org/app",
            "//acme.org/app:1",
            "x//acme.org/app:latest",
        ] {
            assert!(ComponentAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
