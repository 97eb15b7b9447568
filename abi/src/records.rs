//! Rust mirrors of the structs in `bpf/include/records.h`, and their readers.
//!
//! Each struct is `#[repr(C)]` with fixed-width fields only, no `bool` and every gap an
//! explicit `_pad` field, exactly like the C side. The `const _` blocks at the end of the
//! file compare `size_of`/`offset_of!` of every field with the values the C compiler reported
//! for records.h at build time (`crate::c`), so a layout drift fails the build.
//!
//! Ring-buffer records are decoded field by field from native-endian bytes: no `unsafe`, no
//! alignment requirement on the input. aya's `RingBufItem` is exactly the length the program
//! submitted (`bpf_ringbuf_output` size; the kernel's 8-byte rounding is not part of the item),
//! so [`RecordHeader::read`] requires `len` to equal the item length.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{
    c,
    consts::{
        ABI_VERSION, DNS_ALLOW, DNS_BLOCK, DNS_RULE_BLOCK_SUBDOMAINS, DNS_RULE_EXACT,
        FLAG_TRUNCATED, FLAG_VLAN, Kind, RECORD_MAGIC,
    },
};

/// Why a record was rejected. Small and `Copy`: rejecting input never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Fewer bytes than the fixed-size struct.
    #[error("{what} needs {need} bytes, got {len}")]
    Short {
        /// Which struct was being read.
        what: &'static str,
        /// Its size.
        need: usize,
        /// Bytes available.
        len: usize,
    },
    /// More bytes than a fixed-size struct (which must be read from an exact slice).
    #[error("{what} is {need} bytes, got {len}")]
    Long {
        /// Which struct was being read.
        what: &'static str,
        /// Its size.
        need: usize,
        /// Bytes given.
        len: usize,
    },
    /// `magic` is not [`RECORD_MAGIC`]: not a Palisade record.
    #[error("bad record magic {found:#010x}")]
    BadMagic {
        /// The value found.
        found: u32,
    },
    /// Written by a program of another layout version.
    #[error("record ABI version {found}, expected {ABI_VERSION}")]
    AbiVersion {
        /// The value found.
        found: u16,
    },
    /// `kind` is none of the `KIND_*` values.
    #[error("unknown record kind {kind}")]
    UnknownKind {
        /// The value found.
        kind: u16,
    },
    /// The header's `len` is not the length of the ring-buffer item.
    #[error("record header says {header_len} bytes, item has {item_len}")]
    LengthMismatch {
        /// `len` from the header.
        header_len: u32,
        /// Length of the item.
        item_len: usize,
    },
    /// `payload_len` disagrees with the bytes following the header.
    #[error("payload_len {payload_len} but {available} payload bytes follow the header")]
    PayloadLength {
        /// `payload_len` from the header.
        payload_len: u32,
        /// Bytes after the header.
        available: usize,
    },
    /// `payload_len` exceeds what the kind can carry (its capture cap, or one flow record).
    #[error("payload_len {payload_len} exceeds {max} for record kind {kind}")]
    PayloadTooLong {
        /// The record kind.
        kind: u16,
        /// `payload_len` from the header.
        payload_len: u32,
        /// The largest valid value.
        max: u32,
    },
    /// A flow record whose payload is not exactly one [`FlowRecord`].
    #[error("flow record payload is {payload_len} bytes, expected {need}")]
    FlowPayload {
        /// `payload_len` from the header.
        payload_len: u32,
        /// [`FlowRecord::SIZE`].
        need: usize,
    },
    /// `orig_payload_len` < `payload_len`: more captured than was on the wire.
    #[error("orig_payload_len {orig_payload_len} < payload_len {payload_len}")]
    OrigShorter {
        /// `payload_len` from the header.
        payload_len: u32,
        /// `orig_payload_len` from the header.
        orig_payload_len: u32,
    },
}

/// Checked reader over a byte slice: every read is bounds-checked, none panics.
struct Cursor<'a> {
    rest: &'a [u8],
    what: &'static str,
    need: usize,
    len: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], what: &'static str, need: usize) -> Self {
        Self {
            rest: bytes,
            what,
            need,
            len: bytes.len(),
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(RecordError::Short {
                what: self.what,
                need: self.need,
                len: self.len,
            })?;
        self.rest = rest;
        Ok(*head)
    }
}

/// A field type that appears in records.h, with its native-endian encoding.
trait Wire: Sized {
    fn take(cursor: &mut Cursor<'_>) -> Result<Self, RecordError>;
    fn put(&self, out: &mut &mut [u8]);
}

macro_rules! wire_int {
    ($($ty:ty),*) => {$(
        impl Wire for $ty {
            fn take(cursor: &mut Cursor<'_>) -> Result<Self, RecordError> {
                cursor.take().map(<$ty>::from_ne_bytes)
            }

            fn put(&self, out: &mut &mut [u8]) {
                let rest = std::mem::take(out);
                if let Some((head, tail)) = rest.split_first_chunk_mut() {
                    *head = self.to_ne_bytes();
                    *out = tail;
                }
            }
        }
    )*};
}
wire_int!(u8, u16, u32, u64, i32);

impl<T: Wire + Copy + Default, const N: usize> Wire for [T; N] {
    fn take(cursor: &mut Cursor<'_>) -> Result<Self, RecordError> {
        let mut array = [T::default(); N];
        for slot in &mut array {
            *slot = T::take(cursor)?;
        }
        Ok(array)
    }

    fn put(&self, out: &mut &mut [u8]) {
        for item in self {
            item.put(out);
        }
    }
}

/// Declares a records.h mirror, its field-by-field reader and its writer from one field list.
macro_rules! record_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $( $(#[$field_meta:meta])* pub $field:ident: $ty:ty, )* }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name { $( $(#[$field_meta])* pub $field: $ty, )* }

        impl $name {
            /// Size in bytes, the same as the C struct's (checked at compile time).
            pub const SIZE: usize = size_of::<Self>();

            /// Decodes exactly [`Self::SIZE`] native-endian bytes, as the kernel wrote them.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
                let what = stringify!($name);
                if bytes.len() > Self::SIZE {
                    return Err(RecordError::Long { what, need: Self::SIZE, len: bytes.len() });
                }
                let mut cursor = Cursor::new(bytes, what, Self::SIZE);
                Ok(Self { $( $field: Wire::take(&mut cursor)?, )* })
            }

            /// Encodes as native-endian bytes, the layout the eBPF program writes (for tests,
            /// replay tools and synthetic records).
            pub fn to_bytes(&self) -> [u8; Self::SIZE] {
                let mut bytes = [0; Self::SIZE];
                let mut out: &mut [u8] = &mut bytes;
                $( self.$field.put(&mut out); )*
                bytes
            }
        }
    };
}

record_struct! {
    /// `struct pal_record_hdr`: starts every ring-buffer record; `payload_len` bytes follow.
    pub struct RecordHeader {
        /// [`RECORD_MAGIC`]: rejects garbage early.
        pub magic: u32,
        /// [`ABI_VERSION`] of the program that wrote it.
        pub abi_version: u16,
        /// `KIND_*`, see [`Kind`].
        pub kind: u16,
        /// Total record length: header + `payload_len`.
        pub len: u32,
        /// Interface the packet was seen on.
        pub ifindex: u32,
        /// `bpf_ktime_get_boot_ns()` at capture (CLOCK_BOOTTIME).
        pub ts_boot_ns: u64,
        /// `DIR_INGRESS` or `DIR_EGRESS`.
        pub direction: u8,
        /// 4 or 6.
        pub ip_version: u8,
        /// `IPPROTO_*` of the L4 header.
        pub l4_proto: u8,
        /// `FLAG_*` bits.
        pub flags: u8,
        /// 802.1Q VLAN id, valid when `flags` has [`FLAG_VLAN`].
        pub vlan_id: u16,
        /// Source port, host order; 0 for ICMP. Flow records: the client's.
        pub src_port: u16,
        /// Destination port, host order; 0 for ICMP. Flow records: the server's.
        pub dst_port: u16,
        /// Ethernet source address.
        pub src_mac: [u8; 6],
        /// Ethernet destination address.
        pub dst_mac: [u8; 6],
        /// Explicit padding, always 0.
        pub _pad0: u16,
        /// Source address, network order; IPv4 in the first 4 bytes.
        pub src_addr: [u8; 16],
        /// Destination address, network order; IPv4 in the first 4 bytes.
        pub dst_addr: [u8; 16],
        /// Payload bytes following the header.
        pub payload_len: u32,
        /// Payload length on the wire (>= `payload_len`).
        pub orig_payload_len: u32,
        /// `first_seen_ns` of the packet's flow (with the tuple, its identity: EVE
        /// `flow_id`); 0 when the packet has no flow entry.
        pub flow_start_ns: u64,
    }
}

record_struct! {
    /// `struct pal_flow_record`: payload of flow start, update and end records. The enclosing
    /// header is oriented client (the flow's first sender) -> server and carries the flow's
    /// first interface, direction and VLAN.
    pub struct FlowRecord {
        /// Boot-clock ns of the flow's first packet.
        pub first_seen_ns: u64,
        /// Boot-clock ns of its latest packet.
        pub last_seen_ns: u64,
        /// Packets client -> server (GSO/GRO segments counted one by one).
        pub pkts_toserver: u64,
        /// Packets server -> client.
        pub pkts_toclient: u64,
        /// Frame bytes (link-layer header included) client -> server.
        pub bytes_toserver: u64,
        /// Frame bytes server -> client.
        pub bytes_toclient: u64,
        /// L4 payload bytes client -> server.
        pub payload_bytes_toserver: u64,
        /// L4 payload bytes server -> client.
        pub payload_bytes_toclient: u64,
        /// OR of the TCP flags seen client -> server.
        pub tcp_flags_toserver: u8,
        /// OR of the TCP flags seen server -> client.
        pub tcp_flags_toclient: u8,
        /// `FLOW_REASON_*`: none for start and update records; FIN, RST or timeout for ends.
        pub end_reason: u8,
        /// `FLOW_F_*` bits.
        pub flags: u8,
        /// ICMP flows: type of the first packet.
        pub icmp_type: u8,
        /// ICMP flows: code of the first packet.
        pub icmp_code: u8,
        /// Explicit padding, always 0.
        pub _pad: [u8; 2],
    }
}

record_struct! {
    /// `struct pal_flow_key`: key of the `pal_flows` LRU hash, the direction-normalized
    /// tuple (the lower (address, port) endpoint first). VLAN tags are not part of it.
    pub struct FlowKey {
        /// Address of the lower endpoint, network order; IPv4 in the first 4 bytes.
        pub addr_lo: [u8; 16],
        /// Address of the higher endpoint.
        pub addr_hi: [u8; 16],
        /// Port of the lower endpoint, host order; 0 for ICMP.
        pub port_lo: u16,
        /// Port of the higher endpoint.
        pub port_hi: u16,
        /// `IPPROTO_*`.
        pub l4_proto: u8,
        /// 4 or 6.
        pub ip_version: u8,
        /// Explicit padding, always 0.
        pub _pad: u16,
    }
}

impl FlowKey {
    /// The key of the flow a packet from `src` to `dst` belongs to, as the kernel program
    /// builds it (the lower (address, port) endpoint first, addresses compared as
    /// big-endian numbers); also whether the sender is that lower endpoint. Addresses are
    /// 16 bytes, IPv4 in the first 4; ICMP flows have ports 0.
    pub fn normalized(
        ip_version: u8,
        l4_proto: u8,
        src: ([u8; 16], u16),
        dst: ([u8; 16], u16),
    ) -> (Self, bool) {
        let sender_is_lo = src <= dst;
        let ((addr_lo, port_lo), (addr_hi, port_hi)) =
            if sender_is_lo { (src, dst) } else { (dst, src) };
        let key = Self {
            addr_lo,
            addr_hi,
            port_lo,
            port_hi,
            l4_proto,
            ip_version,
            _pad: 0,
        };
        (key, sender_is_lo)
    }
}

record_struct! {
    /// `struct pal_flow_block`: value of `pal_flow_block` (a connection the TLS policy cut),
    /// keyed by [`FlowKey`]. Written by the supervisor only.
    pub struct FlowBlock {
        /// Boot-clock deadline.
        pub expires_ns: u64,
        /// Boot-clock time of the hello that matched.
        pub hello_ns: u64,
        /// Boot-clock time the supervisor wrote the entry.
        pub created_ns: u64,
        /// The TLS rule.
        pub rule_id: u32,
        /// Explicit padding, always 0.
        pub _pad: u32,
    }
}

record_struct! {
    /// `struct pal_flow_value`: value of the `pal_flows` LRU hash.
    pub struct FlowValue {
        /// Boot-clock ns of the first packet.
        pub first_seen_ns: u64,
        /// Boot-clock ns of the latest packet.
        pub last_seen_ns: u64,
        /// Boot-clock ns of the last start or update record.
        pub last_report_ns: u64,
        /// Packets: `[0]` client -> server, `[1]` server -> client.
        pub pkts: [u64; 2],
        /// Frame bytes, indexed like `pkts`.
        pub bytes: [u64; 2],
        /// L4 payload bytes, indexed like `pkts`.
        pub payload_bytes: [u64; 2],
        /// OR of TCP flags, indexed like `pkts`.
        pub tcp_flags: [u8; 2],
        /// 1 if the client is the key's `addr_lo` side.
        pub client_is_lo: u8,
        /// Bit 0: FIN from the client, bit 1: FIN from the server.
        pub fin_mask: u8,
        /// Interface of the first packet (0 while a seeded flow has not been seen).
        pub ifindex: u32,
        /// Ethernet address of the client, from the first packet.
        pub client_mac: [u8; 6],
        /// Ethernet address of the server, from the first packet.
        pub server_mac: [u8; 6],
        /// Outer VLAN id of the first packet, valid with [`crate::FLOW_F_VLAN`].
        pub vlan_id: u16,
        /// `FLOW_F_*` bits.
        pub flags: u8,
        /// `DIR_*` of the first packet.
        pub direction: u8,
        /// ICMP flows: type of the first packet.
        pub icmp_type: u8,
        /// ICMP flows: code of the first packet.
        pub icmp_code: u8,
        /// 1 while `pal_tls_conns` follows this connection's TLS handshake.
        pub tls_follow: u8,
        /// 1: the connection is in `pal_flow_block` (as of `block_gen`).
        pub blocked: u8,
        /// `pal_flow_block_active[0]` when `blocked` was looked up.
        pub block_gen: u32,
    }
}

/// A whole flow record (header and [`FlowRecord`]) of `kind` (`KIND_FLOW_*`) made from a
/// flow table entry alone at `now_ns`, exactly as `emit_flow()` (flows.bpf.h) makes it: the
/// header oriented client -> server, with the flow's first interface, direction and VLAN.
/// For tools that end flows without the kernel program (`palisade cleanup`, replay).
pub fn flow_record(
    key: &FlowKey,
    val: &FlowValue,
    kind: u16,
    reason: u8,
    now_ns: u64,
) -> [u8; RecordHeader::SIZE + FlowRecord::SIZE] {
    use crate::consts::{FLAG_VLAN, FLOW_F_SEEDED, FLOW_F_VLAN};
    let vlan = val.flags & FLOW_F_VLAN != 0;
    let ((src, sport), (dst, dport)) = if val.client_is_lo != 0 {
        ((key.addr_lo, key.port_lo), (key.addr_hi, key.port_hi))
    } else {
        ((key.addr_hi, key.port_hi), (key.addr_lo, key.port_lo))
    };
    let hdr = RecordHeader {
        kind,
        ifindex: val.ifindex,
        ts_boot_ns: now_ns,
        direction: val.direction,
        ip_version: key.ip_version,
        l4_proto: key.l4_proto,
        flags: if vlan { FLAG_VLAN } else { 0 },
        vlan_id: if vlan { val.vlan_id } else { 0 },
        src_port: sport,
        dst_port: dport,
        src_mac: val.client_mac,
        dst_mac: val.server_mac,
        src_addr: src,
        dst_addr: dst,
        flow_start_ns: val.first_seen_ns,
        // FlowRecord::SIZE is 80: the cast cannot truncate.
        ..RecordHeader::new(Kind::FlowStart, FlowRecord::SIZE as u32)
    };
    let rec = FlowRecord {
        first_seen_ns: val.first_seen_ns,
        last_seen_ns: val.last_seen_ns,
        pkts_toserver: val.pkts[0],
        pkts_toclient: val.pkts[1],
        bytes_toserver: val.bytes[0],
        bytes_toclient: val.bytes[1],
        payload_bytes_toserver: val.payload_bytes[0],
        payload_bytes_toclient: val.payload_bytes[1],
        tcp_flags_toserver: val.tcp_flags[0],
        tcp_flags_toclient: val.tcp_flags[1],
        end_reason: reason,
        flags: val.flags & FLOW_F_SEEDED,
        icmp_type: val.icmp_type,
        icmp_code: val.icmp_code,
        _pad: [0; 2],
    };
    let mut out = [0u8; RecordHeader::SIZE + FlowRecord::SIZE];
    let (h, r) = out.split_at_mut(RecordHeader::SIZE);
    h.copy_from_slice(&hdr.to_bytes());
    r.copy_from_slice(&rec.to_bytes());
    out
}

record_struct! {
    /// `struct pal_flow_config`: slot 0 of `pal_flow_config`, written by the supervisor.
    pub struct FlowConfig {
        /// UDP, ICMP and other flows end after this long without a packet.
        pub idle_timeout_ns: u64,
        /// TCP flows without a FIN pair or RST end after this long without a packet.
        pub tcp_idle_timeout_ns: u64,
        /// Period of update records for long flows; 0 for none.
        pub update_interval_ns: u64,
        /// Period of a whole walk of the table (one shard per tick); 0 stops the sweeper.
        pub sweep_interval_ns: u64,
        /// UDP, ICMP idle timeout in a shard walked in emergency.
        pub emergency_idle_ns: u64,
        /// TCP idle timeout in a shard walked in emergency.
        pub emergency_tcp_idle_ns: u64,
        /// Live flows in a shard from which its next walk is an emergency; 0: never.
        pub emergency_live: u64,
    }
}

record_struct! {
    /// `struct pal_flow_sweep`: slot `shard` of `pal_flow_sweep`, written by the kernel
    /// sweeper after each walk of that shard.
    pub struct FlowSweep {
        /// Walks completed.
        pub sweeps: u64,
        /// Boot-clock ns of the latest walk.
        pub last_sweep_ns: u64,
        /// Flows in the table at the latest walk.
        pub live: u64,
        /// Duration of the latest walk, ns.
        pub walk_ns: u64,
    }
}

record_struct! {
    /// `struct pal_flow_end_args`: the start of the `BPF_PROG_TEST_RUN` frame of
    /// `pal_flow_end_all`.
    pub struct FlowEndArgs {
        /// The `pal_flows` slot whose flows to end.
        pub shard: u32,
        /// Flows to end at most in this run ([`crate::FLOW_END_BATCH`]).
        pub budget: u32,
    }
}

record_struct! {
    /// `struct pal_dns_rule`: value of a rule-set map (the inner map of `pal_dns_policy`), keyed
    /// by the `u64` name hash ([`crate::dns_name::name_hash`]).
    pub struct DnsRule {
        /// The supervisor's rule number; per-rule hits are counted under it in `pal_dns_hits`.
        pub rule_id: u32,
        /// [`crate::DNS_BLOCK`] or [`crate::DNS_ALLOW`].
        pub action: u8,
        /// [`crate::DNS_RULE_EXACT`], [`crate::DNS_RULE_BLOCK_SUBDOMAINS`].
        pub flags: u8,
        /// Explicit padding, always 0.
        pub _pad: u16,
    }
}

record_struct! {
    /// `struct pal_dns_learned`: value of `pal_dns_learned`, an exact-name block learned at run
    /// time (regex verdict, CNAME inspection), keyed by the `u64` name hash.
    pub struct DnsLearned {
        /// The rule that produced the verdict (counted in `pal_dns_hits`).
        pub rule_id: u32,
        /// Explicit padding, always 0.
        pub _pad: u32,
        /// CLOCK_BOOTTIME nanoseconds: the block holds while the kernel's boot clock is below.
        pub expires_boot_ns: u64,
    }
}

record_struct! {
    /// `struct pal_dns_config`: slot 0 of `pal_dns_config`.
    pub struct DnsConfig {
        /// `DNS_ACTION_*`, see [`crate::BlockAction`].
        pub block_action: u32,
        /// Explicit padding, always 0.
        pub _pad: u32,
    }
}

/// What one list entry says about one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// Block the name only.
    BlockExact,
    /// Block the name and every subdomain.
    BlockSuffix,
    /// Allow the name only (beats any block).
    AllowExact,
    /// Allow the name and every subdomain (beats any block).
    AllowSuffix,
}

impl DnsRule {
    /// The map value for one rule of `kind`.
    pub const fn new(kind: RuleKind, rule_id: u32) -> Self {
        let (action, flags) = match kind {
            RuleKind::BlockExact => (DNS_BLOCK, DNS_RULE_EXACT),
            RuleKind::BlockSuffix => (DNS_BLOCK, 0),
            RuleKind::AllowExact => (DNS_ALLOW, DNS_RULE_EXACT),
            RuleKind::AllowSuffix => (DNS_ALLOW, 0),
        };
        Self {
            rule_id,
            action,
            flags,
            _pad: 0,
        }
    }

    /// The decision this entry makes for a name it matches: as the name itself (`whole`) or as
    /// one of its parents. `None`: no decision. Mirrors `match_step()` in dns_policy.bpf.h.
    pub const fn decides(&self, whole: bool) -> Option<u8> {
        if whole || self.flags & DNS_RULE_EXACT == 0 {
            match self.action {
                DNS_ALLOW | DNS_BLOCK => Some(self.action),
                _ => None,
            }
        } else if self.flags & DNS_RULE_BLOCK_SUBDOMAINS != 0 {
            Some(DNS_BLOCK)
        } else {
            None
        }
    }
}

impl IpRule {
    /// The trie value of rule `rule_id` for a prefix of `prefixlen` bits, enforced until
    /// `expires_boot_ns` (CLOCK_BOOTTIME; 0 = forever).
    pub const fn new(rule_id: u32, prefixlen: u8, expires_boot_ns: u64) -> Self {
        Self {
            rule_id,
            prefixlen,
            _pad: [0; 3],
            expires_boot_ns,
        }
    }
}

impl RecordHeader {
    /// A valid header for `kind` with `payload_len` bytes of untruncated payload and every
    /// packet field zero (for tests and replay tools).
    pub fn new(kind: Kind, payload_len: u32) -> Self {
        Self {
            magic: RECORD_MAGIC,
            abi_version: ABI_VERSION,
            kind: kind.raw(),
            // SIZE is 88: the cast cannot truncate.
            len: (Self::SIZE as u32).saturating_add(payload_len),
            payload_len,
            orig_payload_len: payload_len,
            ..Self::default()
        }
    }

    /// Validates one ring-buffer item and splits it into header and payload.
    ///
    /// Checks, in order: length >= header, magic, ABI version, known kind, `len` equal to the
    /// item length, `payload_len` equal to the bytes after the header, `payload_len` within
    /// the kind's limit (flow records: exactly one [`FlowRecord`]), and
    /// `orig_payload_len >= payload_len`.
    pub fn read(bytes: &[u8]) -> Result<(Self, &[u8]), RecordError> {
        let Some((head, payload)) = bytes.split_at_checked(Self::SIZE) else {
            return Err(RecordError::Short {
                what: "RecordHeader",
                need: Self::SIZE,
                len: bytes.len(),
            });
        };
        let hdr = Self::from_bytes(head)?;
        if hdr.magic != RECORD_MAGIC {
            return Err(RecordError::BadMagic { found: hdr.magic });
        }
        if hdr.abi_version != ABI_VERSION {
            return Err(RecordError::AbiVersion {
                found: hdr.abi_version,
            });
        }
        let kind = Kind::from_raw(hdr.kind).ok_or(RecordError::UnknownKind { kind: hdr.kind })?;
        if usize::try_from(hdr.len).ok() != Some(bytes.len()) {
            return Err(RecordError::LengthMismatch {
                header_len: hdr.len,
                item_len: bytes.len(),
            });
        }
        if usize::try_from(hdr.payload_len).ok() != Some(payload.len()) {
            return Err(RecordError::PayloadLength {
                payload_len: hdr.payload_len,
                available: payload.len(),
            });
        }
        match kind {
            Kind::FlowStart | Kind::FlowEnd | Kind::FlowUpdate
                if payload.len() != FlowRecord::SIZE =>
            {
                return Err(RecordError::FlowPayload {
                    payload_len: hdr.payload_len,
                    need: FlowRecord::SIZE,
                });
            }
            Kind::IpBlock if payload.len() != IpBlockRecord::SIZE => {
                return Err(RecordError::FlowPayload {
                    payload_len: hdr.payload_len,
                    need: IpBlockRecord::SIZE,
                });
            }
            _ if hdr.payload_len > kind.max_payload() => {
                return Err(RecordError::PayloadTooLong {
                    kind: hdr.kind,
                    payload_len: hdr.payload_len,
                    max: kind.max_payload(),
                });
            }
            _ => {}
        }
        if hdr.orig_payload_len < hdr.payload_len {
            return Err(RecordError::OrigShorter {
                payload_len: hdr.payload_len,
                orig_payload_len: hdr.orig_payload_len,
            });
        }
        Ok((hdr, payload))
    }

    /// The record kind; always `Some` for a header returned by [`RecordHeader::read`].
    pub fn kind(&self) -> Option<Kind> {
        Kind::from_raw(self.kind)
    }

    /// Whether the payload was cut at the capture cap.
    pub fn is_truncated(&self) -> bool {
        self.flags & FLAG_TRUNCATED != 0
    }

    /// The VLAN id, if the packet had a tag.
    pub fn vlan(&self) -> Option<u16> {
        (self.flags & FLAG_VLAN != 0).then_some(self.vlan_id)
    }

    /// Source address (the client's for flow records); `None` if `ip_version` is not 4 or 6.
    pub fn src_ip(&self) -> Option<IpAddr> {
        ip_addr(self.ip_version, self.src_addr)
    }

    /// Destination address (the server's for flow records).
    pub fn dst_ip(&self) -> Option<IpAddr> {
        ip_addr(self.ip_version, self.dst_addr)
    }
}

impl FlowRecord {
    /// Reads the payload of a flow record: exactly [`FlowRecord::SIZE`] bytes.
    pub fn read(payload: &[u8]) -> Result<Self, RecordError> {
        Self::from_bytes(payload)
    }
}

/// An address in records.h form: network order, IPv4 in the first 4 bytes.
fn ip_addr(ip_version: u8, bytes: [u8; 16]) -> Option<IpAddr> {
    match ip_version {
        4 => {
            let (v4, _) = bytes.split_first_chunk::<4>()?;
            Some(IpAddr::V4(Ipv4Addr::from(*v4)))
        }
        6 => Some(IpAddr::V6(Ipv6Addr::from(bytes))),
        _ => None,
    }
}

// Layout of every mirror, against what the C compiler reported for records.h.
const _: () = {
    use std::mem::offset_of;

    assert!(size_of::<RecordHeader>() == c::PAL_RECORD_HDR_SIZE);
    assert!(offset_of!(RecordHeader, magic) == c::PAL_RECORD_HDR_OFF_MAGIC);
    assert!(offset_of!(RecordHeader, abi_version) == c::PAL_RECORD_HDR_OFF_ABI_VERSION);
    assert!(offset_of!(RecordHeader, kind) == c::PAL_RECORD_HDR_OFF_KIND);
    assert!(offset_of!(RecordHeader, len) == c::PAL_RECORD_HDR_OFF_LEN);
    assert!(offset_of!(RecordHeader, ifindex) == c::PAL_RECORD_HDR_OFF_IFINDEX);
    assert!(offset_of!(RecordHeader, ts_boot_ns) == c::PAL_RECORD_HDR_OFF_TS_BOOT_NS);
    assert!(offset_of!(RecordHeader, direction) == c::PAL_RECORD_HDR_OFF_DIRECTION);
    assert!(offset_of!(RecordHeader, ip_version) == c::PAL_RECORD_HDR_OFF_IP_VERSION);
    assert!(offset_of!(RecordHeader, l4_proto) == c::PAL_RECORD_HDR_OFF_L4_PROTO);
    assert!(offset_of!(RecordHeader, flags) == c::PAL_RECORD_HDR_OFF_FLAGS);
    assert!(offset_of!(RecordHeader, vlan_id) == c::PAL_RECORD_HDR_OFF_VLAN_ID);
    assert!(offset_of!(RecordHeader, src_port) == c::PAL_RECORD_HDR_OFF_SRC_PORT);
    assert!(offset_of!(RecordHeader, dst_port) == c::PAL_RECORD_HDR_OFF_DST_PORT);
    assert!(offset_of!(RecordHeader, src_mac) == c::PAL_RECORD_HDR_OFF_SRC_MAC);
    assert!(offset_of!(RecordHeader, dst_mac) == c::PAL_RECORD_HDR_OFF_DST_MAC);
    assert!(offset_of!(RecordHeader, _pad0) == c::PAL_RECORD_HDR_OFF_PAD0);
    assert!(offset_of!(RecordHeader, src_addr) == c::PAL_RECORD_HDR_OFF_SRC_ADDR);
    assert!(offset_of!(RecordHeader, dst_addr) == c::PAL_RECORD_HDR_OFF_DST_ADDR);
    assert!(offset_of!(RecordHeader, payload_len) == c::PAL_RECORD_HDR_OFF_PAYLOAD_LEN);
    assert!(offset_of!(RecordHeader, orig_payload_len) == c::PAL_RECORD_HDR_OFF_ORIG_PAYLOAD_LEN);
    assert!(offset_of!(RecordHeader, flow_start_ns) == c::PAL_RECORD_HDR_OFF_FLOW_START_NS);

    assert!(size_of::<FlowRecord>() == c::PAL_FLOW_RECORD_SIZE);
    assert!(offset_of!(FlowRecord, first_seen_ns) == c::PAL_FLOW_RECORD_OFF_FIRST_SEEN_NS);
    assert!(offset_of!(FlowRecord, last_seen_ns) == c::PAL_FLOW_RECORD_OFF_LAST_SEEN_NS);
    assert!(offset_of!(FlowRecord, pkts_toserver) == c::PAL_FLOW_RECORD_OFF_PKTS_TOSERVER);
    assert!(offset_of!(FlowRecord, pkts_toclient) == c::PAL_FLOW_RECORD_OFF_PKTS_TOCLIENT);
    assert!(offset_of!(FlowRecord, bytes_toserver) == c::PAL_FLOW_RECORD_OFF_BYTES_TOSERVER);
    assert!(offset_of!(FlowRecord, bytes_toclient) == c::PAL_FLOW_RECORD_OFF_BYTES_TOCLIENT);
    assert!(
        offset_of!(FlowRecord, payload_bytes_toserver)
            == c::PAL_FLOW_RECORD_OFF_PAYLOAD_BYTES_TOSERVER
    );
    assert!(
        offset_of!(FlowRecord, payload_bytes_toclient)
            == c::PAL_FLOW_RECORD_OFF_PAYLOAD_BYTES_TOCLIENT
    );
    assert!(
        offset_of!(FlowRecord, tcp_flags_toserver) == c::PAL_FLOW_RECORD_OFF_TCP_FLAGS_TOSERVER
    );
    assert!(
        offset_of!(FlowRecord, tcp_flags_toclient) == c::PAL_FLOW_RECORD_OFF_TCP_FLAGS_TOCLIENT
    );
    assert!(offset_of!(FlowRecord, end_reason) == c::PAL_FLOW_RECORD_OFF_END_REASON);
    assert!(offset_of!(FlowRecord, flags) == c::PAL_FLOW_RECORD_OFF_FLAGS);
    assert!(offset_of!(FlowRecord, icmp_type) == c::PAL_FLOW_RECORD_OFF_ICMP_TYPE);
    assert!(offset_of!(FlowRecord, icmp_code) == c::PAL_FLOW_RECORD_OFF_ICMP_CODE);
    assert!(offset_of!(FlowRecord, _pad) == c::PAL_FLOW_RECORD_OFF_PAD);

    assert!(size_of::<FlowBlock>() == c::PAL_FLOW_BLOCK_SIZE);
    assert!(offset_of!(FlowBlock, expires_ns) == c::PAL_FLOW_BLOCK_OFF_EXPIRES_NS);
    assert!(offset_of!(FlowBlock, hello_ns) == c::PAL_FLOW_BLOCK_OFF_HELLO_NS);
    assert!(offset_of!(FlowBlock, created_ns) == c::PAL_FLOW_BLOCK_OFF_CREATED_NS);
    assert!(offset_of!(FlowBlock, rule_id) == c::PAL_FLOW_BLOCK_OFF_RULE_ID);
    assert!(offset_of!(FlowBlock, _pad) == c::PAL_FLOW_BLOCK_OFF_PAD);
    assert!(size_of::<FlowKey>() == c::PAL_FLOW_KEY_SIZE);
    assert!(offset_of!(FlowKey, addr_lo) == c::PAL_FLOW_KEY_OFF_ADDR_LO);
    assert!(offset_of!(FlowKey, addr_hi) == c::PAL_FLOW_KEY_OFF_ADDR_HI);
    assert!(offset_of!(FlowKey, port_lo) == c::PAL_FLOW_KEY_OFF_PORT_LO);
    assert!(offset_of!(FlowKey, port_hi) == c::PAL_FLOW_KEY_OFF_PORT_HI);
    assert!(offset_of!(FlowKey, l4_proto) == c::PAL_FLOW_KEY_OFF_L4_PROTO);
    assert!(offset_of!(FlowKey, ip_version) == c::PAL_FLOW_KEY_OFF_IP_VERSION);
    assert!(offset_of!(FlowKey, _pad) == c::PAL_FLOW_KEY_OFF_PAD);

    assert!(size_of::<FlowValue>() == c::PAL_FLOW_VALUE_SIZE);
    assert!(offset_of!(FlowValue, first_seen_ns) == c::PAL_FLOW_VALUE_OFF_FIRST_SEEN_NS);
    assert!(offset_of!(FlowValue, last_seen_ns) == c::PAL_FLOW_VALUE_OFF_LAST_SEEN_NS);
    assert!(offset_of!(FlowValue, last_report_ns) == c::PAL_FLOW_VALUE_OFF_LAST_REPORT_NS);
    assert!(offset_of!(FlowValue, pkts) == c::PAL_FLOW_VALUE_OFF_PKTS);
    assert!(offset_of!(FlowValue, bytes) == c::PAL_FLOW_VALUE_OFF_BYTES);
    assert!(offset_of!(FlowValue, payload_bytes) == c::PAL_FLOW_VALUE_OFF_PAYLOAD_BYTES);
    assert!(offset_of!(FlowValue, tcp_flags) == c::PAL_FLOW_VALUE_OFF_TCP_FLAGS);
    assert!(offset_of!(FlowValue, client_is_lo) == c::PAL_FLOW_VALUE_OFF_CLIENT_IS_LO);
    assert!(offset_of!(FlowValue, fin_mask) == c::PAL_FLOW_VALUE_OFF_FIN_MASK);
    assert!(offset_of!(FlowValue, ifindex) == c::PAL_FLOW_VALUE_OFF_IFINDEX);
    assert!(offset_of!(FlowValue, client_mac) == c::PAL_FLOW_VALUE_OFF_CLIENT_MAC);
    assert!(offset_of!(FlowValue, server_mac) == c::PAL_FLOW_VALUE_OFF_SERVER_MAC);
    assert!(offset_of!(FlowValue, vlan_id) == c::PAL_FLOW_VALUE_OFF_VLAN_ID);
    assert!(offset_of!(FlowValue, flags) == c::PAL_FLOW_VALUE_OFF_FLAGS);
    assert!(offset_of!(FlowValue, direction) == c::PAL_FLOW_VALUE_OFF_DIRECTION);
    assert!(offset_of!(FlowValue, icmp_type) == c::PAL_FLOW_VALUE_OFF_ICMP_TYPE);
    assert!(offset_of!(FlowValue, icmp_code) == c::PAL_FLOW_VALUE_OFF_ICMP_CODE);
    assert!(offset_of!(FlowValue, tls_follow) == c::PAL_FLOW_VALUE_OFF_TLS_FOLLOW);
    assert!(offset_of!(FlowValue, blocked) == c::PAL_FLOW_VALUE_OFF_BLOCKED);
    assert!(offset_of!(FlowValue, block_gen) == c::PAL_FLOW_VALUE_OFF_BLOCK_GEN);

    assert!(size_of::<FlowConfig>() == c::PAL_FLOW_CONFIG_SIZE);
    assert!(offset_of!(FlowConfig, idle_timeout_ns) == c::PAL_FLOW_CONFIG_OFF_IDLE_TIMEOUT_NS);
    assert!(
        offset_of!(FlowConfig, tcp_idle_timeout_ns) == c::PAL_FLOW_CONFIG_OFF_TCP_IDLE_TIMEOUT_NS
    );
    assert!(
        offset_of!(FlowConfig, update_interval_ns) == c::PAL_FLOW_CONFIG_OFF_UPDATE_INTERVAL_NS
    );
    assert!(offset_of!(FlowConfig, sweep_interval_ns) == c::PAL_FLOW_CONFIG_OFF_SWEEP_INTERVAL_NS);
    assert!(offset_of!(FlowConfig, emergency_idle_ns) == c::PAL_FLOW_CONFIG_OFF_EMERGENCY_IDLE_NS);
    assert!(
        offset_of!(FlowConfig, emergency_tcp_idle_ns)
            == c::PAL_FLOW_CONFIG_OFF_EMERGENCY_TCP_IDLE_NS
    );
    assert!(offset_of!(FlowConfig, emergency_live) == c::PAL_FLOW_CONFIG_OFF_EMERGENCY_LIVE);

    assert!(size_of::<FlowEndArgs>() == c::PAL_FLOW_END_ARGS_SIZE);
    assert!(offset_of!(FlowEndArgs, shard) == c::PAL_FLOW_END_ARGS_OFF_SHARD);
    assert!(offset_of!(FlowEndArgs, budget) == c::PAL_FLOW_END_ARGS_OFF_BUDGET);
    assert!(size_of::<FlowSweep>() == c::PAL_FLOW_SWEEP_SIZE);
    assert!(offset_of!(FlowSweep, sweeps) == c::PAL_FLOW_SWEEP_OFF_SWEEPS);
    assert!(offset_of!(FlowSweep, last_sweep_ns) == c::PAL_FLOW_SWEEP_OFF_LAST_SWEEP_NS);
    assert!(offset_of!(FlowSweep, live) == c::PAL_FLOW_SWEEP_OFF_LIVE);
    assert!(offset_of!(FlowSweep, walk_ns) == c::PAL_FLOW_SWEEP_OFF_WALK_NS);

    assert!(size_of::<DnsRule>() == c::PAL_DNS_RULE_SIZE);
    assert!(offset_of!(DnsRule, rule_id) == c::PAL_DNS_RULE_OFF_RULE_ID);
    assert!(offset_of!(DnsRule, action) == c::PAL_DNS_RULE_OFF_ACTION);
    assert!(offset_of!(DnsRule, flags) == c::PAL_DNS_RULE_OFF_FLAGS);
    assert!(offset_of!(DnsRule, _pad) == c::PAL_DNS_RULE_OFF_PAD);

    assert!(size_of::<DnsLearned>() == c::PAL_DNS_LEARNED_SIZE);
    assert!(offset_of!(DnsLearned, rule_id) == c::PAL_DNS_LEARNED_OFF_RULE_ID);
    assert!(offset_of!(DnsLearned, _pad) == c::PAL_DNS_LEARNED_OFF_PAD);
    assert!(offset_of!(DnsLearned, expires_boot_ns) == c::PAL_DNS_LEARNED_OFF_EXPIRES_BOOT_NS);

    assert!(size_of::<DnsConfig>() == c::PAL_DNS_CONFIG_SIZE);
    assert!(offset_of!(DnsConfig, block_action) == c::PAL_DNS_CONFIG_OFF_BLOCK_ACTION);
    assert!(offset_of!(DnsConfig, _pad) == c::PAL_DNS_CONFIG_OFF_PAD);

    // The program assembles flow records in its PAL_CAP_MAX-byte payload scratch space.
    assert!(FlowRecord::SIZE <= c::PAL_CAP_MAX as usize);
};

// ---------------------------------------------------------------------------------------------
// IP policy (records.h section "IP policy")
// ---------------------------------------------------------------------------------------------

record_struct! {
    /// `struct pal_ip4_key`: key of the IPv4 LPM tries (inner maps of `pal_ip4_policy`).
    pub struct Ip4Key {
        /// Prefix length, 0..=32.
        pub prefixlen: u32,
        /// Address, network order.
        pub addr: [u8; 4],
    }
}

record_struct! {
    /// `struct pal_ip6_key`: key of the IPv6 LPM tries (inner maps of `pal_ip6_policy`).
    pub struct Ip6Key {
        /// Prefix length, 0..=128.
        pub prefixlen: u32,
        /// Address, network order.
        pub addr: [u8; 16],
    }
}

record_struct! {
    /// `struct pal_ip_rule`: value of both tries, the rule a prefix belongs to.
    pub struct IpRule {
        /// The supervisor's rule id (key of `pal_ip_hits`, reported in alerts).
        pub rule_id: u32,
        /// The prefix length again (an LPM lookup does not return the matched key).
        pub prefixlen: u8,
        /// Explicit padding, always 0.
        pub _pad: [u8; 3],
        /// CLOCK_BOOTTIME ns after which the kernel ignores the rule; 0 = never.
        pub expires_boot_ns: u64,
    }
}

record_struct! {
    /// `struct pal_ip_config`: slot 0 of `pal_ip_config`, the alert rate limit.
    pub struct IpConfig {
        /// Per CPU, at most one alert per this many ns after the burst; 0 = no alerts.
        pub alert_interval_ns: u64,
        /// Alerts allowed back to back.
        pub alert_burst: u32,
        /// Explicit padding, always 0.
        pub _pad: u32,
    }
}

record_struct! {
    /// `struct pal_ip_block_record`: payload of a `KIND_IP_BLOCK` record (a dropped packet).
    pub struct IpBlockRecord {
        /// The rule that matched.
        pub rule_id: u32,
        /// Drops on the same CPU that were not alerted since its previous alert.
        pub suppressed: u32,
        /// Prefix length of the rule (the CIDR is the matched address masked to it).
        pub prefixlen: u8,
        /// `IP_MATCH_SRC` or `IP_MATCH_DST`.
        pub matched: u8,
        /// `IP_HOOK_XDP` or `IP_HOOK_TC`.
        pub hook: u8,
        /// Explicit padding, always 0.
        pub _pad: u8,
    }
}

impl IpBlockRecord {
    /// Reads the payload of an IP-block record: exactly [`IpBlockRecord::SIZE`] bytes.
    pub fn read(payload: &[u8]) -> Result<Self, RecordError> {
        Self::from_bytes(payload)
    }
}

const _: () = {
    use std::mem::offset_of;

    assert!(size_of::<Ip4Key>() == c::PAL_IP4_KEY_SIZE);
    assert!(offset_of!(Ip4Key, prefixlen) == c::PAL_IP4_KEY_OFF_PREFIXLEN);
    assert!(offset_of!(Ip4Key, addr) == c::PAL_IP4_KEY_OFF_ADDR);

    assert!(size_of::<Ip6Key>() == c::PAL_IP6_KEY_SIZE);
    assert!(offset_of!(Ip6Key, prefixlen) == c::PAL_IP6_KEY_OFF_PREFIXLEN);
    assert!(offset_of!(Ip6Key, addr) == c::PAL_IP6_KEY_OFF_ADDR);

    assert!(size_of::<IpRule>() == c::PAL_IP_RULE_SIZE);
    assert!(offset_of!(IpRule, rule_id) == c::PAL_IP_RULE_OFF_RULE_ID);
    assert!(offset_of!(IpRule, prefixlen) == c::PAL_IP_RULE_OFF_PREFIXLEN);
    assert!(offset_of!(IpRule, _pad) == c::PAL_IP_RULE_OFF_PAD);
    assert!(offset_of!(IpRule, expires_boot_ns) == c::PAL_IP_RULE_OFF_EXPIRES_BOOT_NS);

    assert!(size_of::<IpConfig>() == c::PAL_IP_CONFIG_SIZE);
    assert!(offset_of!(IpConfig, alert_interval_ns) == c::PAL_IP_CONFIG_OFF_ALERT_INTERVAL_NS);
    assert!(offset_of!(IpConfig, alert_burst) == c::PAL_IP_CONFIG_OFF_ALERT_BURST);
    assert!(offset_of!(IpConfig, _pad) == c::PAL_IP_CONFIG_OFF_PAD);

    assert!(size_of::<IpBlockRecord>() == c::PAL_IP_BLOCK_RECORD_SIZE);
    assert!(offset_of!(IpBlockRecord, rule_id) == c::PAL_IP_BLOCK_RECORD_OFF_RULE_ID);
    assert!(offset_of!(IpBlockRecord, suppressed) == c::PAL_IP_BLOCK_RECORD_OFF_SUPPRESSED);
    assert!(offset_of!(IpBlockRecord, prefixlen) == c::PAL_IP_BLOCK_RECORD_OFF_PREFIXLEN);
    assert!(offset_of!(IpBlockRecord, matched) == c::PAL_IP_BLOCK_RECORD_OFF_MATCHED);
    assert!(offset_of!(IpBlockRecord, hook) == c::PAL_IP_BLOCK_RECORD_OFF_HOOK);
    assert!(offset_of!(IpBlockRecord, _pad) == c::PAL_IP_BLOCK_RECORD_OFF_PAD);
};

record_struct! {
    /// `struct pal_guard_key`: key of `pal_guard_allow`, one allow-list entry.
    pub struct GuardKey {
        /// `GUARD_KEY_MAC`, `GUARD_KEY_IPV4` or `GUARD_KEY_IPV6`.
        pub kind: u8,
        /// Explicit padding, always 0.
        pub _pad: [u8; 3],
        /// The MAC (first 6 bytes) or address (network order; IPv4 in the first 4); the
        /// rest 0.
        pub addr: [u8; 16],
    }
}

impl GuardKey {
    /// The entry of a source MAC.
    pub fn mac(mac: [u8; 6]) -> Self {
        let mut addr = [0; 16];
        addr[..6].copy_from_slice(&mac);
        Self {
            kind: crate::consts::GUARD_KEY_MAC,
            _pad: [0; 3],
            addr,
        }
    }

    /// The entry of a source IP address.
    pub fn ip(ip: IpAddr) -> Self {
        let mut addr = [0; 16];
        let kind = match ip {
            IpAddr::V4(v4) => {
                addr[..4].copy_from_slice(&v4.octets());
                crate::consts::GUARD_KEY_IPV4
            }
            IpAddr::V6(v6) => {
                addr = v6.octets();
                crate::consts::GUARD_KEY_IPV6
            }
        };
        Self {
            kind,
            _pad: [0; 3],
            addr,
        }
    }
}

record_struct! {
    /// `struct pal_capture_config`: slot 0 of `pal_capture_config`.
    pub struct CaptureConfig {
        /// Bits `1 << RING_*`: the rings whose records are not made.
        pub off: u32,
        /// `FLOW_STARTS_ALL` or `FLOW_STARTS_ALERTS`: which flows get a start record.
        pub flow_starts: u32,
    }
}

record_struct! {
    /// `struct pal_guard_config`: slot 0 of `pal_guard_config`.
    pub struct GuardConfig {
        /// `GUARD_OFF`, `GUARD_ALERT` or `GUARD_DROP`.
        pub mode: u32,
        /// Explicit padding, always 0.
        pub _pad: u32,
    }
}

record_struct! {
    /// `struct pal_guard_source_key`: key of `pal_guard_sources`, a rogue sender.
    pub struct GuardSourceKey {
        /// Its Ethernet source.
        pub mac: [u8; 6],
        /// 4 or 6.
        pub ip_version: u8,
        /// Explicit padding, always 0.
        pub _pad: u8,
        /// Its IP source, network order; IPv4 in the first 4 bytes.
        pub addr: [u8; 16],
    }
}

record_struct! {
    /// `struct pal_guard_source`: what a rogue sender sent.
    pub struct GuardSource {
        /// DHCPv4 server messages.
        pub dhcp4: u64,
        /// DHCPv6 server messages.
        pub dhcp6: u64,
        /// Router advertisements.
        pub ra: u64,
        /// Of those, dropped.
        pub dropped: u64,
        /// Boot ns of the first.
        pub first_ns: u64,
        /// Boot ns of the latest.
        pub last_ns: u64,
    }
}

record_struct! {
    /// `struct pal_trace_config`: slot 0 of `pal_trace_config`, the packet trace's filter.
    pub struct TraceConfig {
        /// Boot-clock ns the trace ends at; 0 is off.
        pub until_ns: u64,
        /// Host filter, network order; IPv4 in the first 4 bytes.
        pub addr: [u8; 16],
        /// 0: any host; 4 or 6: `addr` is at either end.
        pub addr_version: u8,
        /// 0: any; an IP protocol number.
        pub l4_proto: u8,
        /// 0: any; either end's port.
        pub port: u16,
        /// Explicit padding, always 0.
        pub _pad: u32,
    }
}

record_struct! {
    /// `struct pal_trace_event`: one program run on a traced packet (`rb_trace`).
    pub struct TraceEvent {
        /// Boot-clock ns.
        pub ts_boot_ns: u64,
        /// Observer: the packet's flow (EVE flow_id), 0 if none.
        pub flow_start_ns: u64,
        /// Interface.
        pub ifindex: u32,
        /// Frame bytes.
        pub pkt_len: u32,
        /// `TRACE_BY_IP_RULE`, `TRACE_BY_DNS_POLICY`, `TRACE_BY_TLS_CUT`: the rule (0: none).
        pub rule_id: u32,
        /// The program's return value (`TC_ACT_*`, `XDP_*`).
        pub verdict: i32,
        /// Source address, network order; IPv4 in the first 4 bytes.
        pub src_addr: [u8; 16],
        /// Destination address, same layout.
        pub dst_addr: [u8; 16],
        /// Source port (0 without ports).
        pub src_port: u16,
        /// Destination port.
        pub dst_port: u16,
        /// Valid with `TRACE_F_VLAN`.
        pub vlan_id: u16,
        /// `TRACE_HOOK_*`.
        pub hook: u8,
        /// `DIR_*`.
        pub direction: u8,
        /// 4 or 6.
        pub ip_version: u8,
        /// IP protocol number.
        pub l4_proto: u8,
        /// `TRACE_BY_*`.
        pub decided_by: u8,
        /// `TRACE_BY_IP_RULE`: `IP_MATCH_*`.
        pub matched: u8,
        /// `TRACE_BY_IP_RULE`: the rule's prefix length.
        pub prefixlen: u8,
        /// `TRACE_F_*`.
        pub flags: u8,
        /// Observer: rings a record went to (bits `1 << RING_*`).
        pub rings_sent: u8,
        /// Observer: rings whose record was lost (ring full).
        pub rings_full: u8,
        /// Observer: rings whose record was not made (capture off).
        pub rings_off: u8,
        /// Explicit padding, always 0.
        pub _pad: [u8; 7],
    }
}

const _: () = {
    use std::mem::offset_of;

    assert!(size_of::<GuardKey>() == c::PAL_GUARD_KEY_SIZE);
    assert!(offset_of!(GuardKey, kind) == c::PAL_GUARD_KEY_OFF_TYPE);
    assert!(offset_of!(GuardKey, _pad) == c::PAL_GUARD_KEY_OFF_PAD);
    assert!(offset_of!(GuardKey, addr) == c::PAL_GUARD_KEY_OFF_ADDR);

    assert!(size_of::<GuardConfig>() == c::PAL_GUARD_CONFIG_SIZE);
    assert!(size_of::<CaptureConfig>() == c::PAL_CAPTURE_CONFIG_SIZE);
    assert!(offset_of!(CaptureConfig, off) == c::PAL_CAPTURE_CONFIG_OFF_OFF);
    assert!(offset_of!(CaptureConfig, flow_starts) == c::PAL_CAPTURE_CONFIG_OFF_FLOW_STARTS);
    assert!(offset_of!(GuardConfig, mode) == c::PAL_GUARD_CONFIG_OFF_MODE);
    assert!(offset_of!(GuardConfig, _pad) == c::PAL_GUARD_CONFIG_OFF_PAD);

    assert!(size_of::<GuardSourceKey>() == c::PAL_GUARD_SOURCE_KEY_SIZE);
    assert!(offset_of!(GuardSourceKey, mac) == c::PAL_GUARD_SOURCE_KEY_OFF_MAC);
    assert!(offset_of!(GuardSourceKey, ip_version) == c::PAL_GUARD_SOURCE_KEY_OFF_IP_VERSION);
    assert!(offset_of!(GuardSourceKey, _pad) == c::PAL_GUARD_SOURCE_KEY_OFF_PAD);
    assert!(offset_of!(GuardSourceKey, addr) == c::PAL_GUARD_SOURCE_KEY_OFF_ADDR);

    assert!(size_of::<GuardSource>() == c::PAL_GUARD_SOURCE_SIZE);
    assert!(offset_of!(GuardSource, dhcp4) == c::PAL_GUARD_SOURCE_OFF_DHCP4);
    assert!(offset_of!(GuardSource, dhcp6) == c::PAL_GUARD_SOURCE_OFF_DHCP6);
    assert!(offset_of!(GuardSource, ra) == c::PAL_GUARD_SOURCE_OFF_RA);
    assert!(offset_of!(GuardSource, dropped) == c::PAL_GUARD_SOURCE_OFF_DROPPED);
    assert!(offset_of!(GuardSource, first_ns) == c::PAL_GUARD_SOURCE_OFF_FIRST_NS);
    assert!(offset_of!(GuardSource, last_ns) == c::PAL_GUARD_SOURCE_OFF_LAST_NS);

    assert!(size_of::<TraceConfig>() == c::PAL_TRACE_CONFIG_SIZE);
    assert!(offset_of!(TraceConfig, until_ns) == c::PAL_TRACE_CONFIG_OFF_UNTIL_NS);
    assert!(offset_of!(TraceConfig, addr) == c::PAL_TRACE_CONFIG_OFF_ADDR);
    assert!(offset_of!(TraceConfig, addr_version) == c::PAL_TRACE_CONFIG_OFF_ADDR_VERSION);
    assert!(offset_of!(TraceConfig, l4_proto) == c::PAL_TRACE_CONFIG_OFF_L4_PROTO);
    assert!(offset_of!(TraceConfig, port) == c::PAL_TRACE_CONFIG_OFF_PORT);
    assert!(offset_of!(TraceConfig, _pad) == c::PAL_TRACE_CONFIG_OFF_PAD);

    assert!(size_of::<TraceEvent>() == c::PAL_TRACE_EVENT_SIZE);
    assert!(offset_of!(TraceEvent, ts_boot_ns) == c::PAL_TRACE_EVENT_OFF_TS_BOOT_NS);
    assert!(offset_of!(TraceEvent, flow_start_ns) == c::PAL_TRACE_EVENT_OFF_FLOW_START_NS);
    assert!(offset_of!(TraceEvent, ifindex) == c::PAL_TRACE_EVENT_OFF_IFINDEX);
    assert!(offset_of!(TraceEvent, pkt_len) == c::PAL_TRACE_EVENT_OFF_PKT_LEN);
    assert!(offset_of!(TraceEvent, rule_id) == c::PAL_TRACE_EVENT_OFF_RULE_ID);
    assert!(offset_of!(TraceEvent, verdict) == c::PAL_TRACE_EVENT_OFF_VERDICT);
    assert!(offset_of!(TraceEvent, src_addr) == c::PAL_TRACE_EVENT_OFF_SRC_ADDR);
    assert!(offset_of!(TraceEvent, dst_addr) == c::PAL_TRACE_EVENT_OFF_DST_ADDR);
    assert!(offset_of!(TraceEvent, src_port) == c::PAL_TRACE_EVENT_OFF_SRC_PORT);
    assert!(offset_of!(TraceEvent, dst_port) == c::PAL_TRACE_EVENT_OFF_DST_PORT);
    assert!(offset_of!(TraceEvent, vlan_id) == c::PAL_TRACE_EVENT_OFF_VLAN_ID);
    assert!(offset_of!(TraceEvent, hook) == c::PAL_TRACE_EVENT_OFF_HOOK);
    assert!(offset_of!(TraceEvent, direction) == c::PAL_TRACE_EVENT_OFF_DIRECTION);
    assert!(offset_of!(TraceEvent, ip_version) == c::PAL_TRACE_EVENT_OFF_IP_VERSION);
    assert!(offset_of!(TraceEvent, l4_proto) == c::PAL_TRACE_EVENT_OFF_L4_PROTO);
    assert!(offset_of!(TraceEvent, decided_by) == c::PAL_TRACE_EVENT_OFF_DECIDED_BY);
    assert!(offset_of!(TraceEvent, matched) == c::PAL_TRACE_EVENT_OFF_MATCHED);
    assert!(offset_of!(TraceEvent, prefixlen) == c::PAL_TRACE_EVENT_OFF_PREFIXLEN);
    assert!(offset_of!(TraceEvent, flags) == c::PAL_TRACE_EVENT_OFF_FLAGS);
    assert!(offset_of!(TraceEvent, rings_sent) == c::PAL_TRACE_EVENT_OFF_RINGS_SENT);
    assert!(offset_of!(TraceEvent, rings_full) == c::PAL_TRACE_EVENT_OFF_RINGS_FULL);
    assert!(offset_of!(TraceEvent, rings_off) == c::PAL_TRACE_EVENT_OFF_RINGS_OFF);
    assert!(offset_of!(TraceEvent, _pad) == c::PAL_TRACE_EVENT_OFF_PAD);
};

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "tests: a panic is a test failure")]
mod tests {
    use std::mem::offset_of;

    use super::*;
    use crate::consts::{CAP_DNS, FLOW_REASON_FIN};

    /// A complete DNS record: header and payload, as the program would submit it.
    fn dns_record(payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).expect("test payload fits u32");
        let mut hdr = RecordHeader::new(Kind::Dns, len);
        hdr.ip_version = 4;
        hdr.src_addr[..4].copy_from_slice(&[198, 18, 0, 1]);
        hdr.dst_port = 53;
        let mut bytes = hdr.to_bytes().to_vec();
        bytes.extend_from_slice(payload);
        bytes
    }

    /// Overwrites the field of `RecordHeader` at `offset` with `value` (native endian).
    fn patch(bytes: &mut [u8], offset: usize, value: &[u8]) {
        bytes[offset..offset + value.len()].copy_from_slice(value);
    }

    #[test]
    fn good_record_reads() {
        let bytes = dns_record(b"\x12\x34query");
        let (hdr, payload) = RecordHeader::read(&bytes).expect("valid record");
        assert_eq!(payload, b"\x12\x34query");
        assert_eq!(hdr.kind(), Some(Kind::Dns));
        assert_eq!(hdr.dst_port, 53);
        assert_eq!(hdr.src_ip(), Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))));
        assert!(!hdr.is_truncated());
        assert_eq!(hdr.vlan(), None);
    }

    #[test]
    fn bad_magic_is_rejected() {
        let mut bytes = dns_record(b"x");
        patch(
            &mut bytes,
            offset_of!(RecordHeader, magic),
            &0xdead_beef_u32.to_ne_bytes(),
        );
        assert_eq!(
            RecordHeader::read(&bytes),
            Err(RecordError::BadMagic { found: 0xdead_beef })
        );
    }

    #[test]
    fn other_abi_version_is_rejected() {
        let mut bytes = dns_record(b"x");
        let other = ABI_VERSION + 1;
        patch(
            &mut bytes,
            offset_of!(RecordHeader, abi_version),
            &other.to_ne_bytes(),
        );
        assert_eq!(
            RecordHeader::read(&bytes),
            Err(RecordError::AbiVersion { found: other })
        );
    }

    #[test]
    fn short_record_is_rejected() {
        let bytes = dns_record(b"");
        for len in [0, 1, RecordHeader::SIZE - 1] {
            assert_eq!(
                RecordHeader::read(&bytes[..len]),
                Err(RecordError::Short {
                    what: "RecordHeader",
                    need: RecordHeader::SIZE,
                    len
                })
            );
        }
    }

    #[test]
    fn length_mismatch_is_rejected() {
        let mut bytes = dns_record(b"abcd");
        // One byte more than the header announces (e.g. a padded item).
        bytes.push(0);
        assert_eq!(
            RecordHeader::read(&bytes),
            Err(RecordError::LengthMismatch {
                header_len: RecordHeader::SIZE as u32 + 4,
                item_len: RecordHeader::SIZE + 5
            })
        );
        // Header `len` agrees with the item, `payload_len` does not.
        let mut bytes = dns_record(b"abcd");
        patch(
            &mut bytes,
            offset_of!(RecordHeader, payload_len),
            &3_u32.to_ne_bytes(),
        );
        assert_eq!(
            RecordHeader::read(&bytes),
            Err(RecordError::PayloadLength {
                payload_len: 3,
                available: 4
            })
        );
    }

    #[test]
    fn unknown_kind_is_rejected() {
        let mut bytes = dns_record(b"x");
        patch(
            &mut bytes,
            offset_of!(RecordHeader, kind),
            &99_u16.to_ne_bytes(),
        );
        assert_eq!(
            RecordHeader::read(&bytes),
            Err(RecordError::UnknownKind { kind: 99 })
        );
    }

    #[test]
    fn payload_over_cap_is_rejected() {
        let payload = vec![0; CAP_DNS as usize + 1];
        let bytes = dns_record(&payload);
        assert_eq!(
            RecordHeader::read(&bytes),
            Err(RecordError::PayloadTooLong {
                kind: 1,
                payload_len: CAP_DNS + 1,
                max: CAP_DNS
            })
        );
    }

    #[test]
    fn orig_shorter_than_payload_is_rejected() {
        let mut bytes = dns_record(b"abcd");
        patch(
            &mut bytes,
            offset_of!(RecordHeader, orig_payload_len),
            &2_u32.to_ne_bytes(),
        );
        assert_eq!(
            RecordHeader::read(&bytes),
            Err(RecordError::OrigShorter {
                payload_len: 4,
                orig_payload_len: 2
            })
        );
    }

    #[test]
    fn flow_record_round_trips() {
        let flow = FlowRecord {
            first_seen_ns: 1,
            last_seen_ns: 2,
            pkts_toserver: 3,
            pkts_toclient: 4,
            bytes_toserver: 5,
            bytes_toclient: 6,
            payload_bytes_toserver: 7,
            payload_bytes_toclient: 8,
            tcp_flags_toserver: 0x1b,
            tcp_flags_toclient: 0x12,
            end_reason: FLOW_REASON_FIN,
            flags: 0,
            icmp_type: 0,
            icmp_code: 0,
            _pad: [0; 2],
        };
        let size = u32::try_from(FlowRecord::SIZE).expect("small struct");
        let mut bytes = RecordHeader::new(Kind::FlowEnd, size).to_bytes().to_vec();
        bytes.extend_from_slice(&flow.to_bytes());
        let (hdr, payload) = RecordHeader::read(&bytes).expect("valid flow record");
        assert_eq!(hdr.kind(), Some(Kind::FlowEnd));
        assert_eq!(FlowRecord::read(payload), Ok(flow));
    }

    #[test]
    fn flow_record_size_is_exact() {
        let bytes = [0; FlowRecord::SIZE + 1];
        assert!(matches!(
            FlowRecord::read(&bytes),
            Err(RecordError::Long { .. })
        ));
        assert!(matches!(
            FlowRecord::read(&bytes[..10]),
            Err(RecordError::Short { .. })
        ));
        // A flow kind whose payload is not one FlowRecord.
        let mut bytes = RecordHeader::new(Kind::FlowStart, 8).to_bytes().to_vec();
        bytes.extend_from_slice(&[0; 8]);
        assert_eq!(
            RecordHeader::read(&bytes),
            Err(RecordError::FlowPayload {
                payload_len: 8,
                need: FlowRecord::SIZE
            })
        );
    }

    /// The field-by-field reader follows the C offsets: put a distinct value at each field's
    /// offset and read it back under the field's name.
    #[test]
    fn reader_follows_the_layout() {
        let mut bytes = [0_u8; RecordHeader::SIZE];
        patch(
            &mut bytes,
            offset_of!(RecordHeader, ifindex),
            &7_u32.to_ne_bytes(),
        );
        patch(
            &mut bytes,
            offset_of!(RecordHeader, ts_boot_ns),
            &0x0102_0304_0506_0708_u64.to_ne_bytes(),
        );
        patch(&mut bytes, offset_of!(RecordHeader, direction), &[1]);
        patch(&mut bytes, offset_of!(RecordHeader, flags), &[FLAG_VLAN]);
        patch(
            &mut bytes,
            offset_of!(RecordHeader, vlan_id),
            &100_u16.to_ne_bytes(),
        );
        patch(
            &mut bytes,
            offset_of!(RecordHeader, src_port),
            &1234_u16.to_ne_bytes(),
        );
        patch(
            &mut bytes,
            offset_of!(RecordHeader, dst_mac),
            &[1, 2, 3, 4, 5, 6],
        );
        patch(&mut bytes, offset_of!(RecordHeader, dst_addr), &[0xfd; 16]);
        patch(
            &mut bytes,
            offset_of!(RecordHeader, orig_payload_len),
            &9_u32.to_ne_bytes(),
        );
        let hdr = RecordHeader::from_bytes(&bytes).expect("exact size");
        assert_eq!(hdr.ifindex, 7);
        assert_eq!(hdr.ts_boot_ns, 0x0102_0304_0506_0708);
        assert_eq!(hdr.direction, 1);
        assert_eq!(hdr.vlan(), Some(100));
        assert_eq!(hdr.src_port, 1234);
        assert_eq!(hdr.dst_mac, [1, 2, 3, 4, 5, 6]);
        assert_eq!(hdr.dst_addr, [0xfd; 16]);
        assert_eq!(hdr.orig_payload_len, 9);
        assert_eq!(hdr.to_bytes(), bytes);

        let mut bytes = [0_u8; FlowValue::SIZE];
        patch(
            &mut bytes,
            offset_of!(FlowValue, pkts) + 8,
            &5_u64.to_ne_bytes(),
        );
        patch(&mut bytes, offset_of!(FlowValue, fin_mask), &[3]);
        patch(&mut bytes, offset_of!(FlowValue, server_mac), &[9; 6]);
        let value = FlowValue::from_bytes(&bytes).expect("exact size");
        assert_eq!(value.pkts, [0, 5]);
        assert_eq!(value.fin_mask, 3);
        assert_eq!(value.server_mac, [9; 6]);
        assert_eq!(value.to_bytes(), bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// TLS handshake capture (records.h section "TLS handshake capture")
// ---------------------------------------------------------------------------------------------

record_struct! {
    /// `struct pal_tls_seg`: the start of a `KIND_TLS` payload; the copied bytes of one TCP
    /// segment follow it.
    pub struct TlsSeg {
        /// When the kernel started following the handshake (identifies it with the tuple).
        pub conn_ns: u64,
        /// Stream offset of the first byte in this direction.
        pub offset: u32,
        /// TCP sequence number of the first byte.
        pub seq: u32,
        /// `TLS_DIR_CLIENT` or `TLS_DIR_SERVER`.
        pub dir: u8,
        /// `TLS_SEG_*` bits.
        pub flags: u8,
        /// Explicit padding, always 0.
        pub _pad: u16,
        /// Explicit padding, always 0.
        pub _pad2: u32,
    }
}

impl TlsSeg {
    /// Splits a `KIND_TLS` payload into its segment header and the bytes after it.
    pub fn read(payload: &[u8]) -> Result<(Self, &[u8]), RecordError> {
        let (head, rest) = payload
            .split_at_checked(Self::SIZE)
            .ok_or(RecordError::Short {
                what: "TlsSeg",
                need: Self::SIZE,
                len: payload.len(),
            })?;
        Ok((Self::from_bytes(head)?, rest))
    }
}

record_struct! {
    /// `struct pal_tls_conn`: value of `pal_tls_conns` (kernel-side state of a followed
    /// handshake, keyed by [`FlowKey`]).
    pub struct TlsConn {
        /// First hello seen (boot ns).
        pub start_ns: u64,
        /// TCP sequence number of stream offset 0, per direction.
        pub base: [u32; 2],
        /// Stream offset of the next record header, per direction.
        pub next_rec: [u32; 2],
        /// The client is the key's `addr_lo` side.
        pub client_is_lo: u8,
        /// `TLS_ST_*` per direction.
        pub state: [u8; 2],
        /// Explicit padding, always 0.
        pub _pad: [u8; 5],
    }
}

const _: () = {
    use std::mem::offset_of;

    assert!(size_of::<TlsSeg>() == c::PAL_TLS_SEG_SIZE);
    assert!(offset_of!(TlsSeg, conn_ns) == c::PAL_TLS_SEG_OFF_CONN_NS);
    assert!(offset_of!(TlsSeg, offset) == c::PAL_TLS_SEG_OFF_OFFSET);
    assert!(offset_of!(TlsSeg, seq) == c::PAL_TLS_SEG_OFF_SEQ);
    assert!(offset_of!(TlsSeg, dir) == c::PAL_TLS_SEG_OFF_DIR);
    assert!(offset_of!(TlsSeg, flags) == c::PAL_TLS_SEG_OFF_FLAGS);
    assert!(offset_of!(TlsSeg, _pad) == c::PAL_TLS_SEG_OFF_PAD);
    assert!(offset_of!(TlsSeg, _pad2) == c::PAL_TLS_SEG_OFF_PAD2);

    assert!(size_of::<TlsConn>() == c::PAL_TLS_CONN_SIZE);
    assert!(offset_of!(TlsConn, start_ns) == c::PAL_TLS_CONN_OFF_START_NS);
    assert!(offset_of!(TlsConn, base) == c::PAL_TLS_CONN_OFF_BASE);
    assert!(offset_of!(TlsConn, next_rec) == c::PAL_TLS_CONN_OFF_NEXT_REC);
    assert!(offset_of!(TlsConn, client_is_lo) == c::PAL_TLS_CONN_OFF_CLIENT_IS_LO);
    assert!(offset_of!(TlsConn, state) == c::PAL_TLS_CONN_OFF_STATE);
    assert!(offset_of!(TlsConn, _pad) == c::PAL_TLS_CONN_OFF_PAD);
};
