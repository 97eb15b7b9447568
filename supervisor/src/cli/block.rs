//! `palisade block ...`.

use std::{process::ExitCode, time::Duration};

use clap::Subcommand;
use palisade_ipc::messages::{BlockAddRequest, ControlRequest, ControlResponse, IpRuleInfo};

use super::ControlArgs;

/// IP policy: block CIDRs at run time, list rules with their hit counters.
///
/// Runtime rules are enforced by the kernel within milliseconds, kept in
/// `<state_dir>/ip-rules.json` across restarts, and enforced while the
/// daemon is down (pinned programs and maps). A rule with a TTL stops being
/// enforced when it expires, by the kernel itself if the daemon is down.
/// Rules from `[ip] blocklists` files change with the files and `palisade
/// reload`. `add` and `remove` need root; `list` is allowed for the control
/// group.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: BlockCommand,
}

#[derive(Debug, Subcommand)]
enum BlockCommand {
    /// Block CIDR: drop every packet from or to it (root only).
    ///
    /// An address is a /32 or /128. Adding a CIDR that has a runtime rule already updates
    /// its TTL and comment. A malformed CIDR is a usage error (exit 2).
    Add {
        /// `192.0.2.0/24`, `2001:db8::/32`, or an address.
        #[arg(value_parser = cidr)]
        cidr: String,
        /// Expire after D: `90s`, `30m`, `12h`, `7d` (a bare number is
        /// seconds). Default: never.
        #[arg(long, value_name = "D", value_parser = super::parse_duration)]
        ttl: Option<Duration>,
        /// Free text kept with the rule (`block list`).
        #[arg(long, value_name = "T")]
        comment: Option<String>,
        #[command(flatten)]
        control: ControlArgs,
        /// Print the rule now in force as JSON (an element of `block list --json`'s
        /// "rules").
        #[arg(long)]
        json: bool,
    },
    /// Remove the runtime rule of CIDR (root only).
    Remove {
        /// The CIDR as added (host bits are cleared alike).
        #[arg(value_parser = cidr)]
        cidr: String,
        #[command(flatten)]
        control: ControlArgs,
        /// Print the rule removed as JSON (an element of `block list --json`'s "rules").
        #[arg(long)]
        json: bool,
    },
    /// List the IP rules with their hits.
    ///
    /// Runtime rules, then list rules by hits: CIDR, source, hits, expiry, comment.
    List {
        #[command(flatten)]
        control: ControlArgs,
        /// Print JSON: {"list_rules", "runtime_rules", "kernel_v4", "kernel_v6",
        /// "rules": [{"id", "cidr", "source", "comment", "expires_unix", "hits",
        /// "in_kernel"}]}.
        #[arg(long)]
        json: bool,
        /// Show at most N rules (at most 250 per answer).
        #[arg(short = 'n', long, default_value_t = 50)]
        limit: u32,
    },
}

/// A prefix or address, checked here so that a typo is a usage error before the daemon is
/// asked; sent as typed (the daemon clears host bits).
fn cidr(text: &str) -> Result<String, String> {
    palisade_ebpf::ip_policy::Prefix::parse(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("{text:?}: {e}"))
}

fn expiry(rule: &IpRuleInfo) -> String {
    match rule.expires_unix {
        None => "never".into(),
        Some(at) => {
            let now = crate::policy::ip::unix_now();
            format!("in {}s", at.saturating_sub(now))
        }
    }
}

fn print_rule(verb: &str, r: &IpRuleInfo) {
    println!(
        "{verb} {} (rule {}, expires {}{})",
        r.cidr,
        r.id,
        expiry(r),
        if r.in_kernel {
            ""
        } else {
            ", shadowed by a list rule"
        }
    );
}

pub fn main(args: Args) -> ExitCode {
    match args.command {
        BlockCommand::Add {
            cidr,
            ttl,
            comment,
            control,
            json,
        } => {
            let req = ControlRequest::BlockAdd(BlockAddRequest {
                cidr,
                ttl_secs: ttl.map(|d| d.as_secs()),
                comment,
            });
            match super::ask(&control, json, &req) {
                Ok(ControlResponse::BlockAdded(r)) if json => super::print_json(&r),
                Ok(ControlResponse::BlockAdded(r)) => {
                    print_rule("blocked", &r);
                    ExitCode::SUCCESS
                }
                Ok(other) => super::unexpected(json, &other),
                Err(code) => code,
            }
        }
        BlockCommand::Remove {
            cidr,
            control,
            json,
        } => match super::ask(&control, json, &ControlRequest::BlockRemove(cidr)) {
            Ok(ControlResponse::BlockRemoved(r)) if json => super::print_json(&r),
            Ok(ControlResponse::BlockRemoved(r)) => {
                println!("unblocked {} (rule {}, {} hits)", r.cidr, r.id, r.hits);
                ExitCode::SUCCESS
            }
            Ok(other) => super::unexpected(json, &other),
            Err(code) => code,
        },
        BlockCommand::List {
            control,
            json,
            limit,
        } => match super::ask(&control, json, &ControlRequest::BlockList { limit }) {
            Ok(ControlResponse::BlockList(list)) => {
                if json {
                    return super::print_json(&list);
                }
                println!(
                    "{} list rules, {} runtime rules; kernel: {} IPv4 and {} IPv6 prefixes",
                    list.list_rules, list.runtime_rules, list.kernel_v4, list.kernel_v6
                );
                println!(
                    "{:<43} {:<24} {:>10}  {:<12} COMMENT",
                    "CIDR", "SOURCE", "HITS", "EXPIRES"
                );
                for r in &list.rules {
                    println!(
                        "{:<43} {:<24} {:>10}  {:<12} {}{}",
                        r.cidr,
                        r.source,
                        r.hits,
                        expiry(r),
                        r.comment.as_deref().unwrap_or(""),
                        if r.in_kernel {
                            ""
                        } else {
                            " (shadowed by a list rule)"
                        }
                    );
                }
                ExitCode::SUCCESS
            }
            Ok(other) => super::unexpected(json, &other),
            Err(code) => code,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_are_checked_before_asking() {
        assert_eq!(cidr("192.0.2.0/24").as_deref(), Ok("192.0.2.0/24"));
        assert_eq!(cidr("2001:db8::1").as_deref(), Ok("2001:db8::1"));
        assert!(cidr("192.0.2.0/33").is_err());
        assert!(cidr("example.com").is_err());
    }
}
