//! The resilience issue's end-to-end assertions against the running daemon: what hostile
//! control clients and careless operators do must not leak, stall or kill anything.

use std::{
    io::IoSlice,
    os::fd::{AsRawFd, OwnedFd},
    time::Duration,
};

use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, connect, sendmsg, socket,
};
use palisade_ipc::handshake::{Hello, Role};
use palisade_tests::{Daemon, Lab, base_config, wait_for};

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
