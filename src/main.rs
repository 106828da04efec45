//! `phoenix`: one binary for every run mode (see ARCHITECTURE.md).

mod cli;
mod logging;
mod serve;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.log_format);
    cli.command.run()
}
