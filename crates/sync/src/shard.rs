//! Shares of one sync for several machines: `--shard I/N` keeps the roots whose source hashes to
//! share `I` of `N`. Each root is placed by its own source reference alone, so adding or removing an
//! image moves no other image between shares, and every machine expanding the same sync file agrees
//! on the split without talking to the others.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use wharf_oci::Algorithm;

/// The variable a Kubernetes Indexed Job sets to each pod's index, read by `--shard auto/N`.
pub const JOB_INDEX_VARIABLE: &str = "JOB_COMPLETION_INDEX";

/// One share of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This share, from 0.
    pub index: u32,
    /// How many shares there are.
    pub count: u32,
}

/// Why a `--shard` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid shard {input:?}: {reason}")]
pub struct ShardError {
    input: String,
    reason: String,
}

impl Shard {
    /// Parses `I/N` (0 ≤ I < N), or `auto/N` with I taken from `job_index` (the value of
    /// [`JOB_INDEX_VARIABLE`]).
    pub fn parse(input: &str, job_index: Option<&str>) -> Result<Shard, ShardError> {
        let fail = |reason: String| ShardError {
            input: input.to_owned(),
            reason,
        };
        let (index, count) = input
            .split_once('/')
            .ok_or_else(|| fail("expected I/N (such as 0/4) or auto/N".into()))?;
        let count: u32 = count
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| fail(format!("{count:?} is not a number of shares (1 or more)")))?;
        let index: u32 = if index == "auto" {
            let value = job_index.ok_or_else(|| {
                fail(format!(
                    "auto needs ${JOB_INDEX_VARIABLE} (set in each pod of an Indexed Job)"
                ))
            })?;
            value.trim().parse().map_err(|_| {
                fail(format!(
                    "${JOB_INDEX_VARIABLE} is {value:?}, not a share number"
                ))
            })?
        } else {
            index
                .parse()
                .map_err(|_| fail(format!("{index:?} is not a share number")))?
        };
        if index >= count {
            return Err(fail(format!(
                "share {index} does not exist: shares are numbered 0 to {}",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }

    /// True when the root with this source belongs to this share.
    pub fn takes(&self, source: &str) -> bool {
        let digest = Algorithm::Sha256.digest(source.as_bytes());
        let prefix = u64::from_str_radix(&digest.hex()[..16], 16).expect("a digest is hex");
        prefix % u64::from(self.count) == u64::from(self.index)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Serialize for Shard {
    fn serialize<S: Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        out.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Shard {
    fn deserialize<D: Deserializer<'de>>(input: D) -> Result<Shard, D::Error> {
        let text = String::deserialize(input)?;
        Shard::parse(&text, None).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACED: [u32; 3] = [1, 2, 3];

    #[test]
    fn parses_shares_and_refuses_what_is_not_one() {
        assert_eq!(Shard::parse("1/4", None), Ok(Shard { index: 1, count: 4 }));
        assert_eq!(
            Shard::parse("auto/3", Some("2")),
            Ok(Shard { index: 2, count: 3 })
        );
        for (bad, why) in [
            ("4/4", "numbered 0 to 3"),
            ("1/0", "not a number of shares"),
            ("x/2", "not a share number"),
            ("2", "expected I/N"),
            ("auto/2", "JOB_COMPLETION_INDEX"),
        ] {
            let error = Shard::parse(bad, None).unwrap_err().to_string();
            assert!(error.contains(why), "{bad}: {error}");
        }
        let error = Shard::parse("auto/2", Some("five"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"five\""), "{error}");
    }

    #[test]
    fn every_source_lands_in_exactly_one_share_of_fair_size() {
        let sources: Vec<String> = (0..400).map(|i| format!("r.local/app{i}:v1")).collect();
        let shares: Vec<Shard> = (0..4).map(|index| Shard { index, count: 4 }).collect();
        for source in &sources {
            assert_eq!(shares.iter().filter(|s| s.takes(source)).count(), 1);
        }
        for share in &shares {
            let taken = sources.iter().filter(|s| share.takes(s)).count();
            assert!((60..140).contains(&taken), "share {share}: {taken} of 400");
        }
    }

    #[test]
    fn placement_is_the_same_in_every_version() {
        // Pods running different wharf versions must agree: the hash is part of the format.
        let placed: Vec<u32> = [
            "r.local/app0:v1",
            "r.local/app1:v1",
            "quay.io/team/x@sha256:00",
        ]
        .iter()
        .map(|s| {
            (0..4)
                .find(|&index| Shard { index, count: 4 }.takes(s))
                .unwrap()
        })
        .collect();
        assert_eq!(placed, PLACED);
    }
}
