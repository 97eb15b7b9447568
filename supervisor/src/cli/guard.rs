//! `palisade guard`: the DHCP guard's mode, allow-list and the rogue senders the kernel
//! counted.

use std::process::ExitCode;

use palisade_ipc::messages::{ControlRequest, ControlResponse, GUARD_SENDERS_MAX};

use super::ControlArgs;

/// The DHCP guard: its mode, its allow-list and the senders not on it.
///
/// The guard checks DHCP server messages (UDP port 67 to 68, DHCPv6 547 to 546) and IPv6
/// router advertisements on the monitored interfaces against `[dhcp] allowed_servers`
/// (source MACs or IP addresses); a message from anyone else is an alert and, with `guard
/// = true`, dropped in the kernel (docs/devices.md). This lists the senders the kernel
/// found on no allow-list entry (it keeps the 1,024 most recently seen), most recently seen
/// first: MAC and address, DHCPv4, DHCPv6 and RA messages, how many were dropped, first and
/// last seen. Mode "off": no allow-list, nothing is checked.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Most senders to list (at most 400).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=i64::from(GUARD_SENDERS_MAX)))]
    limit: u32,
    #[command(flatten)]
    control: ControlArgs,
    /// Print JSON: {"mode", "allowed_servers", "senders_total", "senders": [{"mac", "ip",
    /// "dhcp4", "dhcp6", "ra", "dropped", "first_seen", "last_seen"}]} (times in seconds
    /// since the epoch).
    #[arg(long)]
    json: bool,
}

pub fn main(args: Args) -> ExitCode {
    let req = ControlRequest::Guard { limit: args.limit };
    match super::ask(&args.control, args.json, &req) {
        Ok(ControlResponse::Guard(report)) => {
            if args.json {
                return super::print_json(&report);
            }
            println!(
                "DHCP guard: {}; allowed: {}",
                report.mode,
                if report.allowed_servers.is_empty() {
                    "(none)".to_owned()
                } else {
                    report.allowed_servers.join(", ")
                }
            );
            println!(
                "{} rogue senders{}",
                report.senders_total,
                if report.senders.len() < report.senders_total as usize {
                    format!(" ({} most recent shown)", report.senders.len())
                } else {
                    String::new()
                }
            );
            if !report.senders.is_empty() {
                println!(
                    "{:<17}  {:<39} {:>7} {:>7} {:>7} {:>8}  {:>10}  {:>10}",
                    "MAC", "IP", "DHCPV4", "DHCPV6", "RA", "DROPPED", "FIRST", "LAST"
                );
            }
            for s in &report.senders {
                println!(
                    "{:<17}  {:<39} {:>7} {:>7} {:>7} {:>8}  {:>10}  {:>10}",
                    s.mac, s.ip, s.dhcp4, s.dhcp6, s.ra, s.dropped, s.first_seen, s.last_seen
                );
            }
            ExitCode::SUCCESS
        }
        Ok(other) => super::unexpected(args.json, &other),
        Err(code) => code,
    }
}
