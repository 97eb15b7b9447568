//! Capture without eBPF (`capture = "af_packet"`): the supervisor loads no program and pins
//! nothing; it hands each unprivileged worker a filtered, locked AF_PACKET socket, and the
//! workers build the kernel program's records from the frames with the record builder
//! `palisade replay` uses.
//!
//! * `af_packet_capture_logs_dns_tls_and_flows`: real peers (dig against dnsmasq, openssl
//!   s_client against s_server) are logged (DNS query and answer, ClientHello and
//!   ServerHello, their flows); nothing is attached or pinned; `status` and metrics say the
//!   capture mode and that enforcement is unavailable, and `block add` says why it cannot
//!   act; the workers still have no capability, no_new_privs, seccomp, and hold a packet
//!   socket where the ring buffer was.
//! * `packet_socket_is_receive_only_and_its_filter_locked`: the worker's own socket, taken
//!   from it with pidfd_getfd, refuses a filter change (SO_LOCK_FILTER) and, in root's
//!   hands, does send a frame: what keeps the worker from sending is its seccomp filter,
//!   which kills a worker that writes or sends on it (probe workers).
//! * `auto_falls_back_without_cap_bpf`: `capture = "auto"` under the unit's capabilities
//!   less CAP_BPF and CAP_PERFMON: loading fails, the daemon rolls that start back, runs on
//!   AF_PACKET and says why.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests index JSON values; a panic is a test failure"
)]

use std::{
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    process::{Command, Stdio},
    time::Duration,
};

use palisade_tests::{
    Daemon, Lab, PEER_IP, SENSOR_IF, SENSOR_IP, base_config, proc_status, run, wait_for,
};
use serde_json::Value;

/// `base_config` with `capture` set (a top-level key: before the tables).
fn config(lab: &Lab, capture: &str, extra: &str) -> String {
    format!(
        "capture = \"{capture}\"\n{}",
        base_config(lab, &format!("[flow]\nidle_timeout_s = 2\n{extra}"))
    )
}

fn tls_server(lab: &Lab, port: u16) {
    let key = lab.dir.join("server.key");
    let cert = lab.dir.join("server.crt");
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=afp.example.test"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null()));
    let mut s = lab.sensor("openssl");
    s.args(["s_server", "-quiet", "-accept"])
        .arg(format!("{SENSOR_IP}:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    lab.spawn(s);
    wait_for(Duration::from_secs(5), "openssl s_server", || {
        let out = lab
            .sensor("ss")
            .args(["-Hltn", &format!("sport = :{port}")])
            .output()
            .expect("ss");
        (!out.stdout.is_empty()).then_some(())
    });
}

#[test]
fn af_packet_capture_logs_dns_tls_and_flows() {
    let lab = Lab::new("afp");
    lab.start_dnsmasq();
    tls_server(&lab, 4433);
    let daemon = Daemon::start(&lab, &config(&lab, "af_packet", ""), &[]);
    let pids = daemon.wait_healthy();

    // Nothing in the kernel: no TC program on the interface, no pin.
    assert!(
        lab.observer_programs(true).is_empty(),
        "TC programs attached"
    );
    assert!(lab.tcx_programs(false).is_empty(), "TC programs attached");
    assert!(
        !lab.pin_dir().exists(),
        "pins at {}",
        lab.pin_dir().display()
    );

    // DNS: dig against dnsmasq.
    let answer = lab.dig(&["afp-dns.example.test", "A"]);
    assert!(answer.contains("198.18.0.99"), "dig: {answer}");
    let query = daemon.wait_event("the DNS query", Duration::from_secs(5), |e| {
        e["event_type"] == "dns"
            && e["dns"]["type"] == "query"
            && e["dns"]["rrname"] == "afp-dns.example.test"
    });
    // dnsmasq answers on the peer; dig asks from the sensor (egress frames are captured too).
    assert_eq!(query["src_ip"], SENSOR_IP);
    assert_eq!(query["dest_ip"], PEER_IP);
    assert_eq!(query["dest_port"], 53);
    assert_eq!(query["in_iface"], SENSOR_IF);
    let response = daemon.wait_event("the DNS answer", Duration::from_secs(5), |e| {
        e["event_type"] == "dns"
            && e["dns"]["type"] == "answer"
            && e["dns"]["rrname"] == "afp-dns.example.test"
    });
    let answers = response["dns"]["answers"].to_string();
    assert!(answers.contains("198.18.0.99"), "{response}");
    assert_eq!(query["flow_id"], response["flow_id"], "one flow");
    // The ARP exchange before the first query reached the DHCP worker's socket too: the
    // peer is a device, bound to its address.
    let device = daemon.wait_event(
        "the peer as a new device (ARP)",
        Duration::from_secs(5),
        |e| {
            e["palisade"]["change"] == "new_device"
                && e["palisade"]["device"]["ipv4"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|ip| ip == PEER_IP))
        },
    );
    assert_eq!(device["event_type"], "alert", "{device}");

    // TLS: a full handshake from the peer.
    let out = lab
        .peer("openssl")
        .args(["s_client", "-connect", &format!("{SENSOR_IP}:4433")])
        .args(["-servername", "afp-tls.example.test"])
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("BEGIN CERTIFICATE"),
        "handshake failed: {out:?}"
    );
    let hello = daemon.wait_event("the ClientHello", Duration::from_secs(5), |e| {
        e["event_type"] == "tls"
            && e["tls"]["sni"] == "afp-tls.example.test"
            && e["palisade"]["tls"]["handshake"] == "client_hello"
    });
    assert!(hello["tls"]["ja3"]["hash"].is_string(), "{hello}");
    assert!(hello["tls"]["ja4"].is_string(), "{hello}");
    let server_hello = daemon.wait_event("the ServerHello", Duration::from_secs(5), |e| {
        e["event_type"] == "tls" && e["palisade"]["tls"]["handshake"] == "server_hello"
    });
    assert_eq!(server_hello["flow_id"], hello["flow_id"], "one connection");

    // Flows: the TLS connection ends (FIN) and the DNS one times out (idle 2 s).
    let tcp = daemon.wait_event("the TLS flow's end", Duration::from_secs(8), |e| {
        e["event_type"] == "flow" && e["proto"] == "TCP" && e["dest_port"] == 4433
    });
    // The same connection (its tuple hash). Its flow_id, made from the first packet's time,
    // is not compared here: this TCP traffic comes from another network namespace over a
    // veth, carrying the sender's delivery time, which AF_PACKET replaces with the time
    // of its delivery to each socket (microseconds apart): the flow and TLS workers then
    // see different first-packet times (docs/replay.md, "AF_PACKET fallback").
    assert_eq!(tcp["community_id"], hello["community_id"], "{tcp}\n{hello}");
    assert_eq!(tcp["src_port"], hello["src_port"]);
    assert!(
        tcp["flow"]["pkts_toserver"].as_u64().unwrap_or(0) >= 3,
        "{tcp}"
    );
    assert!(
        tcp["flow"]["pkts_toclient"].as_u64().unwrap_or(0) >= 3,
        "{tcp}"
    );
    let udp = daemon.wait_event("the DNS flow's end", Duration::from_secs(8), |e| {
        e["event_type"] == "flow" && e["flow_id"] == query["flow_id"]
    });
    assert_eq!(udp["flow"]["reason"], "timeout");
    assert_eq!(udp["flow"]["pkts_toserver"], 1);
    assert_eq!(udp["flow"]["pkts_toclient"], 1);

    // Status says so, honestly.
    let status = daemon.status_json().expect("status");
    let capture = &status["capture"];
    assert_eq!(capture["mode"], "af_packet", "{capture}");
    assert!(capture["fallback_reason"].is_null());
    let states: Vec<(String, String)> = capture["enforcement"]
        .as_array()
        .expect("enforcement")
        .iter()
        .map(|f| {
            (
                f["feature"].as_str().unwrap_or_default().to_owned(),
                f["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for feature in ["ip_blocklist", "dns_blocking", "tls_flow_blocks"] {
        assert!(
            states.contains(&(feature.to_owned(), "unavailable".to_owned())),
            "{feature}: {states:?}"
        );
    }
    let sockets = capture["sockets"].as_array().expect("sockets");
    assert_eq!(sockets.len(), 4, "{capture}");
    for s in sockets {
        let frames = s["packets"].as_u64().unwrap_or(0);
        // Every worker saw frames: no DHCP was sent, but the DHCP worker's socket takes
        // the ARP (and neighbour discovery) frames as well.
        assert!(frames > 0, "{s}");
        assert_eq!(s["drops"], 0, "{s}");
    }
    let text = daemon.ctl(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("capture: af_packet"), "{text}");
    assert!(text.contains("dns_blocking=unavailable"), "{text}");
    let metrics = daemon.ctl(&["metrics"]);
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics.contains(
            "palisade_enforcement_available{feature=\"ip_blocklist\",state=\"unavailable\"} 0"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("palisade_capture_mode{mode=\"af_packet\"} 1"),
        "{metrics}"
    );
    // An enforcement command says why it cannot act, and changes nothing.
    let block = daemon.ctl(&["block", "add", "192.0.2.1/32"]);
    assert!(!block.status.success(), "block add succeeded: {block:?}");
    assert!(
        String::from_utf8_lossy(&block.stderr).contains("unavailable"),
        "{block:?}"
    );

    // The workers: no privilege, as with eBPF; FD 4 is the packet socket.
    for (name, pid) in &pids {
        let s = proc_status(*pid);
        assert!(s["Uid"].split_whitespace().all(|u| u != "0"), "{name}");
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(s[cap], "0000000000000000", "{name}: {cap}");
        }
        assert_eq!(s["NoNewPrivs"], "1", "{name}");
        assert_eq!(s["Seccomp"], "2", "{name}");
        let fd4 = std::fs::read_link(format!("/proc/{pid}/fd/4")).expect("fd 4");
        assert!(
            fd4.display().to_string().starts_with("socket:"),
            "{name}: fd 4 is {}",
            fd4.display()
        );
        let bpf = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("fds")
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .any(|p| p.display().to_string().contains("bpf"));
        assert!(!bpf, "{name} holds a BPF object");
    }
    daemon.assert_alive();
}

/// A copy of `pid`'s descriptor `fd` (pidfd_getfd: root may take any process's).
fn take_fd(pid: u32, fd: i32) -> OwnedFd {
    // SAFETY: plain system calls; results checked before use.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0);
        assert!(
            pidfd >= 0,
            "pidfd_open: {}",
            std::io::Error::last_os_error()
        );
        let pidfd = OwnedFd::from_raw_fd(pidfd as i32);
        let got = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0);
        assert!(got >= 0, "pidfd_getfd: {}", std::io::Error::last_os_error());
        OwnedFd::from_raw_fd(got as i32)
    }
}

#[test]
fn packet_socket_is_receive_only_and_its_filter_locked() {
    let lab = Lab::new("afprecv");
    let daemon = Daemon::start(&lab, &config(&lab, "af_packet", ""), &[]);
    let pids = daemon.wait_healthy();
    let sock = take_fd(pids["dns"], 4);
    // The filter cannot be removed nor replaced.
    // SAFETY: setsockopt with valid option buffers.
    unsafe {
        let zero = 0i32;
        let r = libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_DETACH_FILTER,
            (&zero as *const i32).cast(),
            4,
        );
        let err = std::io::Error::last_os_error().raw_os_error();
        assert!(
            r < 0 && err == Some(libc::EPERM),
            "SO_DETACH_FILTER: {r} {err:?}"
        );
        let mut accept_all = [libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0x40000,
        }];
        let prog = libc::sock_fprog {
            len: 1,
            filter: accept_all.as_mut_ptr(),
        };
        let r = libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&prog as *const libc::sock_fprog).cast(),
            size_of::<libc::sock_fprog>() as u32,
        );
        let err = std::io::Error::last_os_error().raw_os_error();
        assert!(
            r < 0 && err == Some(libc::EPERM),
            "SO_ATTACH_FILTER: {r} {err:?}"
        );
        // The socket itself can send (no capability is checked at send time): in root's
        // hands, a frame goes out of the monitored interface.
        let frame = [0xffu8; 60];
        let n = libc::write(sock.as_raw_fd(), frame.as_ptr().cast(), frame.len());
        assert_eq!(n, 60, "write: {}", std::io::Error::last_os_error());
    }
    drop(sock);
    daemon.assert_alive();
    drop(daemon);

    // In the worker's hands it cannot: write and sendmsg on it are outside its seccomp
    // allow-list (while allowed on its IPC socket and sink), and kill it.
    let lab = Lab::new("afpprobe");
    let extra = lab.substitute_workers("probe-worker", &[("dns", "pktwrite"), ("tls", "pktsend")]);
    let daemon = Daemon::start(&lab, &config(&lab, "af_packet", &extra), &[]);
    let workers = wait_for(Duration::from_secs(10), "both probes to end", || {
        let w = daemon.workers();
        (w["dns"]["last_exit"].is_string() && w["tls"]["last_exit"].is_string()).then_some(w)
    });
    for name in ["dns", "tls"] {
        let exit = workers[name]["last_exit"].as_str().unwrap_or_default();
        assert!(
            exit.contains("SIGSYS") && exit.contains("seccomp"),
            "{name}: sending on the packet socket must kill: {exit}"
        );
    }
    daemon.assert_alive();
}

#[test]
fn auto_falls_back_without_cap_bpf() {
    let lab = Lab::new("afpauto");
    lab.start_dnsmasq();
    // The unit's capabilities less CAP_BPF and CAP_PERFMON (and no CAP_SYS_ADMIN): the
    // kernel refuses to create the maps, as on a host where eBPF is not allowed.
    let wrapper = [
        "setpriv",
        "--bounding-set=-all,+net_admin,+net_raw,+setuid,+setgid,+setpcap,+kill",
        "--inh-caps=-all",
        "--no-new-privs",
        "--",
    ];
    let daemon = Daemon::start_wrapped(&lab, &config(&lab, "auto", ""), &[], true, &wrapper);
    daemon.wait_healthy();
    let bounding = u64::from_str_radix(&proc_status(daemon.pid())["CapBnd"], 16).expect("CapBnd");
    assert_eq!(
        bounding & (1 << 39 | 1 << 38 | 1 << 21),
        0,
        "CapBnd {bounding:x}"
    );
    let status = daemon.status_json().expect("status");
    assert_eq!(
        status["capture"]["mode"], "af_packet",
        "{}",
        status["capture"]
    );
    let why = status["capture"]["fallback_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(!why.is_empty(), "{}", status["capture"]);
    assert!(
        daemon.log_text().contains("eBPF cannot be used"),
        "{}",
        daemon.log_text()
    );
    // Nothing of the failed eBPF start is left below the pin root.
    assert!(
        !lab.pin_dir().exists(),
        "pins left at {}",
        lab.pin_dir().display()
    );
    // And it captures.
    lab.dig(&["afp-auto.example.test", "A"]);
    daemon.wait_event("the DNS query", Duration::from_secs(5), |e: &Value| {
        e["event_type"] == "dns" && e["dns"]["rrname"] == "afp-auto.example.test"
    });
}

/// What the three captures must agree on: an event without what depends on when and where
/// it was seen (timestamps, flow id made from a clock, interface name and direction, flow
/// age, DNS round-trip time and query time, a DHCP transaction's duration, the Ethernet header and client MAC the test
/// makes up for a capture without one).
fn timeless(e: &Value, synthetic: bool) -> String {
    let mut e = e.clone();
    if let Some(o) = e.as_object_mut() {
        for k in ["timestamp", "flow_id", "in_iface"] {
            o.remove(k);
        }
        if synthetic {
            o.remove("ether");
        }
    }
    if let Some(f) = e.get_mut("flow").and_then(Value::as_object_mut) {
        for k in ["start", "end", "age"] {
            f.remove(k);
        }
    }
    if let Some(p) = e.get_mut("palisade").and_then(Value::as_object_mut) {
        p.remove("iface_direction");
        if let Some(d) = p.get_mut("dns").and_then(Value::as_object_mut) {
            d.remove("rtt_ms");
            d.remove("query_timestamp");
            if synthetic {
                d.remove("client_mac");
            }
        }
        if let Some(t) = p
            .get_mut("dhcp")
            .and_then(|d| d.get_mut("transaction"))
            .and_then(Value::as_object_mut)
        {
            t.remove("duration_ms");
        }
    }
    e.to_string()
}

/// The events all three produce at once: DNS messages (not the `unanswered` reports a
/// timeout makes), DHCP messages, TLS and QUIC hellos, flow ends.
fn comparable(e: &Value) -> bool {
    match e["event_type"].as_str() {
        Some("dns") => e["dns"]["type"] != "unanswered",
        Some("dhcp") => e["dhcp"]["dhcp_type"].is_string(),
        Some("tls" | "quic") => true,
        Some("flow") => e["flow"]["reason"] != "start" && e["flow"]["reason"] != "update",
        _ => false,
    }
}

/// A lab for the corpus: jumbo MTU (captures taken before segmentation offload), no IPv6
/// chatter of its own (it would add flows), flows ending 1 s after their last packet.
fn corpus_lab(name: &str, capture: &str) -> (Lab, Daemon) {
    let lab = Lab::new(name);
    for (ip, sysctl, ifname) in [
        (lab.sensor("ip"), lab.sensor("sysctl"), SENSOR_IF),
        (lab.peer("ip"), lab.peer("sysctl"), palisade_tests::PEER_IF),
    ] {
        let (mut ip, mut sysctl) = (ip, sysctl);
        run(ip.args(["link", "set", ifname, "mtu", "65535"]));
        run(sysctl.args(["-qw", &format!("net.ipv6.conf.{ifname}.disable_ipv6=1")]));
    }
    let cfg = format!(
        "capture = \"{capture}\"\n{}",
        base_config(
            &lab,
            "[flow]\nidle_timeout_s = 1\ntcp_idle_timeout_s = 1\nseed_from_conntrack = false\n",
        )
    );
    let daemon = Daemon::start(&lab, &cfg, &[]);
    daemon.wait_healthy();
    (lab, daemon)
}

/// Every capture of the corpus (DNS, DHCP, TLS, flows), sent live through the eBPF
/// programs, live through AF_PACKET sockets, and read by `palisade replay`: the three give
/// the same events, field for field, but for what depends on the clock and the interface
/// ([`timeless`]). Each capture is sent to both daemons (two labs), and their events are
/// compared with replay's as multisets.
#[test]
fn corpus_gives_the_same_events_with_ebpf_af_packet_and_replay() {
    use palisade_tests::corpus::{self, Capture, EventCursor};
    use std::fmt::Write as _;

    /// A capture whose timing splits a flow in replay (conformance_flows.rs,
    /// SPLIT_AT_CAPTURE_TIMING): its flow ends are left out.
    const SPLIT: &str = "sv_tls12-github.pcap";
    /// Two TLS captures share a tuple and sequence numbers (conformance_tls.rs:
    /// ja4_tls-non-ascii-alpn is this one's first hello, edited): sent after it, this one
    /// starts a new handshake only once the first one's following ended (TLS_MAX_NS).
    const SHARES_A_TUPLE: &str = "ja4_tls-sni-many.pcapng";
    const PPS: u32 = 2000;

    let dir = corpus::dir();
    let (ebpf_lab, ebpf) = corpus_lab("afpsame-e", "ebpf");
    let (afp_lab, afp) = corpus_lab("afpsame-a", "af_packet");
    let mut cursors = [EventCursor::now(&ebpf), EventCursor::now(&afp)];
    let mut report = String::new();
    let (mut captures, mut events) = (0, 0);
    for sub in ["dns", "dhcp", "tls", "flow"] {
        for path in corpus::captures(&dir.join("pcaps").join(sub)) {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let out = Command::new(palisade_tests::bin("palisade"))
                .arg("replay")
                .arg(&path)
                .output()
                .expect("palisade replay");
            assert!(out.status.success(), "{name}: {out:?}");
            let keep = |e: &Value| comparable(e) && !(name == SPLIT && e["event_type"] == "flow");
            let offline: Vec<Value> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|e| keep(e))
                .collect();
            let cap = Capture::read(&path);
            let synthetic = cap.frames.iter().any(|f| f.synthetic_ether);
            if name == SHARES_A_TUPLE {
                std::thread::sleep(
                    Duration::from_nanos(palisade_abi::TLS_MAX_NS) + Duration::from_millis(500),
                );
            }
            for lab in [&ebpf_lab, &afp_lab] {
                let sent = cap.replay(lab, PPS);
                assert_eq!(sent.sent, cap.frames.len() as u64, "{name}: {sent:?}");
            }
            let mut want: Vec<String> = offline.iter().map(|e| timeless(e, synthetic)).collect();
            want.sort();
            for ((daemon, cursor), mode) in [&ebpf, &afp]
                .into_iter()
                .zip(cursors.iter_mut())
                .zip(["ebpf", "af_packet"])
            {
                let live = cursor.take(
                    daemon,
                    offline.len(),
                    Duration::from_millis(1600),
                    Duration::from_millis(2500),
                    Duration::from_secs(10),
                    keep,
                );
                let mut got: Vec<String> = live.iter().map(|e| timeless(e, synthetic)).collect();
                got.sort();
                if got != want {
                    let missing: Vec<&String> = want.iter().filter(|w| !got.contains(w)).collect();
                    let extra: Vec<&String> = got.iter().filter(|g| !want.contains(g)).collect();
                    let _ = writeln!(
                        report,
                        "{sub}/{name}: {mode} gave {} events, replay {}\n  only in replay: {missing:?}\n  only in {mode}: {extra:?}",
                        got.len(),
                        want.len()
                    );
                }
            }
            captures += 1;
            events += want.len();
        }
    }
    ebpf.assert_alive();
    afp.assert_alive();
    println!("{captures} captures, {events} events each way");
    assert!(
        captures >= 60 && events >= 300,
        "{captures} captures, {events} events"
    );
    assert!(
        report.is_empty(),
        "differences:\n{}",
        report.chars().take(20_000).collect::<String>()
    );
}

/// `CapabilityBoundingSet=` of a unit file (its last line), as setpriv spells it.
fn unit_caps(file: &str) -> Vec<String> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("read the unit");
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .unwrap_or_else(|| panic!("CapabilityBoundingSet= in {file}"))
        .split_whitespace()
        .map(|c| format!("+{}", c.to_lowercase().trim_start_matches("cap_")))
        .collect()
}

/// The packaged unit does not grant what AF_PACKET needs (eBPF capture does not need it):
/// with its capabilities alone, `capture = "af_packet"` fails to start and says where the
/// missing piece is; with the drop-in `packaging/af-packet.conf` added, it runs.
#[test]
fn af_packet_needs_the_units_drop_in() {
    let lab = Lab::new("afpunit");
    lab.start_dnsmasq();
    let unit = unit_caps("palisade.service");
    let cfg_path = lab.dir.join("afp.toml");
    std::fs::write(&cfg_path, config(&lab, "af_packet", "")).expect("config");
    let out = lab
        .sensor("setpriv")
        .arg(format!("--bounding-set=-all,{}", unit.join(",")))
        .args(["--inh-caps=-all", "--no-new-privs", "--"])
        .arg(palisade_tests::bin("palisade"))
        .args(["run", "--foreground", "--config"])
        .arg(&cfg_path)
        .stdin(Stdio::null())
        .output()
        .expect("palisade run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started without CAP_NET_RAW: {stderr}"
    );
    assert!(
        stderr.contains("AF_PACKET socket") && stderr.contains("af-packet.conf"),
        "{stderr}"
    );

    let mut caps = unit;
    caps.extend(unit_caps("af-packet.conf"));
    let bounding = format!("--bounding-set=-all,{}", caps.join(","));
    let wrapper = [
        "setpriv",
        bounding.as_str(),
        "--inh-caps=-all",
        "--no-new-privs",
        "--",
    ];
    let daemon = Daemon::start_wrapped(&lab, &config(&lab, "af_packet", ""), &[], true, &wrapper);
    daemon.wait_healthy();
    lab.dig(&["afp-unit.example.test", "A"]);
    daemon.wait_event("the DNS query", Duration::from_secs(5), |e: &Value| {
        e["event_type"] == "dns" && e["dns"]["rrname"] == "afp-unit.example.test"
    });
}
