// SPDX-License-Identifier: GPL-2.0
/*
 * The controller's census of the flow table: how many flows of each service
 * hold an in-flight slot (struct sl_flow_census in abi.h says which).
 * reconcile() compares that with the in-flight counts to find slots that no
 * flow holds any more: flows the LRU evicted while pending, reservations
 * never claimed.
 *
 * The walk happens in the kernel, run on demand with BPF_PROG_TEST_RUN.
 * Reading the table out in batches took a bucket lock (with interrupts
 * saved and restored) per bucket with entries, and copied every entry: 88 ms
 * of CPU for a full table of 262,144 flows, once a second.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice/abi.h"

/* The data path's flow table, reused by fd before loading (the size comes
 * with the fd). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1);
	__type(key, struct sl_flow_key);
	__type(value, struct sl_flow);
} flows SEC(".maps");

/* In and out: written before each run, read after it. */
struct sl_flow_census census = {};

static long count_flow(void *map, const struct sl_flow_key *key, const struct sl_flow *f, void *unused)
{
	/* A reservation made after the caller read its clock is fresh too. */
	int fresh_reservation =
		f->state == SL_FLOW_RESERVED && census.now_ns < f->started_ns + census.reservation_ttl_ns;

	if ((f->state == SL_FLOW_PENDING || fresh_reservation) && f->service_id < SL_MAX_SERVICES)
		census.live[f->service_id]++;
	return 0; /* on to the next flow */
}

SEC("syscall")
int count_live_flows(void *ctx)
{
	bpf_for_each_map_elem(&flows, count_flow, 0, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
