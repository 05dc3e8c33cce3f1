// SPDX-License-Identifier: GPL-2.0
/*
 * A yardstick for bench/packet_cost, not part of the data path: the least
 * work a judgement by a static limit needs, on the maps of a loaded sluice
 * data path (the bench binds them with bpf_map__reuse_fd). Like sluice's
 * quick judge it counts the packet, reads the policy root, walks the IPv4
 * source table, reads the port entry, counts the pair's verdict and runs the
 * GCRA on the pair's bucket. It does nothing else: untagged IPv4 without
 * options only, no fragments, no IPv6, no per-source or per-tenant rates, no
 * deny counters, no trace records, no hand-over to the complete judge.
 * Whatever it does not judge it passes with no verdict counted.
 *
 * What sluice's shed and admitted paths cost beyond this program is the
 * price of their generality; what this program costs beyond a bare drop is
 * the price of the work itself.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "sluice/abi.h"
#include "sluice/gcra.h"

/* The data path's maps, by the same names; their sizes come with the fds. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_root);
} sl_root SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u32);
} pol_src4_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct sl_port_entry);
} pol_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_global_counters);
} global_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_counters);
} pair_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_bucket);
} pair_buckets SEC(".maps");

/* The data path's sl_config.max_tenants and ns_per_tick, set by the bench. */
const volatile __u32 max_tenants = 1;
const volatile __u32 ns_per_tick = 1;

static __always_inline __u32 *source_entry(__u32 slot, __u32 index)
{
	__u32 key = sl_slot_key(slot, SL_SRC4_TABLE_SIZE, index);

	return bpf_map_lookup_elem(&pol_src4_table, &key);
}

SEC("xdp")
int least_work(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 zero = 0;

	struct sl_global_counters *g = bpf_map_lookup_elem(&global_stats, &zero);
	if (g)
		g->c[SL_G_PACKETS]++;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (ip->version != 4 || ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))
		return XDP_PASS;
	__u32 tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < sizeof(*ip) || sizeof(*eth) + tot_len > (__u64)(data_end - data))
		return XDP_PASS;
	__u32 l4_len = tot_len - sizeof(*ip);

	__u32 proto_index, port, new_unit = 1;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);
		if ((void *)(tcp + 1) > data_end || l4_len < sizeof(*tcp) || tcp->doff < 5 || tcp->doff * 4 > l4_len)
			return XDP_PASS;
		proto_index = SL_PROTO_TCP;
		port = bpf_ntohs(tcp->dest);
		new_unit = tcp->syn && !tcp->ack && !tcp->rst && !tcp->fin;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip + 1);
		if ((void *)(udp + 1) > data_end || l4_len < sizeof(*udp))
			return XDP_PASS;
		proto_index = SL_PROTO_UDP;
		port = bpf_ntohs(udp->dest);
	} else {
		return XDP_PASS;
	}

	struct sl_root *root = bpf_map_lookup_elem(&sl_root, &zero);
	if (!root || !root->epoch)
		return XDP_PASS;
	__u32 slot = root->active_slot & 1;

	__u32 tenant_id = 0;
	if (root->slot_flags[slot] & SL_POL_SRC_V4) {
		__u32 addr = bpf_ntohl(ip->saddr);
		__u32 *entry = source_entry(slot, addr >> 16);
		if (entry && (*entry & SL_SRC4_NEXT))
			entry = source_entry(slot, (*entry & ~SL_SRC4_NEXT) + ((addr >> 8) & 0xff));
		if (entry && (*entry & SL_SRC4_NEXT))
			entry = source_entry(slot, (*entry & ~SL_SRC4_NEXT) + (addr & 0xff));
		if (entry && !(*entry & SL_SRC4_NEXT)) {
			if (sl_src4_deny(*entry))
				return XDP_DROP;
			tenant_id = sl_src4_tenant(*entry);
		}
	}

	__u32 port_key = sl_slot_key(slot, SL_PORT_INDEX_SIZE, proto_index << 16 | port);
	struct sl_port_entry *service = bpf_map_lookup_elem(&pol_ports, &port_key);
	if (!service || !service->any_addr_service || (service->flags & SL_PORT_BY_ADDR))
		return XDP_PASS;
	const struct sl_admission *adm = &service->any_addr;
	if (adm->flags & (SL_SVC_TRACK | SL_SVC_DRY_RUN | SL_SVC_PER_SOURCE | SL_SVC_TENANT_LIMITS))
		return XDP_PASS;
	if (adm->reject == SL_REJECT_RST && proto_index == SL_PROTO_TCP)
		return XDP_PASS;
	if (tenant_id >= max_tenants)
		return XDP_PASS;

	__u32 pair = sl_pair_index(service->any_addr_service, tenant_id, max_tenants);
	struct sl_counters *counters = bpf_map_lookup_elem(&pair_stats, &pair);
	if (!counters)
		return XDP_PASS;
	if (!new_unit) {
		counters->verdict[SL_R_PASSED]++;
		return XDP_PASS;
	}
	struct sl_bucket *bucket = adm->interval_ns ? bpf_map_lookup_elem(&pair_buckets, &pair) : 0;
	if (bucket) {
		__u64 now = bpf_jiffies64() * ns_per_tick, tat = bucket->tat_ns, next;
		if (!sl_gcra_conforms(tat, now, adm->interval_ns, adm->tolerance_ns, &next) ||
		    __sync_val_compare_and_swap(&bucket->tat_ns, tat, next) != tat) {
			counters->verdict[SL_R_TENANT_LIMIT]++;
			return XDP_DROP;
		}
	}
	counters->verdict[SL_R_ADMITTED]++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
