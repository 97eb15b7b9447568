//! `palisade flows ...`: live flows from the kernel flow table.

use std::{net::IpAddr, process::ExitCode};

use clap::{Subcommand, ValueEnum};
use palisade_ipc::messages::{ControlRequest, ControlResponse, FLOW_ROWS_MAX, FlowList, FlowOrder};

use super::ControlArgs;

/// Live flows from the kernel's flow table: the biggest, or one host's.
///
/// Read from the kernel's flow table at the moment of asking (bytes are frame bytes,
/// link-layer header included).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: FlowsCommand,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum By {
    Bytes,
    Packets,
}

#[derive(Debug, Subcommand)]
enum FlowsCommand {
    /// The biggest live flows.
    Top {
        /// Sort by bytes or packets, both directions together.
        #[arg(long, value_enum, default_value_t = By::Bytes)]
        by: By,
        /// Show at most N flows (at most 200).
        #[arg(short = 'n', long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=i64::from(FLOW_ROWS_MAX)))]
        limit: u32,
        #[command(flatten)]
        control: ControlArgs,
        /// Print JSON: {"live", "matched", "flows": [{"proto", "src_ip", "src_port",
        /// "dest_ip", "dest_port", "pkts_toserver", "pkts_toclient", "bytes_toserver",
        /// "bytes_toclient", "age_ms", "idle_ms", "interface", "tcp_flags_ts",
        /// "tcp_flags_tc", "seeded"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Live flows with ADDR at either end, biggest first.
    Show {
        /// IPv4 or IPv6 address.
        #[arg(long, value_name = "ADDR")]
        host: IpAddr,
        /// Show at most N flows (at most 200).
        #[arg(short = 'n', long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=i64::from(FLOW_ROWS_MAX)))]
        limit: u32,
        #[command(flatten)]
        control: ControlArgs,
        /// Print JSON: {"live", "matched", "flows": [{"proto", "src_ip", "src_port",
        /// "dest_ip", "dest_port", "pkts_toserver", "pkts_toclient", "bytes_toserver",
        /// "bytes_toclient", "age_ms", "idle_ms", "interface", "tcp_flags_ts",
        /// "tcp_flags_tc", "seeded"}]}.
        #[arg(long)]
        json: bool,
    },
}

pub fn main(args: Args) -> ExitCode {
    let (req, control, json) = match args.command {
        FlowsCommand::Top {
            by,
            limit,
            control,
            json,
        } => (
            ControlRequest::FlowsTop {
                by: match by {
                    By::Bytes => FlowOrder::Bytes,
                    By::Packets => FlowOrder::Packets,
                },
                limit,
            },
            control,
            json,
        ),
        FlowsCommand::Show {
            host,
            limit,
            control,
            json,
        } => (
            ControlRequest::FlowsShow {
                host: host.to_string(),
                limit,
            },
            control,
            json,
        ),
    };
    match super::ask(&control, json, &req) {
        Ok(ControlResponse::Flows(list)) if json => super::print_json(&list),
        Ok(ControlResponse::Flows(list)) => {
            print_table(&list);
            ExitCode::SUCCESS
        }
        Ok(other) => super::unexpected(json, &other),
        Err(code) => code,
    }
}

/// `addr:port`, IPv6 in brackets; ICMP without a port.
fn endpoint(addr: &str, port: u16, proto: &str) -> String {
    let addr = if addr.contains(':') {
        format!("[{addr}]")
    } else {
        addr.to_owned()
    };
    if proto.contains("icmp") {
        addr
    } else {
        format!("{addr}:{port}")
    }
}

fn print_table(list: &FlowList) {
    println!(
        "{:<9} {:<47} {:<47} {:>10} {:>12} {:>8} {:>8} IFACE",
        "PROTO", "CLIENT", "SERVER", "PACKETS", "BYTES", "AGE_S", "IDLE_S"
    );
    for f in &list.flows {
        println!(
            "{:<9} {:<47} {:<47} {:>10} {:>12} {:>8} {:>8} {}{}",
            f.proto,
            endpoint(&f.src_ip, f.src_port, &f.proto),
            endpoint(&f.dest_ip, f.dest_port, &f.proto),
            f.pkts_toserver + f.pkts_toclient,
            f.bytes_toserver + f.bytes_toclient,
            f.age_ms / 1000,
            f.idle_ms / 1000,
            if f.interface.is_empty() {
                "-"
            } else {
                &f.interface
            },
            if f.seeded { " (seeded)" } else { "" },
        );
    }
    println!(
        "{} shown, {} matched, {} flows in the table",
        list.flows.len(),
        list.matched,
        list.live
    );
}
