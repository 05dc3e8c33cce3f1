/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Static admission: GCRA buckets per (service, tenant) and per source, and
 * the clock they run on.
 */
#ifndef SLUICE_BPF_BUCKETS_H
#define SLUICE_BPF_BUCKETS_H

#include "sluice/gcra.h"
#include "policy_view.h"

const volatile struct sl_prog_config sl_config = {};

/* Tests: the injected "now", else 0 when there is none. */
static __always_inline __u64 fake_now(void)
{
	__u32 zero = 0;
	__u64 *now = bpf_map_lookup_elem(&fake_clock, &zero);

	return now ? *now : 0;
}

/*
 * "Now" for the buckets, in nanoseconds at tick resolution: jiffies cost
 * about 1 ns to read where bpf_ktime_get_ns costs 30, more than the rest of
 * the admission path. A GCRA stays exact over time with a coarse clock (a
 * tick releases rate x tick units at once, never more in total); this clock
 * is only compared with itself, never with user-space times.
 */
static __always_inline __u64 bucket_clock(void)
{
	if (sl_config.fake_clock)
		return fake_now();
	if (sl_config.ns_per_tick)
		return bpf_jiffies64() * sl_config.ns_per_tick;
	return bpf_ktime_get_ns();
}

/* CLOCK_MONOTONIC, to time requests and to compare with the controller's
 * heartbeat. Read only for services the controller governs. */
static __always_inline __u64 precise_clock(void)
{
	return sl_config.fake_clock ? fake_now() : bpf_ktime_get_ns();
}

/* A per-source bucket, created on first use (the LRU evicts idle ones). */
static __always_inline struct sl_bucket *source_bucket(const struct sl_source_key *key)
{
	struct sl_bucket *b = bpf_map_lookup_elem(&source_buckets, key);

	if (b)
		return b;
	struct sl_bucket fresh = {}; /* TAT 0: the bucket starts full */
	bpf_map_update_elem(&source_buckets, key, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&source_buckets, key);
}

/*
 * Take one unit from a GCRA bucket with compare-and-swap, so CPUs racing on
 * one bucket never admit more than the bucket allows. A lost race re-reads
 * the TAT and decides again; the bound only exists for the verifier.
 */
static __always_inline int bucket_take(struct sl_bucket *b, __u64 now, __u64 interval_ns, __u64 tolerance_ns)
{
	__u64 tat = b->tat_ns;

#pragma unroll
	for (int attempt = 0; attempt < 8; attempt++) {
		__u64 next;
		if (!sl_gcra_conforms(tat, now, interval_ns, tolerance_ns, &next))
			return 0;
		__u64 seen = __sync_val_compare_and_swap(&b->tat_ns, tat, next);
		if (seen == tat)
			return 1;
		tat = seen;
	}
	return 0;
}

/* Static admission: the per-source bucket of `saddr` (IPv4-mapped for
 * IPv4; read only for a service with per-source limits, which also costs a
 * read of its whole entry), then the (service, tenant) bucket, at the
 * tenant's own rate if it has one. */
static __always_inline enum sl_reason admit_static(const struct policy_view *pv, const struct sl_admission *adm,
						   __u32 service_id, __u32 pair, __u8 family, const __u8 saddr[16])
{
	__u64 now = bucket_clock();

	if (adm->flags & SL_SVC_PER_SOURCE) {
		const struct sl_service *svc = service_get(pv, service_id);
		struct sl_source_key key = { .service_id = service_id, .family = family };
		__builtin_memcpy(key.addr, saddr, 16);
		struct sl_bucket *b = svc ? source_bucket(&key) : 0;
		if (b && !bucket_take(b, now, svc->per_source.interval_ns, svc->per_source.tolerance_ns))
			return SL_R_SOURCE_LIMIT;
	}

	__u64 interval_ns = adm->interval_ns, tolerance_ns = adm->tolerance_ns;
	if (adm->flags & SL_SVC_TENANT_LIMITS) {
		void *limits = slot_map(&pol_limits, pv->slot);
		struct sl_rate *own = limits ? bpf_map_lookup_elem(limits, &pair) : 0;
		if (own && own->interval_ns) {
			interval_ns = own->interval_ns;
			tolerance_ns = own->tolerance_ns;
		}
	}
	if (interval_ns) {
		struct sl_bucket *b = bpf_map_lookup_elem(&pair_buckets, &pair);
		if (b && !bucket_take(b, now, interval_ns, tolerance_ns))
			return SL_R_TENANT_LIMIT;
	}
	return SL_R_ADMITTED;
}

#endif /* SLUICE_BPF_BUCKETS_H */
