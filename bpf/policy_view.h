/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Reading the live policy: which slot a packet is judged by, the class of
 * its source (tenant, deny rule), and the service it belongs to.
 */
#ifndef SLUICE_BPF_POLICY_VIEW_H
#define SLUICE_BPF_POLICY_VIEW_H

#include "maps.h"
#include "parse.h"

/* The policy slot a packet is judged by, read once per packet. */
struct policy_view {
	__u32 slot;
	__u32 flags; /* enum sl_policy_flags of that slot */
};

/* The inner map of a slot of an array-of-maps policy map. */
static __always_inline void *slot_map(void *outer, __u32 slot)
{
	return bpf_map_lookup_elem(outer, &slot);
}

/* Entry `index` of a slot of a flat policy array (SLOT_ARRAY in maps.h). An
 * index past the slot's end finds nothing, not the other slot's entry. */
static __always_inline void *slot_entry(void *array, __u32 slot, __u32 slot_entries, __u32 index)
{
	if (index >= slot_entries)
		return 0;
	__u32 key = sl_slot_key(slot, slot_entries, index);
	return bpf_map_lookup_elem(array, &key);
}

/* Returns 0 when no policy was ever applied. */
static __always_inline int policy_view_get(struct policy_view *pv)
{
	__u32 zero = 0;
	struct sl_root *root = bpf_map_lookup_elem(&sl_root, &zero);

	if (!root || !root->epoch)
		return 0;
	pv->slot = root->active_slot & 1;
	pv->flags = root->slot_flags[pv->slot];
	return 1;
}

/* The tenant and deny rule of an IPv4 source (host byte order): a walk of
 * the compiled /16-/24-/32 table (see abi.h). */
static __always_inline struct sl_source_class classify_source_v4(const struct policy_view *pv, __u32 addr)
{
	struct sl_source_class none = {};

	if (!(pv->flags & SL_POL_SRC_V4))
		return none;
	__u32 *entry = slot_entry(&pol_src4_table, pv->slot, SL_SRC4_TABLE_SIZE, addr >> 16);
	if (entry && (*entry & SL_SRC4_NEXT))
		entry = slot_entry(&pol_src4_table, pv->slot, SL_SRC4_TABLE_SIZE,
				   (*entry & ~SL_SRC4_NEXT) + ((addr >> 8) & 0xff));
	if (entry && (*entry & SL_SRC4_NEXT))
		entry = slot_entry(&pol_src4_table, pv->slot, SL_SRC4_TABLE_SIZE, (*entry & ~SL_SRC4_NEXT) + (addr & 0xff));
	if (!entry || (*entry & SL_SRC4_NEXT))
		return none;
	struct sl_source_class found = { .tenant_id = sl_src4_tenant(*entry), .deny_id = sl_src4_deny(*entry) };
	return found;
}

/* The tenant and deny rule of a source address. IPv6 looks it up in the
 * LPM trie (see abi.h). */
static __always_inline struct sl_source_class classify_source(const struct policy_view *pv,
							       const struct packet *pkt)
{
	struct sl_source_class none = {};

	if (pkt->family == 4) {
		__be32 wire;
		__builtin_memcpy(&wire, pkt->saddr + 12, 4);
		return classify_source_v4(pv, bpf_ntohl(wire));
	}
	if (!(pv->flags & SL_POL_SRC_V6))
		return none;
	void *trie = slot_map(&pol_src_v6, pv->slot);
	if (!trie)
		return none;
	struct sl_lpm_v6_key key = { .prefixlen = 128 };
	__builtin_memcpy(key.addr, pkt->saddr, 16);
	struct sl_source_class *cls = bpf_map_lookup_elem(trie, &key);
	return cls ? *cls : none;
}

/* enum sl_proto_index of TCP and UDP, -1 for any other protocol. */
static __always_inline int proto_index_of(__u8 l4proto)
{
	return l4proto == IPPROTO_TCP ? SL_PROTO_TCP : l4proto == IPPROTO_UDP ? SL_PROTO_UDP : -1;
}

/* The port entry of (protocol, port); 0 for a protocol other than TCP and
 * UDP. */
static __always_inline struct sl_port_entry *port_entry(const struct policy_view *pv, __u8 l4proto, __u16 port)
{
	int proto_index = proto_index_of(l4proto);

	if (proto_index < 0)
		return 0;
	return slot_entry(&pol_ports, pv->slot, SL_PORT_INDEX_SIZE, (__u32)proto_index << 16 | port);
}

/* The service a packet is for, and what static admission needs of it. */
struct service_match {
	__u32 id; /* 0: none */
	const struct sl_admission *admission; /* set whenever id is */
};

/* The service at (protocol, port, address). Ingress asks with the
 * destination, egress with the source. */
static __always_inline struct service_match find_service(const struct policy_view *pv, __u8 l4proto, __u16 port,
							 __u8 family, const __u8 addr[16])
{
	struct service_match none = {};
	struct sl_port_entry *entry = port_entry(pv, l4proto, port);

	if (!entry)
		return none;
	if (entry->flags & SL_PORT_BY_ADDR) {
		void *by_addr = slot_map(&pol_svc_addr, pv->slot);
		if (by_addr) {
			struct sl_addr_key key = { .proto_index = proto_index_of(l4proto), .family = family,
						   .port = port };
			__builtin_memcpy(key.addr, addr, 16);
			struct sl_addr_service *bound = bpf_map_lookup_elem(by_addr, &key);
			if (bound && bound->service) {
				struct service_match found = { .id = bound->service, .admission = &bound->admission };
				return found;
			}
		}
	}
	struct service_match found = { .id = entry->any_addr_service, .admission = &entry->any_addr };
	return found;
}

static __always_inline const struct sl_service *service_get(const struct policy_view *pv, __u32 service_id)
{
	const struct sl_service *svc = service_id ? slot_entry(&pol_services, pv->slot, SL_MAX_SERVICES, service_id) : 0;

	return svc && svc->name[0] ? svc : 0;
}

#endif /* SLUICE_BPF_POLICY_VIEW_H */
