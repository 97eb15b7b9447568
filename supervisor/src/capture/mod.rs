//! Capture without eBPF: the AF_PACKET fallback (`capture = "af_packet"`, or `"auto"` when
//! the programs cannot be loaded or attached).
//!
//! The supervisor creates one `AF_PACKET` socket per worker, with that worker's classic BPF
//! filter ([`filter`]) accepting frames of the monitored interfaces only, locks the filter,
//! sizes the receive buffer and hands the socket to the unprivileged worker over the same
//! SCM_RIGHTS handoff as a ring buffer (`FdRole::PacketSocket`). The worker turns frames into
//! the kernel program's records with the record builder `palisade replay` uses. The socket
//! outlives the worker, as a ring buffer does: frames that arrive while a worker restarts
//! wait in it for the successor.
//!
//! Why `recvmsg` on a socket with a large buffer rather than a TPACKET_V3 ring: the worker
//! needs no new system call (it already has `recvmsg` for its IPC socket) and no mapping of
//! a shared ring it could scribble on; the buffer (`SO_RCVBUFFORCE`, [`RCVBUF`]) absorbs the
//! bursts between two drains. TPACKET_V3 saves a system call per frame, which matters above
//! a few hundred thousand frames a second, a load an appliance falls back to AF_PACKET for
//! rarely; the kernel counts every frame a full buffer drops (`PACKET_STATISTICS`, in
//! `status` and metrics), so a loss is visible.

pub mod filter;

use std::{
    cell::Cell,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use palisade_ipc::messages::{EnforcementState, PacketSocketStatus, WorkerKind};

/// How packets reach the workers (`capture` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureMode {
    /// The eBPF programs (TC observer, XDP and TC enforcement); a failure to load or attach
    /// them stops the daemon.
    #[default]
    Ebpf,
    /// AF_PACKET sockets with classic BPF filters; no enforcement.
    AfPacket,
    /// eBPF, and AF_PACKET if the programs cannot be loaded or attached (logged, and said in
    /// `status`).
    Auto,
}

impl CaptureMode {
    /// The configuration's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ebpf => "ebpf",
            Self::AfPacket => "af_packet",
            Self::Auto => "auto",
        }
    }

    /// Parses the configuration's spelling.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "ebpf" => Some(Self::Ebpf),
            "af_packet" => Some(Self::AfPacket),
            "auto" => Some(Self::Auto),
            _ => None,
        }
    }
}

/// Receive buffer of each socket: a burst of about 8 000 full-size frames (the kernel
/// charges a frame's whole buffer, about 2 KiB, against it) between two drains of a worker
/// that polls at least every 10 ms.
pub const RCVBUF: i32 = 16 << 20;

/// `PACKET_AUXDATA` (linux/if_packet.h; not in the libc crate).
const PACKET_AUXDATA: libc::c_int = 8;

/// The enforcement features and whether they work without the eBPF programs.
pub const FEATURES: [&str; 4] = [
    "ip_blocklist",
    "dns_blocking",
    "tls_flow_blocks",
    "dhcp_guard",
];

/// `status`'s enforcement list: with eBPF, every feature is enforced by the kernel programs
/// (with whatever rules are configured); without, none is.
pub fn enforcement(ebpf: bool) -> Vec<EnforcementState> {
    FEATURES
        .iter()
        .map(|f| EnforcementState {
            feature: (*f).to_owned(),
            state: match (ebpf, *f) {
                (true, _) => "active",
                (false, _) => "unavailable",
            }
            .to_owned(),
        })
        .collect()
}

/// One worker's socket and its counters.
#[derive(Debug)]
pub struct PacketSocket {
    /// The worker reading it.
    pub worker: WorkerKind,
    /// The socket (dup'ed to each worker process the slot starts).
    pub fd: OwnedFd,
    packets: Cell<u64>,
    drops: Cell<u64>,
}

fn check(r: libc::c_int, what: &str) -> io::Result<()> {
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &str,
) -> io::Result<()> {
    // SAFETY: `value` is a valid T for the whole call and its size is passed with it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    check(r, what)
}

impl PacketSocket {
    /// The socket of `worker`, for frames on `ifindexes` (bound to the interface when there
    /// is one; with several, the filter keeps the others out). Order matters: created with
    /// protocol 0 it receives nothing; the filter goes on before `bind` starts delivery, so no
    /// frame reaches it unfiltered; whatever is queued is drained; then the filter is locked
    /// (the worker cannot detach or replace it) and the buffer sized.
    pub fn open(worker: WorkerKind, ifindexes: &[u32]) -> io::Result<Self> {
        // SAFETY: plain socket(2); the result is checked before it is owned.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        check(raw, "socket(AF_PACKET)")?;
        // SAFETY: `raw` is a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut prog = filter::program(worker, ifindexes);
        let fprog = libc::sock_fprog {
            len: u16::try_from(prog.len()).map_err(|_| io::Error::other("filter too long"))?,
            filter: prog.as_mut_ptr(),
        };
        setsockopt(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog,
            "SO_ATTACH_FILTER",
        )?;
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = match ifindexes {
            [one] => i32::try_from(*one).unwrap_or(0),
            _ => 0,
        };
        // SAFETY: `addr` is a valid sockaddr_ll and its size is passed with it.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        check(r, "bind(AF_PACKET)")?;
        let mut scratch = [0u8; 64];
        for _ in 0..100_000 {
            // SAFETY: `scratch` is writable for its length.
            let n = unsafe {
                libc::recv(
                    fd.as_raw_fd(),
                    scratch.as_mut_ptr().cast(),
                    scratch.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                break;
            }
        }
        setsockopt(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_LOCK_FILTER,
            &1i32,
            "SO_LOCK_FILTER",
        )?;
        setsockopt(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &RCVBUF,
            "SO_RCVBUFFORCE",
        )?;
        // Each frame's receive time travels with it: the records' time is the frame's, not
        // the drain's.
        setsockopt(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &1i32,
            "SO_TIMESTAMPNS",
        )?;
        // The VLAN tag the kernel took out of the frame travels with it (the worker puts it
        // back: the TC hook sees it in the skb and counts it).
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            PACKET_AUXDATA,
            &1i32,
            "PACKET_AUXDATA",
        )?;
        Ok(Self {
            worker,
            fd,
            packets: Cell::new(0),
            drops: Cell::new(0),
        })
    }

    /// Reads the kernel's counters (`PACKET_STATISTICS`, reset by each read) into ours and
    /// returns the totals.
    pub fn status(&self) -> PacketSocketStatus {
        let mut st = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `st` is writable for `len` bytes.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if r == 0 {
            // tp_packets counts the dropped frames too.
            self.packets
                .set(self.packets.get() + u64::from(st.tp_packets));
            self.drops.set(self.drops.get() + u64::from(st.tp_drops));
        }
        PacketSocketStatus {
            worker: self.worker,
            packets: self.packets.get(),
            drops: self.drops.get(),
        }
    }
}
