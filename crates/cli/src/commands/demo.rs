//! `wharf demo`: the main job on generated content, narrated.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, ensure};
use futures_util::TryStreamExt;
use wharf_copy::{CopyOptions, copy_image};
use wharf_sample::Sample;
use wharf_store::layout::Layout;
use wharf_store::registry::{Registries, RegistryOptions};
use wharf_store::{Address, ManifestRole, Op, ReadStore, verified};

use crate::args::DemoArgs;
use crate::output::human_bytes;

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let kept = args.keep.is_some();
    let temp;
    let base: PathBuf = match args.keep {
        Some(dir) => dir,
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_owned()
        }
    };
    let source_dir = base.join("source");
    let mirror_dir = base.join("mirror");

    println!("1. Generating a multi-arch image (linux/amd64, linux/arm64) in an OCI layout");
    let source_layout = Layout::create(&source_dir).await?;
    let sample = Sample::multi_arch("wharf-demo/app", 2026);
    let pushed = sample
        .push(&source_layout, ManifestRole::Tag("1.0"))
        .await?;
    let total: u64 = pushed.blobs.iter().map(|b| b.size).sum();
    println!(
        "   oci:{}:1.0  {}  ({} manifests, {} blobs, {})",
        source_dir.display(),
        pushed.root.digest,
        pushed.manifests.len(),
        pushed.blobs.len(),
        human_bytes(total)
    );

    println!("2. Copying it to a second layout");
    let source = Address::parse(&format!("oci:{}:1.0", source_dir.display()))?;
    let mirror = Address::parse(&format!("oci:{}:1.0", mirror_dir.display()))?;
    let registries = Registries::new(RegistryOptions::default())?;
    let report = copy_image(
        &source,
        &mirror,
        &registries,
        &registries,
        &CopyOptions::default(),
    )
    .await?;
    println!(
        "   {} manifests and {} blobs ({}) copied",
        report.manifests_copied,
        report.blobs_copied,
        human_bytes(report.bytes_copied)
    );

    println!("3. Re-hashing every manifest and blob at the destination");
    let mirror_layout = Layout::open(&mirror_dir).await?;
    let resolved = mirror_layout.resolve("1.0").await?;
    ensure!(
        resolved.digest == pushed.root.digest,
        "the mirror's 1.0 is {}, expected {}",
        resolved.digest,
        pushed.root.digest
    );
    for descriptor in pushed.manifests.iter().chain(&pushed.blobs) {
        let target = format!("{} {}", mirror_layout.location(), descriptor.digest);
        let body = mirror_layout.fetch(descriptor).await?;
        let mut checked = verified(descriptor, Op::Fetch, target, body);
        while checked.try_next().await?.is_some() {}
    }
    println!(
        "   all {} digests match; the root is still {}",
        pushed.manifests.len() + pushed.blobs.len(),
        resolved.digest
    );

    println!("4. Copying again: nothing left to move");
    let again = copy_image(
        &source,
        &mirror,
        &registries,
        &registries,
        &CopyOptions::default(),
    )
    .await?;
    ensure!(
        again.blobs_copied == 0 && again.manifests_copied == 0,
        "second copy moved content"
    );
    println!("   root already present, 0 blobs copied");

    if kept {
        println!("Kept {source} and {mirror}");
    }
    println!("Demo finished: the image arrived with every digest intact.");
    Ok(ExitCode::SUCCESS)
}
