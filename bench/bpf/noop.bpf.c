/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * noop.bpf.c: the cheapest possible TC classifier. The benchmark attaches it
 * (TCX, ingress and egress, like Palisade) to measure what the hook itself
 * costs, so that Palisade's own per-packet work can be told apart from it.
 * bench_xdp_noop does the same for the XDP hooks (bench/ip-policy).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("classifier")
int bench_noop(struct __sk_buff *skb)
{
	return TC_ACT_UNSPEC;
}

/* The cheapest XDP program: the reference for an XDP hook (native or generic). */
SEC("xdp")
int bench_xdp_noop(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
