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
 * The ingress judgement runs as two programs. The quick judge on the hook
 * judges what nearly all of a flood is: plain IPv4 (untagged, without
 * options, not a fragment) TCP or UDP to a service with static limits only.
 * Everything else (IPv6, VLAN tags, IP options and fragments, other
 * protocols, malformed headers, services bound to an address, tracked and
 * dry-run services, new connections to a service that refuses with an RST)
 * it hands over with a tail call to the complete judge, which judges the
 * packet from the start. The quick judge reads only the few header fields
 * it needs and keeps them in registers; the cold paths' code and state
 * stay out of the program that sheds a flood. It repeats the complete
 * judge's steps for its packets, in the same order with the same counters:
 * the fuzz test (tests/bpf/fuzz_packets_test.cpp) holds both to one
 * reference.
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

/* Tests only: how the last packet was judged, when sl_config.trace is set.
 * A global, so that writing it needs no lookup: outside test builds the
 * verifier knows sl_config.trace is 0 and prunes every write, and each
 * place that records pays one dead load of the flag. */
struct sl_trace last_trace = {};

#define TRACE(field, value)                      \
	do {                                     \
		if (sl_config.trace)             \
			last_trace.field = (value); \
	} while (0)

static __always_inline void trace_begin(void)
{
	if (sl_config.trace)
		__builtin_memset(&last_trace, 0, sizeof(last_trace));
}

/* The service, tenant and reason of a judged packet, recorded at once. */
static __always_inline void trace_judged(__u32 service_id, __u32 tenant_id, enum sl_reason reason)
{
	if (sl_config.trace) {
		last_trace.service_id = service_id;
		last_trace.tenant_id = tenant_id;
		last_trace.reason = reason;
	}
}

/* Count a packet's fate in the global counters and return its verdict. */
#define FATE(counter, verdict)           \
	do {                             \
		TRACE(global, counter);  \
		count(counter);          \
		return verdict;          \
	} while (0)

/* A plain SYN opens a connection. SYN+FIN and SYN+RST open nothing (the
 * stack discards them): they pass uncharged and are never answered. */
static __always_inline int is_new_connection(__u8 tcp_flags)
{
	return (tcp_flags & (TCP_FL_SYN | TCP_FL_ACK | TCP_FL_RST | TCP_FL_FIN)) == TCP_FL_SYN;
}

/* A packet from a denied source: counted for its rule, then dropped. */
static __always_inline int deny(__u32 rule, __u32 wire_len)
{
	struct sl_deny_counters *d = bpf_map_lookup_elem(&deny_stats, &rule);

	if (d) {
		d->packets++;
		d->bytes += wire_len;
	}
	TRACE(deny_id, rule);
	FATE(SL_G_DENIED, XDP_DROP);
}

/* ---- the complete judge ------------------------------------------------- */

static __always_inline int reject(struct xdp_md *ctx, const struct sl_admission *adm, const struct packet *pkt)
{
	/* A fragmented SYN's length is unknown here, so its RST could not carry
	 * the right ACK: such a SYN is dropped instead. */
	if (adm->reject == SL_REJECT_RST && pkt->l4proto == IPPROTO_TCP && !pkt->fragmented) {
		if (build_rst(ctx, pkt) == 0) {
			count(SL_G_RST_SENT);
			return XDP_TX;
		}
		count(SL_G_RST_FAILED);
	}
	return XDP_DROP;
}

/* Returns whether refused work is really refused (not a dry run). Counts
 * it for its service when the controller needs it (adaptive reasons) or in
 * dry run; static refusals are only counted per pair, so the shed path of a
 * flood pays for nothing more. */
static __always_inline int refused(__u32 service_id, const struct sl_admission *adm, enum sl_reason reason)
{
	int dry = adm->flags & SL_SVC_DRY_RUN;

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

	TRACE(reason, SL_R_PASSED);
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
		TRACE(reason, SL_R_REQUEST); /* admitted with its connection */
		j->counters->verdict[SL_R_REQUEST]++;
		return XDP_PASS;
	}
	__u32 level = tenant_level(j->pv, j->tenant_id);
	struct adaptive_gate gate = {};
	enum sl_reason reason = adaptive_check(j->pv, j->service_id, level, &gate);
	if (reason == SL_R_ADMITTED)
		reason = adaptive_claim_probe(&gate);
	TRACE(reason, reason);
	if (reason != SL_R_ADMITTED && reason < SL_R__COUNT && refused(j->service_id, j->adm, reason)) {
		j->counters->verdict[reason]++;
		return reject(j->ctx, j->adm, pkt);
	}
	TRACE(reason, SL_R_REQUEST);
	request_begin(&key, f, j->service_id, j->tenant_id, level, precise_clock());
	j->counters->verdict[SL_R_REQUEST]++;
	return XDP_PASS;
}

/* A unit of admission: a new connection or a datagram. */
static __always_inline int admit_unit(const struct judged *j)
{
	int tracked = j->adm->flags & SL_SVC_TRACK;
	enum sl_reason reason = SL_R_ADMITTED;
	struct adaptive_gate gate = {};
	__u32 level = 0;

	if (tracked) {
		level = tenant_level(j->pv, j->tenant_id);
		reason = adaptive_check(j->pv, j->service_id, level, &gate);
	}
	if (reason == SL_R_ADMITTED)
		reason = admit_static(j->pv, j->adm, j->service_id, j->pair, j->pkt->family, j->pkt->saddr);
	if (reason == SL_R_ADMITTED)
		reason = adaptive_claim_probe(&gate);
	TRACE(reason, reason);
	if (reason >= SL_R__COUNT)
		return XDP_PASS;
	if (reason != SL_R_ADMITTED && refused(j->service_id, j->adm, reason)) {
		j->counters->verdict[reason]++;
		return reject(j->ctx, j->adm, j->pkt);
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

/* Judge one parsed packet (`parsed` is what parse_packet() returned). */
static __always_inline int judge_parsed(struct xdp_md *ctx, int parsed, const struct packet *pkt, __u32 wire_len)
{
	struct policy_view pv = {};

	if (parsed != PARSE_OK)
		FATE(parsed, XDP_PASS);
	if (!policy_view_get(&pv))
		FATE(SL_G_NO_POLICY, XDP_PASS);

	struct sl_source_class source = classify_source(&pv, pkt);
	if (source.deny_id)
		return deny(source.deny_id, wire_len);

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

	TRACE(service_id, service_id);
	TRACE(tenant_id, source.tenant_id);
	struct judged j = { .ctx = ctx, .pv = &pv, .adm = adm, .pkt = pkt, .counters = counters,
			    .service_id = service_id, .tenant_id = source.tenant_id, .pair = pair };
	if (pkt->l4proto == IPPROTO_TCP && !is_new_connection(pkt->tcp_flags)) {
		if (adm->flags & SL_SVC_TRACK)
			return track_client_segment(&j);
		TRACE(reason, SL_R_PASSED);
		counters->verdict[SL_R_PASSED]++;
		return XDP_PASS;
	}
	return admit_unit(&j);
}

/* Judge one packet completely. Untagged IPv4 is judged by a copy of its
 * own: knowing the family and the header offsets, the compiler keeps more
 * of what the parse found in registers instead of spilling it. */
static __always_inline int judge(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 wire_len = data_end - data;
	struct packet pkt = {};

	if (is_untagged_ipv4(data, data_end))
		return judge_parsed(ctx, parse_untagged_ipv4(data, data_end, wire_len, &pkt), &pkt, wire_len);
	return judge_parsed(ctx, parse_packet(data, data_end, wire_len, &pkt), &pkt, wire_len);
}

/* ---- the quick judge ---------------------------------------------------- */

/* What the quick judge returns for a packet the complete judge must judge. */
#define HAND_OVER (-1)

/* What the quick judge leaves to the complete one, once it knows the
 * service: every packet of a tracked or dry-run service, and every new
 * connection to a service that refuses with an RST (the complete judge
 * writes the reply). */
static __always_inline int needs_complete_judgement(const struct sl_admission *adm, int new_tcp_connection)
{
	return (adm->flags & (SL_SVC_TRACK | SL_SVC_DRY_RUN)) ||
	       (new_tcp_connection && adm->reject == SL_REJECT_RST);
}

/* Judge a plain IPv4 packet by static limits, as the complete judge would,
 * or return HAND_OVER. Everything it decides it decides in the complete
 * judge's order, with the same counters and verdicts. */
static __always_inline int quick_judge(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct plain_ipv4 pkt;
	struct policy_view pv = {};

	if (!parse_plain_ipv4(data, data_end, &pkt))
		return HAND_OVER;
	if (!policy_view_get(&pv))
		FATE(SL_G_NO_POLICY, XDP_PASS);

	struct sl_source_class source = classify_source_v4(&pv, pkt.saddr);
	if (source.deny_id)
		return deny(source.deny_id, data_end - data);

	struct sl_port_entry *port = port_entry(&pv, pkt.l4proto, pkt.dport);
	if (!port || (port->flags & SL_PORT_BY_ADDR))
		return HAND_OVER;
	__u32 service_id = port->any_addr_service;
	if (!service_id)
		FATE(SL_G_NOT_SERVICE, XDP_PASS);
	const struct sl_admission *adm = &port->any_addr;

	__u32 pair = sl_pair_index(service_id, source.tenant_id, sl_config.max_tenants);
	struct sl_counters *counters = bpf_map_lookup_elem(&pair_stats, &pair);
	if (!counters || source.tenant_id >= sl_config.max_tenants)
		FATE(SL_G_OUT_OF_RANGE, XDP_PASS);

	int tcp = pkt.l4proto == IPPROTO_TCP;
	int new_unit = !tcp || is_new_connection(pkt.tcp_flags);
	if (needs_complete_judgement(adm, tcp && new_unit))
		return HAND_OVER;
	if (!new_unit) {
		trace_judged(service_id, source.tenant_id, SL_R_PASSED);
		counters->verdict[SL_R_PASSED]++;
		return XDP_PASS;
	}
	__u8 mapped[16]; /* the source's per-source key, only if the service has such limits */
	if (adm->flags & SL_SVC_PER_SOURCE)
		map_v4(mapped, bpf_htonl(pkt.saddr));
	enum sl_reason reason = admit_static(&pv, adm, service_id, pair, 4, mapped);
	trace_judged(service_id, source.tenant_id, reason);
	counters->verdict[reason]++;
	return reason == SL_R_ADMITTED ? XDP_PASS : XDP_DROP;
}

/* The quick judge: the program attached to the XDP hook. */
SEC("xdp")
int sluice_xdp(struct xdp_md *ctx)
{
	trace_begin();
	count(SL_G_PACKETS); /* once, here on the hook */
	int action = quick_judge(ctx);
	if (action == HAND_OVER) {
		bpf_tail_call(ctx, &judges, SL_JUDGE_COMPLETE);
		TRACE(global, SL_G_UNJUDGED); /* no complete judge loaded: fail open */
		count(SL_G_UNJUDGED);
		action = XDP_PASS;
	}
	TRACE(action, action);
	return action;
}

/* The complete judge: reached only through judges[SL_JUDGE_COMPLETE]. */
SEC("xdp")
int sluice_xdp_complete(struct xdp_md *ctx)
{
	trace_begin();
	int action = judge(ctx);

	TRACE(action, action);
	return action;
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
