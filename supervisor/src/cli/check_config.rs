//! `palisade check-config`.

use std::{path::PathBuf, process::ExitCode};

use crate::config::Config;

/// Validate a configuration file, every list it names and the groups it
/// names (`paths.log_group` must exist), without applying anything.
///
/// Prints `FILE: OK` and exits 0, or names the file, line and problem and
/// exits 1.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file to check.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

pub fn main(args: Args) -> ExitCode {
    let checked = Config::load(Some(&args.file))
        .map_err(|e| crate::error_chain(&e))
        .and_then(|c| {
            if let Some(group) = &c.log_group {
                group.resolve().map_err(|e| crate::error_chain(&e))?;
            }
            crate::policy::dns::RuleSet::load(&c.dns.lists).map_err(|e| crate::error_chain(&e))?;
            crate::policy::ip::IpRuleSet::load(&c.ip.blocklists).map_err(|e| crate::error_chain(&e))
        });
    match checked {
        Ok(_) => {
            println!("{}: OK", args.file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("palisade: {e}");
            ExitCode::FAILURE
        }
    }
}
