/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The maps of the sluice data path, grouped by who writes them (see the
 * ownership rules in include/sluice/abi.h). Every map is pinned by name
 * under the pin directory so the CLI, the controller and later program
 * versions find the same state. Sizes marked "configurable" or "geometry"
 * are set by the loader before the maps are created.
 */
#ifndef SLUICE_BPF_MAPS_H
#define SLUICE_BPF_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice/abi.h"

/*
 * A policy map: an array of SL_POLICY_SLOTS inner maps of type `inner`.
 * Inner templates give key_size/value_size rather than __type: clang emits
 * only forward declarations for types reached solely through a template,
 * and libbpf cannot size those.
 */
#define POLICY_MAP(name, inner)                          \
	struct {                                         \
		__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); \
		__uint(max_entries, SL_POLICY_SLOTS);    \
		__type(key, __u32);                      \
		__uint(pinning, LIBBPF_PIN_BY_NAME);     \
		__array(values, inner);                  \
	} name SEC(".maps")

/*
 * A policy array read for every packet: both slots back to back, entry
 * sl_slot_key(slot, entries, index). Behind an array of maps, each lookup
 * would wait for one more load (the inner map); flat, the shed path of a
 * SYN flood costs 2.1x a bare drop instead of 1.9x (measured with
 * bench/packet_cost). Mmapable: the CLI rewrites a slot in place through
 * a mapping instead of one syscall per entry.
 */
#define SLOT_ARRAY(name, entries, value_type)                  \
	struct {                                               \
		__uint(type, BPF_MAP_TYPE_ARRAY);               \
		__uint(max_entries, SL_POLICY_SLOTS * (entries)); \
		__uint(map_flags, BPF_F_MMAPABLE);              \
		__type(key, __u32);                             \
		__type(value, value_type);                      \
		__uint(pinning, LIBBPF_PIN_BY_NAME);            \
	} name SEC(".maps")

/* ---- policy (CLI) ---------------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_root);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_root SEC(".maps");

struct pol_info_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct sl_policy_info));
};
POLICY_MAP(pol_info, struct pol_info_inner);

SLOT_ARRAY(pol_ports, SL_PORT_INDEX_SIZE, struct sl_port_entry);

struct pol_svc_addr_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_ADDR_SERVICES);
	__uint(key_size, sizeof(struct sl_addr_key));
	__uint(value_size, sizeof(struct sl_addr_service));
};
POLICY_MAP(pol_svc_addr, struct pol_svc_addr_inner);

SLOT_ARRAY(pol_services, SL_MAX_SERVICES, struct sl_service);

struct pol_tenants_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SL_MAX_TENANTS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct sl_tenant));
};
POLICY_MAP(pol_tenants, struct pol_tenants_inner);

/* Sized by the pair geometry, which is only known at run time: the inner
 * arrays may differ in size from this template (BPF_F_INNER_MAP). */
struct pol_limits_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32)); /* pair index */
	__uint(value_size, sizeof(struct sl_rate));
};
POLICY_MAP(pol_limits, struct pol_limits_inner);

SLOT_ARRAY(pol_src4_table, SL_SRC4_TABLE_SIZE, __u32);

/* The tries are the record of source prefixes (read back by `sluice
 * export`); the data path reads the IPv4 table and the IPv6 trie. */
struct pol_src_v4_inner {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SL_MAX_SRC_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(key_size, sizeof(struct sl_lpm_v4_key));
	__uint(value_size, sizeof(struct sl_source_class));
};
POLICY_MAP(pol_src_v4, struct pol_src_v4_inner);

struct pol_src_v6_inner {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SL_MAX_SRC_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(key_size, sizeof(struct sl_lpm_v6_key));
	__uint(value_size, sizeof(struct sl_source_class));
};
POLICY_MAP(pol_src_v6, struct pol_src_v6_inner);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct sl_attach_key);
	__type(value, struct sl_attachment);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} attachments SEC(".maps");

/* ---- control (controller) ------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_control_header);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ctl_header SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SL_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct sl_control);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ctl_services SEC(".maps");

/* ---- observation (BPF) ----------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SL_DEFAULT_FLOW_ENTRIES); /* configurable */
	__type(key, struct sl_flow_key);
	__type(value, struct sl_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SL_DEFAULT_MAX_SERVICES); /* geometry */
	__type(key, __u32); /* service id */
	__type(value, struct sl_obs_shared);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} obs_shared SEC(".maps");

/* Written by the flow census while it runs (struct sl_flow_census). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_census_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} census_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_DEFAULT_MAX_SERVICES); /* geometry */
	__type(key, __u32); /* service id */
	__type(value, struct sl_obs_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} obs_stats SEC(".maps");

/* ---- state (BPF) ------------------------------------------------------ */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SL_DEFAULT_MAX_SERVICES * SL_DEFAULT_MAX_TENANTS); /* geometry */
	__type(key, __u32); /* pair index */
	__type(value, struct sl_bucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pair_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_DEFAULT_MAX_SERVICES * SL_DEFAULT_MAX_TENANTS); /* geometry */
	__type(key, __u32); /* pair index */
	__type(value, struct sl_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pair_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_DEFAULT_MAX_SERVICES); /* geometry */
	__type(key, __u32); /* service id */
	__type(value, struct sl_service_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} service_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SL_DEFAULT_SOURCE_ENTRIES); /* configurable */
	__type(key, struct sl_source_key);
	__type(value, struct sl_bucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} source_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_global_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} global_stats SEC(".maps");

/* Count one packet in a global counter. The per-CPU lookup is a few
 * instructions: cheaper than keeping the pointer live across a judgement. */
static __always_inline void count(int which)
{
	__u32 zero = 0;
	struct sl_global_counters *g = bpf_map_lookup_elem(&global_stats, &zero);

	if (g && which >= 0 && which < SL_G__COUNT)
		g->c[which]++;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_MAX_DENY_RULES);
	__type(key, __u32);
	__type(value, struct sl_deny_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} deny_stats SEC(".maps");

/* The complete judge, for the quick one to hand packets to (see abi.h).
 * Pinned: the kernel empties a program array once no file or pin holds it.
 * Every load fills the slot with its own complete judge, which then serves
 * the quick judges of every interface (they share all other maps too). */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, SL_JUDGE__COUNT);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} judges SEC(".maps");

/* Per CPU, the last verdict on the controller's heartbeat (see
 * controller_alive() in adaptive.h). A cache: not pinned, so each loaded
 * program starts with its own, empty. */
struct heartbeat_verdict {
	__u64 tick;         /* jiffies when it was reached */
	__u64 heartbeat_ns; /* the heartbeat it judged */
	__u64 fresh;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct heartbeat_verdict);
} heartbeat_verdicts SEC(".maps");

/* Tests only: "now" when sl_config.fake_clock is set. Not pinned, so every
 * test harness has its own clock. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} fake_clock SEC(".maps");

#endif /* SLUICE_BPF_MAPS_H */
