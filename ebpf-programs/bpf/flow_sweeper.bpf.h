/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * flow_sweeper.bpf.h: the flow sweeper, a kernel timer that walks the
 * shards of pal_flows (flows.bpf.h), one per tick, and reports ends (idle,
 * closed TCP, or evicted to make room), seeded starts and periodic updates;
 * its maps pal_flow_config (set by the supervisor), pal_flow_sweep (what the
 * last walk of each shard saw) and pal_flow_timer; and flow_sweeper_arm(),
 * the body of the program pal_flow_timer_arm.
 *
 * Included by palisade.bpf.c.
 */
#ifndef PALISADE_FLOW_SWEEPER_BPF_H
#define PALISADE_FLOW_SWEEPER_BPF_H

#include <linux/errno.h>

#include "flows.bpf.h"

/* <linux/time.h> clock id (bpf_timer_init takes CLOCK_MONOTONIC, _REALTIME or _BOOTTIME). */
#define PAL_CLOCK_BOOTTIME 7

/* Slot 0: flow timeouts and sweeper period, written by the supervisor. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pal_flow_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_flow_config SEC(".maps");

/* Slot n: what the sweeper saw on its latest walk of shard n. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PAL_FLOW_SHARDS);
	__type(key, __u32);
	__type(value, struct pal_flow_sweep);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_flow_sweep SEC(".maps");

/*
 * The sweeper's timer. The map is pinned, so the timer keeps running while
 * no supervisor does (a timer is cancelled when its map's last user
 * reference goes). Its value carries BTF: the kernel finds the bpf_timer
 * through it.
 */
struct pal_flow_timer {
	struct bpf_timer timer;
	__u32 next_shard; /* the shard the next tick walks */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pal_flow_timer);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_flow_timer SEC(".maps");

/*
 * A kernel timer walks every shard of pal_flows once per sweep_interval_ns
 * (pal_flow_config), one shard per tick (ticks every sweep_interval_ns /
 * PAL_FLOW_SHARDS), so one walk costs a shard, not the whole table:
 *   - a closed TCP flow (FIN both ways, or RST) whose last packet is
 *     PAL_FLOW_CLOSE_LINGER_NS old is deleted and its end record (reason
 *     fin or rst) written;
 *   - any other flow idle for longer than its protocol's timeout is
 *     deleted and its end record (reason timeout) written (one end record
 *     per flow: only the caller whose delete succeeds reports);
 *   - in emergency (the shard's previous walk found emergency_live flows or
 *     more: it is nearly full), a flow idle for longer than its emergency
 *     timeout is deleted and its end record (reason evicted) written;
 *   - a seeded flow (PAL_FLOW_F_ANNOUNCE) gets its start record;
 *   - a flow whose last start/update record is update_interval_ns old gets
 *     an update record.
 * Idle expiry thus needs neither the workers (their FDs are read-only in
 * spirit: they never write maps) nor a running supervisor. The walk runs in
 * softirq context; its cost is linear in the shard's live flows and is
 * reported in pal_flow_sweep[shard].walk_ns.
 *
 * Race, accepted and documented: a packet that arrives while the sweeper
 * deletes its (idle) flow updates the deleted entry, and its next packet
 * starts a new flow.
 */
/*
 * How long a closed TCP flow (FIN both ways, or RST) stays after its last
 * packet, counting the final ACKs and retransmissions, before the sweeper
 * reports its end (capped by the TCP idle timeout).
 */
#define PAL_FLOW_CLOSE_LINGER_NS 1000000000ULL

/* Delay of the first walk after (re)arming. */
#define PAL_SWEEP_FIRST_NS 1000000ULL

struct pal_sweep_ctx {
	__u64 now_ns;
	__u64 idle_ns;
	__u64 tcp_idle_ns;
	__u64 update_ns;
	__u64 linger_ns;
	__u64 evict_idle_ns;     /* emergency: 0, or UDP/ICMP emergency timeout */
	__u64 evict_tcp_idle_ns; /* emergency: 0, or TCP emergency timeout */
	__u64 live;
};

static long sweep_one(void *map, struct pal_flow_key *key, struct pal_flow_value *val,
		      struct pal_sweep_ctx *ctx)
{
	int tcp = key->l4_proto == IPPROTO_TCP;
	__u64 idle = tcp ? ctx->tcp_idle_ns : ctx->idle_ns;
	__u64 evict = tcp ? ctx->evict_tcp_idle_ns : ctx->evict_idle_ns;
	__u64 last = val->last_seen_ns;

	if (val->flags & PAL_FLOW_F_ANNOUNCE) {
		val->flags &= ~PAL_FLOW_F_ANNOUNCE;
		val->last_report_ns = ctx->now_ns;
		flow_stat_inc(PAL_FLOW_STAT_SEEDED);
		emit_flow(key, val, PAL_KIND_FLOW_START, PAL_FLOW_REASON_NONE, ctx->now_ns);
	}
	if (tcp && flow_closed(val)) {
		if (last < ctx->now_ns && ctx->now_ns - last > ctx->linger_ns) {
			flow_end(map, key, val, flow_close_reason(val), ctx->now_ns);
			return 0;
		}
	} else if (idle && last < ctx->now_ns && ctx->now_ns - last > idle) {
		flow_end(map, key, val, PAL_FLOW_REASON_TIMEOUT, ctx->now_ns);
		return 0;
	} else if (evict && last < ctx->now_ns && ctx->now_ns - last > evict) {
		flow_end(map, key, val, PAL_FLOW_REASON_EVICTED, ctx->now_ns);
		return 0;
	}
	ctx->live++;
	if (ctx->update_ns && ctx->now_ns - val->last_report_ns >= ctx->update_ns) {
		val->last_report_ns = ctx->now_ns;
		flow_stat_inc(PAL_FLOW_STAT_UPDATES);
		emit_flow(key, val, PAL_KIND_FLOW_UPDATE, PAL_FLOW_REASON_NONE, ctx->now_ns);
	}
	return 0;
}

static int flow_sweep(void *map, __u32 *key, struct pal_flow_timer *t)
{
	__u32 zero = 0;
	__u32 shard = t->next_shard & (PAL_FLOW_SHARDS - 1);
	struct pal_flow_config *cfg = bpf_map_lookup_elem(&pal_flow_config, &zero);
	struct pal_flow_sweep *out = bpf_map_lookup_elem(&pal_flow_sweep, &shard);
	struct pal_sweep_ctx ctx = {};
	void *table;

	if (!cfg || !out || !cfg->sweep_interval_ns)
		return 0; /* stopped: the supervisor re-arms it */
	t->next_shard = (shard + 1) & (PAL_FLOW_SHARDS - 1);
	ctx.now_ns = bpf_ktime_get_boot_ns();
	pal_boot_off_ns = ctx.now_ns - bpf_ktime_get_ns();
	ctx.idle_ns = cfg->idle_timeout_ns;
	ctx.tcp_idle_ns = cfg->tcp_idle_timeout_ns;
	ctx.update_ns = cfg->update_interval_ns;
	ctx.linger_ns = PAL_FLOW_CLOSE_LINGER_NS < ctx.tcp_idle_ns ? PAL_FLOW_CLOSE_LINGER_NS
								     : ctx.tcp_idle_ns;
	if (cfg->emergency_live && out->live >= cfg->emergency_live) {
		ctx.evict_idle_ns = cfg->emergency_idle_ns;
		ctx.evict_tcp_idle_ns = cfg->emergency_tcp_idle_ns;
		flow_stat_inc(PAL_FLOW_STAT_EMERGENCY);
	}
	table = bpf_map_lookup_elem(&pal_flows, &shard);
	if (table)
		bpf_for_each_map_elem(table, sweep_one, &ctx, 0);

	out->sweeps++;
	out->last_sweep_ns = ctx.now_ns;
	out->live = ctx.live;
	out->walk_ns = bpf_ktime_get_boot_ns() - ctx.now_ns;
	bpf_timer_start(&t->timer, cfg->sweep_interval_ns / PAL_FLOW_SHARDS, 0);
	return 0;
}

/*
 * Arms the sweeper (program pal_flow_timer_arm): run by the supervisor with
 * BPF_PROG_TEST_RUN after every load (never attached). Initialising an armed
 * timer fails with EBUSY and is fine; setting the callback again points the
 * timer at this program's code, so an upgraded object takes over a pinned
 * timer. Returns 0 on success, or the step that failed.
 */
static __always_inline int flow_sweeper_arm(void)
{
	__u32 zero = 0;
	struct pal_flow_timer *t = bpf_map_lookup_elem(&pal_flow_timer, &zero);
	struct pal_flow_config *cfg = bpf_map_lookup_elem(&pal_flow_config, &zero);
	long err;

	/* pkt_clock()'s offset, before any packet could ask (a sweeper tick keeps it). */
	pal_boot_off_ns = bpf_ktime_get_boot_ns() - bpf_ktime_get_ns();
	if (!t || !cfg)
		return 1;
	if (!cfg->sweep_interval_ns)
		return 2;
	err = bpf_timer_init(&t->timer, &pal_flow_timer, PAL_CLOCK_BOOTTIME);
	if (err && err != -EBUSY)
		return 3;
	if (bpf_timer_set_callback(&t->timer, flow_sweep))
		return 4;
	/* First walk at once (it announces freshly seeded flows), then every period. */
	if (bpf_timer_start(&t->timer, PAL_SWEEP_FIRST_NS, 0))
		return 5;
	return 0;
}

/*
 * Ends open flows with reason shutdown (program pal_flow_end_all): run by the supervisor with
 * BPF_PROG_TEST_RUN, never attached, once the observer is detached and before the table goes
 * away (it stops with --detach-on-exit), so that no flow vanishes without its end record.
 * The test frame carries struct pal_flow_end_args: one shard per run and at most `budget`
 * flows (PAL_FLOW_END_BATCH), so that rb_flow never overflows; the supervisor runs it again,
 * giving the flow worker time to drain, until a shard returns less than its budget. Returns
 * the number of flows this run ended.
 *
 * The budget comes from the frame rather than a constant on purpose: compared with a
 * constant, the count makes every callback state distinct and the verifier walks the
 * callback thousands of times.
 */
struct pal_end_all_ctx {
	__u64 now_ns;
	__u32 ended;
	__u32 budget;
};

static long end_one(void *map, struct pal_flow_key *key, struct pal_flow_value *val,
		    struct pal_end_all_ctx *ctx)
{
	flow_end(map, key, val, PAL_FLOW_REASON_SHUTDOWN, ctx->now_ns);
	ctx->ended++;
	return ctx->ended >= ctx->budget; /* 1 stops the walk */
}

static __always_inline __u32 flow_end_all(struct __sk_buff *skb)
{
	struct pal_flow_end_args args;
	struct pal_end_all_ctx ctx = {};
	void *table;

	if (bpf_skb_load_bytes(skb, 0, &args, sizeof(args)))
		return 0;
	table = bpf_map_lookup_elem(&pal_flows, &args.shard);
	if (!table || !args.budget)
		return 0;
	ctx.now_ns = bpf_ktime_get_boot_ns();
	ctx.budget = args.budget;
	bpf_for_each_map_elem(table, end_one, &ctx, 0);
	return ctx.ended;
}

#endif /* PALISADE_FLOW_SWEEPER_BPF_H */
