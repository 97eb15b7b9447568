/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * records.h: the one definition of every record and map value shared between
 * Palisade's eBPF programs and user space. The Rust mirrors live in
 * ebpf-programs/src/records.rs and are checked against this header at compile
 * time (build.rs compiles a probe with the host C compiler that reports
 * sizeof/offsetof of every struct and field below).
 *
 * Rules: fixed-width types only, no bool, no implicit padding (every gap is an
 * explicit _pad field), multi-byte integers in host byte order unless a field
 * says otherwise. Any layout change bumps PAL_ABI_VERSION, which is part of
 * the pin directory name, so new code never binds to an old map layout.
 */
#ifndef PALISADE_RECORDS_H
#define PALISADE_RECORDS_H

#include <linux/types.h>

#define PAL_ABI_VERSION 1
/* "PALR" read as a little-endian u32. */
#define PAL_RECORD_MAGIC 0x524c4150u

/* Record kinds (pal_record_hdr.kind). */
#define PAL_KIND_DNS 1
#define PAL_KIND_DHCP 2
#define PAL_KIND_TLS 3
#define PAL_KIND_FLOW_START 4
#define PAL_KIND_FLOW_END 5

/* Direction relative to the interface the program is attached to. */
#define PAL_DIR_INGRESS 0
#define PAL_DIR_EGRESS 1

/* pal_record_hdr.flags */
#define PAL_FLAG_TRUNCATED 0x01 /* payload_len < orig_payload_len */
#define PAL_FLAG_VLAN 0x02      /* vlan_id is valid */

/* Ring buffers, one per worker; also the first index of pal_stats keys. */
#define PAL_RING_DNS 0
#define PAL_RING_DHCP 1
#define PAL_RING_TLS 2
#define PAL_RING_FLOW 3
#define PAL_RING_COUNT 4
/* Counters that belong to no ring (whole-packet classification). */
#define PAL_STATS_GLOBAL 4

/* Counter slots (pal_stats key = group * PAL_STAT_COUNT + slot). */
#define PAL_STAT_RECORDS 0    /* records written to the ring */
#define PAL_STAT_RING_FULL 1  /* record dropped: ring buffer had no room */
#define PAL_STAT_TRUNCATED 2  /* record written, payload cut at the capture cap */
#define PAL_STAT_NOT_PARSED 3 /* packet matched but headers could not be read */
#define PAL_STAT_MAP_FULL 4   /* flow table insert failed */
#define PAL_STAT_COUNT 5
#define PAL_STATS_ENTRIES ((PAL_STATS_GLOBAL + 1) * PAL_STAT_COUNT)
/* In the global group: PAL_STAT_RECORDS counts packets seen. */

/* Capture caps: payload bytes copied per record, by kind. Powers of two. */
#define PAL_CAP_DNS 512
#define PAL_CAP_DHCP 1024
#define PAL_CAP_TLS 2048
#define PAL_CAP_MAX 2048

/* Flow end reasons (pal_flow_record.end_reason). */
#define PAL_FLOW_REASON_NONE 0 /* start record */
#define PAL_FLOW_REASON_FIN 1
#define PAL_FLOW_REASON_RST 2

/*
 * Every ring-buffer record starts with this header; payload_len bytes of
 * payload follow it. For DNS/DHCP/TLS the payload is the L4 payload prefix;
 * for flow records it is one struct pal_flow_record.
 */
struct pal_record_hdr {
	__u32 magic;            /* PAL_RECORD_MAGIC: rejects garbage early */
	__u16 abi_version;      /* PAL_ABI_VERSION of the program that wrote it */
	__u16 kind;             /* PAL_KIND_* */
	__u32 len;              /* total length: header + payload_len */
	__u32 ifindex;          /* interface the packet was seen on */
	__u64 ts_boot_ns;       /* bpf_ktime_get_boot_ns() at capture */
	__u8 direction;         /* PAL_DIR_* */
	__u8 ip_version;        /* 4 or 6 */
	__u8 l4_proto;          /* IPPROTO_* */
	__u8 flags;             /* PAL_FLAG_* */
	__u16 vlan_id;          /* 802.1Q VID when PAL_FLAG_VLAN */
	__u16 src_port;         /* host order; 0 for ICMP */
	__u16 dst_port;         /* host order; 0 for ICMP */
	__u8 src_mac[6];        /* Ethernet source */
	__u8 dst_mac[6];        /* Ethernet destination */
	__u16 _pad0;            /* explicit padding, always 0 */
	__u8 src_addr[16];      /* network order; IPv4 in the first 4 bytes */
	__u8 dst_addr[16];      /* network order; IPv4 in the first 4 bytes */
	__u32 payload_len;      /* bytes of payload following this header */
	__u32 orig_payload_len; /* payload length on the wire (>= payload_len) */
};

/*
 * Payload of PAL_KIND_FLOW_START / PAL_KIND_FLOW_END. The header's
 * addresses/ports/MACs are oriented client (first packet's sender) -> server;
 * its ts_boot_ns, ifindex and direction are those of the packet that produced
 * the record (the first packet, or the RST / second FIN).
 */
struct pal_flow_record {
	__u64 first_seen_ns;     /* boot ns of the first packet */
	__u64 last_seen_ns;      /* boot ns of the latest packet */
	__u64 pkts_toserver;
	__u64 pkts_toclient;
	__u64 bytes_toserver;    /* L3 bytes (IP header included) */
	__u64 bytes_toclient;
	__u8 tcp_flags_toserver; /* OR of TCP flags seen client -> server */
	__u8 tcp_flags_toclient;
	__u8 end_reason;         /* PAL_FLOW_REASON_* */
	__u8 _pad[5];
};

/*
 * Key of the pal_flows LRU hash: the direction-normalized 5-tuple. Endpoints
 * are ordered by address (as a 128-bit big-endian number), then by port.
 */
struct pal_flow_key {
	__u8 addr_lo[16];  /* the numerically lower (addr, port) endpoint */
	__u8 addr_hi[16];
	__u16 port_lo;
	__u16 port_hi;
	__u8 l4_proto;
	__u8 ip_version;
	__u16 vlan_id;     /* 0 when untagged */
};

/*
 * Value of the pal_flows LRU hash. tcp_flags[2], client_is_lo and fin_mask
 * form one aligned 32-bit word that the program updates with one atomic OR
 * (palisade.bpf.c asserts this at compile time): keep them together.
 */
struct pal_flow_value {
	__u64 first_seen_ns;
	__u64 last_seen_ns;
	__u64 pkts[2];       /* [0] client -> server, [1] server -> client */
	__u64 bytes[2];
	__u8 tcp_flags[2];
	__u8 client_is_lo;   /* 1 if the client is the key's addr_lo side */
	__u8 fin_mask;       /* bit 0: FIN from client, bit 1: FIN from server */
	__u32 ifindex;
	__u8 client_mac[6];
	__u8 server_mac[6];
	__u32 _pad;
};

#endif /* PALISADE_RECORDS_H */
