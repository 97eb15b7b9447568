//! `palisade tls ...`.

use std::process::ExitCode;

use clap::Subcommand;
use palisade_ipc::messages::{
    ControlRequest, ControlResponse, TlsRuleInfo, TlsRuleKind, TlsRuleSpec,
};

use super::ControlArgs;

/// TLS policy: rules on JA3, JA4 and SNI (TCP and QUIC hellos).
///
/// A hello that matches a rule is an EVE `alert` event; a rule with `--block` also cuts the
/// connection: the TLS worker asks, the daemon checks the claim against its own rules and
/// the kernel's flow table, and the kernel drops the connection's packets both ways (for
/// `[tls] block_ttl_secs`). Runtime rules are kept in `<state_dir>/tls-rules.json` across
/// restarts; rules from `[tls] rules` files change with the files and `palisade reload`.
/// `add` and `remove` need root; `list` is allowed for the control group.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: TlsCommand,
}

#[derive(Debug, Subcommand)]
enum TlsCommand {
    /// TLS rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Debug, clap::Args)]
struct RuleArgs {
    /// What the rule matches: ja3 (the JA3 hash), ja4, sni (exact), sni-suffix (the name
    /// or any name under it), sni-regex (a regular expression on the lower-case SNI).
    #[arg(value_parser = kind)]
    kind: TlsRuleKind,
    /// The hash, fingerprint, name, suffix or pattern.
    value: String,
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Add a rule (root only). Adding a kind and value that has a runtime rule already
    /// updates its --block flag and comment. An invalid value is refused (exit 1).
    Add {
        #[command(flatten)]
        rule: RuleArgs,
        /// Cut the connection of a matching hello (else: alert only).
        #[arg(long)]
        block: bool,
        /// Free text kept with the rule (`tls rules list`, alerts).
        #[arg(long, value_name = "T")]
        comment: Option<String>,
        #[command(flatten)]
        control: ControlArgs,
        /// Print the rule now in force as JSON (an element of `tls rules list --json`'s
        /// "rules").
        #[arg(long)]
        json: bool,
    },
    /// Remove the runtime rule of this kind and value (root only).
    Remove {
        #[command(flatten)]
        rule: RuleArgs,
        #[command(flatten)]
        control: ControlArgs,
        /// Print the rule removed as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the rules and the connections they cut now.
    List {
        #[command(flatten)]
        control: ControlArgs,
        /// Print JSON: {"rules": [{"id", "kind", "value", "block", "comment", "source",
        /// "blocks"}], "total_rules", "blocks": [{"rule_id", "proto", "a", "b",
        /// "latency_us", "expires_in_secs"}], "total_blocks"}.
        #[arg(long)]
        json: bool,
        /// Show at most N rules and N connections.
        #[arg(short = 'n', long, default_value_t = 100)]
        limit: u32,
    },
}

fn kind(text: &str) -> Result<TlsRuleKind, String> {
    TlsRuleKind::from_name(text)
        .ok_or_else(|| format!("{text:?}: one of ja3, ja4, sni, sni-suffix, sni-regex"))
}

fn print_rule(verb: &str, r: &TlsRuleInfo) {
    println!(
        "{verb} rule {}: {} {}{}{}",
        r.id,
        r.spec.kind.name(),
        r.spec.value,
        if r.spec.block { " (block)" } else { "" },
        r.spec
            .comment
            .as_deref()
            .map(|c| format!(" # {c}"))
            .unwrap_or_default()
    );
}

pub fn main(args: Args) -> ExitCode {
    let TlsCommand::Rules { command } = args.command;
    match command {
        RulesCommand::Add {
            rule,
            block,
            comment,
            control,
            json,
        } => {
            let req = ControlRequest::TlsRuleAdd(TlsRuleSpec {
                kind: rule.kind,
                value: rule.value,
                block,
                comment,
            });
            match super::ask(&control, json, &req) {
                Ok(ControlResponse::TlsRuleAdded(r)) if json => super::print_json(&r),
                Ok(ControlResponse::TlsRuleAdded(r)) => {
                    print_rule("added", &r);
                    ExitCode::SUCCESS
                }
                Ok(other) => super::unexpected(json, &other),
                Err(code) => code,
            }
        }
        RulesCommand::Remove {
            rule,
            control,
            json,
        } => {
            let req = ControlRequest::TlsRuleRemove(TlsRuleSpec {
                kind: rule.kind,
                value: rule.value,
                block: false,
                comment: None,
            });
            match super::ask(&control, json, &req) {
                Ok(ControlResponse::TlsRuleRemoved(r)) if json => super::print_json(&r),
                Ok(ControlResponse::TlsRuleRemoved(r)) => {
                    print_rule("removed", &r);
                    ExitCode::SUCCESS
                }
                Ok(other) => super::unexpected(json, &other),
                Err(code) => code,
            }
        }
        RulesCommand::List {
            control,
            json,
            limit,
        } => match super::ask(&control, json, &ControlRequest::TlsRuleList { limit }) {
            Ok(ControlResponse::TlsRuleList(list)) => {
                if json {
                    return super::print_json(&list);
                }
                println!(
                    "{} TLS rules, {} connections cut now",
                    list.total_rules, list.total_blocks
                );
                println!(
                    "{:>8}  {:<10} {:<40} {:<6} {:>7}  {:<24} COMMENT",
                    "ID", "KIND", "VALUE", "BLOCK", "CUT", "SOURCE"
                );
                for r in &list.rules {
                    println!(
                        "{:>8}  {:<10} {:<40} {:<6} {:>7}  {:<24} {}",
                        r.id,
                        r.spec.kind.name(),
                        r.spec.value,
                        if r.spec.block { "yes" } else { "no" },
                        r.blocks,
                        r.source,
                        r.spec.comment.as_deref().unwrap_or("")
                    );
                }
                if !list.blocks.is_empty() {
                    println!();
                    println!(
                        "{:>8}  {:<5} {:<46} {:<46} {:>10} {:>8}",
                        "RULE", "PROTO", "A", "B", "LATENCY", "EXPIRES"
                    );
                    for b in &list.blocks {
                        println!(
                            "{:>8}  {:<5} {:<46} {:<46} {:>8}us {:>7}s",
                            b.rule_id, b.proto, b.a, b.b, b.latency_us, b.expires_in_secs
                        );
                    }
                }
                ExitCode::SUCCESS
            }
            Ok(other) => super::unexpected(json, &other),
            Err(code) => code,
        },
    }
}
