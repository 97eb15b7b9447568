//! `palisade dns ...`.

use std::process::ExitCode;

use clap::Subcommand;
use palisade_ipc::messages::{ControlRequest, ControlResponse};

use super::ControlArgs;

/// DNS policy: which rule decides a name, and per-rule hit counters.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DnsCommand,
}

#[derive(Debug, Subcommand)]
enum DnsCommand {
    /// Which rule would decide NAME, and why.
    ///
    /// The verdict: allowed, blocked in the kernel, blocked after its first query by a
    /// regex, learned, or no match.
    Test {
        /// The domain name.
        name: String,
        #[command(flatten)]
        control: ControlArgs,
        /// Print JSON: {"name", "verdict", "rule"} ("name" null when NAME is not a valid
        /// name, "rule" null when none matches).
        #[arg(long)]
        json: bool,
    },
    /// Hit counters of the rules that blocked queries, most hits first.
    ///
    /// Rules that blocked queries or rewrote answers.
    BlockedHits {
        #[command(flatten)]
        control: ControlArgs,
        /// Print JSON: [{"id", "rule", "hits"}], most hits first.
        #[arg(long)]
        json: bool,
        /// Show at most N rules.
        #[arg(short = 'n', long, default_value_t = 50)]
        limit: usize,
    },
}

pub fn main(args: Args) -> ExitCode {
    match args.command {
        DnsCommand::Test {
            name,
            control,
            json,
        } => match super::ask(&control, json, &ControlRequest::DnsTest(name.clone())) {
            Ok(ControlResponse::DnsTest(r)) => {
                if json {
                    return super::print_json(&r);
                }
                let shown = r.name.as_deref().unwrap_or(&name);
                match &r.rule {
                    Some(rule) => println!("{shown}: {} by {rule}", r.verdict),
                    None => println!("{shown}: {}", r.verdict),
                }
                ExitCode::SUCCESS
            }
            Ok(other) => super::unexpected(json, &other),
            Err(code) => code,
        },
        DnsCommand::BlockedHits {
            control,
            json,
            limit,
        } => match super::ask(&control, json, &ControlRequest::DnsBlockedHits) {
            Ok(ControlResponse::DnsBlockedHits(mut hits)) => {
                hits.truncate(limit);
                if json {
                    return super::print_json(&hits);
                }
                println!("{:>10}  RULE", "HITS");
                for h in hits {
                    println!("{:>10}  {}", h.hits, h.rule);
                }
                ExitCode::SUCCESS
            }
            Ok(other) => super::unexpected(json, &other),
            Err(code) => code,
        },
    }
}
