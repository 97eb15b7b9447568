//! Network reconciliation on the real kernel: veth pairs created, deleted, re-created and
//! renamed in the lab's namespaces while the daemon runs. Every outcome is read back from
//! the kernel (the programs at the TCX hooks, `BPF_PROG_QUERY`), the pin tree, `status`,
//! and events of real traffic on the interface (a DNS query answered by dnsmasq, a UDP
//! flow's start event), with the name the workers give it in `in_iface`.

#![expect(
    clippy::indexing_slicing,
    reason = "tests index JSON values; a panic is a test failure"
)]

use std::{
    fs,
    net::UdpSocket,
    os::fd::AsRawFd,
    process::Command,
    time::{Duration, Instant},
};

use palisade_tests::{Daemon, Lab, SENSOR_IF, Side, base_config, run, wait_for};
use serde_json::Value;

/// Flow start events, so that one datagram is enough to see a flow on an interface.
const START_EVENTS: &str = "[flow]\nstart_events = true\n";

/// `base_config` with `interfaces` replaced.
fn config(lab: &Lab, interfaces: &str) -> String {
    base_config(lab, START_EVENTS).replace(
        &format!("interfaces = [\"{SENSOR_IF}\"]"),
        &format!("interfaces = {interfaces}"),
    )
}

/// A veth pair between the lab's namespaces, `198.18.<net>.1/24` on the sensor side and
/// `.2` on the peer side, both up.
fn add_pair(lab: &Lab, sensor_if: &str, peer_if: &str, net: u8) {
    run(Command::new("ip").args([
        "link",
        "add",
        "name",
        sensor_if,
        "netns",
        &lab.sensor_ns,
        "type",
        "veth",
        "peer",
        "name",
        peer_if,
        "netns",
        &lab.peer_ns,
    ]));
    for (ns, ifname, host) in [(&lab.sensor_ns, sensor_if, 1), (&lab.peer_ns, peer_if, 2)] {
        run(Command::new("ip").args([
            "-n",
            ns,
            "addr",
            "add",
            &format!("198.18.{net}.{host}/24"),
            "dev",
            ifname,
        ]));
        run(Command::new("ip").args(["-n", ns, "link", "set", ifname, "up"]));
    }
}

fn ip_sensor(lab: &Lab, args: &[&str]) {
    run(Command::new("ip").args(["-n", &lab.sensor_ns]).args(args));
}

/// Renames a sensor-side interface (the kernel renames only a down interface), then
/// brings it up again.
fn rename(lab: &Lab, from: &str, to: &str) {
    ip_sensor(lab, &["link", "set", from, "down"]);
    ip_sensor(lab, &["link", "set", from, "name", to]);
    ip_sensor(lab, &["link", "set", to, "up"]);
}

/// The programs at a TCX hook of a sensor-side interface, as the kernel reports them
/// (`BPF_PROG_QUERY`); empty when the interface has none or does not exist.
fn tcx(lab: &Lab, ifname: &str, ingress: bool) -> Vec<(u32, String)> {
    let netns = lab.sensor_netns_fd();
    let ifname = ifname.to_owned();
    std::thread::spawn(move || {
        // SAFETY: setns on a valid netns FD, on this thread only.
        assert_eq!(
            unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
            0,
            "setns"
        );
        let hook = if ingress {
            aya::programs::TcAttachType::Ingress
        } else {
            aya::programs::TcAttachType::Egress
        };
        aya::programs::SchedClassifier::query_tcx(&ifname, hook)
            .map(|(_, progs)| {
                progs
                    .iter()
                    .map(|p| (p.id(), p.name_as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    })
    .join()
    .expect("query thread")
}

/// Whether both hooks of `ifname` carry the observer and the IP policy's programs.
fn fully_attached(lab: &Lab, ifname: &str) -> bool {
    [true, false].into_iter().all(|ingress| {
        let names: Vec<String> = tcx(lab, ifname, ingress).into_iter().map(|p| p.1).collect();
        let (observer, block) = if ingress {
            (
                palisade_abi::PROG_TC_INGRESS,
                palisade_abi::PROG_TC_BLOCK_INGRESS,
            )
        } else {
            (
                palisade_abi::PROG_TC_EGRESS,
                palisade_abi::PROG_TC_BLOCK_EGRESS,
            )
        };
        // The kernel keeps 15 characters of a program's name.
        let has = |prog: &str| {
            let short = prog.get(..15).unwrap_or(prog);
            names.iter().any(|n| n == short)
        };
        has(observer) && has(block)
    })
}

/// The pins below `links/` of the daemon's pin directory.
fn link_pins(lab: &Lab) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(lab.pin_dir().join("links"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn pins_of(lab: &Lab, ifname: &str) -> Vec<String> {
    let prefix = format!("{ifname}_");
    link_pins(lab)
        .into_iter()
        .filter(|p| p.starts_with(&prefix))
        .collect()
}

/// The `status` entries of interface `name`.
fn entries(daemon: &Daemon, name: &str) -> Vec<Value> {
    daemon.status_json().expect("status")["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .filter(|i| i["name"] == name)
        .cloned()
        .collect()
}

/// Waits until `name` has a `status` entry in `state`; returns it.
fn wait_state(daemon: &Daemon, name: &str, state: &str) -> Value {
    wait_for(
        Duration::from_secs(5),
        &format!("{name} {state} in status"),
        || {
            entries(daemon, name)
                .into_iter()
                .find(|i| i["state"] == state)
        },
    )
}

/// The ifindex of a sensor-side interface.
fn ifindex(lab: &Lab, ifname: &str) -> u64 {
    let out = run(Command::new("ip").args(["-n", &lab.sensor_ns, "-o", "link", "show", ifname]));
    String::from_utf8_lossy(&out.stdout)
        .split(':')
        .next()
        .and_then(|i| i.trim().parse().ok())
        .unwrap_or_else(|| panic!("ifindex of {ifname}"))
}

/// Sends UDP from `198.18.<net>.1` to `.2` and waits for the flow's start event; returns it.
fn udp_flow(lab: &Lab, daemon: &Daemon, net: u8) -> Value {
    let (src, dst) = (format!("198.18.{net}.1"), format!("198.18.{net}.2"));
    let server = {
        let dst = dst.clone();
        lab.in_netns(Side::Peer, move || {
            UdpSocket::bind((dst.as_str(), 0)).expect("bind")
        })
    };
    let port = server.local_addr().expect("addr").port();
    let client = {
        let src = src.clone();
        lab.in_netns(Side::Sensor, move || {
            UdpSocket::bind((src.as_str(), 0)).expect("bind")
        })
    };
    server
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    client.send_to(b"ping", (dst.as_str(), port)).expect("send");
    let mut buf = [0u8; 16];
    server
        .recv_from(&mut buf)
        .expect("the datagram crossed the veth");
    daemon.wait_event(
        &format!("the start of the UDP flow on 198.18.{net}.0/24"),
        Duration::from_secs(5),
        |e| e["event_type"] == "flow" && e["dest_port"] == port && e["src_ip"] == src.as_str(),
    )
}

#[test]
fn a_deleted_and_recreated_interface_is_attached_again_and_monitored() {
    let lab = Lab::new("nl-recreate");
    lab.start_dnsmasq();
    let daemon = Daemon::start(&lab, &config(&lab, "[\"pal0\"]"), &[]);
    daemon.wait_healthy();
    let first = wait_state(&daemon, SENSOR_IF, "attached");
    let old_index = first["ifindex"].as_u64().expect("ifindex");
    assert!(fully_attached(&lab, SENSOR_IF));
    assert_eq!(pins_of(&lab, SENSOR_IF).len(), 4, "{:?}", link_pins(&lab));

    // Deleted (its peer goes with it): the links are defunct, their pins go, and the
    // configured name is waited for.
    ip_sensor(&lab, &["link", "del", SENSOR_IF]);
    // Not drift: a check right away takes the kernel's link events first (the pass runs
    // without its debounce), so the defunct links are released, not "repaired".
    let check = daemon.ctl(&["check", "--json"]);
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let waiting = wait_state(&daemon, SENSOR_IF, "waiting");
    assert_eq!(waiting["ifindex"], 0, "{waiting}");
    assert!(waiting["attachments"].as_array().is_some_and(Vec::is_empty));
    assert!(
        link_pins(&lab).is_empty(),
        "stale pins after the deletion: {:?}",
        link_pins(&lab)
    );

    // Re-created under the same name: a new ifindex, attached again, not adopted from a
    // stale pin.
    add_pair(&lab, SENSOR_IF, palisade_tests::PEER_IF, 0);
    let again = wait_state(&daemon, SENSOR_IF, "attached");
    let new_index = ifindex(&lab, SENSOR_IF);
    assert_ne!(new_index, old_index);
    assert_eq!(again["ifindex"], new_index, "{again}");
    assert!(
        again["attachments"]
            .as_array()
            .expect("attachments")
            .iter()
            .all(|a| a["adopted"] == false),
        "{again}"
    );
    assert!(fully_attached(&lab, SENSOR_IF));
    assert_eq!(pins_of(&lab, SENSOR_IF).len(), 4, "{:?}", link_pins(&lab));

    // Monitored: dnsmasq (its socket bound to the peer address, which is back) answers a
    // query the DNS worker logs on pal0, and a UDP flow starts on it.
    let answer = wait_for(Duration::from_secs(5), "dnsmasq to answer again", || {
        let out = lab.dig(&["+short", "after-recreate.example.test", "A"]);
        out.contains("198.18.0.99").then_some(out)
    });
    assert!(answer.contains("198.18.0.99"));
    let dns = daemon.wait_event(
        "the query after the re-creation",
        Duration::from_secs(5),
        |e| e["event_type"] == "dns" && e["dns"]["rrname"] == "after-recreate.example.test",
    );
    assert_eq!(dns["in_iface"], SENSOR_IF, "{dns}");
    let flow = udp_flow(&lab, &daemon, 0);
    assert_eq!(flow["in_iface"], SENSOR_IF, "{flow}");
    let s = daemon.status_json().expect("status");
    assert!(
        s["network"]["released"].as_u64() >= Some(1),
        "{}",
        s["network"]
    );
    assert!(
        s["network"]["attached"].as_u64() >= Some(1),
        "{}",
        s["network"]
    );
    daemon.stop();
}

#[test]
fn interfaces_created_after_start_matching_a_pattern_are_attached_within_a_second() {
    let lab = Lab::new("nl-glob");
    // Nothing matches at start (pal0 is not selected): the daemon starts and waits.
    let cfg = config(&lab, "[\"lan*\", \"late0\"]");
    let daemon = Daemon::start(&lab, &cfg, &[]);
    daemon.wait_healthy();
    let s = daemon.status_json().expect("status");
    let states: Vec<(String, String)> = s["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap_or_default().to_owned(),
                i["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("lan*".to_owned(), "waiting".to_owned()),
            ("late0".to_owned(), "waiting".to_owned())
        ],
        "{s}"
    );
    assert!(
        tcx(&lab, SENSOR_IF, true).is_empty(),
        "pal0 is not selected"
    );
    let text = String::from_utf8_lossy(&daemon.ctl(&["status"]).stdout).into_owned();
    assert!(text.contains("lan*") && text.contains("waiting"), "{text}");

    // A matching interface and one that does not match, created together.
    let created = Instant::now();
    add_pair(&lab, "lan1", "plan1", 1);
    add_pair(&lab, "wan1", "pwan1", 2);
    wait_for(
        Duration::from_secs(3),
        "lan1 attached in the kernel",
        || fully_attached(&lab, "lan1").then_some(()),
    );
    let took = created.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "lan1 attached {took:?} after it was created"
    );
    eprintln!("lan1 attached {took:?} after it was created");
    let lan1 = wait_state(&daemon, "lan1", "attached");
    assert_eq!(lan1["ifindex"], ifindex(&lab, "lan1"));
    assert_eq!(pins_of(&lab, "lan1").len(), 4, "{:?}", link_pins(&lab));
    assert!(
        entries(&daemon, "lan*").is_empty(),
        "the pattern no longer waits"
    );
    // Monitored, under its name.
    let flow = udp_flow(&lab, &daemon, 1);
    assert_eq!(flow["in_iface"], "lan1", "{flow}");
    // The one that does not match is ignored: no program, no pin, no status entry.
    assert!(tcx(&lab, "wan1", true).is_empty() && tcx(&lab, "wan1", false).is_empty());
    assert!(pins_of(&lab, "wan1").is_empty());
    assert!(entries(&daemon, "wan1").is_empty());

    // A configured exact name that appears later, created down: attached all the same.
    ip_sensor(
        &lab,
        &[
            "link", "add", "late0", "type", "veth", "peer", "name", "late0p",
        ],
    );
    wait_state(&daemon, "late0", "attached");
    assert!(fully_attached(&lab, "late0"));

    // A restarted daemon adopts the links of interfaces that came after the first start.
    let before = wait_state(&daemon, "lan1", "attached");
    assert_eq!(daemon.stop().code(), Some(0));
    assert!(
        fully_attached(&lab, "lan1"),
        "pinned links outlive the daemon"
    );
    let daemon = Daemon::start(&lab, &cfg, &[]);
    let after = wait_state(&daemon, "lan1", "attached");
    let ids = |v: &Value| -> Vec<(u64, bool)> {
        v["attachments"]
            .as_array()
            .expect("attachments")
            .iter()
            .map(|a| (a["link_id"].as_u64().unwrap_or(0), a["adopted"] == true))
            .collect()
    };
    assert!(ids(&after).iter().all(|(_, adopted)| *adopted), "{after}");
    assert_eq!(
        ids(&after).iter().map(|i| i.0).collect::<Vec<_>>(),
        ids(&before).iter().map(|i| i.0).collect::<Vec<_>>(),
        "the same links"
    );

    // Deleted: gone in status, no pins left.
    ip_sensor(&lab, &["link", "del", "lan1"]);
    let gone = wait_state(&daemon, "lan1", "gone");
    assert!(gone["since"].as_u64() > Some(0), "{gone}");
    assert!(pins_of(&lab, "lan1").is_empty(), "{:?}", link_pins(&lab));
    wait_state(&daemon, "lan*", "waiting");
    daemon.stop();

    // Started again without late0 in the configuration: the previous run's links on it are
    // detached and unpinned at start.
    assert!(fully_attached(&lab, "late0"));
    let daemon = Daemon::start(&lab, &config(&lab, "[\"lan*\"]"), &[]);
    assert!(pins_of(&lab, "late0").is_empty(), "{:?}", link_pins(&lab));
    assert!(tcx(&lab, "late0", true).is_empty() && tcx(&lab, "late0", false).is_empty());
    assert!(entries(&daemon, "late0").is_empty());
    daemon.stop();
}

#[test]
fn a_renamed_interface_is_followed_and_one_renamed_away_is_detached() {
    let lab = Lab::new("nl-rename");
    let daemon = Daemon::start(&lab, &config(&lab, "[\"pal0\", \"lan*\"]"), &[]);
    daemon.wait_healthy();
    add_pair(&lab, "lan2", "plan2", 3);
    let before = wait_state(&daemon, "lan2", "attached");
    let index = ifindex(&lab, "lan2");
    let programs = tcx(&lab, "lan2", true);

    // Renamed to a name that still matches: the same links, pinned under the new name.
    rename(&lab, "lan2", "lan3");
    let after = wait_state(&daemon, "lan3", "attached");
    assert_eq!(after["ifindex"], index);
    assert_eq!(
        after["attachments"], before["attachments"],
        "the links are kept, not attached again"
    );
    assert_eq!(tcx(&lab, "lan3", true), programs);
    assert!(pins_of(&lab, "lan2").is_empty(), "{:?}", link_pins(&lab));
    assert_eq!(pins_of(&lab, "lan3").len(), 4, "{:?}", link_pins(&lab));
    assert!(
        entries(&daemon, "lan2").is_empty(),
        "{:?}",
        entries(&daemon, "lan2")
    );
    let flow = udp_flow(&lab, &daemon, 3);
    assert_eq!(flow["in_iface"], "lan3", "{flow}");

    // Renamed to a name that does not match: detached and unpinned, reported gone.
    rename(&lab, "lan3", "wan3");
    wait_state(&daemon, "lan3", "gone");
    wait_for(Duration::from_secs(3), "wan3 detached", || {
        (tcx(&lab, "wan3", true).is_empty() && tcx(&lab, "wan3", false).is_empty()).then_some(())
    });
    assert!(pins_of(&lab, "lan3").is_empty() && pins_of(&lab, "wan3").is_empty());
    assert!(entries(&daemon, "wan3").is_empty());
    // pal0 was never touched.
    assert!(fully_attached(&lab, SENSOR_IF));
    assert_eq!(pins_of(&lab, SENSOR_IF).len(), 4, "{:?}", link_pins(&lab));

    // And back under a matching name: attached again (new links).
    rename(&lab, "wan3", "lan4");
    wait_state(&daemon, "lan4", "attached");
    assert!(fully_attached(&lab, "lan4"));
    let s = daemon.status_json().expect("status");
    assert_eq!(s["network"]["renamed"], 1, "{}", s["network"]);
    assert_eq!(s["network"]["released"], 1, "{}", s["network"]);
    let metrics = String::from_utf8_lossy(&daemon.ctl(&["metrics"]).stdout).into_owned();
    assert!(
        metrics.contains("palisade_interface_state{interface=\"lan4\",state=\"attached\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("palisade_interface_state{interface=\"lan3\",state=\"gone\"} 1"),
        "{metrics}"
    );

    // A reload that drops the pattern applies at once: what it selected is detached and
    // unpinned, pal0 stays.
    fs::write(&daemon.config, config(&lab, "[\"pal0\"]")).expect("write config");
    let out = daemon.ctl(&["reload", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("reload --json");
    assert_eq!(report["restart_needed"], serde_json::json!([]), "{report}");
    wait_state(&daemon, "lan4", "gone");
    wait_for(Duration::from_secs(3), "lan4 detached", || {
        (tcx(&lab, "lan4", true).is_empty() && tcx(&lab, "lan4", false).is_empty()).then_some(())
    });
    assert!(pins_of(&lab, "lan4").is_empty(), "{:?}", link_pins(&lab));
    assert!(fully_attached(&lab, SENSOR_IF));
    daemon.stop();
}

#[test]
fn link_events_lost_while_the_daemon_could_not_read_are_recovered_by_a_full_read() {
    let lab = Lab::new("nl-overrun");
    let daemon = Daemon::start(&lab, &config(&lab, "[\"pal0\", \"lan*\"]"), &[]);
    daemon.wait_healthy();
    add_pair(&lab, "lan8", "plan8", 8);
    wait_state(&daemon, "lan8", "attached");
    let resyncs = |d: &Daemon| d.status_json().expect("status")["network"]["resyncs"].as_u64();
    let before = resyncs(&daemon);

    // The daemon stopped (SIGSTOP) while thousands of links change: its socket buffer
    // overflows and the kernel drops link messages (ENOBUFS), among them those of lan8's
    // deletion and lan9's creation.
    let pid = daemon.pid() as libc::pid_t;
    // SAFETY: kill(2) on the daemon this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let batch = lab.dir.join("links.batch");
    let mut lines = String::new();
    for i in 0..1500 {
        lines.push_str(&format!(
            "link add dmy{i} type veth peer name dmy{i}p\nlink set dmy{i} up\n"
        ));
    }
    fs::write(&batch, lines).expect("batch file");
    ip_sensor(&lab, &["-batch", &batch.display().to_string()]);
    ip_sensor(&lab, &["link", "del", "lan8"]);
    add_pair(&lab, "lan9", "plan9", 9);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);

    // A full read of every link sets things right.
    wait_state(&daemon, "lan9", "attached");
    wait_state(&daemon, "lan8", "gone");
    assert!(fully_attached(&lab, "lan9"));
    assert!(pins_of(&lab, "lan8").is_empty(), "{:?}", link_pins(&lab));
    assert!(resyncs(&daemon) > before, "no full read after the overrun");
    assert!(
        daemon.log_text().contains("ENOBUFS"),
        "the overrun is logged: {}",
        daemon.log_text()
    );
    // The veths are Ethernet and up, but not selected.
    assert!(tcx(&lab, "dmy0", true).is_empty() && entries(&daemon, "dmy0").is_empty());
    daemon.stop();
}
