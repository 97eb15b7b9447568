//! The DHCP worker's protocol: DHCP records (DHCPv4 on UDP 67/68, DHCPv6 on 546/547) ->
//! EVE `dhcp` events with their transaction's state, the device inventory, and `alert`
//! events for new devices and changed host names or fingerprints; ARP and neighbour
//! discovery records -> IP-to-MAC bindings (alerts when one moves); records the kernel's
//! DHCP guard flagged -> rogue DHCP server and rogue router advertisement alerts. `main.rs` runs it under
//! the worker runtime; tools and benchmarks can run it offline
//! (`palisade_worker_runtime::offline`).

use std::{
    collections::HashMap,
    fs::File,
    net::{IpAddr, Ipv6Addr},
    os::{fd::OwnedFd, unix::fs::FileExt},
    time::{Duration, Instant},
};

use palisade_abi::{FLAG_GUARD_DROPPED, FLAG_GUARD_ROGUE, RecordHeader};
use palisade_ipc::messages::{
    FdRole, LogLevel, SupervisorToWorker, WorkerKind, WorkerToSupervisor,
};
use palisade_worker_runtime::{
    EventOut, Protocol, Record,
    alert::{self, Alert},
    eve::{self, Mac},
};
use serde::Serialize;

use crate::{
    bindings::{Bindings, Link},
    devices::{Change, Device, Inventory, Registry, Sighting, mac_text},
    event::{self, DhcpBody, DhcpVendor, TransactionOut},
    neigh::{self, Nd},
    parse::{self, MessageType, Op},
    parse6::{self, MessageType6},
    transaction::{Ended, Key, Step, Transaction, Transactions},
};

/// DHCPv6 client and server ports.
const DHCP6_CLIENT_PORT: u16 = 546;
const DHCP6_SERVER_PORT: u16 = 547;

/// Notice: a transaction expired without its answer (written as `incomplete`).
pub const NOTICE_TRANSACTION_EXPIRED: &str = "dhcp_transaction_expired";
/// Notice: a transaction was evicted from a full table (written as `incomplete`).
pub const NOTICE_TRANSACTION_EVICTED: &str = "dhcp_transaction_evicted";
/// Notice: a transaction was still open when the worker stopped (written as `incomplete`).
pub const NOTICE_TRANSACTION_AT_SHUTDOWN: &str = "dhcp_transaction_open_at_shutdown";
/// Notice: a message had malformed options (skipped; the event was written).
pub const NOTICE_MALFORMED_OPTIONS: &str = "dhcp_malformed_options";

#[derive(Serialize)]
struct DhcpEvent<'a> {
    #[serde(flatten)]
    common: &'a eve::Common,
    dhcp: DhcpBody,
    palisade: eve::Vendor<DhcpExtra>,
}

#[derive(Serialize)]
struct DhcpExtra {
    dhcp: DhcpVendor,
}

/// An alert about a device.
#[derive(Serialize)]
struct DeviceAlert<'a> {
    #[serde(flatten)]
    common: &'a eve::Common,
    alert: Alert,
    palisade: eve::Vendor<DeviceExtra<'a>>,
}

#[derive(Serialize)]
struct DeviceExtra<'a> {
    device: &'a Device,
    /// What changed: `new_device`, `hostname`, `fingerprint`, `binding`.
    change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<String>,
    /// `binding`: the address whose MAC changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    /// `binding`: what announced it (`arp`, `nd`, `dhcp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'static str>,
}

/// An alert of the DHCP guard: a DHCP server message or router advertisement from a sender
/// not on the allow-list (the kernel decided: the record's `FLAG_GUARD_*`).
#[derive(Serialize)]
struct GuardAlert<'a> {
    #[serde(flatten)]
    common: &'a eve::Common,
    alert: Alert,
    palisade: eve::Vendor<GuardExtra>,
}

#[derive(Serialize)]
struct GuardExtra {
    guard: GuardOut,
}

#[derive(Serialize)]
struct GuardOut {
    /// `dhcp`, `dhcpv6` or `router_advertisement`.
    message: &'static str,
    /// The DHCP message type (`offer`, `ack`, `advertise`, `reply`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    dhcp_type: Option<&'static str>,
    /// The sender as the frame names it.
    server_mac: Mac,
    server_ip: IpAddr,
    /// The kernel dropped it (`guard = true`).
    dropped: bool,
    /// Messages from this sender the worker has seen (since it started).
    count: u64,
    /// This sender's alerts of this kind left out since its previous one (at most one a
    /// second).
    suppressed: u64,
    /// DHCPv4: the address offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    offered_ip: Option<IpAddr>,
    /// RA: the router lifetime (seconds; 0: not a default router) and the prefixes.
    #[serde(skip_serializing_if = "Option::is_none")]
    router_lifetime: Option<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    prefixes: Vec<String>,
}

/// Per rogue sender and message kind (`dhcp`, `dhcpv6`, `router_advertisement`): what the
/// worker saw and when it last alerted.
#[derive(Debug, Default, Clone, Copy)]
struct GuardSeen {
    count: u64,
    suppressed: u64,
    last_alert_ns: Option<u64>,
}

/// At most one guard alert per sender and message kind per this many ns (the rest are
/// counted in it).
const GUARD_ALERT_EVERY_NS: u64 = 1_000_000_000;
/// Rogue senders tracked at most (the one that alerted longest ago makes room).
const GUARD_SENDERS: usize = 1024;

/// Notice: a guard alert was left out (its sender alerted less than a second before).
pub const NOTICE_GUARD_SUPPRESSED: &str = "dhcp_guard_alerts_suppressed";

/// Largest state file or registry read (bytes).
const MAX_FILE: u64 = 16 << 20;
/// The inventory is written to the state file at most this often (and at shutdown).
const PERSIST_EVERY: Duration = Duration::from_secs(2);

/// Drop reason: the state file could not be written (the inventory stays in memory).
pub const DROP_STATE_WRITE: &str = "dhcp_state_write_error";

/// The DHCP worker's state.
#[derive(Debug, Default)]
pub struct Dhcp {
    transactions: Transactions,
    inventory: Inventory,
    registry: Registry,
    /// The state file (from the supervisor), when persistence is on.
    state: Option<File>,
    last_persist: Option<Instant>,
    bindings: Bindings,
    guard: HashMap<([u8; 6], IpAddr, &'static str), GuardSeen>,
}

/// Reads a whole file through `pread` (seccomp allows no `lseek` or `statx`), at most
/// [`MAX_FILE`] bytes.
fn read_all(file: &File) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read_at(&mut buf, out.len() as u64)?;
        if n == 0 || out.len() as u64 >= MAX_FILE {
            return Ok(out);
        }
        out.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
}

impl Dhcp {
    /// A worker whose transactions expire after `timeout_ns` (default 30 s).
    pub fn with_timeout(timeout_ns: u64) -> Self {
        Self {
            transactions: Transactions::new(timeout_ns),
            ..Self::default()
        }
    }

    /// Uses `registry` for vendors from now on.
    pub fn set_registry(&mut self, registry: Registry) {
        self.inventory.refresh_vendors(&registry);
        self.registry = registry;
    }

    /// The device inventory.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Open transactions.
    pub fn open_transactions(&self) -> usize {
        self.transactions.len()
    }

    /// Writes the inventory to the state file if it changed (at most every
    /// [`PERSIST_EVERY`] unless `now`).
    fn persist(&mut self, force: bool, out: &mut EventOut<'_>) {
        let Some(file) = self.state.as_ref() else {
            return;
        };
        if !self.inventory.dirty
            || (!force
                && self
                    .last_persist
                    .is_some_and(|t| t.elapsed() < PERSIST_EVERY))
        {
            return;
        }
        let data = self.inventory.to_jsonl();
        let written = file
            .write_all_at(&data, 0)
            .and_then(|()| file.set_len(data.len() as u64));
        match written {
            Ok(()) => self.inventory.dirty = false,
            Err(_) => out.drop(DROP_STATE_WRITE),
        }
        self.last_persist = Some(Instant::now());
    }

    fn transaction_out(t: &Transaction, state: &'static str, now_ns: u64) -> TransactionOut {
        TransactionOut {
            state,
            messages: t.messages.clone(),
            duration_ms: now_ns.saturating_sub(t.start_ns) / 1_000_000,
        }
    }

    /// Writes the event of a transaction that ended without its answer.
    fn write_incomplete(ctx: &eve::Context, e: &Ended, now_ns: u64, out: &mut EventOut<'_>) {
        let reason = e.reason.unwrap_or("expired");
        let notice = match reason {
            "evicted" => NOTICE_TRANSACTION_EVICTED,
            "shutdown" => NOTICE_TRANSACTION_AT_SHUTDOWN,
            _ => NOTICE_TRANSACTION_EXPIRED,
        };
        out.notice(notice, 1);
        let common = eve::Common::new(ctx, "dhcp", &e.transaction.first);
        let body = DhcpBody {
            kind: "request",
            id: e.key.xid,
            client_mac: e.transaction.client_mac.map(Mac),
            client_ip: None,
            assigned_ip: None,
            relay_ip: None,
            next_server_ip: None,
            dhcp_type: None,
            client_id: None,
            hostname: None,
            requested_ip: None,
            lease_time: None,
            renewal_time: None,
            rebinding_time: None,
            subnet_mask: None,
            routers: Vec::new(),
            dns_servers: Vec::new(),
            vendor_class_identifier: None,
            params: Vec::new(),
        };
        let vendor = DhcpVendor {
            version: e.key.version,
            transaction: Some(Self::transaction_out(&e.transaction, e.state, now_ns)),
            ..DhcpVendor::default()
        };
        Self::write_event(&common, body, vendor, out);
    }

    fn write_event(
        common: &eve::Common,
        dhcp: DhcpBody,
        vendor: DhcpVendor,
        out: &mut EventOut<'_>,
    ) {
        out.emit(&DhcpEvent {
            palisade: eve::Vendor::new(common, DhcpExtra { dhcp: vendor }),
            common,
            dhcp,
        });
    }

    fn device_alerts(
        ctx: &eve::Context,
        hdr: &RecordHeader,
        device: Option<&Device>,
        changes: Vec<Change>,
        out: &mut EventOut<'_>,
    ) {
        let Some(device) = device else { return };
        for change in changes {
            let mut ip = None;
            let (sig, what, previous) = match change {
                Change::New => (alert::NEW_DEVICE, "new_device", None),
                Change::Hostname(old, _) => (alert::DEVICE_HOSTNAME_CHANGED, "hostname", Some(old)),
                Change::Fingerprint(old, _) => {
                    (alert::DEVICE_FINGERPRINT_CHANGED, "fingerprint", Some(old))
                }
                Change::Binding(addr, old) => {
                    ip = Some(addr);
                    (alert::DEVICE_BINDING_CHANGED, "binding", Some(old))
                }
            };
            let source = ip.is_some().then_some(match hdr.kind {
                palisade_abi::KIND_ARP => "arp",
                palisade_abi::KIND_ND | palisade_abi::KIND_RA => "nd",
                _ => "dhcp",
            });
            let mut common = eve::Common::new(ctx, "alert", hdr);
            if hdr.kind == palisade_abi::KIND_ARP {
                // ARP is no IP flow.
                common.flow_id = None;
                common.community_id = None;
            }
            out.emit(&DeviceAlert {
                palisade: eve::Vendor::new(
                    &common,
                    DeviceExtra {
                        device,
                        change: what,
                        previous,
                        ip,
                        source,
                    },
                ),
                common: &common,
                alert: Alert::new(sig, "allowed"),
            });
        }
    }

    fn on_v4(
        &mut self,
        ctx: &eve::Context,
        hdr: &RecordHeader,
        out: &mut EventOut<'_>,
        m: &parse::Message,
    ) {
        if m.malformed_options > 0 {
            out.notice(NOTICE_MALFORMED_OPTIONS, 1);
        }
        let common = eve::Common::new(ctx, "dhcp", hdr);
        let (body, mut vendor) = event::v4(m);
        let ethernet = m.htype == 1 && m.hlen == 6;
        let mac = ethernet.then_some(m.client_mac);
        if let Some(t) = m.message_type {
            let step = match t {
                MessageType::ACK => Step::End("complete"),
                MessageType::NAK | MessageType::DECLINE => Step::End("rejected"),
                MessageType::RELEASE => Step::End("released"),
                _ => Step::Continue,
            };
            let key = Key {
                version: 4,
                xid: m.xid,
                client: m
                    .chaddr
                    .get(..usize::from(m.hlen.min(16)))
                    .unwrap_or_default()
                    .to_vec(),
            };
            let (t, state, evicted) = self.transactions.message(key, hdr, mac, t.name(), step);
            if let Some(e) = evicted {
                Self::write_incomplete(ctx, &e, hdr.ts_boot_ns, out);
            }
            vendor.transaction = Some(Self::transaction_out(
                &t,
                state.unwrap_or("open"),
                hdr.ts_boot_ns,
            ));
        }
        let fingerprint = vendor.fingerprint.clone();
        Self::write_event(&common, body, vendor, out);

        // The inventory: what a client says about itself, and the leases servers grant.
        let Some(mac) = mac else { return };
        let now = common.timestamp.0 / 1_000_000_000;
        let sighting = match m.op {
            Op::Request => Sighting {
                hostname: m.hostname.as_deref(),
                client_id: m.client_id.as_ref().map(|c| event::hex_colons(&c.bytes)),
                fingerprint,
                vendor_class: m.vendor_class.as_deref(),
                address: (!m.client_ip.is_unspecified()).then_some(IpAddr::V4(m.client_ip)),
                ..Sighting::default()
            },
            // A reply the guard dropped never reached the client.
            Op::Reply if hdr.flags & FLAG_GUARD_DROPPED != 0 => return,
            Op::Reply if m.message_type == Some(MessageType::ACK) => {
                let ip = if m.assigned_ip.is_unspecified() {
                    m.client_ip
                } else {
                    m.assigned_ip
                };
                if !ip.is_unspecified() {
                    // The server gave the address to this client: no binding alert.
                    self.bindings
                        .bind(Self::link(hdr), IpAddr::V4(ip), mac, hdr.ts_boot_ns, true);
                }
                Sighting {
                    address: Some(IpAddr::V4(ip)),
                    lease: (!ip.is_unspecified())
                        .then_some((IpAddr::V4(ip), m.lease_time.unwrap_or(0))),
                    ..Sighting::default()
                }
            }
            Op::Reply => return,
        };
        let changes = self.inventory.observe(mac, now, &sighting, &self.registry);
        Self::device_alerts(ctx, hdr, self.inventory.get(mac), changes, out);
    }

    fn on_v6(
        &mut self,
        ctx: &eve::Context,
        hdr: &RecordHeader,
        out: &mut EventOut<'_>,
        m: &parse6::Message6,
    ) {
        if m.malformed_options > 0 {
            out.notice(NOTICE_MALFORMED_OPTIONS, 1);
        }
        let common = eve::Common::new(ctx, "dhcp", hdr);
        let server = m.message_type.is_server_reply();
        let frame_mac = (!server && m.relay_hops == 0).then_some(hdr.src_mac);
        let (body, mut vendor) = event::v6(m, frame_mac);
        let mac = body.client_mac.map(|Mac(m)| m);
        let step = match m.message_type {
            MessageType6::ADVERTISE | MessageType6::REPLY => Step::End("complete"),
            _ => Step::Continue,
        };
        if m.message_type != MessageType6::RECONFIGURE {
            let key = Key {
                version: 6,
                xid: m.xid,
                client: m
                    .client_id
                    .as_ref()
                    .map(|d| d.bytes.clone())
                    .unwrap_or_default(),
            };
            let (t, state, evicted) =
                self.transactions
                    .message(key, hdr, mac, m.message_type.name(), step);
            if let Some(e) = evicted {
                Self::write_incomplete(ctx, &e, hdr.ts_boot_ns, out);
            }
            vendor.transaction = Some(Self::transaction_out(
                &t,
                state.unwrap_or("open"),
                hdr.ts_boot_ns,
            ));
        }
        let fingerprint = vendor.fingerprint.clone();
        let assigned = body.assigned_ip;
        Self::write_event(&common, body, vendor, out);

        let Some(mac) = mac else { return };
        let now = common.timestamp.0 / 1_000_000_000;
        let sighting = if server {
            if m.message_type != MessageType6::REPLY || hdr.flags & FLAG_GUARD_DROPPED != 0 {
                return;
            }
            if let Some(ip) = assigned {
                self.bindings
                    .bind(Self::link(hdr), ip, mac, hdr.ts_boot_ns, true);
            }
            Sighting {
                address: assigned,
                ..Sighting::default()
            }
        } else {
            Sighting {
                hostname: m.fqdn.as_deref(),
                duid: m.client_id.as_ref().map(|d| event::hex_colons(&d.bytes)),
                fingerprint,
                vendor_class: m.vendor_class.as_ref().map(|(_, d)| d.as_str()),
                ..Sighting::default()
            }
        };
        let changes = self.inventory.observe(mac, now, &sighting, &self.registry);
        Self::device_alerts(ctx, hdr, self.inventory.get(mac), changes, out);
    }
}

impl Dhcp {
    /// The link a record was seen on, for bindings.
    fn link(hdr: &RecordHeader) -> Link {
        Link {
            ifindex: hdr.ifindex,
            vlan: if hdr.flags & palisade_abi::FLAG_VLAN != 0 {
                hdr.vlan_id
            } else {
                0
            },
        }
    }

    /// An ARP or ND sighting: the device answers for `ip`; a binding that moved is an alert.
    fn observe_binding(
        &mut self,
        ctx: &eve::Context,
        hdr: &RecordHeader,
        (ip, mac): (IpAddr, [u8; 6]),
        out: &mut EventOut<'_>,
    ) {
        let now = ctx.wall(hdr.ts_boot_ns).0 / 1_000_000_000;
        let sighting = Sighting {
            address: Some(ip),
            ..Sighting::default()
        };
        let mut changes = self.inventory.observe(mac, now, &sighting, &self.registry);
        if let Some(old) = self
            .bindings
            .bind(Self::link(hdr), ip, mac, hdr.ts_boot_ns, false)
        {
            changes.push(Change::Binding(ip.to_string(), mac_text(old)));
        }
        Self::device_alerts(ctx, hdr, self.inventory.get(mac), changes, out);
    }

    fn on_arp(&mut self, ctx: &eve::Context, record: &Record<'_>, out: &mut EventOut<'_>) {
        match neigh::parse_arp(record.payload) {
            Ok(arp) => {
                let Some(binding) = arp.binding() else { return };
                // Alerts about it carry the ARP sender and target as their addresses (the
                // kernel leaves the header's 0: ARP has no IP header).
                let mut hdr = record.hdr;
                hdr.ip_version = 4;
                hdr.src_addr = [0; 16];
                hdr.dst_addr = [0; 16];
                if let (Some(s), Some(d)) = (hdr.src_addr.get_mut(..4), hdr.dst_addr.get_mut(..4)) {
                    s.copy_from_slice(&arp.sender_ip.octets());
                    d.copy_from_slice(&arp.target_ip.octets());
                }
                self.observe_binding(ctx, &hdr, binding, out);
            }
            Err(e) => out.drop(e.reason()),
        }
    }

    fn on_nd(&mut self, ctx: &eve::Context, record: &Record<'_>, out: &mut EventOut<'_>) {
        let hdr = &record.hdr;
        let parsed = neigh::parse_nd(record.payload);
        if hdr.kind == palisade_abi::KIND_RA && hdr.flags & FLAG_GUARD_ROGUE != 0 {
            self.guard_alert(
                ctx,
                hdr,
                "router_advertisement",
                None,
                None,
                parsed.as_ref().ok(),
                out,
            );
        }
        match parsed {
            Ok(nd) => {
                // A dropped RA never reached anyone: it binds nothing.
                if hdr.flags & FLAG_GUARD_DROPPED != 0 || hdr.ip_version != 6 {
                    return;
                }
                if let Some(binding) = nd.binding(Ipv6Addr::from(hdr.src_addr), hdr.src_mac) {
                    self.observe_binding(ctx, hdr, binding, out);
                }
            }
            Err(e) => out.drop(e.reason()),
        }
    }

    /// The alert of a record the guard flagged, at most one per sender and message kind per
    /// second (the others are counted in the next one and as a notice).
    #[allow(clippy::too_many_arguments, reason = "one call per message kind")]
    fn guard_alert(
        &mut self,
        ctx: &eve::Context,
        hdr: &RecordHeader,
        message: &'static str,
        dhcp_type: Option<&'static str>,
        offered_ip: Option<IpAddr>,
        ra: Option<&Nd>,
        out: &mut EventOut<'_>,
    ) {
        let server_ip = eve::addr(hdr.ip_version, hdr.src_addr);
        // Per message kind too: a host that is both a rogue router and a rogue DHCPv6
        // server (one link-local address) gets both alerts, not one hiding the other.
        let key = (hdr.src_mac, server_ip, message);
        if !self.guard.contains_key(&key) && self.guard.len() >= GUARD_SENDERS {
            let oldest = self
                .guard
                .iter()
                .min_by_key(|(_, g)| g.last_alert_ns)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.guard.remove(&k);
            }
        }
        let seen = self.guard.entry(key).or_default();
        seen.count += 1;
        if seen
            .last_alert_ns
            .is_some_and(|t| hdr.ts_boot_ns.saturating_sub(t) < GUARD_ALERT_EVERY_NS)
        {
            seen.suppressed += 1;
            out.notice(NOTICE_GUARD_SUPPRESSED, 1);
            return;
        }
        let suppressed = std::mem::take(&mut seen.suppressed);
        seen.last_alert_ns = Some(hdr.ts_boot_ns);
        let count = seen.count;
        let dropped = hdr.flags & FLAG_GUARD_DROPPED != 0;
        let sig = if message == "router_advertisement" {
            alert::ROGUE_ROUTER_ADVERTISEMENT
        } else {
            alert::ROGUE_DHCP_SERVER
        };
        let common = eve::Common::new(ctx, "alert", hdr);
        out.emit(&GuardAlert {
            palisade: eve::Vendor::new(
                &common,
                GuardExtra {
                    guard: GuardOut {
                        message,
                        dhcp_type,
                        server_mac: Mac(hdr.src_mac),
                        server_ip,
                        dropped,
                        count,
                        suppressed,
                        offered_ip,
                        router_lifetime: ra.map(|r| r.router_lifetime),
                        prefixes: ra
                            .map(|r| {
                                r.prefixes
                                    .iter()
                                    .map(|p| format!("{}/{}", p.prefix, p.len))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    },
                },
            ),
            common: &common,
            alert: Alert::new(sig, if dropped { "blocked" } else { "allowed" }),
        });
    }
}

impl Protocol for Dhcp {
    const KIND: WorkerKind = WorkerKind::Dhcp;

    fn on_record(&mut self, ctx: &eve::Context, record: &Record<'_>, out: &mut EventOut<'_>) {
        let hdr = &record.hdr;
        match hdr.kind {
            palisade_abi::KIND_DHCP => {}
            palisade_abi::KIND_ARP => return self.on_arp(ctx, record, out),
            palisade_abi::KIND_ND | palisade_abi::KIND_RA => return self.on_nd(ctx, record, out),
            _ => return out.drop(palisade_worker_runtime::stats::DROP_UNEXPECTED_KIND),
        }
        let v6 = [hdr.src_port, hdr.dst_port]
            .iter()
            .any(|p| matches!(*p, DHCP6_CLIENT_PORT | DHCP6_SERVER_PORT));
        let rogue = hdr.flags & FLAG_GUARD_ROGUE != 0;
        if v6 {
            let parsed = parse6::parse(record.payload);
            if rogue {
                let t = parsed.as_ref().ok().map(|m| m.message_type.name());
                self.guard_alert(ctx, hdr, "dhcpv6", t, None, None, out);
            }
            match parsed {
                Ok(m) => self.on_v6(ctx, hdr, out, &m),
                Err(e) => out.drop(e.reason()),
            }
        } else {
            let parsed = parse::parse(record.payload);
            if rogue {
                let ok = parsed.as_ref().ok();
                let t = ok.and_then(|m| m.message_type).map(MessageType::name);
                let offered = ok
                    .map(|m| m.assigned_ip)
                    .filter(|ip| !ip.is_unspecified())
                    .map(IpAddr::V4);
                self.guard_alert(ctx, hdr, "dhcp", t, offered, None, out);
            }
            match parsed {
                Ok(m) => self.on_v4(ctx, hdr, out, &m),
                Err(e) => out.drop(e.reason()),
            }
        }
    }

    fn on_tick(&mut self, ctx: &eve::Context, _now: Instant, out: &mut EventOut<'_>) {
        let now_ns = ctx.boot_now_ns();
        for e in self.transactions.expire(now_ns) {
            Self::write_incomplete(ctx, &e, now_ns, out);
        }
        self.persist(false, out);
    }

    fn on_shutdown(&mut self, ctx: &eve::Context, out: &mut EventOut<'_>) {
        let now_ns = ctx.boot_now_ns();
        for e in self.transactions.drain() {
            Self::write_incomplete(ctx, &e, now_ns, out);
        }
        self.persist(true, out);
    }

    fn on_fds(
        &mut self,
        fds: Vec<(FdRole, OwnedFd)>,
        out: &mut EventOut<'_>,
    ) -> Result<(), &'static str> {
        let mut log = |level, message: String| {
            out.send(WorkerToSupervisor::Log { level, message });
        };
        for (role, fd) in fds {
            let file = File::from(fd);
            match role {
                FdRole::State => {
                    match read_all(&file) {
                        Ok(bytes) => {
                            let bad = self.inventory.load_jsonl(&bytes);
                            log(
                                LogLevel::Info,
                                format!(
                                    "device inventory: {} devices from the state file{}",
                                    self.inventory.len(),
                                    if bad > 0 {
                                        format!(", {bad} unreadable lines skipped")
                                    } else {
                                        String::new()
                                    }
                                ),
                            );
                        }
                        Err(e) => log(LogLevel::Warn, format!("reading the state file: {e}")),
                    }
                    self.state = Some(file);
                }
                FdRole::Registry => match read_all(&file) {
                    Ok(bytes) => {
                        let text = String::from_utf8_lossy(&bytes);
                        let (registry, bad) = Registry::from_compact(&text, "ieee-data");
                        if bad > 0 {
                            log(
                                LogLevel::Warn,
                                format!("IEEE registry: {bad} lines not understood"),
                            );
                        }
                        self.set_registry(registry);
                    }
                    Err(e) => log(LogLevel::Warn, format!("reading the IEEE registry: {e}")),
                },
                FdRole::RingBuf | FdRole::EventSink | FdRole::PacketSocket => {
                    return Err("ring or sink among the DHCP worker's extra FDs");
                }
            }
        }
        Ok(())
    }

    fn on_supervisor_message(
        &mut self,
        _ctx: &eve::Context,
        msg: SupervisorToWorker,
        out: &mut EventOut<'_>,
    ) -> Result<(), &'static str> {
        let SupervisorToWorker::Policy(policy) = msg else {
            return Err("unexpected message for the DHCP worker");
        };
        if policy.dhcp_transaction_timeout_s > 0 {
            self.transactions
                .set_timeout(u64::from(policy.dhcp_transaction_timeout_s) * 1_000_000_000);
        }
        out.send(WorkerToSupervisor::RulesetApplied {
            ruleset: policy.ruleset,
        });
        Ok(())
    }

    fn gauges(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("dhcp_open_transactions", self.transactions.len() as u64),
            ("dhcp_devices", self.inventory.len() as u64),
            ("dhcp_registry_entries", self.registry.len() as u64),
            ("dhcp_bindings", self.bindings.len() as u64),
        ]
    }
}
