//! `palisade check-config`.

use std::{path::PathBuf, process::ExitCode};

use crate::config::Config;

/// Validate a configuration file without applying it.
///
/// Prints `FILE: OK` and exits 0, or names the line and the problem and
/// exits 1.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file to check.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

pub fn main(args: Args) -> ExitCode {
    match Config::load(Some(&args.file)) {
        Ok(_) => {
            println!("{}: OK", args.file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("palisade: {}", crate::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
