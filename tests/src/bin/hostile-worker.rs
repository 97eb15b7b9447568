//! A deliberately misbehaving worker, configured in a real worker's place by
//! the integration tests. Its file name (a symlink made by the test) selects
//! the attack and the worker kind: `hostile-<attack>-<kind>`, attack one of
//! `oversized`, `wrongversion`, `garbage`, `unexpected`, `fds`, `liar` (a DNS worker that
//! applies the supervisor's rule set, then asks it to block a name for a rule id that is no
//! regex rule of that set), `logflood` (Log frames as fast as the socket takes them),
//! `chatty` (valid heartbeats and a flood of valid CnameCheck frames, for 20 seconds),
//! `stale` (an otherwise well-behaved worker that reports applying another rule set than
//! every policy it is sent: drift the supervisor must resync, then restart).

use std::{
    io::IoSlice,
    os::fd::{BorrowedFd, RawFd},
    time::Duration,
};

use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
use palisade_ipc::{
    MAX_FRAME, codec,
    handshake::{Hello, Role},
    messages::{SupervisorToWorker, WorkerKind, WorkerToSupervisor},
    transport,
};

fn raw_send(frame: &[u8], fds: &[RawFd]) {
    let iov = [IoSlice::new(frame)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
    let _ = sendmsg::<UnixAddr>(3, &iov, cmsgs, MsgFlags::empty(), None);
}

fn main() {
    let name = std::env::args().next().unwrap_or_default();
    let name = name.rsplit('/').next().unwrap_or_default().to_owned();
    let mut parts = name.split('-').skip(1);
    let attack = parts.next().unwrap_or_default().to_owned();
    let kind = parts
        .next()
        .and_then(WorkerKind::from_name)
        .unwrap_or(WorkerKind::Dns);
    // SAFETY: FD 3 is the IPC socket by the startup contract.
    let sock = unsafe { BorrowedFd::borrow_raw(3) };
    let hello = Hello::ours(Role::Worker(kind)).encode();
    match attack.as_str() {
        "wrongversion" => {
            let mut bad = hello;
            bad[4] = 0xe7;
            bad[5] = 0x03; // version 999
            raw_send(&bad, &[]);
        }
        "garbage" => raw_send(b"\xde\xad\xbe\xef not a hello", &[]),
        _ => {
            let _ = transport::send_frame(sock, &hello, &[]);
            let mut buf = vec![0u8; MAX_FRAME];
            // Supervisor hello, then Configure with FDs.
            let _ = transport::recv_frame(sock, &mut buf);
            let _ = transport::recv_frame(sock, &mut buf);
            match attack.as_str() {
                "oversized" => raw_send(&vec![0u8; MAX_FRAME + 4096], &[]),
                "unexpected" => {
                    // Heartbeat before Ready: not allowed in AwaitReady.
                    let frame = codec::encode(&WorkerToSupervisor::Heartbeat { seq: 1 })
                        .unwrap_or_default();
                    raw_send(&frame, &[]);
                }
                "fds" => raw_send(
                    &codec::encode(&WorkerToSupervisor::Ready).unwrap_or_default(),
                    &[0, 1],
                ),
                "logflood" => {
                    raw_send(
                        &codec::encode(&WorkerToSupervisor::Ready).unwrap_or_default(),
                        &[],
                    );
                    let line = codec::encode(&WorkerToSupervisor::Log {
                        level: palisade_ipc::messages::LogLevel::Error,
                        message: "x".repeat(1000),
                    })
                    .unwrap_or_default();
                    for _ in 0..100_000 {
                        raw_send(&line, &[]);
                    }
                }
                "chatty" => {
                    raw_send(
                        &codec::encode(&WorkerToSupervisor::Ready).unwrap_or_default(),
                        &[],
                    );
                    let check = codec::encode(&WorkerToSupervisor::CnameCheck {
                        name: "www.chatty.example".into(),
                        targets: vec!["cdn.chatty.example".into(); 16],
                    })
                    .unwrap_or_default();
                    let start = std::time::Instant::now();
                    let mut seq = 0;
                    while start.elapsed() < Duration::from_secs(20) {
                        seq += 1;
                        raw_send(
                            &codec::encode(&WorkerToSupervisor::Heartbeat { seq })
                                .unwrap_or_default(),
                            &[],
                        );
                        for _ in 0..500 {
                            raw_send(&check, &[]);
                        }
                    }
                }
                "liar" => {
                    let send = |m: &WorkerToSupervisor| {
                        raw_send(&codec::encode(m).unwrap_or_default(), &[]);
                    };
                    send(&WorkerToSupervisor::Ready);
                    // Wait for the policy, acknowledge it like an honest worker, then lie.
                    loop {
                        let len = match transport::recv_frame(sock, &mut buf) {
                            Ok(transport::Received::Frame { len, .. }) => len,
                            Ok(transport::Received::WouldBlock) => continue,
                            _ => break,
                        };
                        let frame = buf.get(..len).unwrap_or_default();
                        if let Ok(SupervisorToWorker::Policy(policy)) =
                            codec::decode::<SupervisorToWorker>(frame)
                        {
                            send(&WorkerToSupervisor::RulesetApplied {
                                ruleset: policy.ruleset,
                            });
                            send(&WorkerToSupervisor::BlockRequest {
                                name: "innocent.example".into(),
                                rule_id: 999_999,
                            });
                            break;
                        }
                    }
                }
                "stale" => {
                    let send = |m: &WorkerToSupervisor| {
                        raw_send(&codec::encode(m).unwrap_or_default(), &[]);
                    };
                    send(&WorkerToSupervisor::Ready);
                    let _ = nix::fcntl::fcntl(
                        sock,
                        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                    );
                    let mut seq = 0;
                    loop {
                        seq += 1;
                        send(&WorkerToSupervisor::Heartbeat { seq });
                        while let Ok(transport::Received::Frame { len, .. }) =
                            transport::recv_frame(sock, &mut buf)
                        {
                            let frame = buf.get(..len).unwrap_or_default();
                            match codec::decode::<SupervisorToWorker>(frame) {
                                Ok(SupervisorToWorker::Policy(_)) => {
                                    send(&WorkerToSupervisor::RulesetApplied {
                                        ruleset: [0x5a; 32],
                                    });
                                }
                                Ok(SupervisorToWorker::Shutdown) => return,
                                _ => {}
                            }
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                _ => {}
            }
        }
    }
    // Stay alive: the supervisor must kill us.
    std::thread::sleep(Duration::from_secs(30));
}
