//! Content digests (`algorithm:hex`) and a streaming digester.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// A digest algorithm wharf can compute and verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the algorithm of nearly all OCI content.
    Sha256,
    /// SHA-512, registered by the OCI image spec.
    Sha512,
}

impl Algorithm {
    /// The algorithm's name as it appears in a digest string.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Number of hex characters in an encoded digest of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// Starts a streaming digester for this algorithm.
    pub fn digester(self) -> Digester {
        Digester::new(self)
    }

    /// Digest of a complete byte slice.
    pub fn digest(self, bytes: &[u8]) -> Digest {
        let mut digester = self.digester();
        digester.update(bytes);
        digester.finish()
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a valid digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest {input:?}: {reason}")]
pub struct DigestError {
    /// The string that failed to parse.
    pub input: String,
    /// What is wrong with it.
    pub reason: DigestErrorReason,
}

/// The specific problem with a digest string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestErrorReason {
    /// No `algorithm:` prefix.
    #[error("expected the form algorithm:hex, e.g. sha256:<64 hex characters>")]
    MissingAlgorithm,
    /// The algorithm part does not follow the OCI grammar.
    #[error("malformed algorithm {0:?}")]
    MalformedAlgorithm(String),
    /// A well-formed algorithm that wharf does not implement.
    #[error("unsupported digest algorithm {0:?} (wharf supports sha256 and sha512)")]
    UnsupportedAlgorithm(String),
    /// The encoded part has the wrong length for its algorithm.
    #[error("{algorithm} needs {expected} hex characters, found {found}")]
    WrongLength {
        /// The algorithm named in the digest.
        algorithm: Algorithm,
        /// Hex characters the algorithm requires.
        expected: usize,
        /// Hex characters found.
        found: usize,
    },
    /// The encoded part has a character outside `[0-9a-f]`.
    #[error("encoded part must be lowercase hex [0-9a-f]")]
    NotLowercaseHex,
}

/// A validated content digest such as `sha256:e3b0…`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    /// The whole `algorithm:hex` string, kept so `as_str` costs nothing.
    text: String,
}

impl Digest {
    /// Parses and validates `algorithm:hex`.
    pub fn parse(input: &str) -> Result<Digest, DigestError> {
        let fail = |reason| DigestError {
            input: input.to_owned(),
            reason,
        };
        let (algorithm, encoded) = input
            .split_once(':')
            .ok_or_else(|| fail(DigestErrorReason::MissingAlgorithm))?;
        if !is_algorithm_grammar(algorithm) {
            return Err(fail(DigestErrorReason::MalformedAlgorithm(
                algorithm.to_owned(),
            )));
        }
        let algorithm = match algorithm {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => {
                return Err(fail(DigestErrorReason::UnsupportedAlgorithm(
                    other.to_owned(),
                )));
            }
        };
        if !encoded
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(fail(DigestErrorReason::NotLowercaseHex));
        }
        if encoded.len() != algorithm.hex_len() {
            return Err(fail(DigestErrorReason::WrongLength {
                algorithm,
                expected: algorithm.hex_len(),
                found: encoded.len(),
            }));
        }
        Ok(Digest {
            algorithm,
            text: input.to_owned(),
        })
    }

    /// The digest's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex-encoded part after the colon.
    pub fn hex(&self) -> &str {
        &self.text[self.algorithm.as_str().len() + 1..]
    }

    /// The full `algorithm:hex` string.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first 12 hex characters, for compact human output.
    pub fn short(&self) -> &str {
        &self.hex()[..12]
    }
}

/// `algorithm-component ([+._-] algorithm-component)*`, components `[a-z0-9]+`
/// (the OCI image spec grammar; distribution also allows upper case, which no real algorithm uses).
fn is_algorithm_grammar(s: &str) -> bool {
    !s.is_empty()
        && s.split(['+', '.', '_', '-'])
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric()))
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.text)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Hashes bytes as they stream past; `finish` yields the [`Digest`].
#[derive(Clone)]
pub struct Digester {
    state: DigesterState,
    bytes: u64,
}

#[derive(Clone)]
enum DigesterState {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Digester {
    /// A fresh digester for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Digester {
        let state = match algorithm {
            Algorithm::Sha256 => DigesterState::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => DigesterState::Sha512(sha2::Sha512::new()),
        };
        Digester { state, bytes: 0 }
    }

    /// Feeds more bytes.
    pub fn update(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        match &mut self.state {
            DigesterState::Sha256(h) => h.update(chunk),
            DigesterState::Sha512(h) => h.update(chunk),
        }
    }

    /// Bytes fed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The state reached so far, as bytes another process can carry on from with
    /// [`Digester::restore`] (an upload session kept in shared storage, continued by another
    /// registry instance).
    pub fn save(&self) -> Vec<u8> {
        use sha2::digest::common::hazmat::SerializableState;
        let mut out = self.bytes.to_be_bytes().to_vec();
        match &self.state {
            DigesterState::Sha256(h) => out.extend_from_slice(&h.serialize()),
            DigesterState::Sha512(h) => out.extend_from_slice(&h.serialize()),
        }
        out
    }

    /// A digester for `algorithm` carrying on from a state [`Digester::save`] wrote; `None` when
    /// the bytes are no such state.
    pub fn restore(algorithm: Algorithm, saved: &[u8]) -> Option<Digester> {
        use sha2::digest::common::hazmat::SerializableState;
        let (count, state) = saved.split_at_checked(8)?;
        let bytes = u64::from_be_bytes(count.try_into().ok()?);
        let state = match algorithm {
            Algorithm::Sha256 => {
                DigesterState::Sha256(sha2::Sha256::deserialize(state.try_into().ok()?).ok()?)
            }
            Algorithm::Sha512 => {
                DigesterState::Sha512(sha2::Sha512::deserialize(state.try_into().ok()?).ok()?)
            }
        };
        Some(Digester { state, bytes })
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self.state {
            DigesterState::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            DigesterState::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest {
            algorithm,
            text: format!("{algorithm}:{hex}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_state_carries_on_elsewhere() {
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut first = Digester::new(algorithm);
            first.update(b"hello, ");
            let saved = first.save();
            let mut second = Digester::restore(algorithm, &saved).unwrap();
            second.update(b"world");
            assert_eq!(second.bytes(), 12);
            assert_eq!(second.finish(), algorithm.digest(b"hello, world"));
            assert!(Digester::restore(algorithm, &saved[..saved.len() - 1]).is_none());
        }
        assert!(
            Digester::restore(Algorithm::Sha512, &Digester::new(Algorithm::Sha256).save())
                .is_none()
        );
    }

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digests_known_values() {
        assert_eq!(Algorithm::Sha256.digest(b"").as_str(), EMPTY_SHA256);
        let sha512 = Algorithm::Sha512.digest(b"abc");
        assert_eq!(
            sha512.hex(),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn streaming_equals_one_shot() {
        let mut d = Digester::new(Algorithm::Sha256);
        d.update(b"hello ");
        d.update(b"world");
        assert_eq!(d.bytes(), 11);
        assert_eq!(d.finish(), Algorithm::Sha256.digest(b"hello world"));
    }

    #[test]
    fn parses_and_round_trips() {
        let d = Digest::parse(EMPTY_SHA256).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY_SHA256);
        assert_eq!(d.short(), "e3b0c44298fc");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    }

    #[test]
    fn rejects_each_malformed_form() {
        let reason = |s: &str| Digest::parse(s).unwrap_err().reason;
        assert_eq!(reason("e3b0c442"), DigestErrorReason::MissingAlgorithm);
        assert_eq!(
            reason(":abc"),
            DigestErrorReason::MalformedAlgorithm(String::new())
        );
        assert_eq!(
            reason("sha256+:abc"),
            DigestErrorReason::MalformedAlgorithm("sha256+".into())
        );
        assert_eq!(
            reason("md5:d41d8cd98f00b204e9800998ecf8427e"),
            DigestErrorReason::UnsupportedAlgorithm("md5".into())
        );
        assert_eq!(
            reason("sha256:abc"),
            DigestErrorReason::WrongLength {
                algorithm: Algorithm::Sha256,
                expected: 64,
                found: 3
            }
        );
        assert_eq!(
            reason(&EMPTY_SHA256.to_uppercase().replace("SHA256", "sha256")),
            DigestErrorReason::NotLowercaseHex
        );
        assert_eq!(
            reason(&format!("sha512:{}", "a".repeat(64))),
            DigestErrorReason::WrongLength {
                algorithm: Algorithm::Sha512,
                expected: 128,
                found: 64
            }
        );
        let message = Digest::parse("md5:00").unwrap_err().to_string();
        assert_eq!(
            message,
            "invalid digest \"md5:00\": unsupported digest algorithm \"md5\" (wharf supports sha256 and sha512)"
        );
    }
}
