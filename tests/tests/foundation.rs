#![expect(
    clippy::indexing_slicing,
    reason = "tests index JSON values and /proc fields; a panic is a test failure"
)]

//! The foundation issue's end-to-end assertions: DNS events from real
//! traffic, unprivileged workers, restart without loss, hostile workers,
//! control-socket permissions, clean shutdown.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use palisade_tests::{
    Daemon, Lab, PEER_IP, SENSOR_IF, SENSOR_IP, base_config, bin, proc_status, wait_for,
};
use serde_json::Value;

fn dig_id(out: &str) -> u64 {
    // ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 12345"
    out.lines()
        .find_map(|l| l.split("id: ").nth(1))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no id in dig output:\n{out}"))
}

#[test]
fn dns_queries_and_answers_become_events() {
    let lab = Lab::new("dns");
    lab.start_dnsmasq();
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();

    let out = lab.dig(&["+noall", "+comments", "+answer", "www.example.test", "A"]);
    let id = dig_id(&out);
    assert!(out.contains("198.18.0.99"), "dnsmasq answered: {out}");
    let out6 = lab.dig(&["+noall", "+comments", "mail.example.test", "AAAA"]);
    let id6 = dig_id(&out6);

    let query = daemon.wait_event("the A query event", Duration::from_secs(5), |e| {
        e["event_type"] == "dns"
            && e["dns"]["type"] == "query"
            && e["dns"]["rrname"] == "www.example.test"
    });
    assert_eq!(query["dns"]["id"], id);
    assert_eq!(query["dns"]["rrtype"], "A");
    assert_eq!(query["src_ip"], SENSOR_IP);
    assert_eq!(query["dest_ip"], PEER_IP);
    assert_eq!(query["dest_port"], 53);
    assert_eq!(query["proto"], "UDP");
    assert_eq!(query["in_iface"], SENSOR_IF);
    assert_eq!(query["palisade"]["iface_direction"], "egress");
    assert!(
        query["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with("+0000") && t.len() == 31),
        "{query}"
    );

    let answer = daemon.wait_event("the A answer event", Duration::from_secs(5), |e| {
        e["event_type"] == "dns"
            && e["dns"]["type"] == "answer"
            && e["dns"]["rrname"] == "www.example.test"
    });
    assert_eq!(answer["dns"]["id"], id);
    assert_eq!(answer["dns"]["rcode"], "NOERROR");
    assert_eq!(answer["dns"]["qr"], true);
    assert_eq!(answer["dns"]["answers"][0]["rdata"], "198.18.0.99");
    assert_eq!(answer["src_ip"], PEER_IP);
    assert_eq!(answer["src_port"], 53);
    assert_eq!(answer["palisade"]["iface_direction"], "ingress");

    let q6 = daemon.wait_event("the AAAA query", Duration::from_secs(5), |e| {
        e["event_type"] == "dns"
            && e["dns"]["rrname"] == "mail.example.test"
            && e["dns"]["type"] == "answer"
    });
    assert_eq!(q6["dns"]["id"], id6);
    assert_eq!(q6["dns"]["rrtype"], "AAAA");
    assert_eq!(q6["dns"]["answers"][0]["rdata"], "2001:db8::99");

    // DNS over TCP: one message per segment is decoded.
    lab.dig(&["+tcp", "tcp.example.test", "A"]);
    let tcp = daemon.wait_event("the TCP answer", Duration::from_secs(5), |e| {
        e["event_type"] == "dns" && e["proto"] == "TCP" && e["dns"]["type"] == "answer"
    });
    assert_eq!(tcp["dns"]["rrname"], "tcp.example.test");

    // The flow worker saw the TCP connection start and end.
    let end = daemon.wait_event("the TCP flow end", Duration::from_secs(5), |e| {
        e["event_type"] == "flow" && e["proto"] == "TCP" && e["flow"]["state"] == "closed"
    });
    assert_eq!(end["dest_port"], 53);
    assert!(end["flow"]["pkts_toserver"].as_u64() >= Some(3), "{end}");
    assert!(end["flow"]["pkts_toclient"].as_u64() >= Some(2), "{end}");

    // Kernel counters agree that records were written and none dropped.
    let status = daemon.status_json().expect("status");
    let counter = |group: &str, name: &str| {
        status["kernel"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|k| k["group"] == group && k["counter"] == name)
            })
            .and_then(|k| k["value"].as_u64())
            .unwrap_or(u64::MAX)
    };
    assert!(counter("dns", "records") >= 6, "{status}");
    assert_eq!(counter("dns", "ring_full"), 0);
    // Worker stats travel with heartbeats: wait for them.
    wait_for(
        Duration::from_secs(3),
        "dns worker stats to count the events",
        || {
            let w = &daemon.workers()["dns"];
            (w["stats"]["events"].as_u64() >= Some(6) && w["stats"]["records"].as_u64() >= Some(6))
                .then_some(())
        },
    );
}

/// (process group, session) of a process, from /proc/PID/stat.
fn pgrp_and_session(pid: u32) -> (u32, u32) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the command: state, ppid, pgrp, session.
    let at = |i: usize| fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0);
    (at(2), at(3))
}

#[test]
fn workers_run_unprivileged_with_only_their_fds() {
    workers_unprivileged("privs", false);
}

/// The same boundary when the workers read AF_PACKET sockets instead of ring buffers
/// (`capture = "af_packet"`): FD 4 is the socket, nothing else changes.
#[test]
fn workers_run_unprivileged_with_only_their_fds_with_af_packet() {
    workers_unprivileged("privsafp", true);
}

fn workers_unprivileged(name: &str, af_packet: bool) {
    let lab = Lab::new(name);
    let config = if af_packet {
        format!("capture = \"af_packet\"\n{}", base_config(&lab, ""))
    } else {
        base_config(&lab, "")
    };
    let daemon = Daemon::start(&lab, &config, &[]);
    let pids = daemon.wait_healthy();
    assert_eq!(pids.len(), 4);
    for (name, pid) in &pids {
        let s = proc_status(*pid);
        let uids: Vec<&str> = s["Uid"].split_whitespace().collect();
        assert!(uids.iter().all(|u| *u != "0"), "{name}: uid {uids:?}");
        let gids: Vec<&str> = s["Gid"].split_whitespace().collect();
        assert!(gids.iter().all(|g| *g != "0"), "{name}: gid {gids:?}");
        assert_eq!(s["Groups"], "", "{name}: supplementary groups");
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(s[cap], "0000000000000000", "{name}: {cap}");
        }
        assert_eq!(s["NoNewPrivs"], "1", "{name}: NoNewPrivs");
        assert_eq!(s["Seccomp"], "2", "{name}: Seccomp (filter mode)");
        // Its own process group (a terminal's Ctrl-C never reaches it), but the daemon's
        // session, so the daemon's scheduler autogroup (and nice level): a worker does
        // not get a whole session's CPU share of its own.
        let (pgrp, sid) = pgrp_and_session(*pid);
        assert_eq!(pgrp, *pid, "{name}: own process group");
        assert_eq!(
            sid,
            pgrp_and_session(daemon.pid()).1,
            "{name}: daemon's session"
        );
        assert_eq!(
            std::fs::read_to_string(format!("/proc/{pid}/autogroup")).ok(),
            std::fs::read_to_string(format!("/proc/{}/autogroup", daemon.pid())).ok(),
            "{name}: the daemon's autogroup"
        );

        // FDs: 0-2 /dev/null, 3 the IPC socket, then ring (or packet socket), sink, (DHCP:
        // state, registry), epoll.
        let mut fds: Vec<(u32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("fd dir")
            .filter_map(Result::ok)
            .map(|e| {
                let n = e.file_name().to_string_lossy().parse().unwrap_or(u32::MAX);
                (
                    n,
                    std::fs::read_link(e.path())
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect();
        fds.sort();
        let kinds: Vec<&str> = fds.iter().map(|(_, t)| t.as_str()).collect();
        // The DHCP worker also holds its state file and the IEEE registry memfd (both
        // passed by the supervisor, before its epoll instance).
        let dhcp = name == "dhcp";
        assert_eq!(fds.len(), if dhcp { 9 } else { 7 }, "{name}: {fds:?}");
        assert_eq!(&kinds[..3], ["/dev/null"; 3], "{name}: {fds:?}");
        assert!(kinds[3].starts_with("socket:"), "{name}: FD 3 {fds:?}");
        if af_packet {
            assert!(kinds[4].starts_with("socket:"), "{name}: {fds:?}");
            assert!(
                !kinds.iter().any(|k| k.contains("bpf")),
                "{name}: a BPF object {fds:?}"
            );
        } else {
            assert_eq!(kinds[4], "anon_inode:bpf-map", "{name}: {fds:?}");
        }
        assert!(
            kinds[5].starts_with("pipe:"),
            "{name}: sink is the daemon's stdout {fds:?}"
        );
        if dhcp {
            assert!(
                kinds[6].ends_with("/devices.jsonl"),
                "{name}: state {fds:?}"
            );
            assert!(
                kinds[7].starts_with("/memfd:palisade-ieee-registry"),
                "{name}: registry {fds:?}"
            );
        }
        assert_eq!(
            kinds[if dhcp { 8 } else { 6 }],
            "anon_inode:[eventpoll]",
            "{name}: {fds:?}"
        );

        // Not dumpable: even its own uid cannot read its memory or environment.
        let peek = Command::new("setpriv")
            .args([
                "--reuid",
                s["Uid"].split_whitespace().next().unwrap_or("65534"),
            ])
            .args(["--regid", "65534", "--clear-groups", "cat"])
            .arg(format!("/proc/{pid}/environ"))
            .output()
            .expect("setpriv");
        assert!(
            !peek.status.success(),
            "{name}: /proc/{pid}/environ readable by the worker's uid"
        );
    }
    if af_packet {
        // Nothing is pinned: no map to open.
        assert!(!lab.pin_dir().exists(), "{}", lab.pin_dir().display());
        return;
    }
    // The worker's uid cannot touch the pinned maps either.
    let maps = lab.pin_dir().join("maps").join("rb_dns");
    assert!(maps.exists(), "ring buffer pinned at {}", maps.display());
    let open = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "bpftool",
            "map",
            "show",
            "pinned",
        ])
        .arg(&maps)
        .output()
        .expect("setpriv bpftool");
    assert!(
        !open.status.success(),
        "an unprivileged user opened a pinned map"
    );
}

#[test]
fn seccomp_kills_forbidden_syscalls_after_startup() {
    let lab = Lab::new("seccomp");
    // open is answered EACCES (exit 43), the others kill (SIGSYS).
    let extra = lab.substitute_workers(
        "probe-worker",
        &[
            ("dhcp", "open"),
            ("dns", "socket"),
            ("tls", "bpf"),
            ("flow", "execve"),
        ],
    );
    let daemon = Daemon::start(&lab, &base_config(&lab, &extra), &[]);
    let workers = wait_for(Duration::from_secs(10), "every probe to end", || {
        let w = daemon.workers();
        w.values().all(|v| v["last_exit"].is_string()).then_some(w)
    });
    for (name, w) in workers {
        let exit = w["last_exit"].as_str().unwrap_or_default();
        if name == "dhcp" {
            assert!(
                exit.contains("exit status 43"),
                "{name}: open must fail with EACCES: {exit}"
            );
        } else {
            assert!(
                exit.contains("SIGSYS") && exit.contains("seccomp"),
                "{name}: {exit}"
            );
        }
        assert!(
            !exit.contains("exit status 42"),
            "{name}: forbidden syscall returned"
        );
    }
    daemon.assert_alive();
}

#[test]
fn seccomp_denies_stat_of_a_path() {
    // newfstatat used to be allowed with any path: a compromised parser could probe which
    // files exist. It now fails with EACCES, like open.
    let lab = Lab::new("seccompstat");
    let extra = lab.substitute_workers("probe-worker", &[("dns", "stat")]);
    let daemon = Daemon::start(&lab, &base_config(&lab, &extra), &[]);
    let exit = wait_for(Duration::from_secs(10), "the probe to end", || {
        daemon.workers()["dns"]["last_exit"]
            .as_str()
            .map(str::to_owned)
    });
    assert!(
        exit.contains("exit status 43"),
        "stat of a path must fail with EACCES: {exit}"
    );
    daemon.assert_alive();
}

#[test]
fn killed_worker_is_back_within_a_second_and_loses_nothing() {
    let lab = Lab::new("restart");
    lab.start_dnsmasq();
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    let pids = daemon.wait_healthy();
    let old = pids["dns"];

    // Freeze the worker so it consumes nothing, make traffic, then kill it:
    // the records of that traffic sit in the ring buffer while no worker
    // reads it, deterministically.
    // SAFETY: kill(2) on a worker of our daemon.
    unsafe { libc::kill(old as i32, libc::SIGSTOP) };
    let names: Vec<String> = (0..5).map(|i| format!("down{i}.example.test")).collect();
    let mut args: Vec<&str> = vec!["+short"];
    for n in &names {
        args.extend([n.as_str(), "A"]);
    }
    let answers = lab.dig(&args);
    assert_eq!(
        answers.matches("198.18.0.99").count(),
        5,
        "dnsmasq answered all: {answers}"
    );
    // SAFETY: as above.
    unsafe { libc::kill(old as i32, libc::SIGKILL) };
    let killed_at = Instant::now();
    // More traffic while no dns worker process exists at all.
    lab.dig(&["+short", "gap.example.test", "A"]);
    wait_for(Duration::from_secs(2), "a new dns worker", || {
        let w = &daemon.workers()["dns"];
        let pid = w["pid"].as_u64()? as u32;
        (pid != old && w["state"] == "running").then_some(pid)
    });
    assert!(
        killed_at.elapsed() <= Duration::from_secs(1),
        "restart took {:?}",
        killed_at.elapsed()
    );
    // Every record queued while no worker read the ring is delivered by the successor.
    for n in names.iter().map(String::as_str).chain(["gap.example.test"]) {
        for kind in ["query", "answer"] {
            daemon.wait_event(&format!("{kind} for {n}"), Duration::from_secs(3), |e| {
                e["event_type"] == "dns" && e["dns"]["type"] == kind && e["dns"]["rrname"] == n
            });
        }
    }
    // And nothing was dropped on the way.
    let status = daemon.status_json().expect("status");
    let ring_full = status["kernel"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|k| k["group"] == "dns" && k["counter"] == "ring_full")
        })
        .and_then(|k| k["value"].as_u64());
    assert_eq!(ring_full, Some(0));
    let w = &daemon.workers()["dns"];
    assert_eq!(w["restarts"], 1, "{w}");
    assert!(
        w["last_exit"]
            .as_str()
            .is_some_and(|e| e.contains("SIGKILL")),
        "{w}"
    );
}

#[test]
fn hostile_workers_are_killed_and_counted() {
    let lab = Lab::new("hostile");
    let extra = lab.substitute_workers(
        "hostile-worker",
        &[
            ("dhcp", "oversized"),
            ("dns", "wrongversion"),
            ("tls", "garbage"),
            ("flow", "unexpected"),
        ],
    );
    let daemon = Daemon::start(&lab, &base_config(&lab, &extra), &[]);
    let workers = wait_for(
        Duration::from_secs(10),
        "a violation from every hostile worker",
        || {
            let w = daemon.workers();
            w.values()
                .all(|v| v["violations"].as_u64() >= Some(2))
                .then_some(w)
        },
    );
    let expect = [
        ("dhcp", "larger than"),
        ("dns", "version mismatch"),
        ("tls", "handshake"),
        ("flow", "Heartbeat while AwaitReady"),
    ];
    for (kind, needle) in expect {
        let exit = workers[kind]["last_exit"].as_str().unwrap_or_default();
        assert!(
            exit.contains("protocol violation") && exit.contains(needle),
            "{kind}: {exit}"
        );
        assert!(
            exit.contains("SIGKILL"),
            "{kind}: killed, not left running: {exit}"
        );
    }
    daemon.assert_alive();
    assert!(
        daemon
            .log_text()
            .contains("protocol version mismatch: peer speaks version 999"),
        "clear version error in the log"
    );
    // FDs sent by a worker are a violation too (and are closed, not kept).
    drop(daemon);
    let lab = Lab::new("hostilefd");
    let daemon = Daemon::start(
        &lab,
        &base_config(
            &lab,
            &lab.substitute_workers("hostile-worker", &[("dns", "fds")]),
        ),
        &[],
    );
    wait_for(
        Duration::from_secs(10),
        "the fd-sending worker killed",
        || {
            let w = &daemon.workers()["dns"];
            w["last_exit"]
                .as_str()
                .is_some_and(|e| e.contains("file descriptors"))
                .then_some(())
        },
    );
}

#[test]
fn a_block_request_the_rule_set_does_not_back_is_a_violation() {
    // A DNS worker that acknowledged the rule set in force asks for a block with a rule id
    // that is no regex rule of it: a lie, handled like a malformed frame (killed, counted,
    // restarted), not merely refused.
    let lab = Lab::new("liar");
    let regex = lab.dir.join("regex.txt");
    std::fs::write(&regex, "^ad[0-9]+\\.example$\n").expect("write the regex list");
    let extra = format!(
        "[dns]\nregex_lists = [\"{}\"]\n{}",
        regex.display(),
        lab.substitute_workers("hostile-worker", &[("dns", "liar")])
    );
    let daemon = Daemon::start(&lab, &base_config(&lab, &extra), &[]);
    let dns = wait_for(
        Duration::from_secs(10),
        "the lying DNS worker killed for a violation",
        || {
            let w = daemon.workers()["dns"].clone();
            // The violation is counted at the kill, `last_exit` set when the process is
            // reaped a few milliseconds later: wait for both.
            (w["violations"].as_u64() >= Some(1) && w["last_exit"].is_string()).then_some(w)
        },
    );
    let exit = dns["last_exit"].as_str().unwrap_or_default();
    assert!(
        exit.contains("protocol violation")
            && exit.contains("block request refused")
            && exit.contains("rule 999999 is not a regex rule"),
        "{exit}"
    );
    assert!(exit.contains("SIGKILL"), "killed, not left running: {exit}");
    daemon.assert_alive();
}

#[test]
fn control_socket_permissions() {
    let lab = Lab::new("perms");
    let daemon = Daemon::start(
        &lab,
        &base_config(&lab, "[control]\ngroup = \"nogroup\"\n"),
        &[],
    );
    daemon.wait_healthy();
    let as_nobody = |args: &[&str], groups: &str| {
        Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", groups, "--clear-groups"])
            .arg(bin("palisade"))
            .args(args)
            .arg("--control-socket")
            .arg(&daemon.control)
            .output()
            .expect("setpriv palisade")
    };
    // A member of the control group may read status...
    let status = as_nobody(&["status"], "65534");
    assert!(
        status.status.success(),
        "status as group member: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    // ...but not restart workers.
    let restart = as_nobody(&["restart", "dns"], "65534");
    assert_eq!(
        restart.status.code(),
        Some(4),
        "restart as non-root: {restart:?}"
    );
    assert!(
        String::from_utf8_lossy(&restart.stderr).contains("permission denied"),
        "{restart:?}"
    );
    // Outside the group: not even connect.
    let outsider = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65533", "--clear-groups"])
        .arg(bin("palisade"))
        .args(["status", "--control-socket"])
        .arg(&daemon.control)
        .output()
        .expect("setpriv");
    assert_eq!(outsider.status.code(), Some(4), "{outsider:?}");
    // Root may restart; the worker comes back.
    let before = daemon.workers()["dns"]["pid"].as_u64();
    let out = daemon.ctl(&["restart", "dns"]);
    assert!(out.status.success(), "{out:?}");
    wait_for(Duration::from_secs(3), "restarted dns worker", || {
        let w = &daemon.workers()["dns"];
        (w["pid"].as_u64() != before && w["state"] == "running").then_some(())
    });
    // The daemon not running: exit status 3 and a clear message.
    let gone = Command::new(bin("palisade"))
        .args(["status", "--control-socket"])
        .arg(lab.dir.join("nothing.sock"))
        .output()
        .expect("palisade");
    assert_eq!(gone.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("not running"));
}

#[test]
fn status_reports_workers_interfaces_and_versions() {
    let lab = Lab::new("status");
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();
    let s = daemon.status_json().expect("status");
    assert_eq!(s["version"]["protocol"], palisade_ipc::PROTOCOL_VERSION);
    assert_eq!(s["version"]["abi"], palisade_abi::ABI_VERSION);
    let iface = &s["interfaces"][0];
    assert_eq!(iface["name"], SENSOR_IF);
    let hooks: Vec<&str> = iface["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .filter(|a| {
            a["program"]
                .as_str()
                .is_some_and(|p| p.starts_with("pal_tc_"))
        })
        .filter(|a| a["program"].as_str().is_some_and(|p| !p.contains("block")))
        .filter_map(|a| a["direction"].as_str())
        .collect();
    assert_eq!(hooks, ["ingress", "egress"]);
    assert_eq!(iface["attachments"][0]["mode"], "tcx");
    // The kernel agrees: the program ids are attached to the veth.
    let prog_id = iface["attachments"][0]["program_id"]
        .as_u64()
        .expect("program id");
    let ingress = lab.observer_programs(true);
    assert_eq!(
        ingress,
        vec![(prog_id as u32, "pal_tc_ingress".to_owned())],
        "kernel view of the ingress hook"
    );
    assert_eq!(lab.observer_programs(false).len(), 1, "one egress program");
    let text = daemon.ctl(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    for needle in ["dhcp", "dns", "tls", "flow", "running", "tcx", "RING_FULL"] {
        assert!(text.contains(needle), "status text lacks {needle}:\n{text}");
    }
    let version = daemon.ctl(&["version", "--json"]);
    let v: Value = serde_json::from_slice(&version.stdout).expect("version json");
    assert_eq!(v["daemon"]["abi"], palisade_abi::ABI_VERSION);
}

#[test]
fn sigterm_stops_workers_and_leaves_programs_pinned() {
    let lab = Lab::new("sigterm");
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    let pids = daemon.wait_healthy();
    let pin = lab
        .pin_dir()
        .join("links")
        .join(format!("{SENSOR_IF}_ingress"));
    assert!(pin.exists());
    let status = daemon.stop();
    assert!(status.success(), "exit status {status}");
    for (name, pid) in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || proc_status(pid)
                    .get("State")
                    .is_some_and(|s| s.starts_with('Z')),
            "{name} still running"
        );
    }
    // Enforcement survives: the link is still pinned and attached.
    assert!(pin.exists(), "link pin removed on plain SIGTERM");
    assert_eq!(
        lab.observer_programs(true).len(),
        1,
        "program detached on SIGTERM"
    );
    // `palisade cleanup` removes it.
    let out = Command::new(bin("palisade"))
        .args(["cleanup", "--pin-root"])
        .arg(&lab.pin_root)
        .args(["--control-socket"])
        .arg(lab.dir.join("control.sock"))
        .arg("--config")
        .arg(lab.dir.join("palisade.toml"))
        .output()
        .expect("cleanup");
    assert!(out.status.success(), "{out:?}");
    assert!(!pin.exists());
    assert!(
        lab.tcx_programs(true).is_empty() && lab.tcx_programs(false).is_empty(),
        "still attached after cleanup"
    );
}

#[test]
fn restarted_daemon_adopts_pinned_links_and_detach_on_exit_removes_them() {
    let lab = Lab::new("adopt");
    let cfg = base_config(&lab, "");
    let first = Daemon::start(&lab, &cfg, &[]);
    first.wait_healthy();
    let link_id =
        first.status_json().expect("status")["interfaces"][0]["attachments"][0]["link_id"].clone();
    assert!(first.stop().success());
    let second = Daemon::start(&lab, &cfg, &["--detach-on-exit"]);
    second.wait_healthy();
    let s = second.status_json().expect("status");
    let a = &s["interfaces"][0]["attachments"][0];
    assert_eq!(a["adopted"], true, "{a}");
    assert_eq!(
        a["link_id"], link_id,
        "same kernel link, not a second attachment"
    );
    assert_eq!(
        lab.observer_programs(true).len(),
        1,
        "attached once after the restart"
    );
    assert_eq!(
        lab.observer_programs(false).len(),
        1,
        "attached once after the restart"
    );
    assert!(second.stop().success());
    assert!(
        lab.tcx_programs(true).is_empty(),
        "--detach-on-exit left programs attached"
    );
    assert!(!lab.pin_dir().exists());
}

#[test]
fn restarted_daemon_replaces_other_code_in_a_pinned_link_in_place() {
    // Simulates an upgrade with the same ABI: the pinned ingress link runs
    // another program when the daemon starts; it must swap its own program
    // into that same link (no detach, no second attachment).
    let lab = Lab::new("upgrade");
    let cfg = base_config(&lab, "");
    let first = Daemon::start(&lab, &cfg, &[]);
    first.wait_healthy();
    let link_id =
        first.status_json().expect("status")["interfaces"][0]["attachments"][0]["link_id"].clone();
    assert!(first.stop().success());

    // An "old" program: a classifier that passes everything.
    let src = lab.dir.join("old.bpf.c");
    let obj = lab.dir.join("old.bpf.o");
    std::fs::write(&src, "__attribute__((section(\"classifier\"), used)) int old_prog(void *skb) { return -1; }\nchar _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n").expect("write");
    let cc = Command::new("clang-19")
        .args(["-O2", "-target", "bpf", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("clang-19");
    assert!(cc.status.success(), "{cc:?}");
    let pin = lab
        .pin_dir()
        .join("links")
        .join(format!("{SENSOR_IF}_ingress"));
    let mut old = aya::Ebpf::load_file(&obj).expect("load old object");
    let prog: &mut aya::programs::SchedClassifier = old
        .program_mut("old_prog")
        .expect("old_prog")
        .try_into()
        .expect("classifier");
    prog.load().expect("load old_prog");
    let pinned = aya::programs::links::PinnedLink::from_pin(&pin).expect("pinned link");
    let link = aya::programs::tc::SchedClassifierLink::try_from(
        aya::programs::links::FdLink::from(pinned),
    )
    .expect("tc link");
    prog.attach_to_link(link)
        .expect("swap the old program into the pinned link");
    assert_eq!(
        lab.observer_programs(true)
            .iter()
            .map(|(_, n)| n.as_str())
            .collect::<Vec<_>>(),
        ["old_prog"]
    );
    drop(old);
    assert_eq!(
        lab.observer_programs(true).len(),
        1,
        "the pin keeps the link (and old_prog) attached"
    );

    let second = Daemon::start(&lab, &cfg, &["--detach-on-exit"]);
    second.wait_healthy();
    let a = second.status_json().expect("status")["interfaces"][0]["attachments"][0].clone();
    assert_eq!(a["link_id"], link_id, "the same kernel link");
    let ingress = lab.observer_programs(true);
    assert_eq!(ingress.len(), 1, "attached once: {ingress:?}");
    assert_eq!(ingress[0].1, "pal_tc_ingress", "{ingress:?}");
    assert!(second.log_text().contains("replaced the program in place"));
    assert!(second.stop().success());
}
