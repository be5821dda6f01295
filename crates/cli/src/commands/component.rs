//! `wharf component build | transfer | get | download | image-ref`.

use crate::output::{out, out_json};
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde_json::json;
use std::sync::Arc;

use wharf_bundle::catalog;
use wharf_bundle::ocm::{
    self, ComponentAddress, ComponentVersion, ListOptions, Located, OcmRepository, ResourceMode,
    Source, TransferOptions,
};
use wharf_copy::{CopyOptions, Job, Silent, copy_graph};
use wharf_store::layout::Layout;
use wharf_store::{Location, ManifestRole, Mode, Op, Session, Store, verified};

use super::registry_args::{session, sessions};
use crate::args::{
    ComponentBuildArgs, ComponentCommand, ComponentDownloadArgs, ComponentGetArgs,
    ComponentImageRefArgs, ComponentListArgs, ComponentTransferArgs, DocumentFormat, Format,
    IndexCommand, IndexRebuildArgs, ResourceModeArg,
};
use crate::progress::{self, Progress};

pub async fn run(command: ComponentCommand) -> Result<ExitCode> {
    match command {
        ComponentCommand::Build(args) => build(args).await,
        ComponentCommand::Transfer(args) => transfer(args).await,
        ComponentCommand::Get(args) => get(args).await,
        ComponentCommand::Download(args) => download(args).await,
        ComponentCommand::ImageRef(args) => image_ref(args).await,
        ComponentCommand::List(args) => list(args).await,
        ComponentCommand::Index(IndexCommand::Rebuild(args)) => rebuild(args).await,
    }
}

async fn list(args: ComponentListArgs) -> Result<ExitCode> {
    let location = Location::parse(&args.location).context("location")?;
    let session = session(&args.registry)?;
    let repository = OcmRepository::open(&session, &location, Mode::Read).await?;
    let options = ListOptions {
        catalog: (!args.scan).then(|| args.catalog_repository.clone()),
        filters: args.filter,
        verify: args.verify,
    };
    let bar = progress::counter(true, "versions");
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let listed = repository.list(&options, &progress).await;
    bar.finish_and_clear();
    let listed = listed?;
    if listed.source == Source::Scan && !args.scan && location.host().is_some() {
        eprintln!(
            "note: {location} has no catalog ({}); scanned its repositories instead (wharf component index rebuild writes one)",
            args.catalog_repository
        );
    }
    for why in &listed.skipped {
        eprintln!("warning: skipped {why}");
    }
    if !listed.gone.is_empty() {
        eprintln!(
            "note: {} catalog entries name component versions that are no longer stored; left out",
            listed.gone.len()
        );
    }
    let rows: Vec<serde_json::Value> = listed
        .entries
        .iter()
        .map(|entry| {
            let (name, version) = entry.component().unwrap_or_default();
            json!({
                "name": name,
                "version": version,
                "repository": entry.repository(),
                "digest": entry.digest(),
                "provider": entry.get(catalog::keys::PROVIDER).unwrap_or_default(),
                "tag": entry.get(catalog::keys::TAG),
            })
        })
        .collect();
    match args.output {
        Format::Json => out_json(&rows)?,
        Format::Text => {
            let mut current = "";
            for entry in &listed.entries {
                let (name, version) = entry.component().unwrap_or_default();
                if name != current {
                    let provider = entry.get(catalog::keys::PROVIDER).unwrap_or("-");
                    out!("{name}  (provider {provider})");
                    current = name;
                }
                out!("  {version:<24} {}", entry.digest());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn rebuild(args: IndexRebuildArgs) -> Result<ExitCode> {
    let location = Location::parse(&args.location).context("location")?;
    let session = session(&args.registry)?;
    let repository = OcmRepository::open(&session, &location, Mode::Write).await?;
    let bar = progress::counter(true, "versions");
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let rebuilt = repository
        .rebuild_catalog(&args.catalog_repository, &progress)
        .await;
    bar.finish_and_clear();
    let (listing, added) = rebuilt?;
    session.finish().await?;
    for why in &listing.skipped {
        eprintln!("warning: skipped {why}");
    }
    out!(
        "{} component versions found, {added} added to the catalog {}",
        listing.entries.len(),
        repository.catalog(&args.catalog_repository).path()
    );
    Ok(ExitCode::SUCCESS)
}

async fn build(args: ComponentBuildArgs) -> Result<ExitCode> {
    let session = session(&args.registry)?;
    let target = Location::parse(&args.to).context("--to")?;
    let repository = OcmRepository::open(&session, &target, Mode::Write)
        .await?
        .with_catalog(args.catalog.repository());
    let job = Job::new(CopyOptions::default(), Arc::new(Silent));
    let built = ocm::build(&args.file, &repository, &session, &job).await?;
    session.finish().await?;
    for descriptor in built {
        out!(
            "built {}:{} into {target}  (descriptor digest {})",
            descriptor.name(),
            descriptor.version(),
            descriptor.normalised_digest()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn transfer(args: ComponentTransferArgs) -> Result<ExitCode> {
    let source = ComponentAddress::parse(&args.source).context("source")?;
    let Some(version) = source.version.clone() else {
        bail!(
            "source {:?}: name the version to transfer (LOCATION//NAME:VERSION)",
            args.source
        );
    };
    let destination = Location::parse(&args.destination).context("destination")?;
    let (sources, destinations) = sessions(&args.sides)?;
    let src = OcmRepository::open(&sources, &source.location, Mode::Read).await?;
    let dst = OcmRepository::open(&destinations, &destination, Mode::Write)
        .await?
        .with_catalog(args.catalog.repository());
    let options = TransferOptions {
        recursive: args.recursive,
        copy_resources: args.copy_resources,
        mode: match args.resource_mode {
            ResourceModeArg::Relative => ResourceMode::Relative,
            ResourceModeArg::LocalBlob => ResourceMode::LocalBlob,
        },
        overwrite: args.overwrite,
        rebase: !args.no_rebase,
    };
    let copy = CopyOptions {
        concurrency: usize::from(args.jobs),
        ..CopyOptions::default()
    };
    let progress = Arc::new(Progress::new(!args.quiet, None));
    let job = Job::new(copy, progress.clone());
    let done = ocm::transfer(&src, &dst, &source.name, &version, &sources, &job, &options).await;
    progress.clear();
    let done = done?;
    destinations.finish().await?;
    match args.output {
        Format::Json => {
            let items: Vec<_> = done
                .iter()
                .map(|t| {
                    json!({"component": t.component, "copied": t.copied, "resourcesCopied": t.resources_copied, "digest": t.digest})
                })
                .collect();
            out_json(&json!({"destination": destination.to_string(), "components": items}))?;
        }
        Format::Text => {
            for t in &done {
                let what = if t.copied {
                    "transferred"
                } else {
                    "already present:"
                };
                out!(
                    "{what} {} to {destination} ({} resources copied, descriptor digest {})",
                    t.component,
                    t.resources_copied,
                    t.digest
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the address's repository and reads its version.
async fn read(
    address: &str,
    session: &Session,
) -> Result<(ComponentAddress, OcmRepository, ComponentVersion)> {
    let parsed = ComponentAddress::parse(address)?;
    let Some(version) = parsed.version.clone() else {
        bail!("{address:?}: name the version (LOCATION//NAME:VERSION)");
    };
    let repository = OcmRepository::open(session, &parsed.location, Mode::Read).await?;
    let cv = repository.read(&parsed.name, &version).await?;
    Ok((parsed, repository, cv))
}

async fn get(args: ComponentGetArgs) -> Result<ExitCode> {
    let session = session(&args.registry)?;
    let address = ComponentAddress::parse(&args.component)?;
    if address.version.is_none() {
        let repository = OcmRepository::open(&session, &address.location, Mode::Read).await?;
        let versions = repository.versions(&address.name).await?;
        match args.output {
            DocumentFormat::Json => {
                out_json(&json!({"component": address.name, "versions": versions}))?
            }
            DocumentFormat::Yaml => {
                for version in versions {
                    out!("{version}");
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (_, _, cv) = read(&args.component, &session).await?;
    if args.digest {
        out!("{}", cv.descriptor.normalised_digest());
        return Ok(ExitCode::SUCCESS);
    }
    let mut stdout = std::io::stdout().lock();
    match args.output {
        DocumentFormat::Json => {
            stdout.write_all(&cv.descriptor.to_json())?;
            writeln!(stdout)?;
        }
        DocumentFormat::Yaml => write!(stdout, "{}", cv.descriptor.to_yaml())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The resource named `name` of a component version, located from where it was read.
fn located(
    repository: &OcmRepository,
    cv: &ComponentVersion,
    name: &str,
    rebase: bool,
) -> Result<Located> {
    let resources = cv.descriptor.resources();
    let Some(resource) = resources.iter().find(|r| r.name == name) else {
        let names: Vec<&str> = resources.iter().map(|r| r.name.as_str()).collect();
        bail!(
            "{}:{} has no resource {name:?} (it has: {})",
            cv.descriptor.name(),
            cv.descriptor.version(),
            names.join(", ")
        );
    };
    Ok(ocm::locate(repository, cv, resource, rebase)?)
}

async fn image_ref(args: ComponentImageRefArgs) -> Result<ExitCode> {
    let session = session(&args.registry)?;
    let (_, repository, cv) = read(&args.component, &session).await?;
    let located = located(&repository, &cv, &args.resource, !args.no_rebase)?;
    if matches!(located, Located::Blob { .. }) {
        bail!(
            "resource {:?} is a local blob, not an image; use wharf component download",
            args.resource
        );
    }
    out!("{located}");
    Ok(ExitCode::SUCCESS)
}

async fn download(args: ComponentDownloadArgs) -> Result<ExitCode> {
    let session = session(&args.registry)?;
    let (_, repository, cv) = read(&args.component, &session).await?;
    let located = located(&repository, &cv, &args.resource, !args.no_rebase)?;
    if let Located::Blob { digest, .. } = &located {
        let blob =
            cv.local.get(digest.as_str()).cloned().with_context(|| {
                format!("local blob {digest} is not part of the component version")
            })?;
        let store = repository.read_store(&repository.component_path(cv.descriptor.name()))?;
        let target = format!("{} {}", store.location(), blob.digest);
        let mut body = verified(&blob, Op::Fetch, target, store.fetch(&blob).await?);
        let output = &args.to;
        let parent = output
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let mut temp = tempfile::NamedTempFile::new_in(parent)
            .with_context(|| format!("writing {}", output.display()))?;
        while let Some(chunk) = body.next().await {
            temp.write_all(&chunk?)?;
        }
        temp.persist(output)
            .with_context(|| format!("writing {}", output.display()))?;
        out!(
            "downloaded {} ({}, {} bytes) to {}",
            args.resource,
            blob.digest,
            blob.size,
            output.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (store, root) = ocm::resolve_image(&located, &session).await?;
    let layout = Layout::create(args.to.clone()).await?;
    let tag = match &located {
        Located::Within { tag, .. } => tag.clone(),
        Located::External(reference) => reference.tag().map(str::to_owned),
        Located::Blob { .. } => None,
    };
    let role = tag.as_deref().map_or(ManifestRole::Root, ManifestRole::Tag);
    copy_graph(
        store.as_ref(),
        &layout,
        &root,
        role,
        &CopyOptions::default(),
    )
    .await?;
    layout.finish().await?;
    out!(
        "downloaded {} ({}) to oci:{}",
        args.resource,
        root.digest,
        args.to.display()
    );
    Ok(ExitCode::SUCCESS)
}
