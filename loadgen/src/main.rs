//! `loadgen`: see the library crate for what it does and how.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    loadgen::main_with(loadgen::Cli::parse())
}
