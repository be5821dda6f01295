//! `wharf verify LOCATION`.

use std::process::ExitCode;

use anyhow::Result;
use wharf_copy::{VerifyReport, verify};
use wharf_oci::Descriptor;
use wharf_store::{Address, ReadStore};

use super::parse_address;
use super::registry_args::registries;
use crate::args::{Format, VerifyArgs};
use crate::output::{human_bytes, out};

pub async fn run(args: VerifyArgs) -> Result<ExitCode> {
    let registries = registries(&args.registry, None)?;
    let concurrency = usize::from(args.jobs);
    let referrers = !args.no_referrers;
    let mut report = VerifyReport::default();
    if let Some(path) = Address::whole_ctf(&args.location) {
        let ctf = registries.ctf(&path, false).await?;
        let mut repositories: Vec<String> = ctf
            .artifacts()
            .await
            .into_iter()
            .map(|a| a.repository)
            .collect();
        repositories.sort();
        repositories.dedup();
        for repository in repositories {
            let store = ctf.repository(&repository);
            let roots = all_roots(&store).await?;
            report.add(verify(&store, &roots, referrers, concurrency).await);
        }
    } else {
        let location = parse_address(&args.location, "verified")?;
        let store = location.open_read(&registries).await?;
        let roots = if location.tag().is_some() || location.digest().is_some() {
            vec![location.resolve_in(store.as_ref()).await?]
        } else {
            all_roots(store.as_ref()).await?
        };
        report = verify(store.as_ref(), &roots, referrers, concurrency).await;
    }
    match args.output {
        Format::Json => out!("{}", serde_json::to_string_pretty(&report)?),
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
