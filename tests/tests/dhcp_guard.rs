//! The DHCP guard, ARP and neighbour discovery with real peers. The legitimate DHCP server
//! (dnsmasq) and a rogue one (a second dnsmasq, or Python sending router advertisements)
//! sit on the peer side, the rogue in a namespace of its own behind a macvlan on the peer's
//! veth (its own MAC); the client (udhcpc, the kernel's RA handling, dhclient -6) is the
//! sensor's namespace, whose interface Palisade watches.
//!
//! * `rogue_dhcp_server_is_alerted_then_dropped`: without the guard dropping, the rogue
//!   server (it answers at once, the legitimate one 3 s late) wins the client and is
//!   alerted; after a reload with `guard = true` the client only ever gets the legitimate
//!   lease, the rogue's replies are dropped (alerts
//!   `blocked`, kernel counters, the per-sender map read back), the legitimate server is
//!   never alerted.
//! * `rogue_router_advertisement_is_alerted_then_dropped`: the rogue RA installs a default
//!   route in the client's namespace and is alerted; with the guard on it is dropped and the
//!   client never sees it (no route, no address from its prefix).
//! * `arp_and_nd_feed_bindings_and_a_moved_binding_is_an_alert`: ARP from the peer puts its
//!   IPv4 address on its device, neighbour discovery its IPv6 link-local; a spoofed ARP reply
//!   for the peer's address is a binding-changed alert naming the previous MAC.
//! * `dhcpv6_lease_from_dnsmasq_with_dhclient`: dnsmasq (DHCPv6 and RAs, allow-listed) and
//!   ISC dhclient -6, with a rogue dnsmasq (DHCPv6 and RAs) on the link and the guard on:
//!   the client's lease is the legitimate server's and becomes the device's IPv6 address;
//!   the rogue's ADVERTISEs and RAs are alerted `blocked` and the client has no route
//!   through it; the legitimate server is never alerted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests index JSON values; a panic is a test failure"
)]

use std::{
    fs,
    process::{Command, Output, Stdio},
    thread::sleep,
    time::Duration,
};

use palisade_tests::{
    Daemon, Lab, PEER_IF, SENSOR_IF, SENSOR_IP, Side, base_config, run, wait_for,
};
use serde_json::Value;

/// The legitimate server's (the peer's) MAC.
const LEGIT_MAC: &str = "02:00:00:00:aa:01";
/// The rogue's MAC (a macvlan on the peer's veth, in its own namespace).
const ROGUE_MAC: &str = "02:00:00:00:bb:01";
const ROGUE_IP: &str = "198.18.0.3";
const ROGUE_IF: &str = "rg0";

/// The rogue's namespace; deleted on drop (its processes are the lab's children).
struct Rogue {
    ns: String,
}

impl Rogue {
    fn new(lab: &Lab) -> Self {
        let ns = format!("pal-{}-r", lab.id);
        run(Command::new("ip").args(["netns", "add", &ns]));
        run(lab.peer("ip").args([
            "link", "add", "link", PEER_IF, "name", ROGUE_IF, "address", ROGUE_MAC, "type",
            "macvlan", "mode", "bridge",
        ]));
        run(lab.peer("ip").args(["link", "set", ROGUE_IF, "netns", &ns]));
        let rogue = Self { ns };
        run(rogue
            .cmd("ip")
            .args(["addr", "add", &format!("{ROGUE_IP}/24"), "dev", ROGUE_IF]));
        run(rogue.cmd("ip").args(["link", "set", ROGUE_IF, "up"]));
        run(rogue.cmd("ip").args(["link", "set", "lo", "up"]));
        rogue
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        c
    }

    /// A second DHCP server, answering at once from 198.18.0.200-250.
    fn start_dnsmasq(&self, lab: &Lab) {
        self.start_dnsmasq_with(
            lab,
            &["--dhcp-range=198.18.0.200,198.18.0.250,255.255.255.0,1h"],
            ":67 ",
        );
    }

    /// A second dnsmasq serving `ranges` (and whatever else they say); ready when `ss`
    /// shows a UDP socket on `port` (`":67 "`, `":547 "`).
    fn start_dnsmasq_with(&self, lab: &Lab, ranges: &[&str], port: &str) {
        let mut cmd = self.cmd("dnsmasq");
        cmd.args(ranges);
        cmd.args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--port=0",
            "--bind-interfaces",
            &format!("--interface={ROGUE_IF}"),
            "--dhcp-authoritative",
            // No ping check of an address before offering it (dnsmasq waits for an
            // answer up to a few seconds): the rogue answers at once.
            "--no-ping",
            &format!(
                "--dhcp-leasefile={}",
                lab.dir.join("rogue.leases").display()
            ),
            &format!("--pid-file={}", lab.dir.join("rogue.pid").display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        lab.spawn(cmd);
        wait_for(Duration::from_secs(5), "the rogue DHCP server", || {
            let out = self.cmd("ss").args(["-lun"]).output().expect("ss");
            String::from_utf8_lossy(&out.stdout)
                .contains(port)
                .then_some(())
        });
        if port == ":547 " {
            // dnsmasq joins the All_DHCP_Relay_Agents_and_Servers group after binding its
            // socket: a SOLICIT sent before that never reaches it (no ADVERTISE to block).
            wait_for(Duration::from_secs(5), "the rogue in ff02::1:2", || {
                let out = self
                    .cmd("ip")
                    .args(["-6", "maddr", "show", "dev", ROGUE_IF])
                    .output()
                    .expect("ip");
                String::from_utf8_lossy(&out.stdout)
                    .contains("ff02::1:2")
                    .then_some(())
            });
        }
    }

    /// Waits until the rogue's link-local address has passed duplicate address detection
    /// (the kernel sends nothing from a tentative one).
    fn wait_link_local(&self) {
        wait_for(
            Duration::from_secs(10),
            "the rogue's link-local address",
            || {
                let out = self
                    .cmd("ip")
                    .args(["-6", "addr", "show", "dev", ROGUE_IF, "scope", "link"])
                    .output()
                    .expect("ip");
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                (text.contains("fe80") && !text.contains("tentative")).then_some(())
            },
        );
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn set_mac(lab: &Lab, side: Side, ifname: &str, mac: &str) {
    let cmd = |lab: &Lab| match side {
        Side::Sensor => lab.sensor("ip"),
        Side::Peer => lab.peer("ip"),
    };
    for args in [
        &["link", "set", "dev", ifname, "down"][..],
        &["link", "set", "dev", ifname, "address", mac],
        &["link", "set", "dev", ifname, "up"],
    ] {
        run(cmd(lab).args(args));
    }
}

/// The legitimate server: dnsmasq on the peer, 198.18.0.100-150, answering 3 s late so that
/// the rogue (which answers at once) wins whenever its replies get through.
fn legit_dhcp_server(lab: &Lab) {
    lab.start_dnsmasq_with(
        Side::Peer,
        &[
            "--dhcp-range=198.18.0.100,198.18.0.150,255.255.255.0,1h",
            "--dhcp-authoritative",
            "--dhcp-reply-delay=3",
            &format!(
                "--dhcp-leasefile={}",
                lab.dir.join("dnsmasq.leases").display()
            ),
        ],
    );
}

/// udhcpc on the sensor's interface: 5 DISCOVERs, 4 s apart at most; the lease it got.
fn udhcpc(lab: &Lab) -> (Output, Option<String>) {
    let out = lab
        .sensor("udhcpc")
        .args([
            "-i",
            SENSOR_IF,
            "-n",
            "-q",
            "-f",
            "-t",
            "5",
            "-T",
            "4",
            "-s",
            "/bin/true",
        ])
        .output()
        .expect("udhcpc");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // "udhcpc: lease of 198.18.0.123 obtained from 198.18.0.2, lease time 3600"
    let lease = text
        .split("lease of ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned);
    (out, lease)
}

fn guard_config(lab: &Lab, guard: bool) -> String {
    base_config(
        lab,
        &format!("[dhcp]\nguard = {guard}\nallowed_servers = [\"{LEGIT_MAC}\"]\n"),
    )
}

fn reload(daemon: &Daemon, lab: &Lab, config: &str) {
    fs::write(lab.dir.join("palisade.toml"), config).expect("rewrite the configuration");
    let out = daemon.ctl(&["reload"]);
    assert!(out.status.success(), "reload: {out:?}");
}

fn guard_alerts(daemon: &Daemon, sid: u64) -> Vec<Value> {
    daemon
        .events()
        .into_iter()
        .filter(|e| e["event_type"] == "alert" && e["alert"]["signature_id"] == sid)
        .collect()
}

fn counter(daemon: &Daemon, name: &str) -> u64 {
    daemon.kernel_counter("dhcp_guard", name).unwrap_or(0)
}

/// `pal_guard_sources` as bpftool dumps it: (key bytes, value bytes) per rogue sender.
fn guard_sources(lab: &Lab) -> Vec<(Vec<u8>, Vec<u8>)> {
    let pin = lab.pin_dir().join("maps").join("pal_guard_sources");
    let out = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(&pin)
        .output()
        .expect("bpftool");
    assert!(
        out.status.success(),
        "bpftool map dump {}: {out:?}",
        pin.display()
    );
    let entries: Value = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    let bytes = |v: &Value| -> Vec<u8> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|b| b.as_str())
                    .filter_map(|b| u8::from_str_radix(b.trim_start_matches("0x"), 16).ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    entries
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| (bytes(&e["key"]), bytes(&e["value"])))
                .collect()
        })
        .unwrap_or_default()
}

fn mac_bytes(mac: &str) -> Vec<u8> {
    mac.split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect()
}

fn u64_at(bytes: &[u8], field: usize) -> u64 {
    let b: [u8; 8] = bytes[field * 8..field * 8 + 8].try_into().expect("8 bytes");
    u64::from_ne_bytes(b)
}

#[test]
fn rogue_dhcp_server_is_alerted_then_dropped() {
    let lab = Lab::new("guard-dhcp");
    set_mac(&lab, Side::Peer, PEER_IF, LEGIT_MAC);
    let rogue = Rogue::new(&lab);
    legit_dhcp_server(&lab);
    rogue.start_dnsmasq(&lab);
    let daemon = Daemon::start(&lab, &guard_config(&lab, false), &[]);
    daemon.wait_healthy();

    // Alert only: the rogue answers first and wins the client.
    let (out, lease) = udhcpc(&lab);
    assert!(out.status.success(), "udhcpc got no lease: {out:?}");
    let lease = lease.expect("udhcpc names its lease");
    assert!(
        lease.starts_with("198.18.0.2"),
        "the rogue's lease: {lease} {out:?}"
    );
    let alert = daemon.wait_event("a rogue DHCP server alert", Duration::from_secs(5), |e| {
        e["event_type"] == "alert" && e["alert"]["signature_id"] == 9_000_030
    });
    assert_eq!(alert["alert"]["action"], "allowed", "{alert}");
    let g = &alert["palisade"]["guard"];
    assert_eq!(g["server_mac"], ROGUE_MAC, "{alert}");
    assert_eq!(g["server_ip"], ROGUE_IP, "{alert}");
    assert_eq!(g["message"], "dhcp", "{alert}");
    assert_eq!(g["dropped"], false, "{alert}");
    assert!(
        matches!(g["dhcp_type"].as_str(), Some("offer" | "ack")),
        "{alert}"
    );
    assert_eq!(alert["src_port"], 67, "{alert}");
    assert_eq!(counter(&daemon, "dropped"), 0);
    assert!(counter(&daemon, "rogue") >= 1);
    // The legitimate OFFER (3 s late) is checked and allowed.
    wait_for(
        Duration::from_secs(10),
        "the legitimate OFFER allowed",
        || (counter(&daemon, "allowed") >= 1).then_some(()),
    );

    // Guard on: the client only ever gets the legitimate lease.
    reload(&daemon, &lab, &guard_config(&lab, true));
    for attempt in 0..3 {
        let (out, lease) = udhcpc(&lab);
        assert!(out.status.success(), "attempt {attempt}: no lease: {out:?}");
        let lease = lease.expect("udhcpc names its lease");
        assert!(
            lease.starts_with("198.18.0.1"),
            "attempt {attempt}: not the legitimate lease: {lease} {out:?}"
        );
    }
    let blocked = daemon.wait_event("a blocked rogue reply", Duration::from_secs(5), |e| {
        e["event_type"] == "alert"
            && e["alert"]["signature_id"] == 9_000_030
            && e["alert"]["action"] == "blocked"
    });
    assert_eq!(
        blocked["palisade"]["guard"]["server_mac"], ROGUE_MAC,
        "{blocked}"
    );
    assert_eq!(blocked["palisade"]["guard"]["dropped"], true, "{blocked}");
    assert!(counter(&daemon, "dropped") >= 1);
    let status = daemon.ctl(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("DHCP GUARD kernel: checked=") && !text.contains(" dropped=0 "),
        "{text}"
    );
    // The legitimate server is never alerted.
    for a in guard_alerts(&daemon, 9_000_030) {
        assert_eq!(a["palisade"]["guard"]["server_mac"], ROGUE_MAC, "{a}");
    }
    // `palisade guard`: the mode, the list, the rogue with its counts.
    let out = daemon.ctl(&["guard", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("guard --json");
    assert_eq!(report["mode"], "drop", "{report}");
    assert_eq!(
        report["allowed_servers"],
        serde_json::json!([LEGIT_MAC]),
        "{report}"
    );
    assert_eq!(report["senders_total"], 1, "{report}");
    let s = &report["senders"][0];
    assert_eq!(
        (&s["mac"], &s["ip"]),
        (&Value::from(ROGUE_MAC), &Value::from(ROGUE_IP)),
        "{report}"
    );
    assert!(
        s["dhcp4"].as_u64() >= Some(2) && s["dropped"].as_u64() >= Some(1),
        "{report}"
    );
    assert!(
        s["last_seen"].as_u64() >= s["first_seen"].as_u64(),
        "{report}"
    );
    let table = daemon.ctl(&["guard"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("DHCP guard: drop") && text.contains(ROGUE_MAC),
        "{text}"
    );
    // The per-sender map itself: the rogue, its DHCPv4 messages, some dropped.
    let sources = guard_sources(&lab);
    let (_, value) = sources
        .iter()
        .find(|(k, _)| k.get(..6) == Some(&mac_bytes(ROGUE_MAC)[..]))
        .unwrap_or_else(|| panic!("the rogue in pal_guard_sources: {sources:?}"));
    assert!(u64_at(value, 0) >= 2, "dhcp4 messages: {value:?}");
    assert!(u64_at(value, 3) >= 1, "dropped: {value:?}");
    assert!(
        !sources
            .iter()
            .any(|(k, _)| k.get(..6) == Some(&mac_bytes(LEGIT_MAC)[..])),
        "the legitimate server is not a rogue sender: {sources:?}"
    );

    // The `dhcp-guard` feature switched off at run time: the kernel neither flags nor drops,
    // the rogue wins again; switched on: guarded again.
    let alerts_before = guard_alerts(&daemon, 9_000_030).len();
    let out = daemon.ctl(&["feature", "disable", "dhcp-guard"]);
    assert!(out.status.success(), "{out:?}");
    let report: Value =
        serde_json::from_slice(&daemon.ctl(&["guard", "--json"]).stdout).expect("guard --json");
    assert_eq!(report["mode"], "off", "{report}");
    let (out, lease) = udhcpc(&lab);
    assert!(out.status.success(), "no lease: {out:?}");
    assert!(
        lease
            .as_deref()
            .is_some_and(|l| l.starts_with("198.18.0.2")),
        "the rogue's lease with the guard off: {lease:?} {out:?}"
    );
    assert_eq!(
        guard_alerts(&daemon, 9_000_030).len(),
        alerts_before,
        "no guard alert while it is off"
    );
    let out = daemon.ctl(&["feature", "enable", "dhcp-guard"]);
    assert!(out.status.success(), "{out:?}");
    let (out, lease) = udhcpc(&lab);
    assert!(
        out.status.success()
            && lease
                .as_deref()
                .is_some_and(|l| l.starts_with("198.18.0.1")),
        "the legitimate lease with the guard back: {lease:?} {out:?}"
    );
    let check = daemon.ctl(&["check"]);
    assert!(
        check.status.success(),
        "the kernel holds the switched state: {check:?}"
    );
    daemon.stop();
    drop(rogue);
}

/// A router advertisement for 2001:db8:bad::/64 (autonomous), router lifetime 1800 s, with
/// the sender's link-layer address, to all nodes on `argv[1]`.
const RA_PY: &str = r#"
import socket, struct, sys
ifname, mac = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", ""))
prefix = socket.inet_pton(socket.AF_INET6, "2001:db8:bad::")
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
ra += bytes([1, 1]) + mac
ra += struct.pack("!BBBBIII", 3, 4, 64, 0xc0, 3600, 3600, 0) + prefix
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
idx = socket.if_nametoindex(ifname)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
s.sendto(ra, ("ff02::1", 0, 0, idx))
"#;

fn send_rogue_ra(rogue: &Rogue) {
    let out = rogue
        .cmd("python3")
        .args(["-c", RA_PY, ROGUE_IF, ROGUE_MAC])
        .output()
        .expect("python3");
    assert!(out.status.success(), "sending the RA: {out:?}");
}

/// What the client's namespace took from RAs: its IPv6 default routes and global addresses.
fn client_ipv6(lab: &Lab) -> String {
    let route = lab
        .sensor("ip")
        .args(["-6", "route", "show", "default"])
        .output()
        .expect("ip");
    let addr = lab
        .sensor("ip")
        .args(["-6", "addr", "show", "dev", SENSOR_IF, "scope", "global"])
        .output()
        .expect("ip");
    format!(
        "{}{}",
        String::from_utf8_lossy(&route.stdout),
        String::from_utf8_lossy(&addr.stdout)
    )
}

#[test]
fn rogue_router_advertisement_is_alerted_then_dropped() {
    let lab = Lab::new("guard-ra");
    set_mac(&lab, Side::Peer, PEER_IF, LEGIT_MAC);
    let rogue = Rogue::new(&lab);
    // The client takes RAs (forwarding is off in a new namespace; 2 takes them regardless).
    run(lab
        .sensor("sysctl")
        .args(["-qw", &format!("net.ipv6.conf.{SENSOR_IF}.accept_ra=2")]));
    rogue.wait_link_local();
    let daemon = Daemon::start(&lab, &guard_config(&lab, false), &[]);
    daemon.wait_healthy();

    // Alert only: the RA reaches the client, which takes a default route through the rogue.
    let seen = wait_for(Duration::from_secs(10), "the rogue's default route", || {
        send_rogue_ra(&rogue);
        sleep(Duration::from_millis(300));
        let ip = client_ipv6(&lab);
        (ip.contains("default via fe80") && ip.contains("2001:db8:bad:")).then_some(ip)
    });
    assert!(seen.contains(SENSOR_IF), "{seen}");
    let alert = daemon.wait_event("a rogue RA alert", Duration::from_secs(5), |e| {
        e["event_type"] == "alert" && e["alert"]["signature_id"] == 9_000_031
    });
    assert_eq!(alert["alert"]["action"], "allowed", "{alert}");
    let g = &alert["palisade"]["guard"];
    assert_eq!(g["server_mac"], ROGUE_MAC, "{alert}");
    assert_eq!(g["message"], "router_advertisement", "{alert}");
    assert_eq!(g["router_lifetime"], 1800, "{alert}");
    assert_eq!(
        g["prefixes"],
        serde_json::json!(["2001:db8:bad::/64"]),
        "{alert}"
    );
    assert!(
        g["server_ip"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("fe80::")),
        "{alert}"
    );
    assert_eq!(alert["proto"], "IPv6-ICMP", "{alert}");

    // Forget what the client learnt, then the guard on.
    run(lab
        .sensor("ip")
        .args(["-6", "route", "flush", "proto", "ra"]));
    run(lab
        .sensor("ip")
        .args(["-6", "addr", "flush", "dev", SENSOR_IF, "scope", "global"]));
    assert!(
        !client_ipv6(&lab).contains("2001:db8:bad:"),
        "{}",
        client_ipv6(&lab)
    );
    reload(&daemon, &lab, &guard_config(&lab, true));
    let dropped_before = counter(&daemon, "dropped");
    for _ in 0..5 {
        send_rogue_ra(&rogue);
        sleep(Duration::from_millis(200));
    }
    let blocked = daemon.wait_event("a blocked rogue RA", Duration::from_secs(5), |e| {
        e["event_type"] == "alert"
            && e["alert"]["signature_id"] == 9_000_031
            && e["alert"]["action"] == "blocked"
    });
    assert_eq!(blocked["palisade"]["guard"]["dropped"], true, "{blocked}");
    wait_for(Duration::from_secs(5), "the RAs counted as dropped", || {
        (counter(&daemon, "dropped") >= dropped_before + 5).then_some(())
    });
    sleep(Duration::from_secs(1));
    let after = client_ipv6(&lab);
    assert!(
        !after.contains("default") && !after.contains("2001:db8:bad:"),
        "the client saw a dropped RA: {after}"
    );
    let sources = guard_sources(&lab);
    let (_, value) = sources
        .iter()
        .find(|(k, _)| k.get(..6) == Some(&mac_bytes(ROGUE_MAC)[..]))
        .unwrap_or_else(|| panic!("the rogue in pal_guard_sources: {sources:?}"));
    assert!(u64_at(value, 2) >= 6, "RAs: {value:?}");
    assert!(u64_at(value, 3) >= 5, "dropped: {value:?}");
    daemon.stop();
    drop(rogue);
}

/// An ARP reply claiming `argv[2]` (IPv4) is at `argv[3]` (MAC), sent raw on `argv[1]` to
/// the broadcast address, as an ARP spoofer does.
const ARP_SPOOF_PY: &str = r#"
import socket, sys
ifname, ip, mac = sys.argv[1], socket.inet_aton(sys.argv[2]), bytes.fromhex(sys.argv[3].replace(":", ""))
bcast = b"\xff" * 6
frame = bcast + mac + b"\x08\x06" + bytes([0, 1, 8, 0, 6, 4, 0, 2]) + mac + ip + bcast + ip
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
s.send(frame)
"#;

fn device(daemon: &Daemon, mac: &str) -> Option<Value> {
    let out = daemon.ctl(&["devices", "--json", "--mac", mac]);
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v["devices"].as_array()?.first().cloned()
}

#[test]
fn arp_and_nd_feed_bindings_and_a_moved_binding_is_an_alert() {
    const SPOOF_MAC: &str = "02:00:00:00:66:66";
    let lab = Lab::new("guard-arp");
    set_mac(&lab, Side::Peer, PEER_IF, LEGIT_MAC);
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();

    // The peer resolves the sensor's address: its ARP request binds 198.18.0.2 to it.
    let out = lab
        .peer("ping")
        .args(["-c", "1", "-W", "2", SENSOR_IP])
        .output()
        .expect("ping");
    assert!(out.status.success(), "{out:?}");
    let d = wait_for(Duration::from_secs(10), "the peer's IPv4 from ARP", || {
        device(&daemon, LEGIT_MAC).filter(|d| {
            d["ipv4"]
                .as_array()
                .is_some_and(|a| a.iter().any(|ip| ip == "198.18.0.2"))
        })
    });
    assert_eq!(d["mac"], LEGIT_MAC, "{d}");
    // IPv6 neighbour discovery: the peer's link-local address on its device.
    wait_for(Duration::from_secs(15), "the peer's IPv6 from ND", || {
        let _ = lab
            .peer("ping")
            .args(["-6", "-c", "1", "-W", "1", &format!("ff02::1%{PEER_IF}")])
            .output();
        device(&daemon, LEGIT_MAC).filter(|d| {
            d["ipv6"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|ip| ip.as_str().is_some_and(|s| s.starts_with("fe80:")))
            })
        })
    });
    assert!(
        !daemon
            .events()
            .iter()
            .any(|e| e["palisade"]["change"] == "binding"),
        "no binding moved yet"
    );

    // A spoofed reply: 198.18.0.2 is at another MAC.
    let out = lab
        .peer("python3")
        .args(["-c", ARP_SPOOF_PY, PEER_IF, "198.18.0.2", SPOOF_MAC])
        .output()
        .expect("python3");
    assert!(out.status.success(), "{out:?}");
    let alert = daemon.wait_event("a binding-changed alert", Duration::from_secs(5), |e| {
        e["event_type"] == "alert" && e["alert"]["signature_id"] == 9_000_023
    });
    assert_eq!(alert["palisade"]["change"], "binding", "{alert}");
    assert_eq!(alert["palisade"]["ip"], "198.18.0.2", "{alert}");
    assert_eq!(alert["palisade"]["previous"], LEGIT_MAC, "{alert}");
    assert_eq!(alert["palisade"]["source"], "arp", "{alert}");
    assert_eq!(alert["palisade"]["device"]["mac"], SPOOF_MAC, "{alert}");
    assert_eq!(alert["src_ip"], "198.18.0.2", "{alert}");
    assert_eq!(alert["ether"]["src_mac"], SPOOF_MAC, "{alert}");
    let gauge = daemon.workers()["dhcp"]["stats"]["gauges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["reason"] == "dhcp_bindings")
        .and_then(|g| g["count"].as_u64())
        .unwrap_or(0);
    assert!(gauge >= 2, "bindings gauge {gauge}");
    daemon.stop();
}

/// Kills the process whose pid a file holds, on drop.
struct KillPidFile(std::path::PathBuf);

impl Drop for KillPidFile {
    fn drop(&mut self) {
        if let Some(pid) = fs::read_to_string(&self.0)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            // SAFETY: kill(2) on the dhclient this test started (its own pid file).
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
}

#[test]
fn dhcpv6_lease_from_dnsmasq_with_dhclient() {
    let lab = Lab::new("guard-dhcp6");
    set_mac(&lab, Side::Peer, PEER_IF, LEGIT_MAC);
    run(lab.peer("ip").args([
        "-6",
        "addr",
        "add",
        "2001:db8:1::2/64",
        "dev",
        PEER_IF,
        "nodad",
    ]));
    lab.start_dnsmasq_with(
        Side::Peer,
        &[
            // DHCPv6 is answered on the interface of a listening IPv6 address.
            "--listen-address=2001:db8:1::2",
            "--dhcp-range=2001:db8:1::100,2001:db8:1::1ff,64,1h",
            "--enable-ra",
            &format!(
                "--dhcp-leasefile={}",
                lab.dir.join("dnsmasq.leases").display()
            ),
        ],
    );
    let daemon = Daemon::start(&lab, &guard_config(&lab, true), &[]);
    daemon.wait_healthy();
    // A rogue DHCPv6 server and router, started behind the guard: its ADVERTISEs, REPLYs
    // and RAs must never reach the client.
    let rogue = Rogue::new(&lab);
    run(rogue.cmd("ip").args([
        "-6",
        "addr",
        "add",
        "2001:db8:1::3/64",
        "dev",
        ROGUE_IF,
        "nodad",
    ]));
    rogue.wait_link_local();
    rogue.start_dnsmasq_with(
        &lab,
        &[
            "--dhcp-range=2001:db8:1::200,2001:db8:1::2ff,64,1h",
            "--enable-ra",
        ],
        ":547 ",
    );
    // dhclient sends from the link-local address: wait until it is usable.
    wait_for(
        Duration::from_secs(10),
        "the client's link-local address",
        || {
            let out = lab
                .sensor("ip")
                .args(["-6", "addr", "show", "dev", SENSOR_IF, "scope", "link"])
                .output()
                .expect("ip");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            (text.contains("fe80") && !text.contains("tentative")).then_some(())
        },
    );
    // dhclient goes to the background once bound: killed through its pid file at the end.
    let _dhclient = KillPidFile(lab.dir.join("dhclient6.pid"));
    let out = lab
        .sensor("dhclient")
        .args(["-6", "-1", "-v", "-sf", "/bin/true"])
        .arg("-lf")
        .arg(lab.dir.join("dhclient6.leases"))
        .arg("-pf")
        .arg(lab.dir.join("dhclient6.pid"))
        .arg(SENSOR_IF)
        .output()
        .expect("dhclient");
    assert!(out.status.success(), "dhclient -6 got no lease: {out:?}");
    let leases = fs::read_to_string(lab.dir.join("dhclient6.leases")).unwrap_or_default();
    let addr = leases
        .split("iaaddr ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no IA_NA address in the lease file: {leases}"));
    assert!(
        addr.starts_with("2001:db8:1::1"),
        "not the legitimate lease: {addr}"
    );
    let reply = daemon.wait_event("the DHCPv6 REPLY", Duration::from_secs(5), |e| {
        e["event_type"] == "dhcp" && e["dhcp"]["dhcp_type"] == "reply"
    });
    assert_eq!(reply["dhcp"]["assigned_ip"], addr.as_str(), "{reply}");
    assert_eq!(reply["src_port"], 547, "{reply}");
    let client_mac = reply["dhcp"]["client_mac"].as_str().unwrap().to_owned();
    let d = wait_for(Duration::from_secs(10), "the lease on the device", || {
        device(&daemon, &client_mac).filter(|d| {
            d["ipv6"]
                .as_array()
                .is_some_and(|a| a.iter().any(|ip| *ip == addr.as_str()))
        })
    });
    assert!(d["duid"].is_string(), "{d}");
    // The rogue's DHCPv6 answers and RAs were dropped and alerted, the allow-listed
    // server's went through unflagged.
    let blocked = daemon.wait_event("a blocked rogue ADVERTISE", Duration::from_secs(5), |e| {
        e["alert"]["signature_id"] == 9_000_030 && e["palisade"]["guard"]["message"] == "dhcpv6"
    });
    assert_eq!(blocked["alert"]["action"], "blocked", "{blocked}");
    assert_eq!(blocked["src_port"], 547, "{blocked}");
    let ra = daemon.wait_event("a blocked rogue RA", Duration::from_secs(20), |e| {
        e["alert"]["signature_id"] == 9_000_031
    });
    assert_eq!(ra["alert"]["action"], "blocked", "{ra}");
    assert_eq!(
        ra["palisade"]["guard"]["prefixes"],
        serde_json::json!(["2001:db8:1::/64"]),
        "{ra}"
    );
    let rogue_ll = ra["palisade"]["guard"]["server_ip"]
        .as_str()
        .unwrap()
        .to_owned();
    for sid in [9_000_030, 9_000_031] {
        for a in guard_alerts(&daemon, sid) {
            assert_eq!(a["palisade"]["guard"]["server_mac"], ROGUE_MAC, "{a}");
        }
    }
    assert!(counter(&daemon, "allowed") >= 2);
    let routes = client_ipv6(&lab);
    assert!(
        !routes.contains(&rogue_ll),
        "a route through the rogue: {routes}"
    );
    daemon.stop();
    drop(rogue);
}
