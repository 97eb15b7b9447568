//! The daemon's life under a service manager and at its end: systemd's notification
//! protocol (READY only once every worker runs, watchdog pings from the event loop,
//! STOPPING), and no open flow lost when the flow table goes away.

use std::{
    os::unix::net::UnixDatagram,
    time::{Duration, Instant},
};

use palisade_tests::{Daemon, Lab, base_config};

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
