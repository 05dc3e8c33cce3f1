// SPDX-License-Identifier: GPL-2.0
/*
 * The controller's census of the flow table: how many flows of each service
 * hold an in-flight slot, against the in-flight counts (struct
 * sl_flow_census in abi.h says how). reconcile() takes the difference as
 * the slots that no flow holds any more: flows the LRU evicted while
 * pending, reservations never claimed.
 *
 * The walk happens in the kernel, run on demand with BPF_PROG_TEST_RUN.
 * Reading the table out in batches took a bucket lock (with interrupts
 * saved and restored) per bucket with entries, and copied every entry: 88 ms
 * of CPU for a full table of 262,144 flows, once a second.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice/abi.h"

/* The data path's maps, reused by fd before loading (their sizes come with
 * the fds). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1);
	__type(key, struct sl_flow_key);
	__type(value, struct sl_flow);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_obs_shared);
} obs_shared SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_census_state);
} census_state SEC(".maps");

/* In and out: written before each run, read after it. */
struct sl_flow_census census = {};

/* The in-flight counts into census.held; with `lower`, each only if lower
 * than what is there. */
static void read_held(int lower)
{
	for (__u32 id = 0; id < SL_MAX_SERVICES; id++) {
		__u32 key = id;
		struct sl_obs_shared *shared = bpf_map_lookup_elem(&obs_shared, &key);
		if (!shared)
			break; /* past the data path's services */
		__s64 held = shared->inflight;
		__s64 *out = &census.held[id & (SL_MAX_SERVICES - 1)]; /* (bounds the verifier can see) */
		if (!lower || held < *out)
			*out = held;
	}
}

static long count_flow(void *map, const struct sl_flow_key *key, struct sl_flow *f, void *unused)
{
	/* It took its slot after the census began. */
	if (f->census == (census.id | SL_CENSUS_ENTERED))
		return 0;
	/* A reservation made after the caller read its clock is fresh too. */
	int fresh_reservation =
		f->state == SL_FLOW_RESERVED && census.now_ns < f->started_ns + census.reservation_ttl_ns;
	__u32 service_id = f->service_id;

	if ((f->state == SL_FLOW_PENDING || fresh_reservation) && service_id < SL_MAX_SERVICES) {
		census.live[service_id]++;
		/* Counted (after its state was read): if it releases the slot now,
		 * the data path must not count that too. */
		f->census = census.id;
	}
	return 0; /* on to the next flow */
}

SEC("syscall")
int count_live_flows(void *ctx)
{
	__u32 zero = 0;
	struct sl_census_state *state = bpf_map_lookup_elem(&census_state, &zero);

	if (!state || !census.id || (census.id & SL_CENSUS_ENTERED))
		return 1;
	volatile __u64 *released = state->released; /* (not a memset: BPF has none) */
	for (__u32 id = 0; id < SL_MAX_SERVICES; id++)
		released[id] = 0;
	/* The census begins when the data path can see its id. A request that
	 * begins or ends just then is in one of the two readings around it;
	 * the lower leaves out one that begins (the walk skips it), and one
	 * that ends before the data path could count it as released. */
	read_held(0);
	__sync_lock_test_and_set(&state->running, census.id);
	read_held(1);

	bpf_for_each_map_elem(&flows, count_flow, 0, 0);

	__sync_lock_test_and_set(&state->running, 0);
	for (__u32 id = 0; id < SL_MAX_SERVICES; id++)
		census.released[id] = state->released[id];
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
