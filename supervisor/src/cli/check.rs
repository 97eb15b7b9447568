//! `palisade check`.

use std::process::ExitCode;

use palisade_ipc::messages::{ControlRequest, ControlResponse};

use super::ControlArgs;

/// Compare the kernel with what the daemon put there, now, and repair what drifted (root).
///
/// Checks every link the daemon holds (observer and IP policy hooks still attached, their
/// pins present), the pins of every map, the content of the DNS rule map and the IP tries,
/// the config maps, and the rule set each worker reports applying. What drifted is repaired
/// (attached again, pinned again, written again, policy sent again; a worker that still
/// applies another rule set after a resync is restarted) and listed. Objects Palisade did
/// not create are never touched: another tool's program at a watched interface's TCX hook
/// is listed as `foreign program ID on IF/DIRECTION` (reported, and whether it runs
/// before Palisade's). The daemon also runs this check every `[drift]
/// interval_s` seconds; `palisade status` shows the latest.
///
/// Exit status: 0 when nothing drifted, 1 when something did (the list says whether each
/// was repaired).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    control: ControlArgs,
    /// Print the result as JSON: {"interval_s", "checks", "last_check_unix", "found_total",
    /// "repaired_total", "findings": [{"object", "problem", "action", "repaired"}]}.
    #[arg(long)]
    json: bool,
}

pub fn main(args: Args) -> ExitCode {
    match super::ask(&args.control, args.json, &ControlRequest::Check) {
        Ok(ControlResponse::Checked(r)) => {
            let clean = r.findings.is_empty();
            if args.json {
                let printed = super::print_json(&r);
                return if clean { printed } else { ExitCode::FAILURE };
            }
            if clean {
                println!("clean: the kernel and the workers hold what the daemon put there");
                return ExitCode::SUCCESS;
            }
            for f in &r.findings {
                println!(
                    "{} {}: {} -> {}",
                    if f.repaired { "repaired" } else { "DRIFT   " },
                    f.object,
                    f.problem,
                    f.action
                );
            }
            ExitCode::FAILURE
        }
        Ok(other) => super::unexpected(args.json, &other),
        Err(code) => code,
    }
}
