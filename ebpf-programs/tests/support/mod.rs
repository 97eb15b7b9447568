//! Kernel fixtures for the root-only tests: a private bpffs, network namespaces with a veth
//! pair, per-thread `setns`, and an AF_PACKET sender for hand-made frames.
//!
//! Every fixture removes what it created on `Drop`, also when the test panics.

#![expect(
    clippy::unwrap_used,
    reason = "test fixtures: a panic is the failure report"
)]
#![allow(
    dead_code,
    reason = "shared by several test crates, each of which uses a part"
)]

pub mod frames;

use std::{
    fs::{self, File},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use nix::{
    mount::{MntFlags, MsFlags, mount, umount2},
    sched::{CloneFlags, setns},
    unistd::geteuid,
};

/// True when the tests can touch the kernel; prints why not otherwise.
pub fn have_root(test: &str) -> bool {
    if geteuid().is_root() {
        return true;
    }
    eprintln!("{test}: skipped, needs root (eBPF load, network namespaces, bpffs mount)");
    false
}

/// A name unique to this process and call, short enough for an interface or netns name.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `ip` with a space-separated argument line; panics with its stderr if it fails.
pub fn ip(args: &str) {
    let output = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ip {args} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A fresh bpffs instance mounted on a temporary directory, so pinned maps of one test never
/// meet those of another test or of a running Palisade. Unmounting drops every pin in it.
#[derive(Debug)]
pub struct BpfFs {
    path: PathBuf,
}

impl BpfFs {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(unique("pal-ebpf-bpffs"));
        fs::create_dir(&path).unwrap();
        mount(
            Some("bpf"),
            &path,
            Some("bpf"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap_or_else(|error| panic!("mount -t bpf on {}: {error}", path.display()));
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BpfFs {
    fn drop(&mut self) {
        let _ = umount2(&self.path, MntFlags::MNT_DETACH);
        let _ = fs::remove_dir(&self.path);
    }
}

/// A named network namespace (`ip netns add`), deleted on drop with everything inside it.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn new() -> Self {
        let name = unique("pal-ebpf");
        ip(&format!("netns add {name}"));
        let netns = Self { name };
        // No IPv6 autoconfiguration chatter (RS, MLD, DAD): keeps the counters predictable.
        for scope in ["all", "default"] {
            netns.exec(&format!("sysctl -qw net.ipv6.conf.{scope}.disable_ipv6=1"));
        }
        netns.exec("ip link set lo up");
        netns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs a command line inside the namespace (`ip netns exec`).
    pub fn exec(&self, command: &str) {
        ip(&format!("netns exec {} {command}", self.name));
    }

    /// Runs `f` on a thread that joined this namespace (`setns` only moves the calling
    /// thread). Sockets created by `f` stay in the namespace wherever they are used later.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let handle = File::open(Path::new("/run/netns").join(&self.name)).unwrap();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    setns(&handle, CloneFlags::CLONE_NEWNET)
                        .unwrap_or_else(|error| panic!("setns(CLONE_NEWNET): {error}"));
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Two namespaces joined by a veth pair: `veth-a` (198.18.0.1/24) in `a`, `veth-b`
/// (198.18.0.2/24) in `b`.
#[derive(Debug)]
pub struct VethPair {
    pub a: Netns,
    pub b: Netns,
}

pub const ADDR_A: [u8; 4] = [198, 18, 0, 1];
pub const ADDR_B: [u8; 4] = [198, 18, 0, 2];

impl VethPair {
    pub fn new() -> Self {
        let pair = Self {
            a: Netns::new(),
            b: Netns::new(),
        };
        let (a, b) = (pair.a.name(), pair.b.name());
        ip(&format!(
            "-n {a} link add veth-a type veth peer name veth-b netns {b}"
        ));
        for (ns, dev, addr) in [
            (a, "veth-a", "198.18.0.1/24"),
            (b, "veth-b", "198.18.0.2/24"),
        ] {
            ip(&format!("-n {ns} addr add {addr} dev {dev}"));
            ip(&format!("-n {ns} link set {dev} up"));
        }
        pair
    }
}

/// An AF_PACKET socket that sends whole Ethernet frames out of one interface; they pass the
/// interface's TC egress hook like any other packet.
#[derive(Debug)]
pub struct RawSender {
    fd: OwnedFd,
    ifindex: i32,
}

impl RawSender {
    /// Opens the socket; call it inside the interface's namespace.
    pub fn new(ifname: &str) -> Self {
        let ifindex = nix::net::if_::if_nametoindex(ifname).unwrap();
        // SAFETY: plain socket(2) call; the returned descriptor is checked and then owned.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(
            raw >= 0,
            "socket(AF_PACKET): {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: `raw` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Self {
            fd,
            ifindex: i32::try_from(ifindex).unwrap(),
        }
    }

    pub fn send(&self, frame: &[u8]) {
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid starting value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = u16::try_from(libc::AF_PACKET).unwrap();
        addr.sll_ifindex = self.ifindex;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frames::MAC_B);
        // SAFETY: `frame` and `addr` are valid for the lengths passed.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::from_ref(&addr).cast(),
                u32::try_from(size_of::<libc::sockaddr_ll>()).unwrap(),
            )
        };
        assert_eq!(
            usize::try_from(sent).ok(),
            Some(frame.len()),
            "sendto(AF_PACKET): {}",
            std::io::Error::last_os_error()
        );
    }
}
