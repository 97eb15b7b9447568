#![expect(
    clippy::indexing_slicing,
    reason = "tests index JSON values; a panic is a test failure"
)]

//! Chaos: sustained DNS traffic and a blocked peer address while workers and the supervisor
//! are SIGKILLed at random. Afterwards every worker runs again, every query sent is an event
//! (or is counted lost by the kernel: `ring_full`), and not one packet of the blocked address
//! got through, supervisor down or not.
//!
//! Bounded in `scripts/test` (24 worker kills, 2 supervisor kills); `scripts/chaos` runs the
//! full 1,000 / 10 with `CHAOS_WORKER_KILLS`, `CHAOS_SUPERVISOR_KILLS` and
//! `CHAOS_MIN_UPTIME_MS` (a victim must have run this long, so the restart backoff of a
//! worker killed again and again stays short: docs/SECURITY.md).

use std::{
    collections::BTreeSet,
    net::UdpSocket,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use palisade_tests::{Daemon, Lab, PEER_IF, SENSOR_IP, Side, base_config, dns_query, wait_for};

const BLOCKED_IP: &str = "198.18.0.77";
const BLOCKED_PORT: u16 = 9977;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator (no dependency, reproducible with `CHAOS_SEED`).
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn kernel_counter(daemon: &Daemon, group: &str, counter: &str) -> u64 {
    daemon.kernel_counter(group, counter).unwrap_or(0)
}

#[test]
fn random_kills_under_traffic_lose_nothing_uncounted_and_let_nothing_blocked_through() {
    let worker_kills = env("CHAOS_WORKER_KILLS", 24);
    let supervisor_kills = env("CHAOS_SUPERVISOR_KILLS", 2);
    let min_uptime = Duration::from_millis(env("CHAOS_MIN_UPTIME_MS", 0));
    let mut rng = Rng(env("CHAOS_SEED", 0x5eed_cafe) | 1);

    let lab = Lab::new("chaos");
    let list = lab.dir.join("ip-block.txt");
    std::fs::write(&list, format!("{BLOCKED_IP}/32\n")).expect("list");
    let config = base_config(
        &lab,
        &format!("[ip]\nblocklists = [\"{}\"]\n", list.display()),
    );
    let mut daemons = vec![Daemon::start(&lab, &config, &[])];
    daemons[0].wait_healthy();
    let ok = lab
        .peer("ip")
        .args(["addr", "add", &format!("{BLOCKED_IP}/24"), "dev", PEER_IF])
        .status()
        .expect("ip addr add");
    assert!(ok.success());

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let blocked_through = Arc::new(AtomicU64::new(0));
    // In the sensor: a socket that must never receive from the blocked address.
    let sink = lab.in_netns(Side::Sensor, || {
        UdpSocket::bind(("0.0.0.0", BLOCKED_PORT)).expect("bind")
    });
    sink.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let (dns_sock, blocked_sock) = lab.in_netns(Side::Peer, || {
        (
            UdpSocket::bind("0.0.0.0:0").expect("udp"),
            UdpSocket::bind((BLOCKED_IP, 0)).expect("bind the blocked address"),
        )
    });

    std::thread::scope(|scope| {
        // About 500 DNS queries a second and 100 datagrams from the blocked address.
        scope.spawn(|| {
            let mut i = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("q{i}.chaos.test");
                let _ = dns_sock.send_to(&dns_query(i as u16, &name), (SENSOR_IP, 53));
                if i.is_multiple_of(5) {
                    let _ = blocked_sock.send_to(b"must not pass", (SENSOR_IP, BLOCKED_PORT));
                }
                i += 1;
                sent.store(i, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        scope.spawn(|| {
            let mut buf = [0_u8; 64];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((_, from)) = sink.recv_from(&mut buf)
                    && from.ip().to_string() == BLOCKED_IP
                {
                    blocked_through.fetch_add(1, Ordering::Relaxed);
                }
            }
        });

        let kinds = ["dns", "dhcp", "tls", "flow"];
        let every = worker_kills / (supervisor_kills + 1).max(1);
        for k in 0..worker_kills {
            if supervisor_kills > 0
                && k > 0
                && k % every.max(1) == 0
                && daemons.len() as u64 <= supervisor_kills
            {
                // The supervisor dies; its workers follow (parent-death signal). The pinned
                // programs keep enforcing and recording; a new supervisor adopts them.
                let pid = daemons.last().expect("a daemon").pid();
                // SAFETY: kill(2) on the daemon this test started.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                std::thread::sleep(Duration::from_millis(rng.next(500)));
                let next = Daemon::start(&lab, &config, &[]);
                next.wait_healthy();
                daemons.push(next);
            }
            let daemon = daemons.last().expect("a daemon");
            let kind = kinds[rng.next(4) as usize];
            let pid = wait_for(Duration::from_secs(60), "the victim running", || {
                let w = &daemon.workers()[kind];
                let up = Duration::from_millis(w["uptime_ms"].as_u64()?);
                (w["state"] == "running" && up >= min_uptime).then(|| w["pid"].as_u64())?
            });
            std::thread::sleep(Duration::from_millis(rng.next(200)));
            // SAFETY: kill(2) on a worker of the daemon this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
    });

    let daemon = daemons.last().expect("a daemon");
    // Every component healthy again (a worker killed many times may sit in its backoff).
    wait_for(Duration::from_secs(90), "every worker running", || {
        let w = daemon.workers();
        (w.len() == 4 && w.values().all(|v| v["state"] == "running")).then_some(())
    });
    daemon.assert_alive();

    // Every query is an event, in the output of one daemon or another, or counted lost.
    let sent = sent.load(Ordering::Relaxed);
    let ring_full = kernel_counter(daemon, "dns", "ring_full");
    let seen = wait_for(Duration::from_secs(30), "the queries' events", || {
        let seen: BTreeSet<String> = daemons
            .iter()
            .flat_map(|d| d.events())
            .filter(|e| e["event_type"] == "dns" && e["dns"]["type"] == "query")
            .filter_map(|e| e["dns"]["rrname"].as_str().map(str::to_owned))
            .filter(|n| n.ends_with(".chaos.test"))
            .collect();
        (seen.len() as u64 + ring_full >= sent).then_some(seen)
    });
    assert!(
        seen.len() as u64 + ring_full >= sent,
        "{sent} queries sent, {} seen, {ring_full} counted lost",
        seen.len()
    );
    // Not one blocked packet through, with or without a supervisor.
    assert_eq!(
        blocked_through.load(Ordering::Relaxed),
        0,
        "blocked packets got through"
    );
    assert!(
        kernel_counter(daemon, "ip_policy", "dropped_v4") > 0,
        "the policy was exercised"
    );
    eprintln!(
        "chaos: {worker_kills} worker kills, {supervisor_kills} supervisor kills, {sent} queries, {} events, {ring_full} ring_full",
        seen.len()
    );
}
