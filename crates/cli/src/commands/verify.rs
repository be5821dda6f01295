//! `wharf verify LOCATION`.

use std::process::ExitCode;

use anyhow::Result;
use wharf_copy::{VerifyReport, verify};
use wharf_oci::Descriptor;
use wharf_store::{Location, Mode, ReadStore};

use super::parse_address;
use super::registry_args::session;
use crate::args::{Format, VerifyArgs};
use crate::output::{human_bytes, out, out_json};

pub async fn run(args: VerifyArgs) -> Result<ExitCode> {
    let session = session(&args.registry)?;
    let concurrency = usize::from(args.jobs);
    let referrers = !args.no_referrers;
    let address = parse_address(&args.location, "verified")?;
    let mut report = VerifyReport::default();
    if address.is_whole() && matches!(address.location, Location::Ctf(_)) {
        let namespace = session.namespace(&address.location, Mode::Read).await?;
        for repository in namespace.repositories().await? {
            let store = namespace.read(&repository)?;
            let roots = all_roots(store.as_ref()).await?;
            report.add(verify(store.as_ref(), &roots, referrers, concurrency).await);
        }
    } else {
        let store = session.read(&address).await?;
        let roots = if address.tag().is_some() || address.digest().is_some() {
            vec![address.resolve_in(store.as_ref()).await?]
        } else {
            all_roots(store.as_ref()).await?
        };
        report = verify(store.as_ref(), &roots, referrers, concurrency).await;
    }
    match args.output {
        Format::Json => out_json(&report)?,
        Format::Text => {
            for problem in &report.problems {
                let parent = problem
                    .referenced_by
                    .as_ref()
                    .map(|p| format!(" (referenced by {p})"))
                    .unwrap_or_default();
                out!(
                    "problem: {} {}{parent}: {}",
                    problem.kind,
                    problem.digest,
                    problem.error
                );
            }
            out!(
                "verified {}: {} roots, {} manifests and {} blobs ({}) whole; {} problems",
                args.location,
                report.roots,
                report.manifests,
                report.blobs,
                human_bytes(report.bytes),
                report.problems.len()
            );
        }
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn all_roots(store: &dyn ReadStore) -> Result<Vec<Descriptor>> {
    Ok(store.roots().await?.into_iter().map(|(_, d)| d).collect())
}
