//! The resilience issue's end-to-end assertions against the running daemon: what hostile
//! control clients and careless operators do must not leak, stall or kill anything.

use std::{
    collections::BTreeSet,
    io::IoSlice,
    os::fd::{AsRawFd, OwnedFd},
    time::Duration,
};

use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, connect, sendmsg, socket,
};
use palisade_ipc::handshake::{Hello, Role};
use palisade_tests::{Daemon, Lab, SENSOR_IP, Side, base_config, wait_for};

/// Descriptors the process `pid` holds.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
}

fn control_client(daemon: &Daemon) -> OwnedFd {
    let sock = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    let addr = UnixAddr::new(&daemon.control).expect("address");
    connect(sock.as_raw_fd(), &addr).expect("connect to the control socket");
    sock
}

#[test]
fn frames_with_too_many_fds_leak_no_descriptor() {
    let lab = Lab::new("fdleak");
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();
    let pid = daemon.pid();
    let before = open_fds(pid);

    // A control-group member's attack: the hello, then frames with 20 descriptors each (the
    // protocol allows 8); each used to leave 8 open in the daemon.
    let devnull = std::fs::File::open("/dev/null").expect("/dev/null");
    let fds = vec![devnull.as_raw_fd(); 20];
    let hello = Hello::ours(Role::Cli).encode();
    const CLIENTS: usize = 60;
    for _ in 0..CLIENTS {
        let sock = control_client(&daemon);
        let rights = [ControlMessage::ScmRights(&fds)];
        let _ = sendmsg::<UnixAddr>(
            sock.as_raw_fd(),
            &[IoSlice::new(&hello)],
            &rights,
            MsgFlags::empty(),
            None,
        );
        let _ = sendmsg::<UnixAddr>(
            sock.as_raw_fd(),
            &[IoSlice::new(b"request")],
            &rights,
            MsgFlags::empty(),
            None,
        );
    }
    // The daemon serves clients one after the other; give it time to read them all.
    let settled = wait_for(
        Duration::from_secs(20),
        "the daemon's descriptors to settle",
        || {
            let now = open_fds(pid);
            (now <= before + 4).then_some(now)
        },
    );
    assert!(
        settled <= before + 4,
        "{before} descriptors before, {settled} after {CLIENTS} hostile clients"
    );
    daemon.assert_alive();
    let out = daemon.ctl(&["status"]);
    assert!(out.status.success(), "status still answers");
    assert_eq!(daemon.wait_healthy().len(), 4, "every worker still running");
}

/// A DNS query for `name` (type A), id `id`.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

#[test]
fn worker_killed_mid_batch_loses_no_event() {
    // A worker killed while it works through a batch used to take that batch's events with it:
    // ring space was released as records were read, events written at the end of the batch.
    // Now the space is released after the events are written, so the successor reads the
    // batch again. To land each kill inside a batch deterministically, the worker is frozen
    // while a backlog builds, thawed, and killed a few milliseconds into working it off.
    let lab = Lab::new("kills");
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();
    const PER_ROUND: usize = 4000;
    let rounds = [3_u64, 10, 25]; // ms between thaw and kill
    let names: Vec<String> = (0..PER_ROUND * rounds.len())
        .map(|i| format!("q{i}.kill.test"))
        .collect();
    let sock = lab.in_netns(Side::Peer, || {
        std::net::UdpSocket::bind("0.0.0.0:0").expect("udp socket")
    });
    let mut last = 0;
    for (round, delay) in rounds.iter().enumerate() {
        let pid = wait_for(Duration::from_secs(5), "a running dns worker", || {
            let w = &daemon.workers()["dns"];
            let pid = w["pid"].as_u64()? as u32;
            (pid != last && w["state"] == "running").then_some(pid)
        });
        // SAFETY: kill(2) on a worker of our daemon.
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
        for (i, name) in names
            .iter()
            .enumerate()
            .skip(round * PER_ROUND)
            .take(PER_ROUND)
        {
            sock.send_to(&dns_query(i as u16, name), (SENSOR_IP, 53))
                .expect("send query");
        }
        // SAFETY: as above.
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
        std::thread::sleep(Duration::from_millis(*delay));
        // SAFETY: as above.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        last = pid;
    }

    let want = names.len();
    let seen = wait_for(
        Duration::from_secs(30),
        "a query event for every query",
        || {
            let seen: BTreeSet<String> = daemon
                .events()
                .iter()
                .filter(|e| e["event_type"] == "dns" && e["dns"]["type"] == "query")
                .filter_map(|e| e["dns"]["rrname"].as_str().map(str::to_owned))
                .filter(|n| n.ends_with(".kill.test"))
                .collect();
            (seen.len() == want).then_some(seen)
        },
    );
    assert_eq!(seen.len(), want);
    let w = &daemon.workers()["dns"];
    assert!(w["restarts"].as_u64() >= Some(rounds.len() as u64), "{w}");
    let status = daemon.status_json().expect("status");
    let ring_full = status["kernel"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|k| k["group"] == "dns" && k["counter"] == "ring_full")
        })
        .and_then(|k| k["value"].as_u64());
    assert_eq!(ring_full, Some(0), "nothing dropped in the kernel either");
}
