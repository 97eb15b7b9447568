/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * palisade.bpf.c: Palisade's eBPF object (one translation unit). This file
 * defines the program entry points; what they do lives in the headers it
 * includes, one concern each. Section, program and map names are what user
 * space looks up (palisade_abi::names) and what maps are pinned as: keep them.
 *
 * Programs:
 *   pal_tc_ingress, pal_tc_egress   the observer: TC classifiers on ingress
 *                                   and egress of every monitored interface
 *   pal_flow_timer_arm              arms the flow sweeper (run with
 *                                   BPF_PROG_TEST_RUN after each load, never
 *                                   attached)
 *   pal_flow_end_all                ends open flows with their record, a batch
 *                                   of one shard per run (BPF_PROG_TEST_RUN
 *                                   before the table goes away, never attached)
 *   pal_xdp_block                   IP policy, XDP
 *   pal_tc_block_ingress,           IP policy, TCX, attached before the
 *   pal_tc_block_egress             observer
 *
 * The observer leaves every packet's fate alone (TC_ACT_UNSPEC, which TCX
 * reads as TCX_NEXT) except DNS over UDP blocked by the domain policy
 * (answered with NXDOMAIN via bpf_redirect, or dropped) and the packets of
 * connections the TLS policy cut (dropped). Per packet it:
 *   1. counts the packet (pal_stats, global group, PAL_STAT_RECORDS);
 *   2. parses Ethernet (up to two VLAN tags: 802.1Q, or QinQ; in the frame or
 *      hardware-accelerated), IPv4 or IPv6 (up to PAL_IPV6_MAX_EXT extension
 *      headers), then TCP, UDP, ICMP or ICMPv6;
 *   3. accounts the packet to its flow in pal_flows and reports a flow's
 *      start to rb_flow (and the end of a closed TCP flow whose ports a new
 *      SYN reuses). A kernel timer (the sweeper) reports the other ends
 *      (idle flows; TCP flows closed by FIN both ways or RST) and long flows.
 *      The flow's first_seen_ns goes into every record made for the packet
 *      (flow_start_ns), so its events join the flow's (EVE flow_id);
 *   4. copies DNS, DHCP and TLS-handshake payload prefixes into their ring
 *      buffers, one worker per ring, and ARP, neighbour discovery and router
 *      advertisements to the DHCP worker's (neigh_capture.bpf.h);
 *   5. for DNS over UDP with enforcement on, applies the domain policy;
 *   6. drops the packets of a connection the TLS policy cut (flow_block.bpf.h:
 *      a rule with `block` matched its hello), either way;
 *   7. with the DHCP guard dropping, drops DHCP server messages and router
 *      advertisements from senders not on its allow-list (guard.bpf.h).
 * While a packet trace runs (`palisade trace`), every program also reports
 * the packets its filter matches to rb_trace (trace.bpf.h).
 *
 * Headers, in include order (each one also includes what it needs):
 *   common.bpf.h        UAPI and libbpf headers, records.h, the rings,
 *                       pal_stats, ring_output(), rule_hit()
 *   l2.bpf.h            load_hdr(); the one Ethernet/VLAN/QinQ walk
 *   pkt.bpf.h           the observer's parser: struct pal_pkt, parse()
 *   record.bpf.h        per-CPU scratch, record headers, emit_payload()
 *   dns_policy.bpf.h    DNS domain policy: maps, name matching, verdict
 *   dns_rewrite.bpf.h   DNS verdicts carried out: NXDOMAIN rewrite, drop
 *   dns_capture.bpf.h   DNS records, pal_dns_udp()
 *   guard.bpf.h         the DHCP guard: allow-list, guard_check()
 *   neigh_capture.bpf.h ARP, NS/NA and RA records, arp_capture(), nd_capture()
 *   capture.bpf.h       classify_payload(): DNS, DHCP, TLS to their rings
 *   flows.bpf.h         the flow table: flow_update(), flow records
 *   flow_sweeper.bpf.h  the sweeper timer, flow_sweeper_arm()
 *   flow_block.bpf.h    connections the TLS policy cut (asked by flow_update())
 *   trace.bpf.h         packet tracing: rb_trace, the filter, trace_begin()
 *   ip_policy.bpf.h     IP policy: LPM tries, ip_xdp(), ip_tc()
 */
#include "common.bpf.h"
#include "l2.bpf.h"
#include "pkt.bpf.h"
#include "record.bpf.h"
#include "dns_policy.bpf.h"
#include "dns_rewrite.bpf.h"
#include "dns_capture.bpf.h"
#include "capture.bpf.h"
#include "flows.bpf.h"
#include "flow_sweeper.bpf.h"
#include "trace.bpf.h"
#include "ip_policy.bpf.h"

/*
 * The observer, per packet: steps 1-7 above; a packet a running trace
 * matches also gets its trace event (trace.bpf.h).
 */
static __always_inline int pal_observe(struct __sk_buff *skb, __u8 direction)
{
	struct pal_pkt p = {};
	int verdict;

	stat_inc(PAL_STATS_GLOBAL, PAL_STAT_RECORDS);
	p.direction = direction;
	switch (parse(skb, &p)) {
	case PAL_PARSE_OK:
		break;
	case PAL_PARSE_SHORT:
		stat_inc(PAL_STATS_GLOBAL, PAL_STAT_NOT_PARSED);
		return TC_ACT_UNSPEC;
	case PAL_PARSE_ARP:
		/* No flow: ARP only feeds the DHCP worker's IP-to-MAC bindings (its record's time is exact). */
		arp_capture(skb, &p);
		return TC_ACT_UNSPEC;
	default:
		return TC_ACT_UNSPEC;
	}
	if (record_bound(&p))
		pkt_time(&p);
	else
		p.now_ns = pkt_clock();
	p.segs = skb->gso_segs ? skb->gso_segs : 1;
	flow_sizes(skb, &p);
	p.traced = trace_begin(&p);

	/*
	 * The flow first: its identity goes into the records classify_payload()
	 * makes. The packet is accounted as it arrived, also when the DNS
	 * policy then rewrites or drops it (as before the reorder).
	 */
	p.flow_start_ns = flow_update(skb, &p);
	if (p.flow_blocked) {
		flow_stat_inc(PAL_FLOW_STAT_BLOCKED);
		if (p.traced) {
			trace_tls_cut(&p);
			trace_observed(skb, &p, TC_ACT_SHOT);
		}
		return TC_ACT_SHOT;
	}
	verdict = classify_payload(skb, &p);
	if (p.traced)
		trace_observed(skb, &p, verdict);
	return verdict;
}

SEC("classifier")
int pal_flow_timer_arm(struct __sk_buff *skb)
{
	return flow_sweeper_arm();
}

SEC("classifier")
int pal_flow_end_all(struct __sk_buff *skb)
{
	return flow_end_all(skb);
}

SEC("xdp")
int pal_xdp_block(struct xdp_md *ctx)
{
	return ip_xdp(ctx);
}

SEC("classifier")
int pal_tc_block_ingress(struct __sk_buff *skb)
{
	return ip_tc(skb, PAL_DIR_INGRESS);
}

SEC("classifier")
int pal_tc_block_egress(struct __sk_buff *skb)
{
	return ip_tc(skb, PAL_DIR_EGRESS);
}

SEC("classifier")
int pal_tc_ingress(struct __sk_buff *skb)
{
	return pal_observe(skb, PAL_DIR_INGRESS);
}

SEC("classifier")
int pal_tc_egress(struct __sk_buff *skb)
{
	return pal_observe(skb, PAL_DIR_EGRESS);
}

char LICENSE[] SEC("license") = "GPL";
