//! YAML in and out, in one place, so the YAML library can change without touching anything else.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// YAML that cannot be read as what it should be; the message names line and column.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.to_string().lines().next().unwrap_or_default())]
pub struct YamlError(#[from] serde_saphyr::Error);

/// Parses YAML (JSON is accepted too: it is YAML).
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    Ok(serde_saphyr::from_str(text)?)
}

/// Writes YAML, long strings on one line (references and digests stay greppable).
pub fn to_string<T: Serialize>(value: &T) -> String {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(value, options)
        .expect("JSON-shaped values always serialise to YAML")
}
