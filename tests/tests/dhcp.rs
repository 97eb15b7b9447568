//! DHCP transactions and the device inventory with real peers: dnsmasq serves DHCPv4 on the
//! peer side, busybox udhcpc takes a lease on the sensor side.
//!
//! * `lease_becomes_a_device_that_survives_restarts`: the lease appears in `palisade
//!   devices` with the vendor from ieee-data, the host name, the fingerprint and its
//!   classification; a `new_device` alert is written once; the inventory survives a
//!   SIGKILL of the DHCP worker and a restart of the supervisor.
//! * `unanswered_transaction_expires_and_leaves_memory`: a DISCOVER nobody answers is
//!   written as `incomplete` after `dhcp.transaction_timeout_s`, counted, and the
//!   `dhcp_open_transactions` gauge goes back to 0.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests index JSON values; a panic is a test failure"
)]

use std::time::Duration;

use palisade_tests::{Daemon, Lab, PEER_IF, PEER_IP, SENSOR_IF, Side, base_config, run, wait_for};
use serde_json::Value;

/// A MAC of Synology's MA-L block (00:11:32), so the vendor comes from ieee-data.
const CLIENT_MAC: &str = "00:11:32:aa:bb:cc";

fn dhcp_server(lab: &Lab) {
    let leases = lab.dir.join("dnsmasq.leases");
    lab.start_dnsmasq_with(
        Side::Peer,
        &[
            "--dhcp-range=198.18.0.100,198.18.0.150,255.255.255.0,1h",
            "--dhcp-authoritative",
            &format!("--dhcp-leasefile={}", leases.display()),
        ],
    );
}

fn udhcpc(lab: &Lab, side: Side, ifname: &str, extra: &[&str]) -> std::process::Output {
    let mut cmd = match side {
        Side::Sensor => lab.sensor("udhcpc"),
        Side::Peer => lab.peer("udhcpc"),
    };
    cmd.args([
        "-i",
        ifname,
        "-n",
        "-q",
        "-f",
        "-t",
        "5",
        "-T",
        "1",
        "-s",
        "/bin/true",
    ])
    .args(extra)
    .output()
    .expect("udhcpc")
}

/// `palisade devices --json --mac M`, the device or `None`.
fn device(daemon: &Daemon, mac: &str) -> Option<Value> {
    let out = daemon.ctl(&["devices", "--json", "--mac", mac]);
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v["devices"].as_array()?.first().cloned()
}

/// A gauge of the DHCP worker from `status --json`.
fn gauge(daemon: &Daemon, name: &str) -> Option<u64> {
    let w = daemon.workers();
    w.get("dhcp")?["stats"]["gauges"]
        .as_array()?
        .iter()
        .find(|g| g["reason"] == name)?["count"]
        .as_u64()
}

fn notice(daemon: &Daemon, name: &str) -> u64 {
    let w = daemon.workers();
    w.get("dhcp")
        .and_then(|d| d["stats"]["notices"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .find(|g| g["reason"] == name)
        .and_then(|g| g["count"].as_u64())
        .unwrap_or(0)
}

#[test]
fn lease_becomes_a_device_that_survives_restarts() {
    let lab = Lab::new("dhcp-dev");
    dhcp_server(&lab);
    for args in [
        &["link", "set", "dev", SENSOR_IF, "down"][..],
        &["link", "set", "dev", SENSOR_IF, "address", CLIENT_MAC],
        &["link", "set", "dev", SENSOR_IF, "up"],
    ] {
        run(lab.sensor("ip").args(args));
    }
    let cfg = base_config(&lab, "");
    let daemon = Daemon::start(&lab, &cfg, &[]);
    let pids = daemon.wait_healthy();
    let out = udhcpc(&lab, Side::Sensor, SENSOR_IF, &["-x", "hostname:labhost"]);
    assert!(out.status.success(), "udhcpc got no lease: {out:?}");

    let d = wait_for(Duration::from_secs(10), "the lease as a device", || {
        device(&daemon, CLIENT_MAC).filter(|d| d["lease"]["ip"].is_string())
    });
    assert_eq!(d["hostname"], "labhost", "{d}");
    assert_eq!(d["vendor"], "Synology Incorporated", "{d}");
    assert_eq!(d["locally_administered"], false, "{d}");
    assert_eq!(d["os"], "linux", "{d}");
    assert_eq!(d["device_type"], "embedded", "{d}");
    assert!(
        d["vendor_class"].as_str().unwrap().starts_with("udhcp "),
        "{d}"
    );
    assert!(
        d["fingerprint"]
            .as_str()
            .is_some_and(|f| f.contains("|udhcp ")),
        "{d}"
    );
    assert_eq!(d["client_id"], "01:00:11:32:aa:bb:cc", "{d}");
    let ip = d["lease"]["ip"].as_str().unwrap().to_owned();
    assert!(ip.starts_with("198.18.0.1"), "{d}");
    assert!(
        d["ipv4"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == ip.as_str()),
        "{d}"
    );
    assert_eq!(d["lease"]["lease_time"], 3600, "{d}");
    // The transaction: DISCOVER (retransmitted as udhcpc does), OFFER, REQUEST, ACK under
    // one xid; the ACK's event says `complete`.
    let ack = daemon.wait_event("the ACK event", Duration::from_secs(5), |e| {
        e["event_type"] == "dhcp" && e["dhcp"]["dhcp_type"] == "ack"
    });
    let t = &ack["palisade"]["dhcp"]["transaction"];
    assert_eq!(t["state"], "complete", "{ack}");
    let seen: Vec<&str> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(seen.first(), Some(&"discover"), "{ack}");
    assert_eq!(seen.last(), Some(&"ack"), "{ack}");
    assert!(
        seen.contains(&"offer") && seen.contains(&"request"),
        "{ack}"
    );
    assert_eq!(ack["dhcp"]["assigned_ip"], ip.as_str());
    // One new_device alert for the MAC.
    let alerts = |daemon: &Daemon| {
        daemon
            .events()
            .into_iter()
            .filter(|e| {
                e["event_type"] == "alert"
                    && e["palisade"]["change"] == "new_device"
                    && e["palisade"]["device"]["mac"] == CLIENT_MAC
            })
            .count()
    };
    assert_eq!(alerts(&daemon), 1);
    // The table output names it too.
    let table = daemon.ctl(&["devices"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains(CLIENT_MAC) && text.contains("labhost"),
        "{text}"
    );
    // ARP feeds the inventory too: besides the client, the server (dnsmasq pings an address
    // before it offers it, so it ARPs from 198.18.0.2) is a device; nobody else is.
    let all = daemon.ctl(&["devices", "--json"]);
    let all: Value = serde_json::from_slice(&all.stdout).expect("devices --json");
    let all = all["devices"].as_array().expect("devices");
    for d in all {
        assert!(
            d["mac"] == CLIENT_MAC
                || d["ipv4"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|ip| ip == PEER_IP)),
            "{d}"
        );
    }
    let devices_now = all.len() as u64;
    assert_eq!(gauge(&daemon, "dhcp_devices"), Some(devices_now));
    assert!(gauge(&daemon, "dhcp_registry_entries").unwrap() > 30_000);

    // The worker killed: its successor reads the inventory back from the state file.
    let pid = pids["dhcp"];
    // SAFETY: kill(2) on a worker of the daemon this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_for(Duration::from_secs(10), "a new DHCP worker", || {
        let w = daemon.workers();
        let d = w.get("dhcp")?;
        (d["state"] == "running" && d["pid"].as_u64() != Some(u64::from(pid))).then_some(())
    });
    wait_for(Duration::from_secs(5), "the inventory reloaded", || {
        (gauge(&daemon, "dhcp_devices") == Some(devices_now)).then_some(())
    });
    // Renewing the lease is no new device.
    let out = udhcpc(&lab, Side::Sensor, SENSOR_IF, &["-x", "hostname:labhost"]);
    assert!(out.status.success(), "{out:?}");
    wait_for(Duration::from_secs(10), "the renewal counted", || {
        device(&daemon, CLIENT_MAC).filter(|d| d["lease"]["renewals"].as_u64() >= Some(1))
    });
    assert_eq!(alerts(&daemon), 1, "a known device is not new");
    daemon.stop();

    // The supervisor restarted: the same inventory.
    let daemon = Daemon::start(&lab, &cfg, &[]);
    daemon.wait_healthy();
    let again = device(&daemon, CLIENT_MAC).expect("device after a supervisor restart");
    assert_eq!(again["first_seen"], d["first_seen"]);
    assert_eq!(again["hostname"], "labhost");
    wait_for(Duration::from_secs(5), "the inventory reloaded", || {
        (gauge(&daemon, "dhcp_devices") == Some(devices_now)).then_some(())
    });
    // A device that is not there: exit status 1, an error on stderr.
    let out = daemon.ctl(&["devices", "--mac", "02:00:00:00:00:99"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    daemon.stop();
}

#[test]
fn unanswered_transaction_expires_and_leaves_memory() {
    let lab = Lab::new("dhcp-exp");
    let cfg = base_config(&lab, "[dhcp]\ntransaction_timeout_s = 600\n");
    let daemon = Daemon::start(&lab, &cfg, &[]);
    daemon.wait_healthy();
    // The timeout changes at reload.
    std::fs::write(
        lab.dir.join("palisade.toml"),
        base_config(&lab, "[dhcp]\ntransaction_timeout_s = 2\n"),
    )
    .expect("rewrite the configuration");
    let out = daemon.ctl(&["reload"]);
    assert!(out.status.success(), "reload: {out:?}");
    // No DHCP server anywhere: udhcpc on the peer side sends DISCOVERs nobody answers
    // (the sensor's ingress sees them).
    let out = udhcpc(&lab, Side::Peer, PEER_IF, &["-t", "1"]);
    assert!(!out.status.success(), "no server, no lease: {out:?}");
    let discover = daemon.wait_event("a DISCOVER", Duration::from_secs(5), |e| {
        e["event_type"] == "dhcp" && e["dhcp"]["dhcp_type"] == "discover"
    });
    assert_eq!(discover["palisade"]["dhcp"]["transaction"]["state"], "open");
    let id = discover["dhcp"]["id"].clone();
    let incomplete =
        daemon.wait_event("the incomplete transaction", Duration::from_secs(10), |e| {
            e["event_type"] == "dhcp"
                && e["dhcp"]["id"] == id
                && e["palisade"]["dhcp"]["transaction"]["state"] == "incomplete"
        });
    assert_eq!(
        incomplete["palisade"]["dhcp"]["transaction"]["messages"][0],
        "discover"
    );
    wait_for(
        Duration::from_secs(5),
        "open transactions back to 0",
        || {
            (gauge(&daemon, "dhcp_open_transactions") == Some(0)
                && notice(&daemon, "dhcp_transaction_expired") >= 1)
                .then_some(())
        },
    );
    daemon.stop();
}

/// A DHCPv6 SOLICIT (client DUID-LL of `00:11:32:0a:0b:0c`, ORO 23 and 24, client FQDN
/// `v6client`, one IA_NA), as a client sends it to All_DHCP_Relay_Agents_and_Servers.
const SOLICIT_PY: &str = r#"
import socket, struct, sys, time
def opt(code, value):
    return struct.pack("!HH", code, len(value)) + value
duid = bytes([0, 3, 0, 1, 0x00, 0x11, 0x32, 0x0a, 0x0b, 0x0c])
msg = bytes([1, 0xab, 0xcd, 0xef]) + opt(1, duid) + opt(6, bytes([0, 23, 0, 24])) \
    + opt(8, bytes([0, 0])) + opt(39, bytes([0, 8]) + b"v6client" + bytes([0])) \
    + opt(3, bytes(12))
ifindex = socket.if_nametoindex(sys.argv[1])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
for attempt in range(50):
    try:
        s.sendto(msg, ("ff02::1:2", 547, 0, ifindex))
        break
    except OSError:
        time.sleep(0.1)
"#;

#[test]
fn dhcpv6_solicit_is_captured_and_logged() {
    let lab = Lab::new("dhcp6");
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();
    let e = wait_for(Duration::from_secs(15), "the SOLICIT's event", || {
        let out = lab
            .peer("python3")
            .args(["-c", SOLICIT_PY, PEER_IF])
            .output()
            .expect("python3");
        assert!(out.status.success(), "{out:?}");
        daemon
            .events()
            .into_iter()
            .find(|e| e["event_type"] == "dhcp" && e["palisade"]["dhcp"]["version"] == 6)
    });
    assert_eq!(e["dhcp"]["dhcp_type"], "solicit", "{e}");
    assert_eq!(e["dhcp"]["id"], 0xabcdef, "{e}");
    assert_eq!(e["dhcp"]["client_mac"], "00:11:32:0a:0b:0c", "{e}");
    assert_eq!(e["dhcp"]["hostname"], "v6client", "{e}");
    assert_eq!(
        e["dhcp"]["client_id"], "00:03:00:01:00:11:32:0a:0b:0c",
        "{e}"
    );
    assert_eq!(
        e["palisade"]["dhcp"]["params"],
        serde_json::json!([23, 24]),
        "{e}"
    );
    assert_eq!(e["dest_port"], 547, "{e}");
    let d = wait_for(
        Duration::from_secs(10),
        "the DHCPv6 client as a device",
        || device(&daemon, "00:11:32:0a:0b:0c"),
    );
    assert_eq!(d["hostname"], "v6client", "{d}");
    assert_eq!(d["vendor"], "Synology Incorporated", "{d}");
    assert_eq!(d["fingerprint"], "v6:23,24", "{d}");
    daemon.stop();
}

/// One MA-L assignment for Synology's prefix (00:11:32) under `name`, in ieee-data's CSV.
fn write_registry(dir: &std::path::Path, name: &str) {
    std::fs::create_dir_all(dir).expect("registry dir");
    std::fs::write(
        dir.join("oui.csv"),
        format!(
            "Registry,Assignment,Organization Name,Organization Address\nMA-L,001132,{name},Somewhere\n"
        ),
    )
    .expect("write oui.csv");
}

#[test]
fn ieee_registry_is_reread_at_reload() {
    let lab = Lab::new("dhcp-ieee");
    let ieee = lab.dir.join("ieee");
    write_registry(&ieee, "Old Vendor Inc");
    let cfg = base_config(&lab, &format!("ieee_data_dir = \"{}\"\n", ieee.display()));
    let daemon = Daemon::start(&lab, &cfg, &[]);
    let pids = daemon.wait_healthy();
    let d = wait_for(
        Duration::from_secs(15),
        "the DHCPv6 client as a device",
        || {
            let out = lab
                .peer("python3")
                .args(["-c", SOLICIT_PY, PEER_IF])
                .output()
                .expect("python3");
            assert!(out.status.success(), "{out:?}");
            device(&daemon, "00:11:32:0a:0b:0c")
        },
    );
    assert_eq!(d["vendor"], "Old Vendor Inc", "{d}");
    assert_eq!(gauge(&daemon, "dhcp_registry_entries"), Some(1));

    // ieee-data updated: a reload hands the new registry to the running worker.
    write_registry(&ieee, "New Vendor Inc");
    let out = daemon.ctl(&["reload"]);
    assert!(out.status.success(), "reload: {out:?}");
    wait_for(Duration::from_secs(10), "the new vendor name", || {
        device(&daemon, "00:11:32:0a:0b:0c").filter(|d| d["vendor"] == "New Vendor Inc")
    });
    assert_eq!(
        daemon.wait_healthy()["dhcp"],
        pids["dhcp"],
        "the same DHCP worker (no restart)"
    );
    // Unchanged files: nothing handed over again.
    let out = daemon.ctl(&["reload"]);
    assert!(out.status.success(), "reload: {out:?}");
    wait_for(Duration::from_secs(5), "the reload logged", || {
        (daemon.log_text().matches("IP policy reloaded").count() >= 2).then_some(())
    });
    assert_eq!(
        daemon.log_text().matches("IEEE registries changed").count(),
        1,
        "{}",
        daemon.log_text()
    );
    daemon.stop();
}
