//! YAML in and out, in one place, so the YAML library can change without touching anything else.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Parses YAML (JSON is accepted too: it is YAML). The error names line and column.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_saphyr::from_str(text)
        .map_err(|e| e.to_string().lines().next().unwrap_or_default().to_owned())
}

/// Writes YAML.
pub fn to_string<T: Serialize>(value: &T) -> String {
    serde_saphyr::to_string(value).expect("JSON-shaped values always serialise to YAML")
}
