//! The daemon's life under a service manager and at its end: systemd's notification
//! protocol (READY only once every worker runs, watchdog pings from the event loop,
//! STOPPING), and no open flow lost when the flow table goes away.

#![expect(
    clippy::indexing_slicing,
    reason = "tests index JSON values; a panic is a test failure"
)]

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream, UdpSocket},
    os::unix::net::UnixDatagram,
    time::{Duration, Instant},
};

use palisade_tests::{Daemon, Lab, PEER_IP, SENSOR_IP, Side, base_config};
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
