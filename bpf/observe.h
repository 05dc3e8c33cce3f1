/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Watching requests of unmodified services from the kernel. A request
 * starts with the first client payload on an idle flow (XDP ingress) and
 * ends with the first server payload after it (TC egress); its latency is
 * the time to the first response byte. FIN or RST with a request pending
 * ends it as aborted. An admitted SYN reserves the in-flight slot of the
 * connection's first request. Flows change state with compare-and-swap, so
 * each request is counted exactly once however many CPUs see its packets.
 *
 * Where the pairing is wrong: pipelined HTTP/1.1 requests share the first
 * one's start and end with the first response; HTTP/2 and other multiplexed
 * protocols look like one long request per burst. Both only make latency
 * look shorter and in-flight smaller (never negative or unbounded); such
 * services should not use adaptive limits (see docs/observation.md).
 */
#ifndef SLUICE_BPF_OBSERVE_H
#define SLUICE_BPF_OBSERVE_H

#include "buckets.h"

static __always_inline void flow_key_from_client(struct sl_flow_key *k, const struct packet *pkt)
{
	__builtin_memcpy(k->client, pkt->saddr, 16);
	__builtin_memcpy(k->server, pkt->daddr, 16);
	k->client_port = pkt->sport;
	k->server_port = pkt->dport;
	k->proto = pkt->l4proto;
}

static __always_inline void flow_key_from_server(struct sl_flow_key *k, const struct packet *pkt)
{
	__builtin_memcpy(k->client, pkt->daddr, 16);
	__builtin_memcpy(k->server, pkt->saddr, 16);
	k->client_port = pkt->dport;
	k->server_port = pkt->sport;
	k->proto = pkt->l4proto;
}

static __always_inline void inflight_add(__u32 service_id, __s64 delta)
{
	struct sl_obs_shared *shared = bpf_map_lookup_elem(&obs_shared, &service_id);

	if (shared)
		__sync_fetch_and_add(&shared->inflight, delta);
}

static __always_inline struct sl_obs_counters *obs_counters(__u32 service_id)
{
	return bpf_map_lookup_elem(&obs_stats, &service_id);
}

/* The flow census, while one runs (struct sl_flow_census in abi.h). */
static __always_inline struct sl_census_state *census_now(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&census_state, &zero);
}

/* A flow taking its slot now, while a census runs, is marked so the census
 * does not count it: the slot was not held when it began. (0: none runs.) */
static __always_inline __u32 census_entry_mark(void)
{
	struct sl_census_state *census = census_now();
	__u32 running = census ? census->running : 0;

	return running ? running | SL_CENSUS_ENTERED : 0;
}

/* A flow gave up its slot (the in-flight count is already lower): if it
 * held the slot when the running census began and the census has not
 * counted it yet, the census must learn of it. */
static __always_inline void census_note_release(const struct sl_flow *f)
{
	struct sl_census_state *census = census_now();
	__u32 running = census ? census->running : 0;
	__u32 service_id = f->service_id;

	if (running && (f->census & ~SL_CENSUS_ENTERED) != running && service_id < SL_MAX_SERVICES)
		__sync_fetch_and_add(&census->released[service_id], 1);
}

/* Move a flow from one state to another; 1 if this CPU made the move. */
static __always_inline int flow_move(struct sl_flow *f, __u32 from, __u32 to)
{
	return __sync_val_compare_and_swap(&f->state, from, to) == from;
}

/* Bring the flow `key` from idle (or absent) into `state`; 1 if this CPU
 * did, so only it counts the new in-flight slot. `f` is the flow if the
 * caller has looked it up already, else 0 (looked up here). */
static __always_inline int flow_enter(const struct sl_flow_key *key, struct sl_flow *f, __u32 state,
				      __u32 service_id, __u32 tenant_id, __u32 level, __u64 now)
{
	if (!f)
		f = bpf_map_lookup_elem(&flows, key);
	if (!f) {
		struct sl_flow fresh = { .started_ns = now, .state = state, .service_id = service_id,
					 .tenant_id = tenant_id, .level = level, .census = census_entry_mark() };
		return bpf_map_update_elem(&flows, key, &fresh, BPF_NOEXIST) == 0;
	}
	if (!flow_move(f, SL_FLOW_IDLE, state))
		return 0;
	__u32 mark = census_entry_mark();
	if (mark)
		f->census = mark;
	f->started_ns = now;
	f->service_id = service_id;
	f->tenant_id = tenant_id;
	f->level = level;
	return 1;
}

/* An admitted connection reserves the slot of its first request. */
static __always_inline void connection_reserve(const struct sl_flow_key *key, __u32 service_id, __u32 tenant_id,
					       __u32 level, __u64 now)
{
	if (flow_enter(key, 0, SL_FLOW_RESERVED, service_id, tenant_id, level, now))
		inflight_add(service_id, 1);
}

static __always_inline void count_started(__u32 service_id)
{
	struct sl_obs_counters *c = obs_counters(service_id);

	if (c)
		c->started++;
}

/* A request starts in the slot its connection reserved (no new admission). */
static __always_inline int request_claim(struct sl_flow *f)
{
	if (!flow_move(f, SL_FLOW_RESERVED, SL_FLOW_PENDING))
		return 0;
	f->started_ns = precise_clock();
	count_started(f->service_id);
	return 1;
}

/* A newly admitted request on an idle (or new) flow; `f` as for flow_enter. */
static __always_inline void request_begin(const struct sl_flow_key *key, struct sl_flow *f, __u32 service_id,
					  __u32 tenant_id, __u32 level, __u64 now)
{
	if (!flow_enter(key, f, SL_FLOW_PENDING, service_id, tenant_id, level, now))
		return; /* another CPU started it: that one counts */
	inflight_add(service_id, 1);
	count_started(service_id);
}

/* Back to idle, giving up the flow's in-flight slot. Returns whether that
 * slot held a request (pending), rather than a connection's reservation or
 * nothing (another CPU released it first). */
static __always_inline int flow_release_request(struct sl_flow *f)
{
	if (flow_move(f, SL_FLOW_RESERVED, SL_FLOW_IDLE)) {
		inflight_add(f->service_id, -1);
		census_note_release(f);
		return 0;
	}
	if (!flow_move(f, SL_FLOW_PENDING, SL_FLOW_IDLE))
		return 0;
	inflight_add(f->service_id, -1);
	census_note_release(f);
	return 1;
}

/* The server sent payload: the first byte of the pending request's answer
 * (if the server spoke first, the connection's reservation is released). */
static __always_inline void request_answered(struct sl_flow *f, const struct sl_service *svc, __u64 now,
					     int server_error)
{
	__u64 started = f->started_ns;

	if (!flow_release_request(f))
		return;
	struct sl_obs_counters *c = obs_counters(f->service_id);
	if (!c)
		return;
	__u64 latency = now > started ? now - started : 0;
	c->responses++;
	c->latency_sum_ns += latency;
	__u32 bucket = sl_hist_bucket(latency);
	if (bucket < SL_HIST_BUCKETS)
		c->hist[bucket]++;
	if (server_error)
		c->errors++;
	if (svc->tuning.timeout_ms && latency > svc->tuning.timeout_ms * 1000000ull)
		c->timeouts++;
}

/* The flow ends (FIN or RST): release its slot; a pending request is aborted. */
static __always_inline void flow_closed(struct sl_flow *f, int by_server)
{
	if (!flow_release_request(f))
		return;
	struct sl_obs_counters *c = obs_counters(f->service_id);
	if (!c)
		return;
	if (by_server)
		c->server_aborts++;
	else
		c->client_aborts++;
}

#endif /* SLUICE_BPF_OBSERVE_H */
