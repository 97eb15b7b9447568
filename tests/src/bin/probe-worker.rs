//! A worker that goes through the real startup contract
//! (`palisade_worker_runtime::startup`: privilege check, handshake, ring
//! buffer, seccomp, Ready) and then tries one forbidden thing, selected by
//! its file name `probe-<action>-<kind>`: `open`, `socket`, `bpf`, `execve`,
//! `ptrace`, `stat`, and with AF_PACKET capture `pktwrite`, `pktsend` (a frame written or
//! sent on its packet socket). Seccomp must kill it with SIGSYS, which the supervisor reports;
//! `open` and `stat` (a path's metadata) instead must fail with EACCES (exit status 43; 42
//! means the call succeeded).

use std::time::Duration;

use palisade_ipc::messages::WorkerKind;

fn main() {
    let name = std::env::args().next().unwrap_or_default();
    let name = name.rsplit('/').next().unwrap_or_default().to_owned();
    let mut parts = name.split('-').skip(1);
    let action = parts.next().unwrap_or_default().to_owned();
    let kind = parts
        .next()
        .and_then(WorkerKind::from_name)
        .unwrap_or(WorkerKind::Dns);
    let Ok(_started) = palisade_worker_runtime::startup(kind) else {
        std::process::exit(99);
    };
    // SAFETY: raw syscalls with valid (or null) arguments; each is expected
    // to kill the process before returning.
    unsafe {
        match action.as_str() {
            "open" => {
                let fd = libc::open(c"/etc/passwd".as_ptr(), libc::O_RDONLY);
                let denied =
                    fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EACCES);
                std::process::exit(if denied { 43 } else { 42 });
            }
            "stat" => {
                // newfstatat(AT_FDCWD, path, ..) through glibc: must learn nothing.
                let mut st: libc::stat = std::mem::zeroed();
                let r = libc::stat(c"/etc/passwd".as_ptr(), &mut st);
                let denied =
                    r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EACCES);
                std::process::exit(if denied { 43 } else { 42 });
            }
            "socket" => {
                libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            }
            "bpf" => {
                libc::syscall(
                    libc::SYS_bpf,
                    5, /* BPF_PROG_LOAD */
                    std::ptr::null::<u8>(),
                    0,
                );
            }
            "execve" => {
                libc::execve(c"/bin/sh".as_ptr(), std::ptr::null(), std::ptr::null());
            }
            "ptrace" => {
                libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            }
            // AF_PACKET capture: send a frame on the packet socket, with write or with
            // sendmsg (both allowed on the IPC socket and the sink, not on this one).
            "pktwrite" | "pktsend" => {
                let palisade_worker_runtime::run::Source::Packets(p) = &_started.input else {
                    std::process::exit(98);
                };
                let Some(fd) = p.fds().first().copied() else {
                    std::process::exit(98);
                };
                // A broadcast Ethernet frame: the socket is unbound or bound to a monitored
                // interface; either way the kernel would transmit it.
                let frame = [0xffu8; 60];
                if action == "pktwrite" {
                    libc::write(fd, frame.as_ptr().cast(), frame.len());
                } else {
                    let mut iov = libc::iovec {
                        iov_base: frame.as_ptr() as *mut libc::c_void,
                        iov_len: frame.len(),
                    };
                    let mut msg: libc::msghdr = std::mem::zeroed();
                    msg.msg_iov = &mut iov;
                    msg.msg_iovlen = 1;
                    libc::sendmsg(fd, &msg, 0);
                }
            }
            _ => {}
        }
    }
    // Only reached if the syscall was allowed: exit with a status the test
    // recognises as a seccomp hole.
    std::thread::sleep(Duration::from_millis(10));
    std::process::exit(42);
}
