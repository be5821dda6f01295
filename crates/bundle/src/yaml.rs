//! YAML in and out, in one place, so the YAML library can change without touching anything else.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Parses YAML (JSON is accepted too: it is YAML). The error names line and column.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_saphyr::from_str(text)
        .map_err(|e| e.to_string().lines().next().unwrap_or_default().to_owned())
}

/// Writes YAML, long strings on one line (references and digests stay greppable).
pub fn to_string<T: Serialize>(value: &T) -> String {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(value, options)
        .expect("JSON-shaped values always serialise to YAML")
}
