//! The flow table end to end: real TCP and UDP between the lab's
//! namespaces, flow events read back from the daemon's output, the kernel
//! table read back through `palisade flows`, and conntrack seeding.

#![expect(
    clippy::indexing_slicing,
    reason = "tests index JSON values; a panic is a test failure"
)]

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream, UdpSocket},
    time::Duration,
};

use palisade_tests::{
    Daemon, Lab, PEER_IP, SENSOR_IF, SENSOR_IP, Side, base_config, run, wait_for,
};
use serde_json::Value;

/// A TCP server in the peer namespace that reads everything, answers `reply`
/// once the client shut its side, and returns how many bytes it read.
fn sink_server(lab: &Lab, reply: &'static [u8]) -> (u16, std::thread::JoinHandle<u64>) {
    let listener = lab.in_netns(Side::Peer, || {
        TcpListener::bind((PEER_IP, 0)).expect("bind in the peer namespace")
    });
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut total = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match conn.read(&mut buf).expect("read") {
                0 => break,
                n => total += n as u64,
            }
        }
        conn.write_all(reply).expect("reply");
        total
    });
    (port, handle)
}

/// The kernel's TCP_INFO of a connected socket.
fn tcp_info(stream: &TcpStream) -> libc::tcp_info {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain data; all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: valid socket, a buffer of `len` bytes we own.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            std::ptr::from_mut(&mut info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info
}

fn connect(lab: &Lab, port: u16) -> TcpStream {
    lab.in_netns(Side::Sensor, || {
        TcpStream::connect((PEER_IP, port)).expect("connect from the sensor")
    })
}

/// Config that also logs each flow's start (`flow.start_events`; off by default).
const START_EVENTS: &str = "[flow]\nstart_events = true\n";

fn flow_events(daemon: &Daemon, port: u16) -> Vec<Value> {
    daemon
        .events()
        .into_iter()
        .filter(|e| e["event_type"] == "flow" && (e["dest_port"] == port || e["src_port"] == port))
        .collect()
}

#[test]
fn tcp_transfer_counts_match_the_sender_to_the_byte() {
    let lab = Lab::new("flowbytes");
    let daemon = Daemon::start(&lab, &base_config(&lab, START_EVENTS), &[]);
    daemon.wait_healthy();

    const REPLY: &[u8] = b"thanks, all received\n";
    let (port, server) = sink_server(&lab, REPLY);
    let mut client = connect(&lab, port);
    let client_port = client.local_addr().expect("addr").port();
    // 8 MiB + an odd tail, in writes of uneven sizes: GSO super-packets on the veth.
    let mut sent = 0u64;
    let chunk = vec![0x5au8; 65_521];
    while sent < 8 << 20 {
        client.write_all(&chunk).expect("write");
        sent += chunk.len() as u64;
    }
    client.write_all(b"tail").expect("write");
    sent += 4;
    client.shutdown(Shutdown::Write).expect("shutdown");
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).expect("read reply");
    assert_eq!(answer, REPLY);
    // The sender's own count of what it put on the wire: data octets sent, retransmissions
    // included (RFC 4898 HCDataOctetsOut), which is what crossed the egress hook.
    let info = tcp_info(&client);
    let received = server.join().expect("server");
    assert_eq!(received, sent, "the peer got every byte");
    drop(client);

    let end = daemon.wait_event("the transfer's end", Duration::from_secs(5), |e| {
        e["event_type"] == "flow" && e["src_port"] == client_port && e["flow"]["state"] == "closed"
    });
    let f = &end["flow"];
    assert!(info.tcpi_bytes_sent >= sent);
    assert_eq!(
        end["palisade"]["flow"]["payload_bytes_toserver"], info.tcpi_bytes_sent,
        "{} bytes written, {} retransmitted: {end}",
        sent, info.tcpi_bytes_retrans
    );
    assert_eq!(
        end["palisade"]["flow"]["payload_bytes_toclient"],
        REPLY.len() as u64,
        "{end}"
    );
    assert_eq!(f["reason"], "fin", "{end}");
    assert_eq!(
        (
            end["src_ip"].as_str(),
            end["dest_ip"].as_str(),
            end["dest_port"].as_u64()
        ),
        (Some(SENSOR_IP), Some(PEER_IP), Some(u64::from(port)))
    );
    // Frame bytes: at least payload plus 54 bytes of headers per packet.
    let pkts = f["pkts_toserver"].as_u64().expect("pkts");
    let bytes = f["bytes_toserver"].as_u64().expect("bytes");
    assert!(pkts >= sent / 65_536, "{end}");
    assert!(bytes >= sent + pkts * 54, "{end}");
    assert_eq!(end["tcp"]["tcp_flags_ts"], "1b", "{end}");
    assert_eq!(end["proto"], "TCP");
    assert_eq!(end["in_iface"], SENSOR_IF);

    // The start event is the same flow: same flow_id and community_id.
    let events = flow_events(&daemon, port);
    let start = events
        .iter()
        .find(|e| e["flow"]["state"] == "new")
        .expect("start event");
    assert_eq!(start["flow_id"], end["flow_id"]);
    assert_eq!(start["community_id"], end["community_id"]);
    assert!(
        end["community_id"]
            .as_str()
            .is_some_and(|c| c.starts_with("1:") && c.len() == 30),
        "{end}"
    );
    assert_eq!(start["flow"]["pkts_toserver"], 1, "the SYN");
}

#[test]
fn live_flows_are_listed_and_idle_ones_end_by_timeout_with_updates() {
    let lab = Lab::new("flowidle");
    let cfg = base_config(
        &lab,
        "[flow]\nidle_timeout_s = 1\ntcp_idle_timeout_s = 2\nupdate_interval_s = 1\n",
    );
    let daemon = Daemon::start(&lab, &cfg, &[]);
    daemon.wait_healthy();

    // UDP: one datagram every 250 ms for 2.5 s, answered.
    let server = lab.in_netns(Side::Peer, || UdpSocket::bind((PEER_IP, 0)).expect("bind"));
    let server_port = server.local_addr().expect("addr").port();
    let client = lab.in_netns(Side::Sensor, || {
        UdpSocket::bind((SENSOR_IP, 0)).expect("bind")
    });
    server
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    // And a TCP connection that stays open, idle after one exchange.
    let (tcp_port, tcp_server) = sink_server(&lab, b"");
    let mut tcp = connect(&lab, tcp_port);
    tcp.write_all(b"hello").expect("write");
    for i in 0..10 {
        client
            .send_to(b"ping", (PEER_IP, server_port))
            .expect("send");
        let (_, from) = server.recv_from(&mut buf).expect("recv");
        server.send_to(b"pong", from).expect("reply");
        if i == 4 {
            // Live state, from the kernel table: our UDP flow is there, client first.
            let out = daemon.ctl(&["flows", "show", "--host", PEER_IP, "--json"]);
            let list: Value = serde_json::from_slice(&out.stdout).expect("flows show --json");
            let row = list["flows"]
                .as_array()
                .expect("rows")
                .iter()
                .find(|r| r["dest_port"] == server_port)
                .unwrap_or_else(|| panic!("UDP flow not listed: {list}"));
            assert_eq!(row["src_ip"], SENSOR_IP);
            assert_eq!(row["proto"], "udp");
            assert!(row["pkts_toserver"].as_u64() >= Some(4), "{row}");
            assert_eq!(row["interface"], SENSOR_IF);
            let top = daemon.ctl(&["flows", "top", "--by", "packets", "-n", "1"]);
            let text = String::from_utf8_lossy(&top.stdout);
            assert!(text.contains(&format!("{PEER_IP}:{server_port}")), "{text}");
            assert!(text.contains("1 shown"), "{text}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }

    let end = daemon.wait_event("UDP flow ended by timeout", Duration::from_secs(4), |e| {
        e["event_type"] == "flow"
            && e["dest_port"] == server_port
            && e["flow"]["reason"] == "timeout"
    });
    assert_eq!(end["flow"]["pkts_toserver"], 10, "{end}");
    assert_eq!(end["flow"]["pkts_toclient"], 10, "{end}");
    assert_eq!(end["flow"]["state"], "established", "{end}");
    let updates: Vec<Value> = flow_events(&daemon, server_port)
        .into_iter()
        .filter(|e| e["flow"]["reason"] == "update")
        .collect();
    assert!(!updates.is_empty(), "a 2.5 s flow with 1 s updates");
    assert!(updates.iter().all(|u| u["flow_id"] == end["flow_id"]));
    // By default a flow is logged when it ends (and updated while long), never at its
    // start: a dashboard that counts end events counts flows.
    let ends: Vec<Value> = flow_events(&daemon, server_port)
        .into_iter()
        .filter(|e| e["flow"]["reason"] != "update")
        .collect();
    assert_eq!(
        ends.len(),
        1,
        "one event per flow besides updates: {ends:?}"
    );

    // The idle TCP connection ends by the TCP timeout, although nobody closed it.
    let tcp_end = daemon.wait_event("idle TCP flow ended", Duration::from_secs(5), |e| {
        e["event_type"] == "flow" && e["dest_port"] == tcp_port && e["flow"]["reason"] == "timeout"
    });
    assert_eq!(
        tcp_end["palisade"]["flow"]["payload_bytes_toserver"], 5,
        "{tcp_end}"
    );
    tcp.shutdown(Shutdown::Write).expect("shutdown");
    assert_eq!(tcp_server.join().expect("server"), 5);

    let status = daemon.status_json().expect("status");
    let flows = &status["flows"];
    assert!(flows["sweeps"].as_u64() > Some(5), "{flows}");
    assert_eq!(flows["evicted"], 0, "{flows}");
    assert_eq!(flows["idle_timeout_s"], 1);
    let counters: Vec<&Value> = status["kernel"]
        .as_array()
        .expect("kernel")
        .iter()
        .filter(|k| k["group"] == "flow_table" && k["counter"] == "ended_timeout")
        .collect();
    assert!(counters[0]["value"].as_u64() >= Some(2), "{counters:?}");

    // Timeouts change on reload; an invalid value leaves the running ones in force.
    let reload = |toml: &str| {
        std::fs::write(&daemon.config, base_config(&lab, toml)).expect("write config");
        daemon.ctl(&["reload"])
    };
    let bad = reload("[flow]\nidle_timeout_s = 0\n");
    assert!(!bad.status.success(), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("flow.idle_timeout_s"),
        "{bad:?}"
    );
    assert_eq!(
        daemon.status_json().expect("status")["flows"]["idle_timeout_s"],
        1
    );
    let good = reload("[flow]\nidle_timeout_s = 7\ntcp_idle_timeout_s = 2\n");
    assert!(good.status.success(), "{good:?}");
    let flows = &daemon.status_json().expect("status")["flows"];
    assert_eq!(
        (
            flows["idle_timeout_s"].as_u64(),
            flows["update_interval_s"].as_u64()
        ),
        (Some(7), Some(0))
    );

    // `flow.start_events` switches on at reload: the next flow is logged at its start too.
    let on = reload("[flow]\nidle_timeout_s = 1\nstart_events = true\n");
    assert!(on.status.success(), "{on:?}");
    let client = lab.in_netns(Side::Sensor, || {
        UdpSocket::bind((SENSOR_IP, 0)).expect("bind")
    });
    let port = client.local_addr().expect("addr").port();
    // Until the flow worker has the new policy, a start may still go unlogged: retry
    // with fresh flows (new source ports) for a few seconds.
    let mut client = client;
    let mut port = port;
    let start = wait_for(Duration::from_secs(5), "a start event", || {
        client
            .send_to(b"ping", (PEER_IP, server_port))
            .expect("send");
        std::thread::sleep(Duration::from_millis(200));
        let found = daemon.events().into_iter().find(|e| {
            e["event_type"] == "flow" && e["src_port"] == port && e["flow"]["reason"] == "start"
        });
        if found.is_none() {
            client = lab.in_netns(Side::Sensor, || {
                UdpSocket::bind((SENSOR_IP, 0)).expect("bind")
            });
            port = client.local_addr().expect("addr").port();
        }
        found
    });
    assert_eq!(start["flow"]["state"], "new", "{start}");
}

#[test]
fn conntrack_seeding_keeps_the_real_client_of_a_connection_opened_before_start() {
    let lab = Lab::new("flowseed");
    // Conntrack runs in a namespace only once something uses it: one nftables rule.
    run(lab.sensor("nft").args([
        "add table inet pal; add chain inet pal out { type filter hook output priority 0; }; add rule inet pal out ct state established,new accept",
    ]));
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let (port, server) = {
        let listener = lab.in_netns(Side::Peer, || {
            TcpListener::bind((PEER_IP, 0)).expect("bind in the peer namespace")
        });
        let port = listener.local_addr().expect("addr").port();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut first = [0u8; 5];
            conn.read_exact(&mut first).expect("read");
            wait.recv().expect("go");
            // The server speaks first once Palisade runs: without seeding, its packet would
            // make it the flow's client.
            conn.write_all(b"server talks first").expect("write");
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest).expect("read");
            rest.len() as u64
        });
        (port, handle)
    };
    let mut client = connect(&lab, port);
    let client_port = client.local_addr().expect("addr").port();
    client.write_all(b"hello").expect("write"); // before the daemon: not seen

    let daemon = Daemon::start(&lab, &base_config(&lab, START_EVENTS), &[]);
    daemon.wait_healthy();
    let status = daemon.status_json().expect("status");
    let report = status["flows"]["conntrack"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(report.starts_with("seeded "), "{report}");
    assert!(!report.starts_with("seeded 0 "), "{report}");

    let start = daemon.wait_event("the seeded flow's start", Duration::from_secs(2), |e| {
        e["event_type"] == "flow" && e["dest_port"] == port && e["flow"]["state"] == "new"
    });
    assert_eq!(start["palisade"]["flow"]["seeded"], true, "{start}");
    assert_eq!(start["src_ip"], SENSOR_IP, "{start}");
    assert_eq!(start["src_port"], client_port, "{start}");
    go.send(()).expect("go");

    let mut greeting = [0u8; 18];
    client.read_exact(&mut greeting).expect("greeting");
    client.write_all(b"bye").expect("write");
    client.shutdown(Shutdown::Write).expect("shutdown");
    assert_eq!(server.join().expect("server"), 3);
    drop(client);

    let end = daemon.wait_event("the seeded flow's end", Duration::from_secs(5), |e| {
        e["event_type"] == "flow" && e["dest_port"] == port && e["flow"]["state"] == "closed"
    });
    assert_eq!(end["src_ip"], SENSOR_IP, "client kept: {end}");
    assert_eq!(end["src_port"], client_port, "{end}");
    assert_eq!(end["palisade"]["flow"]["seeded"], true, "{end}");
    assert_eq!(
        end["palisade"]["flow"]["payload_bytes_toclient"], 18,
        "{end}"
    );
    assert_eq!(
        end["palisade"]["flow"]["payload_bytes_toserver"], 3,
        "{end}"
    );
    assert_eq!(
        end["in_iface"], SENSOR_IF,
        "interface learnt from the first packet"
    );
    assert_eq!(
        flow_events(&daemon, port).len(),
        2,
        "one start, one end: no second flow for the same connection"
    );

    // A restart finds its pinned table and does not seed again.
    let _ = daemon.stop();
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();
    let status = daemon.status_json().expect("status");
    assert_eq!(
        status["flows"]["conntrack"], "not needed: the pinned flow table survived the restart",
        "{}",
        status["flows"]
    );
}

#[test]
fn icmp_and_ipv6_flows_are_one_flow_each_way_with_community_id() {
    let lab = Lab::new("flowicmp");
    for (side, addr) in [
        (lab.sensor("ip"), "2001:db8:18::1/64"),
        (lab.peer("ip"), "2001:db8:18::2/64"),
    ] {
        let mut side = side;
        let ifname = if addr.ends_with("::1/64") {
            SENSOR_IF
        } else {
            palisade_tests::PEER_IF
        };
        run(side.args(["addr", "add", addr, "dev", ifname, "nodad"]));
    }
    let cfg = base_config(&lab, "[flow]\nidle_timeout_s = 1\nstart_events = true\n");
    let daemon = Daemon::start(&lab, &cfg, &[]);
    daemon.wait_healthy();

    // Echo requests from the peer and their replies: one ICMP flow, the peer its client.
    for target in [SENSOR_IP, "2001:db8:18::1"] {
        let out = lab
            .peer("ping")
            .args(["-c", "3", "-i", "0.2", "-W", "1", target])
            .output()
            .expect("ping");
        assert!(out.status.success(), "ping {target}: {out:?}");
    }
    let v4 = daemon.wait_event("the ICMP flow's end", Duration::from_secs(5), |e| {
        e["event_type"] == "flow" && e["proto"] == "ICMP" && e["flow"]["reason"] == "timeout"
    });
    assert_eq!(
        (v4["src_ip"].as_str(), v4["dest_ip"].as_str()),
        (Some(PEER_IP), Some(SENSOR_IP)),
        "{v4}"
    );
    assert_eq!(
        (
            v4["flow"]["pkts_toserver"].as_u64(),
            v4["flow"]["pkts_toclient"].as_u64()
        ),
        (Some(3), Some(3)),
        "{v4}"
    );
    assert_eq!(
        (v4["icmp_type"].as_u64(), v4["icmp_code"].as_u64()),
        (Some(8), Some(0)),
        "{v4}"
    );
    // 98-byte frames: 14 Ethernet + 20 IPv4 + 8 ICMP + 56 data.
    assert_eq!(v4["flow"]["bytes_toserver"], 3 * 98, "{v4}");
    // Between two IPv6 hosts the first unicast ICMPv6 packet is usually neighbour discovery
    // (the sensor's advertisement answering the peer's solicitation), so either may be the
    // client; the echoes and the discovery are one flow.
    let pair = |e: &Value| {
        let ends = [e["src_ip"].as_str(), e["dest_ip"].as_str()];
        ends.contains(&Some("2001:db8:18::1")) && ends.contains(&Some("2001:db8:18::2"))
    };
    let v6 = daemon.wait_event("the ICMPv6 flow's end", Duration::from_secs(5), |e| {
        e["event_type"] == "flow"
            && e["proto"] == "IPv6-ICMP"
            && pair(e)
            && e["flow"]["reason"] == "timeout"
    });
    let total = v6["flow"]["pkts_toserver"].as_u64().unwrap_or(0)
        + v6["flow"]["pkts_toclient"].as_u64().unwrap_or(0);
    assert!(total >= 6, "3 echo requests and 3 replies at least: {v6}");
    assert!(v6["icmp_type"].is_u64(), "{v6}");
    assert_eq!(
        flow_events(&daemon, 0)
            .iter()
            .filter(|e| e["proto"] == "IPv6-ICMP" && pair(e) && e["flow"]["reason"] == "start")
            .count(),
        1,
        "one flow, not one per direction or message type"
    );
    // The reply direction hashes alike (echo request 128 <-> reply 129): a request-side and a
    // reply-side tool agree on the Community ID. The reference vectors are unit-tested; here
    // it must at least be well-formed and differ between the two flows.
    for e in [&v4, &v6] {
        assert!(
            e["community_id"]
                .as_str()
                .is_some_and(|c| c.starts_with("1:") && c.len() == 30),
            "{e}"
        );
    }
    assert_ne!(v4["community_id"], v6["community_id"]);
}

/// A table too small for the traffic: nothing is evicted silently. New flows the full
/// shards cannot take are counted (`flow`/`map_full`); nearly full shards are walked in
/// emergency, which ends flows idle for their emergency timeout early, each with its end
/// event (reason `evicted`); every flow the table took ends exactly once or is still live;
/// and the table takes new flows again.
#[test]
fn a_full_table_evicts_nothing_silently() {
    const FLOWS: u16 = 6000;
    let lab = Lab::new("flowfull");
    // 1 MiB: 4096 flows (64 shards of 64); emergency from 56 live flows in a shard, for
    // flows idle 16 s / 16 = 1 s.
    let cfg = base_config(&lab, "[flow]\nmemory_mib = 1\nidle_timeout_s = 16\n");
    let daemon = Daemon::start(&lab, &cfg, &[]);
    daemon.wait_healthy();
    let status = daemon.status_json().expect("status");
    assert_eq!(status["flows"]["capacity"], 4096, "{}", status["flows"]);
    assert_eq!(status["flows"]["configured_capacity"], 4096);

    // 6000 UDP flows (one datagram each, to ports nobody listens on).
    let send = |first: u16, count: u16| {
        lab.in_netns(Side::Sensor, || {
            let s = UdpSocket::bind((SENSOR_IP, 0)).expect("bind");
            for i in 0..count {
                s.send_to(b"x", (PEER_IP, first + i)).expect("send");
            }
        });
    };
    send(20_000, FLOWS);
    let counter = |group: &str, name: &str| daemon.kernel_counter(group, name).unwrap_or(0);
    let refused = wait_for(Duration::from_secs(3), "refused inserts counted", || {
        Some(counter("flow", "map_full")).filter(|n| *n > 0)
    });
    // Emergency walks end the idle flows early, with their events.
    let evicted = wait_for(Duration::from_secs(6), "emergency evictions", || {
        Some(counter("flow_table", "ended_evicted")).filter(|n| *n > 1000)
    });
    let created = counter("flow_table", "created");
    assert!(
        created + refused >= u64::from(FLOWS),
        "{created} created + {refused} refused of {FLOWS} flows"
    );
    let end_events = |reason: &str| {
        daemon
            .events()
            .into_iter()
            .filter(|e| e["event_type"] == "flow" && e["flow"]["reason"] == reason)
            .collect::<Vec<Value>>()
    };
    let evicted_events = wait_for(Duration::from_secs(3), "an event per eviction", || {
        let e = end_events("evicted");
        (e.len() as u64 >= evicted).then_some(e)
    });
    let odd: Vec<&Value> = evicted_events
        .iter()
        // The test's datagrams (one each: age 0), and the lab's own control traffic: the
        // peer's port-unreachable answers to them (one ICMP flow whose age grows with the time
        // the sending takes under load) and the veths' IPv6 neighbour/router discovery.
        .filter(|e| {
            let ours = e["proto"] == "UDP"
                && e["flow"]["age"] == 0
                && e["dest_port"]
                    .as_u64()
                    .is_some_and(|p| (20_000..20_000 + u64::from(FLOWS)).contains(&p));
            !(ours || e["proto"] == "ICMP" || e["proto"] == "IPv6-ICMP")
        })
        .collect();
    assert!(
        odd.is_empty(),
        "evicted flows other than the test's: {odd:?}"
    );
    let status = daemon.status_json().expect("status");
    assert!(
        status["flows"]["evicted"].as_u64() >= Some(evicted),
        "{}",
        status["flows"]
    );
    // Every flow the table took ended once (one end event per flow id) or is still live.
    let mut ids = std::collections::BTreeMap::<u64, u32>::new();
    for e in daemon.events() {
        if e["event_type"] == "flow" && e["flow"]["reason"] != "update" {
            *ids.entry(e["flow_id"].as_u64().unwrap_or(0)).or_default() += 1;
        }
    }
    assert!(ids.values().all(|n| *n == 1), "a flow ended twice");
    // Nothing vanished: once every shard was walked after the last packet, the flows
    // created are exactly the ones ended plus the ones live.
    wait_for(Duration::from_secs(3), "created = ended + live", || {
        let created = counter("flow_table", "created");
        let ended: u64 = ["ended_fin", "ended_rst", "ended_timeout", "ended_evicted"]
            .iter()
            .map(|c| counter("flow_table", c))
            .sum();
        let live = daemon.status_json()?["flows"]["live"].as_u64()?;
        (created == ended + live).then_some(())
    });

    // Room again: new flows are taken.
    let before = counter("flow", "map_full");
    send(40_000, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        counter("flow", "map_full") - before < 200,
        "the table takes new flows after evicting"
    );
}
