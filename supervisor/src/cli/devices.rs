//! `palisade devices`: the device inventory the DHCP worker keeps.

use std::process::ExitCode;

use palisade_ipc::messages::{ControlRequest, ControlResponse};
use serde_json::Value;

use super::{ControlArgs, Failure};

/// Devices seen on the monitored interfaces, by MAC address.
///
/// The inventory is kept by the DHCP worker from DHCP (v4 and v6) messages, ARP and IPv6
/// neighbour discovery: per MAC its first and last sighting, IPv4 and IPv6 addresses
/// (leases, ARP, neighbour discovery), DHCP lease, host name, client id or
/// DUID, vendor from the IEEE registries (Debian's ieee-data package; "unknown" without
/// it, and for locally administered addresses, which are flagged), DHCP fingerprint and
/// its classification ("unknown" unless the client names itself: docs/devices.md). It is
/// kept in the state directory (devices.jsonl) and survives restarts; the daemon hands the
/// file over as the worker last wrote it (every 2 seconds at most while it changes).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the device with this MAC address (aa:bb:cc:dd:ee:ff); exit status 1 when there
    /// is none.
    #[arg(long, value_name = "MAC", value_parser = parse_mac)]
    mac: Option<String>,
    #[command(flatten)]
    control: ControlArgs,
    /// Print JSON: {"devices": [{"mac", "first_seen", "last_seen", "ipv4", "ipv6",
    /// "hostname", "client_id", "duid", "vendor", "locally_administered", "fingerprint",
    /// "vendor_class", "os", "device_type", "lease": {"ip", "lease_time", "acked_at",
    /// "renewals"}}]} (times in seconds since the epoch; absent keys: not known).
    #[arg(long)]
    json: bool,
}

/// A MAC address in the inventory's form (lower case, colons).
fn parse_mac(s: &str) -> Result<String, String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(format!(
            "not a MAC address: {s:?} (expected aa:bb:cc:dd:ee:ff)"
        ));
    }
    Ok(parts.join(":").to_ascii_lowercase())
}

/// Reads the whole inventory file, piece by piece; starts over (a few times) if the worker
/// rewrote it meanwhile.
fn read_inventory(control: &ControlArgs, json: bool) -> Result<Vec<u8>, ExitCode> {
    for _ in 0..5 {
        let mut bytes = Vec::new();
        let mut total = None;
        let consistent = loop {
            let req = ControlRequest::Devices {
                offset: bytes.len() as u64,
            };
            let chunk = match super::ask(control, json, &req)? {
                ControlResponse::Devices(c) => c,
                other => return Err(super::unexpected(json, &other)),
            };
            if total.is_some_and(|t| t != chunk.total) {
                break false;
            }
            total = Some(chunk.total);
            bytes.extend_from_slice(&chunk.bytes);
            if chunk.bytes.is_empty() || bytes.len() as u64 >= chunk.total {
                break true;
            }
        };
        if consistent {
            return Ok(bytes);
        }
    }
    Err(Failure::failed("the inventory kept changing while it was read; try again").report(json))
}

pub fn main(args: Args) -> ExitCode {
    let bytes = match read_inventory(&args.control, args.json) {
        Ok(b) => b,
        Err(code) => return code,
    };
    // Lines the worker had not finished writing (a rewrite in progress) are left out.
    let devices: Vec<Value> = bytes
        .split(|b| *b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .filter(|d| d.is_object())
        .filter(|d| {
            args.mac
                .as_deref()
                .is_none_or(|m| d.get("mac").and_then(Value::as_str) == Some(m))
        })
        .collect();
    if let Some(mac) = &args.mac
        && devices.is_empty()
    {
        return Failure::failed(format!("no device with MAC {mac}")).report(args.json);
    }
    if args.json {
        return super::print_json(&serde_json::json!({ "devices": devices }));
    }
    print_table(&devices);
    ExitCode::SUCCESS
}

fn text<'a>(d: &'a Value, key: &str) -> &'a str {
    d.get(key).and_then(Value::as_str).unwrap_or("-")
}

fn list(d: &Value, key: &str) -> String {
    let items: Vec<&str> = d
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

fn print_table(devices: &[Value]) {
    println!(
        "{:<17} {:<24} {:<20} {:<16} {:<10} {:<10} {:<30} IPV6",
        "MAC", "VENDOR", "HOSTNAME", "IPV4", "OS", "TYPE", "FINGERPRINT"
    );
    for d in devices {
        let mut vendor: String = text(d, "vendor").chars().take(24).collect();
        if d.get("locally_administered").and_then(Value::as_bool) == Some(true) {
            vendor = "(locally administered)".into();
        }
        println!(
            "{:<17} {:<24} {:<20} {:<16} {:<10} {:<10} {:<30} {}",
            text(d, "mac"),
            vendor,
            text(d, "hostname").chars().take(20).collect::<String>(),
            list(d, "ipv4"),
            text(d, "os"),
            text(d, "device_type"),
            text(d, "fingerprint").chars().take(30).collect::<String>(),
            list(d, "ipv6"),
        );
    }
}
