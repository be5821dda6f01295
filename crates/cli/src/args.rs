//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const LOCATIONS: &str = "\
Locations:
  oci:PATH[:TAG][@DIGEST]   an OCI image layout directory (as skopeo and umoci write them)";

/// Move bundles of OCI artifacts between registries, mirrors and air-gap archives so that every
/// reference inside a bundle still resolves wherever it lands.
#[derive(Debug, Parser)]
#[command(name = "wharf", version, propagate_version = true, after_help = LOCATIONS)]
pub struct Cli {
    /// More detail on stderr: -v for progress events, -vv for debugging, -vvv for everything.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy an image or index, with everything it references, from one location to another.
    #[command(after_help = COPY_HELP)]
    Copy(CopyArgs),
    /// Show the manifest a location names.
    #[command(after_help = INSPECT_HELP)]
    Inspect(InspectArgs),
    /// Run the main job end to end on generated content and narrate it.
    #[command(after_help = DEMO_HELP)]
    Demo(DemoArgs),
}

const COPY_HELP: &str = "\
The destination gets its own tag if it names one, else the source's tag. Blobs and manifests the
destination already has are not copied again; an image whose root is already there costs one check.
Every byte is verified against its digest before it becomes visible at the destination.

Examples:
  wharf copy oci:./images:1.0 oci:./mirror:1.0
  wharf copy oci:./images@sha256:4c1e…  oci:./mirror:pinned
  wharf copy --output json oci:./images:1.0 oci:./mirror

Locations:
  oci:PATH[:TAG][@DIGEST]   an OCI image layout directory";

const INSPECT_HELP: &str = "\
Examples:
  wharf inspect oci:./images:1.0
  wharf inspect --raw oci:./images:1.0 | sha256sum
  wharf inspect --output json oci:./images@sha256:4c1e…

Locations:
  oci:PATH[:TAG][@DIGEST]   an OCI image layout directory (without TAG: its only image)";

const DEMO_HELP: &str = "\
The demo generates a multi-arch image (linux/amd64 and linux/arm64) in one OCI layout, copies it to a
second layout, checks that every digest arrived unchanged, and removes everything unless --keep is given.

Examples:
  wharf demo
  wharf demo --keep ./demo-output";

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Where to copy from.
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// Where to copy to.
    #[arg(value_name = "DESTINATION")]
    pub destination: String,
    /// Blobs to transfer at once.
    #[arg(short = 'j', long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The location to inspect.
    #[arg(value_name = "LOCATION")]
    pub location: String,
    /// Print the manifest's bytes exactly as stored.
    #[arg(long, conflicts_with = "output")]
    pub raw: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's layouts in this directory instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// For programs: one JSON document on stdout.
    Json,
}
