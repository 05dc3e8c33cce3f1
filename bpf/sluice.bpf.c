// SPDX-License-Identifier: GPL-2.0
/*
 * sluice ingress: XDP admission control.
 *
 *   parse -> source class (deny, tenant) -> service -> admission -> verdict
 *
 * Only units of admission are charged: a new TCP connection (a SYN without
 * ACK) for TCP services, a datagram for UDP services. Packets of established
 * connections and non-first fragments pass uncharged, and anything that
 * cannot be parsed passes uncharged and is counted.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice/abi.h"
#include "sluice/gcra.h"
#include "maps.h"
#include "parse.h"
#include "reply.h"

const volatile struct sl_prog_config sl_config = {};

/* The policy slot this packet is judged by, read once per packet. */
struct policy_view {
	__u32 slot;
	__u32 flags; /* enum sl_policy_flags of that slot */
};

static __always_inline void *slot_map(void *outer, __u32 slot)
{
	return bpf_map_lookup_elem(outer, &slot);
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
	if (sl_config.fake_clock) {
		__u32 zero = 0;
		__u64 *now = bpf_map_lookup_elem(&fake_clock, &zero);
		return now ? *now : 0;
	}
	if (sl_config.ns_per_tick)
		return bpf_jiffies64() * sl_config.ns_per_tick;
	return bpf_ktime_get_ns();
}

static __always_inline void count(struct sl_global_counters *g, int which)
{
	if (g && which >= 0 && which < SL_G__COUNT)
		g->c[which]++;
}

/* Classify the source: longest match in the merged tenant/deny trie. */
static __always_inline struct sl_source_class classify_source(const struct policy_view *pv,
							       const struct packet *pkt)
{
	struct sl_source_class none = {};
	struct sl_source_class *cls = 0;

	if (pkt->family == 4) {
		if (!(pv->flags & SL_POL_SRC_V4))
			return none;
		void *table = slot_map(&pol_src4_table, pv->slot);
		if (!table)
			return none;
		/* Down the /16, /24, /32 levels until an entry holds a class. */
		__u32 addr = (__u32)pkt->saddr[12] << 24 | (__u32)pkt->saddr[13] << 16 |
			     (__u32)pkt->saddr[14] << 8 | pkt->saddr[15];
		__u32 index = addr >> 16;
		__u32 *entry = bpf_map_lookup_elem(table, &index);
		if (entry && (*entry & SL_SRC4_NEXT)) {
			index = (*entry & ~SL_SRC4_NEXT) + ((addr >> 8) & 0xff);
			entry = bpf_map_lookup_elem(table, &index);
		}
		if (entry && (*entry & SL_SRC4_NEXT)) {
			index = (*entry & ~SL_SRC4_NEXT) + (addr & 0xff);
			entry = bpf_map_lookup_elem(table, &index);
		}
		if (!entry || (*entry & SL_SRC4_NEXT))
			return none;
		struct sl_source_class found = { .tenant_id = sl_src4_tenant(*entry),
						 .deny_id = sl_src4_deny(*entry) };
		return found;
	} else {
		if (!(pv->flags & SL_POL_SRC_V6))
			return none;
		void *trie = slot_map(&pol_src_v6, pv->slot);
		if (!trie)
			return none;
		struct sl_lpm_v6_key key = { .prefixlen = 128 };
		__builtin_memcpy(key.addr, pkt->saddr, 16);
		cls = bpf_map_lookup_elem(trie, &key);
	}
	return cls ? *cls : none;
}

/* The service a packet is addressed to, or 0. */
static __always_inline __u32 find_service(const struct policy_view *pv, const struct packet *pkt)
{
	__u32 proto_index;

	if (pkt->l4proto == IPPROTO_TCP)
		proto_index = SL_PROTO_TCP;
	else if (pkt->l4proto == IPPROTO_UDP)
		proto_index = SL_PROTO_UDP;
	else
		return 0;

	void *ports = slot_map(&pol_ports, pv->slot);
	if (!ports)
		return 0;
	__u32 index = proto_index << 16 | pkt->dport;
	struct sl_port_entry *port = bpf_map_lookup_elem(ports, &index);
	if (!port)
		return 0;
	if (port->flags & SL_PORT_BY_ADDR) {
		void *by_addr = slot_map(&pol_svc_addr, pv->slot);
		if (by_addr) {
			struct sl_addr_key key = { .proto_index = proto_index, .port = pkt->dport };
			__builtin_memcpy(key.addr, pkt->daddr, 16);
			__u32 *id = bpf_map_lookup_elem(by_addr, &key);
			if (id)
				return *id;
		}
	}
	return port->any_addr_service;
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
static __always_inline int bucket_take(struct sl_bucket *b, __u64 now, const struct sl_rate *rate)
{
	__u64 tat = b->tat_ns;

#pragma unroll
	for (int attempt = 0; attempt < 4; attempt++) {
		__u64 next;
		if (!sl_gcra_conforms(tat, now, rate, &next))
			return 0;
		__u64 seen = __sync_val_compare_and_swap(&b->tat_ns, tat, next);
		if (seen == tat)
			return 1;
		tat = seen;
	}
	return 0;
}

/* Static admission: the per-source bucket, then the (service, tenant) bucket. */
static __always_inline enum sl_reason admit_static(const struct policy_view *pv,
						   const struct sl_service *svc, __u32 service_id,
						   __u32 pair, const struct packet *pkt)
{
	__u64 now = bucket_clock();

	if (svc->flags & SL_SVC_PER_SOURCE) {
		struct sl_source_key key = { .service_id = service_id };
		__builtin_memcpy(key.addr, pkt->saddr, 16);
		struct sl_bucket *b = source_bucket(&key);
		if (b && !bucket_take(b, now, &svc->per_source))
			return SL_R_SOURCE_LIMIT;
	}

	const struct sl_rate *rate = &svc->rate;
	if (svc->flags & SL_SVC_TENANT_LIMITS) {
		void *limits = slot_map(&pol_limits, pv->slot);
		struct sl_rate *own = limits ? bpf_map_lookup_elem(limits, &pair) : 0;
		if (own && own->interval_ns)
			rate = own;
	}
	if (rate->interval_ns) {
		struct sl_bucket *b = bpf_map_lookup_elem(&pair_buckets, &pair);
		if (b && !bucket_take(b, now, rate))
			return SL_R_TENANT_LIMIT;
	}
	return SL_R_ADMITTED;
}

/* A plain SYN opens a connection. SYN+FIN and SYN+RST open nothing (the
 * stack discards them): they pass uncharged and are never answered. */
static __always_inline int is_new_connection(const struct packet *pkt)
{
	return (pkt->tcp_flags & (TCP_FL_SYN | TCP_FL_ACK | TCP_FL_RST | TCP_FL_FIN)) == TCP_FL_SYN;
}

static __always_inline int reject(struct xdp_md *ctx, const struct sl_service *svc,
				  const struct packet *pkt, struct sl_global_counters *g)
{
	/* A fragmented SYN's length is unknown here, so its RST could not carry
	 * the right ACK: such a SYN is dropped instead. */
	if (svc->reject == SL_REJECT_RST && pkt->l4proto == IPPROTO_TCP && !pkt->fragmented) {
		if (build_rst(ctx, pkt) == 0) {
			count(g, SL_G_RST_SENT);
			return XDP_TX;
		}
		count(g, SL_G_RST_FAILED);
	}
	return XDP_DROP;
}

/* Judge one packet. `t` records the decision on the way (only kept in test
 * builds; otherwise the verifier prunes the record). */
static __always_inline int judge(struct xdp_md *ctx, struct sl_global_counters *g, struct sl_trace *t)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct packet pkt = {};

#define FATE(counter, verdict) \
	do {                    \
		t->global = counter; \
		count(g, counter); \
		return verdict;    \
	} while (0)

	int parsed = parse_packet(data, data_end, &pkt);
	if (parsed != PARSE_OK)
		FATE(parsed, XDP_PASS);

	struct sl_root *root = bpf_map_lookup_elem(&sl_root, &zero);
	if (!root || !root->epoch)
		FATE(SL_G_NO_POLICY, XDP_PASS);
	struct policy_view pv = { .slot = root->active_slot & 1 };
	pv.flags = root->slot_flags[pv.slot];

	struct sl_source_class source = classify_source(&pv, &pkt);
	if (source.deny_id) {
		__u32 rule = source.deny_id;
		struct sl_deny_counters *d = bpf_map_lookup_elem(&deny_stats, &rule);
		if (d) {
			d->packets++;
			d->bytes += data_end - data;
		}
		t->deny_id = source.deny_id;
		FATE(SL_G_DENIED, XDP_DROP);
	}

	if (pkt.fragment)
		FATE(SL_G_FRAGMENT, XDP_PASS);
	if (pkt.l4proto != IPPROTO_TCP && pkt.l4proto != IPPROTO_UDP)
		FATE(SL_G_OTHER_L4, XDP_PASS);

	__u32 service_id = find_service(&pv, &pkt);
	void *services = service_id ? slot_map(&pol_services, pv.slot) : 0;
	const struct sl_service *svc = services ? bpf_map_lookup_elem(services, &service_id) : 0;
	if (!svc || !svc->name[0])
		FATE(SL_G_NOT_SERVICE, XDP_PASS);

	__u32 pair = sl_pair_index(service_id, source.tenant_id, sl_config.max_tenants);
	struct sl_counters *counters = bpf_map_lookup_elem(&pair_stats, &pair);
	if (!counters || source.tenant_id >= sl_config.max_tenants)
		FATE(SL_G_OUT_OF_RANGE, XDP_PASS); /* the CLI never lets this happen */
#undef FATE

	t->service_id = service_id;
	t->tenant_id = source.tenant_id;
	if (pkt.l4proto == IPPROTO_TCP && !is_new_connection(&pkt)) {
		t->reason = SL_R_PASSED;
		counters->verdict[SL_R_PASSED]++;
		return XDP_PASS;
	}

	enum sl_reason reason = admit_static(&pv, svc, service_id, pair, &pkt);
	t->reason = reason;
	if (reason == SL_R_ADMITTED) {
		counters->verdict[SL_R_ADMITTED]++;
		return XDP_PASS;
	}
	if (reason >= SL_R__COUNT)
		return XDP_PASS;
	if (svc->flags & SL_SVC_DRY_RUN) {
		struct sl_service_counters *sc = bpf_map_lookup_elem(&service_stats, &service_id);
		if (sc)
			sc->would_shed[reason]++;
		counters->verdict[SL_R_ADMITTED]++;
		return XDP_PASS;
	}
	counters->verdict[reason]++;
	return reject(ctx, svc, &pkt, g);
}

SEC("xdp")
int sluice_xdp(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct sl_global_counters *g = bpf_map_lookup_elem(&global_stats, &zero);
	struct sl_trace t = {};

	count(g, SL_G_PACKETS);
	int action = judge(ctx, g, &t);
	if (sl_config.trace) {
		t.action = action;
		bpf_map_update_elem(&trace, &zero, &t, BPF_ANY);
	}
	return action;
}

char LICENSE[] SEC("license") = "GPL";
