/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Adaptive admission: what the controller (sluice run) decided for a
 * service — breaker state, reject probability, in-flight limits — applied
 * to new work. Fail open: control values count only while the controller's
 * heartbeat is fresh; otherwise the static policy alone governs.
 */
#ifndef SLUICE_BPF_ADAPTIVE_H
#define SLUICE_BPF_ADAPTIVE_H

#include "buckets.h"

/* Whether a heartbeat is recent: set, and no older than the policy's
 * control_stale_ms at `now` (the precise clock, which the controller's
 * heartbeat is written in). */
static __always_inline int heartbeat_fresh(const struct policy_view *pv, __u64 heartbeat_ns, __u64 now)
{
	__u32 zero = 0;
	void *info_map = slot_map(&pol_info, pv->slot);
	struct sl_policy_info *info = info_map ? bpf_map_lookup_elem(info_map, &zero) : 0;
	__u64 bound = (info ? info->control_stale_ms : SL_DEFAULT_CONTROL_STALE_MS) * 1000000ull;

	return heartbeat_ns && now <= heartbeat_ns + bound;
}

/*
 * Whether the controller is alive. The precise clock costs more than the
 * rest of a refusal (bench packet_cost, shed_adaptive), so each CPU judges
 * the heartbeat once per tick and per heartbeat value and keeps the
 * verdict: a new or cleared heartbeat is seen at once, a controller that
 * dies at most one tick later than its bound. Injected clocks (tests) do
 * not move jiffies, so they are judged every time.
 */
static __always_inline int controller_alive(const struct policy_view *pv)
{
	__u32 zero = 0;
	struct sl_control_header *hdr = bpf_map_lookup_elem(&ctl_header, &zero);

	if (!hdr || !hdr->heartbeat_ns)
		return 0;
	__u64 heartbeat_ns = hdr->heartbeat_ns;
	struct heartbeat_verdict *verdict = bpf_map_lookup_elem(&heartbeat_verdicts, &zero);
	if (sl_config.fake_clock || !verdict)
		return heartbeat_fresh(pv, heartbeat_ns, precise_clock());
	__u64 tick = bpf_jiffies64();
	if (verdict->tick != tick || verdict->heartbeat_ns != heartbeat_ns) {
		verdict->fresh = heartbeat_fresh(pv, heartbeat_ns, precise_clock());
		verdict->tick = tick;
		verdict->heartbeat_ns = heartbeat_ns;
	}
	return verdict->fresh;
}

/* The service's control values if the controller is alive, else 0. */
static __always_inline struct sl_control *fresh_control(const struct policy_view *pv, __u32 service_id)
{
	if (!controller_alive(pv)) {
		count(SL_G_CONTROL_STALE);
		return 0;
	}
	return bpf_map_lookup_elem(&ctl_services, &service_id);
}

/*
 * Adaptive admission comes in two steps around the static buckets: first
 * the checks that take nothing (open breaker, reject probability, in-flight
 * limit), then, for work every other check admitted, a half-open breaker's
 * probe. A probe is used up only by work that reaches the service, so
 * refused work (spoofed SYNs over a tenant's bucket, say) cannot spend the
 * few probes that decide whether the breaker closes.
 */
struct adaptive_gate {
	struct sl_control *ctl;       /* 0: no live controller, nothing to apply */
	struct sl_obs_shared *shared;
};

/* May one more unit of work (a new connection or request) of `level` start? */
static __always_inline enum sl_reason adaptive_check(const struct policy_view *pv, __u32 service_id, __u32 level,
						     struct adaptive_gate *gate)
{
	gate->ctl = fresh_control(pv, service_id);
	gate->shared = bpf_map_lookup_elem(&obs_shared, &service_id);
	struct sl_control *ctl = gate->ctl;
	struct sl_obs_shared *shared = gate->shared;

	if (!ctl || !shared)
		return SL_R_ADMITTED;
	if (ctl->breaker_state == SL_BREAKER_OPEN)
		return SL_R_BREAKER;
	if (ctl->reject_p && bpf_get_prandom_u32() < ctl->reject_p)
		return SL_R_THROTTLE;
	if (level >= SL_LEVELS)
		level = SL_LEVELS - 1;
	__u32 limit = ctl->max_inflight[level];
	if (limit && shared->inflight - ctl->inflight_bias >= (__s64)limit)
		return SL_R_INFLIGHT;
	return SL_R_ADMITTED;
}

/* The last step: while the breaker is half-open, admitted work is a probe. */
static __always_inline enum sl_reason adaptive_claim_probe(const struct adaptive_gate *gate)
{
	struct sl_control *ctl = gate->ctl;
	struct sl_obs_shared *shared = gate->shared;

	if (ctl && shared && ctl->breaker_state == SL_BREAKER_HALF_OPEN &&
	    __sync_fetch_and_add(&shared->probes_admitted, 1) >= ctl->probe_limit)
		return SL_R_BREAKER;
	return SL_R_ADMITTED;
}

/* The priority level of a tenant (0 core .. 2 shed first). */
static __always_inline __u32 tenant_level(const struct policy_view *pv, __u32 tenant_id)
{
	void *tenants = slot_map(&pol_tenants, pv->slot);
	struct sl_tenant *t = tenants ? bpf_map_lookup_elem(tenants, &tenant_id) : 0;

	return t ? t->level : 1;
}

#endif /* SLUICE_BPF_ADAPTIVE_H */
