//! The `wharf` command: parses arguments, calls the library crates, formats what they return.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod commands;
mod output;
mod progress;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let serving = match commands::serve_logging(&cli.command) {
        Ok(serving) => serving,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(cli.verbose, serving);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let serving = serving.is_some();
    let outcome = runtime.block_on(async {
        if serving {
            // The registry stops cleanly on its own signals.
            return Some(commands::run(cli.command).await);
        }
        tokio::select! {
            outcome = commands::run(cli.command) => Some(outcome),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    let Some(outcome) = outcome else {
        // Work in flight stops here; files being written are temporary until complete.
        runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        eprintln!(
            "interrupted: what was written is complete and verified, and kept (an archive's as its .wharf-partial file); run the same command again to carry on"
        );
        return ExitCode::from(130);
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.is::<commands::UsageError>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `-v` shows wharf's info events, `-vv` debug, `-vvv` trace; other crates stay at warnings.
/// `wharf serve` logs every request (info) without `-v`, as text or JSON lines.
fn init_logging(verbose: u8, serving: Option<args::LogFormat>) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let level = match (verbose, serving) {
        (0, None) => LevelFilter::WARN,
        (0 | 1, _) => LevelFilter::INFO,
        (2, _) => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let filter = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("wharf", level);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(verbose > 1);
    let layer = if serving == Some(args::LogFormat::Json) {
        layer.json().boxed()
    } else {
        layer.with_ansi(std::io::stderr().is_terminal()).boxed()
    };
    tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .init();
}
