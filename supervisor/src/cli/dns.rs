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
    /// Which rule would decide NAME, and why (allowed, blocked in the
    /// kernel, blocked after its first query by a regex, learned, no match).
    Test {
        /// The domain name.
        name: String,
        #[command(flatten)]
        control: ControlArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Hit counters of the rules that blocked queries or rewrote answers,
    /// most hits first.
    BlockedHits {
        #[command(flatten)]
        control: ControlArgs,
        /// Print JSON.
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
        } => match super::ask(&control, &ControlRequest::DnsTest(name.clone())) {
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
            Ok(other) => super::unexpected(&other),
            Err(code) => code,
        },
        DnsCommand::BlockedHits {
            control,
            json,
            limit,
        } => match super::ask(&control, &ControlRequest::DnsBlockedHits) {
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
            Ok(other) => super::unexpected(&other),
            Err(code) => code,
        },
    }
}
