//! `LOCATION//component.name[:version]`, OCM's own notation.

use std::fmt;

use wharf_store::Location;

use super::OcmError;
use super::descriptor::{validate_name, validate_version};

/// `LOCATION//name[:version]`, where LOCATION is a registry `HOST[:PORT][/PATH]` (a scheme such as
/// `https://` is accepted, as OCM writes it) or `ctf:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentAddress {
    /// Where the component lives.
    pub location: Location,
    /// The component name.
    pub name: String,
    /// The version, if given.
    pub version: Option<String>,
}

impl ComponentAddress {
    /// Parses `LOCATION//name[:version]`.
    pub fn parse(text: &str) -> Result<ComponentAddress, OcmError> {
        let fail = |why: String| OcmError::Location(format!("{text:?}: {why}"));
        let scheme_end = text.find("://").map_or(0, |i| i + 3);
        let split = text[scheme_end..]
            .find("//")
            .map(|i| i + scheme_end)
            .ok_or_else(|| fail("expected LOCATION//component.name[:version]".into()))?;
        let location = Location::parse(&text[..split]).map_err(|e| fail(e.reason))?;
        let component = &text[split + 2..];
        let (name, version) = match component.rsplit_once(':') {
            Some((name, version)) => (name, Some(version.to_owned())),
            None => (component, None),
        };
        validate_name(name).map_err(|e| fail(e.to_string()))?;
        if let Some(version) = &version {
            validate_version(version).map_err(|e| fail(e.to_string()))?;
        }
        Ok(ComponentAddress {
            location,
            name: name.to_owned(),
            version,
        })
    }
}

impl fmt::Display for ComponentAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}//{}", self.location, self.name)?;
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
        assert_eq!(a.location, Location::parse("localhost:5000/ocm").unwrap());
        assert_eq!(
            (a.name.as_str(), a.version.as_deref()),
            ("acme.org/app", Some("1.0.0"))
        );
        let b = ComponentAddress::parse(
            "http://localhost:9999/local/components//example.com/component-1",
        )
        .unwrap();
        assert_eq!(
            b.location.to_string(),
            "localhost:9999/local/components".to_owned()
        );
        assert_eq!(b.version, None);
        let c = ComponentAddress::parse("ctf:./out.tgz//acme.org/app:1.0.0+build.1").unwrap();
        assert_eq!(c.location, Location::Ctf("./out.tgz".into()));
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
