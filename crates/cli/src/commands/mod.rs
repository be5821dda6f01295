//! One module per subcommand; each turns typed arguments into library calls and prints the result.

mod bundle;
mod component;
mod copy;
mod demo;
mod index;
mod inspect;
mod login;
mod registry_args;
mod resolve;
mod serve;
mod sync;
mod tags;
mod verify;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use wharf_store::{Address, Location};

use crate::args::{Command, LogFormat};

pub async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Copy(args) => copy::run(args).await,
        Command::Sync(args) => sync::run(args).await,
        Command::Inspect(args) => inspect::run(args).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Resolve(args) => resolve::run(args),
        Command::Tags(args) => tags::tags(args).await,
        Command::Catalog(args) => tags::catalog(args).await,
        Command::Login(args) => login::login(args).await,
        Command::Logout(args) => login::logout(args).await,
        Command::Component(command) => component::run(command).await,
        Command::Bundle(command) => bundle::run(command).await,
        Command::Index(command) => index::run(command).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Completion(args) => {
            let mut cli = crate::args::Cli::command();
            clap_complete::generate(args.shell, &mut cli, "wharf", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            clap_mangen::Man::new(crate::args::Cli::command())
                .render(&mut std::io::stdout())
                .context("writing the manual page")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// How `wharf serve` logs requests (its settings are read before logging starts); `None` for the
/// other commands.
pub fn serve_logging(command: &Command) -> Result<Option<LogFormat>> {
    match command {
        Command::Serve(args) if args.action.is_none() => {
            Ok(Some(serve::Settings::load(&args.run)?.log_format))
        }
        _ => Ok(None),
    }
}

/// A command line that cannot work, found before anything is read or written: exit status 2, as
/// for the errors the argument parser finds.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Parses a location argument, naming the argument's role in the error.
fn parse_address(text: &str, role: &str) -> Result<Address> {
    Address::parse(text).with_context(|| role.to_owned())
}

/// Parses a location argument that must name one repository (not a whole CTF).
fn parse_image_address(text: &str, role: &str) -> Result<Address> {
    let address = parse_address(text, role)?;
    if matches!(address.location, Location::Ctf(_)) && address.repository.is_empty() {
        bail!(
            "{role} {text:?} names a whole CTF; name one repository in it as ctf:PATH//REPOSITORY[:TAG]"
        );
    }
    Ok(address)
}
