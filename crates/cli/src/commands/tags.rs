//! `wharf tags REPOSITORY` and `wharf catalog REGISTRY`.

use crate::output::{out, out_json};
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;

use wharf_store::{Location, Mode};

use super::parse_image_address;
use super::registry_args::session;
use crate::args::{CatalogArgs, Format, TagsArgs};

pub async fn tags(args: TagsArgs) -> Result<ExitCode> {
    let address = parse_image_address(&args.repository, "repository")?;
    let store = session(&args.registry)?.read(&address).await?;
    let tags = store.tags().await?;
    print_list(args.output, "tags", &tags, &address.to_string())?;
    Ok(ExitCode::SUCCESS)
}

pub async fn catalog(args: CatalogArgs) -> Result<ExitCode> {
    let location = Location::parse(&args.location).context("catalog location")?;
    let repositories = session(&args.registry)?
        .namespace(&location, Mode::Read)
        .await?
        .repositories()
        .await?;
    print_list(args.output, "repositories", &repositories, &args.location)?;
    Ok(ExitCode::SUCCESS)
}

fn print_list(format: Format, key: &str, items: &[String], name: &str) -> Result<()> {
    match format {
        Format::Json => out_json(&json!({"name": name, key: items}))?,
        Format::Text => {
            for item in items {
                out!("{item}");
            }
        }
    }
    Ok(())
}
