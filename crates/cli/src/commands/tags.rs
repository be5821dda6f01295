//! `wharf tags REPOSITORY` and `wharf catalog REGISTRY`.

use crate::output::out;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use super::parse_address;
use super::registry_args::registries;
use crate::args::{CatalogArgs, Format, TagsArgs};

pub async fn tags(args: TagsArgs) -> Result<ExitCode> {
    let location = parse_address(&args.repository, "repository")?;
    let store = location
        .open_read(&registries(&args.registry, None)?)
        .await?;
    let tags = store.tags().await?;
    print_list(args.output, "tags", &tags, &location.to_string());
    Ok(ExitCode::SUCCESS)
}

pub async fn catalog(args: CatalogArgs) -> Result<ExitCode> {
    let repositories = registries(&args.registry, None)?
        .catalog(&args.registry_host)
        .await?;
    print_list(
        args.output,
        "repositories",
        &repositories,
        &args.registry_host,
    );
    Ok(ExitCode::SUCCESS)
}

fn print_list(format: Format, key: &str, items: &[String], name: &str) {
    match format {
        Format::Json => out!("{}", json!({"name": name, key: items})),
        Format::Text => {
            for item in items {
                out!("{item}");
            }
        }
    }
}
