//! The daemon's life under a service manager and at its end: systemd's notification
//! protocol (READY only once every worker runs, watchdog pings from the event loop,
//! STOPPING), no open flow lost when the flow table goes away, and an upgrade from the
//! previous record ABI's build (scripts/build-previous-abi) under traffic.

#![expect(
    clippy::indexing_slicing,
    reason = "tests index JSON values; a panic is a test failure"
)]

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream, UdpSocket},
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use palisade_tests::{Daemon, Lab, PEER_IP, SENSOR_IP, Side, base_config, wait_for};
use serde_json::Value;

/// Every datagram that arrives on `socket` within `window`.
fn datagrams(socket: &UnixDatagram, window: Duration) -> Vec<String> {
    let end = Instant::now() + window;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match socket.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into()),
            Err(_) => break,
        }
    }
    out
}

#[test]
fn systemd_hears_ready_after_the_workers_then_watchdog_pings_then_stopping() {
    let lab = Lab::new("notify");
    let path = lab.dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notification socket");
    let notify = format!("NOTIFY_SOCKET={}", path.display());
    let daemon = Daemon::start_wrapped(
        &lab,
        &base_config(&lab, ""),
        &[],
        true,
        &["env", &notify, "WATCHDOG_USEC=400000"],
    );
    // READY=1 comes once, with a status line, and only when all four workers run: the
    // status the daemon answers at that moment already shows them running.
    let mut seen = Vec::new();
    let ready = loop {
        let got = datagrams(&socket, Duration::from_millis(200));
        if let Some(r) = got.iter().find(|d| d.contains("READY=1")).cloned() {
            break r;
        }
        seen.extend(got);
        assert!(seen.len() < 200, "no READY=1 among {seen:?}");
    };
    let workers = daemon.workers();
    assert!(
        workers.values().all(|w| w["state"] == "running"),
        "READY before every worker ran: {workers:?}"
    );
    assert!(
        ready.contains("STATUS=attached to 1 interface(s)") && ready.contains("4 workers running"),
        "{ready}"
    );
    // Watchdog pings every half period (200 ms): about five in a second, and no second READY.
    let pings = datagrams(&socket, Duration::from_secs(1));
    let n = pings.iter().filter(|d| *d == "WATCHDOG=1").count();
    assert!((3..=8).contains(&n), "{n} pings in 1 s: {pings:?}");
    assert!(!pings.iter().any(|d| d.contains("READY=1")), "{pings:?}");
    // A stopped loop stops pinging (what lets systemd restart a wedged daemon).
    let pid = nix::unistd::Pid::from_raw(i32::try_from(daemon.pid()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::SIGSTOP).expect("SIGSTOP");
    let _ = datagrams(&socket, Duration::from_millis(100)); // what was in flight
    let silent = datagrams(&socket, Duration::from_millis(800));
    nix::sys::signal::kill(pid, nix::sys::signal::SIGCONT).expect("SIGCONT");
    assert!(silent.is_empty(), "pings from a stopped daemon: {silent:?}");
    assert!(
        datagrams(&socket, Duration::from_millis(600))
            .iter()
            .any(|d| d == "WATCHDOG=1"),
        "pings resume after SIGCONT"
    );
    // The workers do not inherit the socket: none of them can pose as the service.
    for (name, wpid) in daemon.wait_healthy() {
        let environ = std::fs::read(format!("/proc/{wpid}/environ")).expect("environ");
        let environ = String::from_utf8_lossy(&environ);
        assert!(
            !environ.contains("NOTIFY_SOCKET") && !environ.contains("WATCHDOG_"),
            "worker {name} inherited systemd's variables: {environ}"
        );
    }
    assert!(daemon.stop().success());
    let last = datagrams(&socket, Duration::from_millis(200));
    assert!(
        last.iter().any(|d| d.starts_with("STOPPING=1")),
        "no STOPPING=1: {last:?}"
    );
}

/// UDP flows opened before the stop: more than two batches of `pal_flow_end_all` (4,096).
const UDP_FLOWS: u16 = 10_000;

#[test]
fn detach_on_exit_ends_every_open_flow_with_a_shutdown_record() {
    let lab = Lab::new("detach");
    let daemon = Daemon::start(
        &lab,
        &base_config(
            &lab,
            "[flow]\nseed_from_conntrack = false\nstart_events = true\n",
        ),
        &["--detach-on-exit"],
    );
    daemon.wait_healthy();
    // A TCP transfer in progress: the server reads, the client has sent and keeps the
    // connection open across the stop.
    let listener = lab.in_netns(Side::Peer, || {
        TcpListener::bind((PEER_IP, 0)).expect("bind in the peer namespace")
    });
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0usize;
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    let mut client = lab.in_netns(Side::Sensor, || {
        TcpStream::connect((PEER_IP, port)).expect("connect")
    });
    client.write_all(&[0x5a; 100_000]).expect("send");
    // Many UDP flows, one datagram each, from one socket to as many ports.
    lab.in_netns(Side::Sensor, || {
        let udp = UdpSocket::bind((SENSOR_IP, 0)).expect("udp bind");
        for p in 0..UDP_FLOWS {
            let _ = udp.send_to(b"x", (PEER_IP, 20_000 + p));
        }
    });
    let start = daemon.wait_event("the TCP flow's start", Duration::from_secs(5), |e| {
        e["event_type"] == "flow" && e["flow"]["reason"] == "start" && e["dest_port"] == port
    });
    // The sweeper has not ended them: idle timeouts are far away.
    std::thread::sleep(Duration::from_millis(500));

    let (status, events) = daemon.stop_with_events();
    assert!(status.success(), "{status}");
    let ends: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == "flow" && e["flow"]["reason"] == "shutdown")
        .collect();
    let tcp = ends
        .iter()
        .find(|e| e["flow_id"] == start["flow_id"])
        .unwrap_or_else(|| panic!("no shutdown record for the TCP flow {start}"));
    assert_eq!(tcp["dest_port"], port);
    assert_eq!(tcp["flow"]["state"], "established");
    assert!(
        tcp["flow"]["bytes_toserver"].as_u64().unwrap_or(0) > 100_000,
        "{tcp}"
    );
    let udp: std::collections::BTreeSet<u64> = ends
        .iter()
        .filter(|e| e["proto"] == "UDP" && e["src_ip"] == SENSOR_IP)
        .filter_map(|e| e["dest_port"].as_u64())
        .collect();
    assert_eq!(
        udp.len(),
        usize::from(UDP_FLOWS),
        "UDP flows ended with a record"
    );
    // Each flow ended once.
    let mut ids: Vec<&Value> = ends.iter().map(|e| &e["flow_id"]).collect();
    let n = ids.len();
    ids.sort_by_key(|v| v.as_u64());
    ids.dedup();
    assert_eq!(ids.len(), n, "a flow ended twice");
    // Nothing pinned stays behind.
    assert!(
        std::fs::read_dir(&lab.pin_root).map_or(true, |mut d| d.next().is_none()),
        "pins left below {}",
        lab.pin_root.display()
    );
    drop(client);
    let _ = server.join();
}

/// The binaries of the previous record ABI's last build (`scripts/build-previous-abi`, which
/// scripts/test runs before the tests; here it only finds that build, or builds it once).
fn previous_abi_build() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-previous-abi");
    let out = std::process::Command::new(&script)
        .output()
        .expect("scripts/build-previous-abi");
    assert!(
        out.status.success(),
        "scripts/build-previous-abi failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(dir.join("palisade").exists(), "{}", dir.display());
    dir
}

/// An address of the peer inside the listed prefix (198.18.0.128/25).
const BLOCKED_SRC: &str = "198.18.0.130";

#[test]
fn an_upgrade_to_another_abi_version_lets_no_packet_from_a_blocked_prefix_through() {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    };
    let lab = Lab::new("upgrade");
    palisade_tests::run(std::process::Command::new("ip").args([
        "-n",
        &lab.peer_ns,
        "addr",
        "add",
        &format!("{BLOCKED_SRC}/24"),
        "dev",
        palisade_tests::PEER_IF,
    ]));
    let list = lab.dir.join("drop.txt");
    std::fs::write(&list, "198.18.0.128/25\n").expect("list");
    let config = base_config(
        &lab,
        &format!("[ip]\nblocklists = [\"{}\"]\n", list.display()),
    );
    // The sensor counts every datagram that reaches its socket.
    let sink = lab.in_netns(Side::Sensor, || {
        UdpSocket::bind((SENSOR_IP, 0)).expect("bind in the sensor namespace")
    });
    sink.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let port = sink.local_addr().expect("addr").port();
    let stop = Arc::new(AtomicBool::new(false));
    let (received, from_blocked) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let receiver = {
        let (stop, received, from_blocked) = (
            Arc::clone(&stop),
            Arc::clone(&received),
            Arc::clone(&from_blocked),
        );
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((_, from)) = sink.recv_from(&mut buf) {
                    received.fetch_add(1, Ordering::Relaxed);
                    if from.ip().to_string() == BLOCKED_SRC {
                        from_blocked.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };

    // The first daemon is the last release of the previous record ABI, built from this
    // repository's history: its own object, pin layout, workers and CLI.
    let previous = previous_abi_build();
    let first = Daemon::start_build(&lab, &config, &previous);
    first.wait_healthy();
    let older = PathBuf::from(
        first.status_json().expect("the older daemon's status")["pin_dir"]
            .as_str()
            .expect("pin_dir"),
    );
    assert!(
        older.ends_with(format!("v{}", palisade_abi::ABI_VERSION - 1)),
        "the older build pins below {}",
        older.display()
    );
    // From here on the blocked prefix sends a datagram every millisecond, through the stop
    // of the first daemon, the start of the second and the removal of the first's pins.
    let sent = Arc::new(AtomicU64::new(0));
    let sender = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        let socket = lab.in_netns(Side::Peer, || {
            UdpSocket::bind((BLOCKED_SRC, 0)).expect("bind the blocked source")
        });
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if socket.send_to(b"upgrade", (SENSOR_IP, port)).is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    // An open flow from outside the prefix: the upgrade carries it over, counters and all.
    let carried = lab.in_netns(Side::Peer, || {
        UdpSocket::bind((PEER_IP, 0)).expect("bind the carried flow's source")
    });
    let carried_port = carried.local_addr().expect("addr").port();
    for _ in 0..10 {
        carried
            .send_to(b"carried", (SENSOR_IP, port))
            .expect("send");
    }
    std::thread::sleep(Duration::from_millis(300));
    let upgrade_began = Instant::now();
    assert!(first.stop().success());
    // What an upgrade finds: the older version's pins (its links still attached and
    // enforcing) in its ABI version's directory.
    let current = lab.pin_root.join(format!("v{}", palisade_abi::ABI_VERSION));
    assert!(older.exists() && !current.exists());
    std::thread::sleep(Duration::from_millis(300));
    let second = Daemon::start(&lab, &config, &[]);
    second.wait_healthy();
    // The older version's pins are gone (its links with them), the new version's are in.
    wait_for(
        Duration::from_secs(5),
        "the older version's pins removed",
        || (!older.exists()).then_some(()),
    );
    assert!(current.exists());
    let observers = lab.observer_programs(true);
    assert_eq!(observers.len(), 1, "one observer left: {observers:?}");
    std::thread::sleep(Duration::from_millis(500));
    // The open flow was carried over: same flow (older than the upgrade), its packets
    // counted before it included.
    let flows = second.ctl(&["flows", "show", "--host", PEER_IP, "--json"]);
    let flows: Value = serde_json::from_slice(&flows.stdout).expect("flows show --json");
    let flow = flows["flows"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["src_port"] == carried_port))
        .unwrap_or_else(|| panic!("the open flow was not carried over: {flows}"));
    assert!(flow["pkts_toserver"].as_u64() >= Some(10), "{flow}");
    let age = Duration::from_millis(flow["age_ms"].as_u64().unwrap_or(0));
    assert!(
        age > upgrade_began.elapsed(),
        "a new flow, not the carried one: {flow}"
    );
    assert_eq!(flow["seeded"], false, "{flow}");
    let status = second.status_json().expect("status");
    let seed_line = status["flows"]["conntrack"].as_str().unwrap_or_default();
    let carried_n: u64 = seed_line
        .strip_prefix("carried ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no carry-over in the status: {seed_line:?}"));
    assert!(carried_n >= 1, "{seed_line}");
    assert!(
        seed_line.contains(&format!(
            "open flows over from ABI {}",
            palisade_abi::ABI_VERSION - 1
        )),
        "{seed_line}"
    );
    // The path itself works: a datagram from outside the prefix gets through.
    let free = lab.in_netns(Side::Peer, || {
        UdpSocket::bind((PEER_IP, 0)).expect("bind the free source")
    });
    let before = received.load(Ordering::Relaxed);
    wait_for(
        Duration::from_secs(3),
        "a datagram from outside the prefix",
        || {
            free.send_to(b"free", (SENSOR_IP, port)).expect("send");
            std::thread::sleep(Duration::from_millis(50));
            (received.load(Ordering::Relaxed) > before).then_some(())
        },
    );
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("sender");
    receiver.join().expect("receiver");
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent > 500, "the blocked source sent {sent} datagrams");
    assert_eq!(
        from_blocked.load(Ordering::Relaxed),
        0,
        "datagrams from the blocked prefix reached the sensor during the upgrade ({sent} sent)"
    );
    assert!(second.stop().success());
}
