// SPDX-License-Identifier: GPL-2.0
/*
 * sluice: admission control in the kernel.
 *
 * XDP ingress:
 *   parse -> source class (deny, tenant) -> service -> admission -> verdict
 * Units of admission are new TCP connections (a plain SYN) and UDP
 * datagrams, and for services the controller governs (SL_SVC_TRACK) also
 * new requests on established connections. Static limits (buckets) charge
 * connections and datagrams; adaptive limits (breaker, probability,
 * in-flight) apply to all new work. Packets of admitted work pass uncharged;
 * anything that cannot be parsed passes uncharged and is counted.
 *
 * The ingress judgement runs as two programs built from the same code
 * (judge() with `complete` a compile-time constant). The quick judge on the
 * hook holds only what static admission needs; whatever needs more (a
 * tracked service, an RST reply, a dry run) it hands over with a tail call
 * to the complete judge, which judges that packet from the start. Kept out
 * of the quick judge, the cold paths no longer slow the shedding of a flood
 * (bench/shed_rate).
 *
 * TC egress: ends the requests of tracked services at their first response
 * byte (latency, status, in-flight).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "sluice/abi.h"
#include "adaptive.h"
#include "maps.h"
#include "observe.h"
#include "parse.h"
#include "policy_view.h"
#include "reply.h"

/* Record a step of the decision in test builds; for the verifier these are
 * dead stores everywhere else and vanish. */
#define TRACE(t, field, value)              \
	do {                                \
		if (sl_config.trace)        \
			(t)->field = (value); \
	} while (0)

/* A plain SYN opens a connection. SYN+FIN and SYN+RST open nothing (the
 * stack discards them): they pass uncharged and are never answered. */
static __always_inline int is_new_connection(const struct packet *pkt)
{
	return (pkt->tcp_flags & (TCP_FL_SYN | TCP_FL_ACK | TCP_FL_RST | TCP_FL_FIN)) == TCP_FL_SYN;
}

/* In the functions below, `complete` is 0 in the quick judge, which only
 * gets that far for services that need none of what it guards: the test
 * takes that code out of the quick judge at compile time. */
static __always_inline int reject(struct xdp_md *ctx, const struct sl_admission *adm,
				  const struct packet *pkt, struct sl_global_counters *g, const int complete)
{
	/* A fragmented SYN's length is unknown here, so its RST could not carry
	 * the right ACK: such a SYN is dropped instead. */
	if (complete && adm->reject == SL_REJECT_RST && pkt->l4proto == IPPROTO_TCP && !pkt->fragmented) {
		if (build_rst(ctx, pkt) == 0) {
			count(g, SL_G_RST_SENT);
			return XDP_TX;
		}
		count(g, SL_G_RST_FAILED);
	}
	return XDP_DROP;
}

/* Returns whether refused work is really refused (not a dry run). Counts
 * it for its service when the controller needs it (adaptive reasons) or in
 * dry run; static refusals are only counted per pair, so the shed path of a
 * flood pays for nothing more. */
static __always_inline int refused(__u32 service_id, const struct sl_admission *adm, enum sl_reason reason,
				   const int complete)
{
	int dry = complete && (adm->flags & SL_SVC_DRY_RUN);

	if (dry || reason >= SL_R_INFLIGHT) {
		struct sl_service_counters *sc = bpf_map_lookup_elem(&service_stats, &service_id);
		if (sc && reason < SL_R__COUNT) {
			if (dry)
				sc->would_shed[reason]++;
			else
				sc->shed[reason]++;
		}
	}
	return !dry;
}

/* Everything a decision about one packet needs once its service is known. */
struct judged {
	struct xdp_md *ctx;
	const struct policy_view *pv;
	const struct sl_admission *adm;
	const struct packet *pkt;
	struct sl_counters *counters;
	struct sl_global_counters *g;
	struct sl_trace *t;
	__u32 service_id;
	__u32 tenant_id;
	__u32 pair;
};

/* A segment of an established connection to a tracked TCP service: ends
 * the pending request on FIN/RST, starts a request on payload if the flow
 * is idle and the controller allows it. */
static __always_inline int track_client_segment(const struct judged *j)
{
	const struct packet *pkt = j->pkt;
	/* A FIN that carries a request is a half-close after asking (HTTP/1.0
	 * clients do this): the request counts, the FIN ends nothing. */
	int closing = (pkt->tcp_flags & TCP_FL_RST) || ((pkt->tcp_flags & TCP_FL_FIN) && pkt->tcp_payload == 0);

	TRACE(j->t, reason, SL_R_PASSED);
	if (!closing && pkt->tcp_payload == 0) {
		j->counters->verdict[SL_R_PASSED]++;
		return XDP_PASS; /* a pure ACK says nothing about requests */
	}
	struct sl_flow_key key = {};
	flow_key_from_client(&key, pkt);
	struct sl_flow *f = bpf_map_lookup_elem(&flows, &key);
	if (closing || (f && f->state == SL_FLOW_PENDING)) {
		if (closing && f) {
			flow_closed(f, 0);
			bpf_map_delete_elem(&flows, &key);
		}
		j->counters->verdict[SL_R_PASSED]++;
		return XDP_PASS; /* the end of a flow, or more of a pending request */
	}

	if (f && request_claim(f)) {
		TRACE(j->t, reason, SL_R_REQUEST); /* admitted with its connection */
		j->counters->verdict[SL_R_REQUEST]++;
		return XDP_PASS;
	}
	__u32 level = tenant_level(j->pv, j->tenant_id);
	struct adaptive_gate gate = {};
	enum sl_reason reason = adaptive_check(j->pv, j->service_id, level, j->g, &gate);
	if (reason == SL_R_ADMITTED)
		reason = adaptive_claim_probe(&gate);
	TRACE(j->t, reason, reason);
	if (reason != SL_R_ADMITTED && reason < SL_R__COUNT && refused(j->service_id, j->adm, reason, 1)) {
		j->counters->verdict[reason]++;
		return reject(j->ctx, j->adm, pkt, j->g, 1);
	}
	TRACE(j->t, reason, SL_R_REQUEST);
	request_begin(&key, f, j->service_id, j->tenant_id, level, precise_clock());
	j->counters->verdict[SL_R_REQUEST]++;
	return XDP_PASS;
}

/* What the quick judge leaves to the complete one: every packet of a
 * tracked or dry-run service, and every new connection to a service that
 * refuses with an RST (the quick judge cannot write the reply). */
static __always_inline int needs_complete_judgement(const struct sl_admission *adm, const struct packet *pkt)
{
	return (adm->flags & (SL_SVC_TRACK | SL_SVC_DRY_RUN)) ||
	       (adm->reject == SL_REJECT_RST && pkt->l4proto == IPPROTO_TCP && is_new_connection(pkt));
}

/* A unit of admission: a new connection or a datagram. */
static __always_inline int admit_unit(const struct judged *j, const int complete)
{
	int tracked = complete && (j->adm->flags & SL_SVC_TRACK);
	enum sl_reason reason = SL_R_ADMITTED;
	struct adaptive_gate gate = {};
	__u32 level = 0;

	if (tracked) {
		level = tenant_level(j->pv, j->tenant_id);
		reason = adaptive_check(j->pv, j->service_id, level, j->g, &gate);
	}
	if (reason == SL_R_ADMITTED)
		reason = admit_static(j->pv, j->adm, j->service_id, j->pair, j->pkt);
	if (reason == SL_R_ADMITTED)
		reason = adaptive_claim_probe(&gate);
	TRACE(j->t, reason, reason);
	if (reason >= SL_R__COUNT)
		return XDP_PASS;
	if (reason != SL_R_ADMITTED && refused(j->service_id, j->adm, reason, complete)) {
		j->counters->verdict[reason]++;
		return reject(j->ctx, j->adm, j->pkt, j->g, complete);
	}
	j->counters->verdict[SL_R_ADMITTED]++;
	if (tracked) {
		/* Only admitted work reads the precise clock: it times the request. */
		__u64 now = precise_clock();
		struct sl_flow_key key = {};
		flow_key_from_client(&key, j->pkt);
		if (j->pkt->l4proto == IPPROTO_UDP)
			request_begin(&key, 0, j->service_id, j->tenant_id, level, now); /* a datagram is a request */
		else
			connection_reserve(&key, j->service_id, j->tenant_id, level, now);
	}
	return XDP_PASS;
}

/* Judge one parsed packet (`parsed` is what parse_packet() returned), quickly
 * or completely (see the top of this file). `t` records the decision on the
 * way (only kept in test builds; otherwise the verifier prunes the record). */
static __always_inline int judge_parsed(struct xdp_md *ctx, struct sl_global_counters *g, struct sl_trace *t,
					const int complete, int parsed, const struct packet *pkt, __u32 wire_len)
{
	struct policy_view pv = {};

#define FATE(counter, verdict) \
	do {                    \
		TRACE(t, global, counter); \
		count(g, counter); \
		return verdict;    \
	} while (0)

	if (parsed != PARSE_OK)
		FATE(parsed, XDP_PASS);
	if (!policy_view_get(&pv))
		FATE(SL_G_NO_POLICY, XDP_PASS);

	struct sl_source_class source = classify_source(&pv, pkt);
	if (source.deny_id) {
		__u32 rule = source.deny_id;
		struct sl_deny_counters *d = bpf_map_lookup_elem(&deny_stats, &rule);
		if (d) {
			d->packets++;
			d->bytes += wire_len;
		}
		TRACE(t, deny_id, source.deny_id);
		FATE(SL_G_DENIED, XDP_DROP);
	}

	if (pkt->fragment)
		FATE(SL_G_FRAGMENT, XDP_PASS);
	if (pkt->l4proto != IPPROTO_TCP && pkt->l4proto != IPPROTO_UDP)
		FATE(SL_G_OTHER_L4, XDP_PASS);

	struct service_match service = find_service(&pv, pkt->l4proto, pkt->dport, pkt->family, pkt->daddr);
	if (!service.id)
		FATE(SL_G_NOT_SERVICE, XDP_PASS);
	__u32 service_id = service.id;
	const struct sl_admission *adm = service.admission;

	__u32 pair = sl_pair_index(service_id, source.tenant_id, sl_config.max_tenants);
	struct sl_counters *counters = bpf_map_lookup_elem(&pair_stats, &pair);
	if (!counters || source.tenant_id >= sl_config.max_tenants)
		FATE(SL_G_OUT_OF_RANGE, XDP_PASS); /* the CLI never lets this happen */

	TRACE(t, service_id, service_id);
	TRACE(t, tenant_id, source.tenant_id);
	if (!complete && needs_complete_judgement(adm, pkt)) {
		bpf_tail_call(ctx, &judges, SL_JUDGE_COMPLETE);
		FATE(SL_G_UNJUDGED, XDP_PASS); /* no complete judge loaded: fail open */
	}
#undef FATE
	struct judged j = { .ctx = ctx, .pv = &pv, .adm = adm, .pkt = pkt, .counters = counters, .g = g,
			    .t = t, .service_id = service_id, .tenant_id = source.tenant_id, .pair = pair };
	if (pkt->l4proto == IPPROTO_TCP && !is_new_connection(pkt)) {
		if (complete && (adm->flags & SL_SVC_TRACK))
			return track_client_segment(&j);
		TRACE(t, reason, SL_R_PASSED);
		counters->verdict[SL_R_PASSED]++;
		return XDP_PASS;
	}
	return admit_unit(&j, complete);
}

/* Judge one packet. Untagged IPv4, nearly every frame, is judged by a copy
 * of its own: knowing the family and the header offsets, the compiler keeps
 * more of what the parse found in registers instead of spilling it (bench
 * packet_cost: 0.5 to 2 ns less on most paths). */
static __always_inline int judge(struct xdp_md *ctx, struct sl_global_counters *g, struct sl_trace *t,
				 const int complete)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 wire_len = data_end - data;
	struct packet pkt = {};

	if (is_untagged_ipv4(data, data_end))
		return judge_parsed(ctx, g, t, complete, parse_untagged_ipv4(data, data_end, wire_len, &pkt), &pkt,
				    wire_len);
	return judge_parsed(ctx, g, t, complete, parse_packet(data, data_end, wire_len, &pkt), &pkt, wire_len);
}

static __always_inline int run(struct xdp_md *ctx, const int complete)
{
	__u32 zero = 0;
	struct sl_global_counters *g = bpf_map_lookup_elem(&global_stats, &zero);
	struct sl_trace t = {};

	if (!complete)
		count(g, SL_G_PACKETS); /* once, by the program on the hook */
	int action = judge(ctx, g, &t, complete);
	if (sl_config.trace) {
		t.action = action;
		bpf_map_update_elem(&trace, &zero, &t, BPF_ANY);
	}
	return action;
}

/* The quick judge: the program attached to the XDP hook. */
SEC("xdp")
int sluice_xdp(struct xdp_md *ctx)
{
	return run(ctx, 0);
}

/* The complete judge: reached only through judges[SL_JUDGE_COMPLETE]. */
SEC("xdp")
int sluice_xdp_complete(struct xdp_md *ctx)
{
	return run(ctx, 1);
}

/* "HTTP/1.x 5" at the start of a response payload. */
static __always_inline int http_server_error(struct __sk_buff *skb, const struct packet *pkt)
{
	char status[10];

	if (bpf_skb_load_bytes(skb, pkt->payload_off, status, sizeof(status)) != 0)
		return 0;
	return status[0] == 'H' && status[1] == 'T' && status[2] == 'T' && status[3] == 'P' && status[4] == '/' &&
	       status[5] == '1' && status[6] == '.' && status[8] == ' ' && status[9] == '5';
}

SEC("tc")
int sluice_tc_egress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct packet pkt = {};
	struct policy_view pv = {};

	if (!policy_view_get(&pv) || !(pv.flags & SL_POL_TRACKING))
		return TC_ACT_OK;
	if (parse_packet(data, data_end, skb->len, &pkt) != PARSE_OK || pkt.fragment)
		return TC_ACT_OK;
	int tcp = pkt.l4proto == IPPROTO_TCP;
	int closing = tcp && (pkt.tcp_flags & (TCP_FL_FIN | TCP_FL_RST));
	int payload = !tcp || pkt.tcp_payload > 0;
	if (!closing && !payload)
		return TC_ACT_OK; /* ACKs and SYN-ACKs answer nothing */

	struct service_match service = find_service(&pv, pkt.l4proto, pkt.sport, pkt.family, pkt.saddr);
	if (!service.id || !(service.admission->flags & SL_SVC_TRACK))
		return TC_ACT_OK;
	const struct sl_service *svc = service_get(&pv, service.id);
	if (!svc)
		return TC_ACT_OK;

	struct sl_flow_key key = {};
	flow_key_from_server(&key, &pkt);
	struct sl_flow *f = bpf_map_lookup_elem(&flows, &key);
	if (!f)
		return TC_ACT_OK;
	/* The answer first: a response and its FIN often share a segment. */
	if (payload && f->state != SL_FLOW_IDLE) {
		int error = f->state == SL_FLOW_PENDING && (svc->flags & SL_SVC_HTTP) && http_server_error(skb, &pkt);
		request_answered(f, svc, precise_clock(), error);
	}
	if (closing) {
		flow_closed(f, 1);
		bpf_map_delete_elem(&flows, &key);
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
