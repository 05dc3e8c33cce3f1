/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sluice ABI: every map key, map value and constant shared by the BPF
 * programs (bpf/) and the C++ side (userspace/, tests/). This is the only
 * place these layouts are written down; both sides include this file and the
 * static_asserts at the bottom pin sizes and offsets so a change on one side
 * cannot silently disagree with the other.
 *
 * Ownership is the architecture: every map has exactly one writer.
 *   policy  (CLI):        sl_root, pol_* (double-buffered, see below)
 *   control (controller): ctl_header, ctl_services
 *   state   (BPF):        pair_buckets, pair_stats, service_stats,
 *                         source_buckets, global_stats, deny_stats, obs_*, flows
 *
 * Policy is double-buffered: every pol_* map holds two "slots", and
 * sl_root.active_slot says which slot the data path reads. The CLI builds a
 * complete new policy in the inactive slot and then flips active_slot with
 * one aligned 32-bit store, so a packet sees either the old policy or the
 * new one, never a mix. The three arrays read for every packet (pol_ports,
 * pol_services, pol_src4_table) hold both slots back to back, entry
 * sl_slot_key(slot, entries per slot, index); the other pol_* maps are
 * arrays of two inner maps.
 */
#ifndef SLUICE_ABI_H
#define SLUICE_ABI_H

#include <linux/types.h>

#include "sluice/histogram.h"

#ifdef __cplusplus
#include <cstddef>
#define SL_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define SL_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

/* ---- limits and identifiers ------------------------------------------- */

#define SL_NAME_MAX 32           /* service and tenant names, NUL included */
#define SL_MAX_SERVICES 1024     /* service ids 1..1023; 0 means "no service" */
#define SL_MAX_TENANTS 16384     /* tenant ids 1..16383; 0 is the default tenant */
#define SL_MAX_DENY_RULES 4096   /* deny rule ids 1..4095; 0 means "not denied" */
#define SL_MAX_SRC_PREFIXES 65536 /* per address family, tenant and deny prefixes merged */
#define SL_MAX_ADDR_SERVICES 4096 /* services bound to one destination address */
#define SL_POLICY_SLOTS 2
#define SL_PORT_INDEX_SIZE (2 * 65536) /* [proto index][port] */

/*
 * Per-(service, tenant) state lives in arrays indexed by
 *   pair index = service id * max_tenants + tenant id
 * (array lookups cost ~2 ns where a hash lookup costs ~24 ns). The geometry
 * is fixed when the maps are created; `[maps]` in the policy file sets it.
 */
#define SL_DEFAULT_MAX_SERVICES 64   /* service ids below this */
#define SL_DEFAULT_MAX_TENANTS 256   /* tenant ids below this */
#define SL_DEFAULT_SOURCE_ENTRIES 262144
#define SL_DEFAULT_FLOW_ENTRIES 262144

#define SL_DEFAULT_CONTROL_STALE_MS 2000

/*
 * The XDP data path is two programs. The quick judge (sluice_xdp, on the
 * hook) decides whatever static admission decides alone; packets that need
 * more (services the controller governs, RST replies, dry runs) it hands to
 * the complete judge through judges[SL_JUDGE_COMPLETE]. The loader fills
 * that slot; while it is empty, such packets pass (fail open, SL_G_UNJUDGED).
 */
enum sl_judge {
	SL_JUDGE_COMPLETE = 0,
	SL_JUDGE__COUNT,
};

/* Index into the port table: TCP services first, then UDP. */
enum sl_proto_index {
	SL_PROTO_TCP = 0,
	SL_PROTO_UDP = 1,
};

/* ---- policy: written by the CLI --------------------------------------- */

/* What the data path must know about a slot before looking anything up. */
enum sl_policy_flags {
	SL_POL_SRC_V4 = 1 << 0,   /* the IPv4 source trie has entries */
	SL_POL_SRC_V6 = 1 << 1,   /* the IPv6 source trie has entries */
	SL_POL_TRACKING = 1 << 2, /* some service has SL_SVC_TRACK: egress has work */
};

/*
 * sl_root[0]: which policy slot is live. The CLI first writes the flags of
 * the slot it filled, then (a second update) flips active_slot, so a packet
 * never pairs a slot with the other slot's flags.
 */
struct sl_root {
	__u32 active_slot;   /* 0 or 1 */
	__u32 slot_flags[SL_POLICY_SLOTS]; /* enum sl_policy_flags, per slot */
	__u32 reserved;
	__u64 epoch;         /* epoch of the live slot; 0: no policy yet */
};

/* The key of entry `index` of `slot` in a flat two-slot array. */
static inline __u32 sl_slot_key(__u32 slot, __u32 slot_entries, __u32 index)
{
	return slot * slot_entries + index;
}

/* pol_info[slot][0]: the rest of what a slot says about itself. */
struct sl_policy_info {
	__u64 epoch;            /* bumped by every policy change */
	__u32 flags;            /* enum sl_policy_flags */
	__u32 control_stale_ms; /* control values older than this are ignored */
};

/*
 * A rate in the form the data path uses (a GCRA: one "theoretical arrival
 * time" per bucket) and in the form the operator wrote it, for export.
 * interval_ns == 0 means unlimited.
 */
struct sl_rate {
	__u64 interval_ns;  /* time per token: period / tokens */
	__u64 tolerance_ns; /* burst * interval_ns: how far ahead TAT may run */
	__u32 tokens;       /* as written: <tokens>/<period> */
	__u32 period_s;
	__u32 burst;
	__u32 reserved;
};

enum sl_reject_mode {
	SL_REJECT_DROP = 0, /* silent: the client's TCP retransmits and backs off */
	SL_REJECT_RST = 1,  /* answer a refused SYN with RST+ACK: "connection refused" */
};

enum sl_service_flags {
	SL_SVC_DRY_RUN = 1 << 0,       /* count what would be shed, shed nothing */
	SL_SVC_TENANT_LIMITS = 1 << 1, /* pol_limits holds overrides for this service */
	SL_SVC_PER_SOURCE = 1 << 2,    /* per_source is set */
	SL_SVC_HTTP = 1 << 3,          /* HTTP/1.x: read response status lines */
	SL_SVC_TRACK = 1 << 4,         /* observe requests (latency, in-flight) */
};

enum sl_adaptive_algo {
	SL_ADAPT_OFF = 0,
	SL_ADAPT_BBR = 1,
	SL_ADAPT_AIMD = 2,
	SL_ADAPT_GRADIENT = 3,
};

enum sl_breaker_kind {
	SL_BREAKER_OFF = 0,
	SL_BREAKER_RATIO = 1, /* three states on error or slow-call ratio */
	SL_BREAKER_SRE = 2,   /* Google SRE adaptive throttling */
};

/* Controller parameters of a service; the data path never reads them. */
struct sl_service_tuning {
	__u8 adaptive;              /* enum sl_adaptive_algo */
	__u8 breaker;               /* enum sl_breaker_kind */
	__u16 cpu_threshold_pm;     /* BBR CPU trigger, per mille; 0 = always apply */
	__u32 timeout_ms;           /* latency SLO; longer requests fail; 0 = none */
	__u32 window_ms;            /* statistics window */
	__u16 window_buckets;
	__u16 breaker_min_calls;    /* minimum volume before a breaker may open */
	__u16 breaker_error_pm;     /* open at this error ratio, per mille */
	__u16 breaker_slow_pm;      /* open at this slow-call ratio, per mille */
	__u32 breaker_slow_ms;      /* a call slower than this is slow */
	__u32 breaker_open_ms;      /* time OPEN before HALF_OPEN */
	__u16 breaker_probes;       /* admissions allowed while HALF_OPEN */
	__u16 sre_k_milli;          /* SRE throttling K, in thousandths */
	__u32 breaker_window_ms;    /* the breakers' window (10 buckets) */
	__u32 reserved;
	char cgroup[64];            /* the service's cgroup (v2 path) for its CPU; empty: the host's */
};

/*
 * What static admission needs of a service, copied by the policy compile
 * next to the service's id wherever the data path finds it (port table,
 * address map): the quick judge shedding a flood then reads one entry, not
 * the port entry and then the service entry it points at (that second,
 * dependent read cost 0.08x of the bare drop's rate in bench/shed_rate).
 */
struct sl_admission {
	__u32 flags;        /* the service's enum sl_service_flags */
	__u8 reject;        /* enum sl_reject_mode */
	__u8 reserved[3];
	__u64 interval_ns;  /* the service's rate (struct sl_rate) */
	__u64 tolerance_ns;
};

/* pol_ports, flat, SL_PORT_INDEX_SIZE entries per slot, at index
 * proto_index << 16 | port: the service on a port. */
enum sl_port_flags {
	SL_PORT_BY_ADDR = 1 << 0, /* some service binds this port to an address */
};
struct sl_port_entry {
	__u16 any_addr_service; /* service for every destination address, or 0 */
	__u16 flags;            /* enum sl_port_flags */
	__u32 reserved;
	struct sl_admission any_addr; /* any_addr_service's */
};

/* pol_svc_addr[slot]: services bound to one destination address. IPv4
 * addresses are stored IPv4-mapped (::ffff:a.b.c.d); the family tells them
 * from an IPv6 packet addressed to ::ffff:a.b.c.d. */
struct sl_addr_key {
	__u8 proto_index; /* enum sl_proto_index */
	__u8 family;      /* 4 or 6 */
	__u16 port;       /* host byte order */
	__u8 addr[16];
};
struct sl_addr_service {
	__u32 service;
	__u32 reserved;
	struct sl_admission admission;
};

/* pol_services, flat, SL_MAX_SERVICES entries per slot, at the service id. */
struct sl_service {
	char name[SL_NAME_MAX];     /* empty: the id is unused */
	__u8 proto_index;           /* enum sl_proto_index */
	__u8 reject;                /* enum sl_reject_mode */
	__u16 port;                 /* host byte order */
	__u32 flags;                /* enum sl_service_flags */
	__u8 addr[16];              /* IPv4-mapped when IPv4 */
	__u8 addr_family;           /* 0: any destination address, 4 or 6 */
	__u8 reserved[7];
	struct sl_rate rate;        /* each tenant's bucket unless pol_limits overrides */
	struct sl_rate per_source;  /* each client address's bucket */
	struct sl_service_tuning tuning;
};

/* pol_tenants[slot][tenant id]. */
struct sl_tenant {
	char name[SL_NAME_MAX]; /* empty: the id is unused */
	__u8 level;             /* 0 (core) .. 2 (shed first) */
	__u8 reserved[7];
};

/*
 * pol_src4_table, flat, SL_SRC4_TABLE_SIZE entries per slot: IPv4 source
 * classes as a three-level array (the "DIR-16-8-8" layout of router FIBs),
 * the compiled form of pol_src_v4 that the data path reads: 1 to 3 array
 * lookups (~2 ns each) where an LPM trie walk costs ~25 ns. Level 1 has one
 * entry per /16 at [0, 65536); an entry either holds a class or, with
 * SL_SRC4_NEXT, the index (within the slot) of a 256-entry chunk further on,
 * indexed by the next address byte (/24 level, then /32 level).
 */
#define SL_SRC4_L1_ENTRIES 65536
#define SL_SRC4_L2_CHUNKS 1024 /* /16s holding longer prefixes */
#define SL_SRC4_L3_CHUNKS 1024 /* /24s holding longer prefixes */
#define SL_SRC4_TABLE_SIZE (SL_SRC4_L1_ENTRIES + 256 * (SL_SRC4_L2_CHUNKS + SL_SRC4_L3_CHUNKS))
#define SL_SRC4_NEXT 0x80000000u
static inline __u32 sl_src4_class(__u32 tenant_id, __u32 deny_id) { return tenant_id | deny_id << 14; }
static inline __u32 sl_src4_tenant(__u32 entry) { return entry & 0x3fff; }
static inline __u32 sl_src4_deny(__u32 entry) { return (entry >> 14) & 0xfff; }

/*
 * pol_src_v4 / pol_src_v6: one LPM trie per family for source addresses,
 * merging tenant and deny prefixes so one lookup answers both questions.
 * The CLI stores, for every prefix P of either kind, the tenant of the
 * longest tenant prefix containing P and the longest deny rule containing P;
 * the longest match for an address then carries the right answer for both.
 */
struct sl_lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};
struct sl_lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};
enum sl_source_origin {
	SL_ORIGIN_TENANT = 1 << 0, /* this exact prefix is a tenant's */
	SL_ORIGIN_DENY = 1 << 1,   /* this exact prefix is a deny rule */
};
struct sl_source_class {
	__u16 tenant_id; /* 0: the default tenant */
	__u16 deny_id;   /* 0: not denied */
	__u8 origin;     /* enum sl_source_origin, for reading the policy back */
	__u8 reserved[3];
};

/* attachments: where the CLI attached the data path (for `sluice status`
 * and `sluice detach`). Written by the CLI; the BPF programs never read it. */
#define SL_NETNS_NAME_MAX 64
#define SL_IFNAME_MAX 16
struct sl_attach_key {
	char netns[SL_NETNS_NAME_MAX]; /* name under /run/netns; empty: the CLI's own */
	char ifname[SL_IFNAME_MAX];
};
enum sl_xdp_mode {
	SL_XDP_NATIVE = 1,
	SL_XDP_GENERIC = 2,
};
struct sl_attachment {
	__u32 ifindex;
	__u32 xdp_prog_id;
	__u32 tc_prog_id;     /* egress observation; 0 when not attached */
	__u8 xdp_mode;        /* enum sl_xdp_mode */
	__u8 multiprog;       /* 1: behind the libxdp dispatcher, shared with others */
	__u8 reserved[2];
	__u64 attached_at;    /* seconds since the epoch */
};

/* The index of a (service, tenant) pair in every pair-indexed array:
 * pol_limits (rate overrides; interval 0 = none), pair_buckets, pair_stats. */
static inline __u32 sl_pair_index(__u32 service_id, __u32 tenant_id, __u32 max_tenants)
{
	return service_id * max_tenants + tenant_id;
}

/* ---- control: written by the controller (sluice run) ----------------- */

enum sl_breaker_state {
	SL_BREAKER_CLOSED = 0,
	SL_BREAKER_OPEN = 1,      /* refuse all new work */
	SL_BREAKER_HALF_OPEN = 2, /* admit until probes_admitted reaches probe_limit */
};

/* ctl_header[0]: the controller's heartbeat. */
struct sl_control_header {
	__u64 heartbeat_ns; /* CLOCK_MONOTONIC, the clock bpf_ktime_get_ns reads; 0: stopped */
	__u64 last_tick_ns; /* kept when it stops, so a successor knows how recent its values are */
	__u32 controller_pid;
	__u32 reserved;
};

#define SL_LEVELS 3
#define SL_P_ONE 0xffffffffu /* reject_p scale: SL_P_ONE means always reject */

/*
 * ctl_services[service id]. Priority levels share one learned limit L: work
 * of level 2 is admitted while in-flight work is below about 1.1 L, level 1
 * below 1.2 L, level 0 below 1.3 L (always at least L + 1), so under
 * overload level 2 is shed first and level 0 last, while work of any level
 * can still show that the service has more room than L. The controller
 * writes the three thresholds; the data path compares in-flight work with
 * the one of the request's level.
 */
struct sl_control {
	__u32 max_inflight[SL_LEVELS]; /* per priority level; 0 = no limit */
	__u32 reject_p;                /* probability of refusing, / SL_P_ONE */
	__u64 probe_limit;             /* HALF_OPEN: admit while probes_admitted < this */
	__u8 breaker_state;            /* enum sl_breaker_state */
	__u8 learned_flags;            /* SL_LEARNED_*, with learned */
	__u8 reserved[2];
	__s32 inflight_bias;           /* leaked in-flight (flows the LRU evicted while pending) */
	/* What a restarted controller starts from; the data path ignores these. */
	__u32 learned;                 /* the learned limit */
	__u32 learned_rt_floor_us;     /* the queue-free response time behind it (BBR), 0 = unknown */
};
#define SL_LEARNED_SATURATED 0x1 /* the service has shown a queue: the limit binds */

/* ---- observation: written by the BPF programs --------------------------- */

/*
 * flows: request/response pairing per connection (TCP) or 5-tuple (UDP) of a
 * service with SL_SVC_TRACK. A request starts with the first client payload
 * on an idle flow and completes with the first server payload after it. An
 * admitted SYN reserves an in-flight slot for the connection's first request,
 * so admitting connections and admitting requests count the same slots.
 */
enum sl_flow_state {
	SL_FLOW_IDLE = 0,     /* no request outstanding */
	SL_FLOW_RESERVED = 1, /* connection admitted, its first request not yet sent */
	SL_FLOW_PENDING = 2,  /* a request awaits its first response byte */
};
struct sl_flow_key {
	__u8 client[16]; /* IPv4-mapped when IPv4 */
	__u8 server[16];
	__u16 client_port;
	__u16 server_port;
	__u8 proto;      /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 reserved[3];
};
struct sl_flow {
	__u64 started_ns; /* CLOCK_MONOTONIC: the request's first byte, or the reservation */
	__u32 state;      /* enum sl_flow_state, changed by compare-and-swap */
	__u16 service_id;
	__u16 tenant_id;
	__u8 level;
	__u8 reserved[3];
	__u32 census;     /* the census that counted this flow, or that ran when
			   * it took its slot (| SL_CENSUS_ENTERED); see below */
};

/*
 * The flow census (bpf/flow_census.bpf.c) finds in-flight slots that no flow
 * holds any more: flows the LRU evicted while pending, reservations never
 * claimed. The controller fills in the inputs, runs the census, and reads
 * the rest; a service's leaked slots are held - live - released.
 *
 * Requests begin and end while the census walks the table, and a count
 * taken at one moment and a walk that takes milliseconds disagree by those
 * that did. So the census counts what held a slot as it began, when it
 * published its id (census_state.running; held is the lower of the
 * in-flight counts just before and just after). From then on a flow that
 * takes a slot is marked as entered during this census, and the walk skips
 * it; a flow the walk counts is marked with the id; a slot released by a
 * flow that held it when the census began and that the walk has not reached
 * is counted by the data path (census_state.released). Census ids are even
 * and not 0.
 *
 * A flow is live while it holds an in-flight slot: a pending request, or a
 * reservation younger than reservation_ttl_ns (older ones never became a
 * request: a client that went away, or a spoofed SYN).
 */
#define SL_CENSUS_ENTERED 1u
struct sl_flow_census {
	__u64 now_ns;             /* in: CLOCK_MONOTONIC, as sl_flow.started_ns */
	__u64 reservation_ttl_ns; /* in */
	__u32 id;                 /* in: this census's id */
	__u32 reserved;
	__s64 held[SL_MAX_SERVICES];     /* out, by service id: the in-flight count as the census began */
	__u32 live[SL_MAX_SERVICES];     /* out: flows found holding the slot they held then */
	__u32 released[SL_MAX_SERVICES]; /* out: slots released by such flows before the walk reached them */
};

/* census_state[0]: what the data path must know while a census runs. */
struct sl_census_state {
	__u32 running; /* the id of the census walking the flow table, or 0 */
	__u32 reserved;
	__u64 released[SL_MAX_SERVICES]; /* by service id, while it runs (atomic adds) */
};

/* obs_shared[service id]: shared counters changed with atomic adds. */
struct sl_obs_shared {
	__s64 inflight;        /* requests started and not yet ended */
	__u64 probes_admitted; /* admissions while HALF_OPEN, ever */
};

/* obs_stats[service id], per CPU: what requests did. */
struct sl_obs_counters {
	__u64 started;        /* requests begun */
	__u64 responses;      /* requests answered (whatever the status) */
	__u64 errors;         /* answered with an HTTP 5xx (services with SL_SVC_HTTP) */
	__u64 timeouts;       /* answered later than the service's timeout */
	__u64 server_aborts;  /* the server reset or closed with a request pending */
	__u64 client_aborts;  /* the client reset or closed with a request pending */
	__u64 latency_sum_ns; /* of responses */
	__u64 hist[SL_HIST_BUCKETS]; /* response latency, see histogram.h */
};

/* ---- state: written by the BPF programs -------------------------------- */

/* pair_buckets[pair index] and source_buckets: GCRA state. */
struct sl_bucket {
	__u64 tat_ns; /* theoretical arrival time of the next unit */
};

struct sl_source_key {
	__u32 service_id;
	__u8 family;   /* 4 or 6: an IPv6 source ::ffff:a.b.c.d is not the IPv4 a.b.c.d */
	__u8 reserved[3];
	__u8 addr[16]; /* IPv4-mapped when IPv4 */
};

/* Why a unit of work was admitted or shed; per (service, tenant). */
enum sl_reason {
	SL_R_ADMITTED = 0, /* a unit of admission (new connection, datagram, request) let in */
	SL_R_PASSED,       /* packets of admitted work, not charged (established TCP, fragments) */
	SL_R_REQUEST,      /* requests begun on established connections (tracked services) */
	SL_R_TENANT_LIMIT, /* over the (service, tenant) bucket */
	SL_R_SOURCE_LIMIT, /* over the per-source bucket */
	SL_R_INFLIGHT,     /* over the adaptive in-flight limit */
	SL_R_BREAKER,      /* breaker open, or half-open beyond its probes */
	SL_R_THROTTLE,     /* refused with the adaptive probability p */
	SL_R__COUNT,
};

/* pair_stats[pair index], per CPU: what happened to the pair's work. */
struct sl_counters {
	__u64 verdict[SL_R__COUNT];
};

/* service_stats[service id], per CPU: the service's totals over all its
 * tenants, so the controller reads one entry per service per tick. */
struct sl_service_counters {
	__u64 shed[SL_R__COUNT];       /* refused for adaptive reasons (inflight, breaker, throttle) */
	__u64 would_shed[SL_R__COUNT]; /* dry run: what would have been shed, and why */
};

/* Host-wide counters that belong to no service; global_stats[0], per CPU. */
enum sl_global_counter {
	SL_G_PACKETS = 0,     /* every packet the XDP program saw */
	SL_G_NOT_IP,          /* neither IPv4 nor IPv6 (ARP, LLDP, ...): passed */
	SL_G_TRUNCATED,       /* a header ends past the packet: passed, uncharged */
	SL_G_MALFORMED,       /* impossible header fields: passed, uncharged */
	SL_G_HEADER_LIMIT,    /* more VLAN tags or IPv6 extension headers than we walk: passed */
	SL_G_FRAGMENT,        /* non-first fragment (no ports): passed, uncharged */
	SL_G_OTHER_L4,        /* not TCP or UDP: passed */
	SL_G_NOT_SERVICE,     /* TCP/UDP to no configured service: passed */
	SL_G_NO_POLICY,       /* no policy loaded yet: passed */
	SL_G_DENIED,          /* dropped by a deny rule */
	SL_G_RST_SENT,        /* refused SYNs answered with RST+ACK */
	SL_G_RST_FAILED,      /* could not build the RST: dropped instead */
	SL_G_OUT_OF_RANGE,    /* a (service, tenant) pair beyond the maps' geometry: passed */
	SL_G_CONTROL_STALE,   /* packets that found control values too old, ignored them */
	SL_G_UNJUDGED,        /* for the complete judge, which was not there: passed */
	SL_G__COUNT,
};
struct sl_global_counters {
	__u64 c[SL_G__COUNT];
};

/* deny_stats[deny id], per CPU. */
struct sl_deny_counters {
	__u64 packets;
	__u64 bytes;
};

/* ---- program configuration (read-only data, set before load) ---------- */

struct sl_prog_config {
	__u32 max_tenants;  /* stride of the pair-indexed arrays */
	__u32 ns_per_tick;  /* 10^9 / CONFIG_HZ; 0: read bpf_ktime_get_ns instead of jiffies */
	__u8 fake_clock;    /* tests: read "now" from fake_clock[0] instead of the kernel */
	__u8 trace;         /* tests: record every decision in last_trace */
	__u8 reserved[6];
};

/* last_trace in test builds: how the last packet was judged, so a fuzzer can
 * compare each decision with a reference model. */
struct sl_trace {
	__u32 global;     /* the enum sl_global_counter that told its fate; 0 if it reached a service */
	__u32 reason;     /* enum sl_reason, when it reached a service */
	__u16 service_id; /* the service and tenant it was charged to (when it reached a service) */
	__u16 tenant_id;
	__u16 deny_id;    /* the deny rule that dropped it, or 0 */
	__u16 reserved;
	__u32 action;     /* XDP_PASS, XDP_DROP, XDP_TX */
	__u32 reserved2;
};

/* ---- layout checks ------------------------------------------------------ */

SL_STATIC_ASSERT(sizeof(struct sl_root) == 24, "sl_root layout");
SL_STATIC_ASSERT(sizeof(struct sl_policy_info) == 16, "sl_policy_info layout");
SL_STATIC_ASSERT(sizeof(struct sl_admission) == 24, "sl_admission layout");
/* 32 B divides 64: the values of an mmapable array start on a page, so no
 * port entry straddles two cache lines. */
SL_STATIC_ASSERT(sizeof(struct sl_port_entry) == 32, "sl_port_entry layout");
SL_STATIC_ASSERT(sizeof(struct sl_addr_service) == 32, "sl_addr_service layout");
SL_STATIC_ASSERT(sizeof(struct sl_addr_key) == 20, "sl_addr_key layout");
SL_STATIC_ASSERT(sizeof(struct sl_rate) == 32, "sl_rate layout");
SL_STATIC_ASSERT(sizeof(struct sl_service_tuning) == 104, "sl_service_tuning layout");
SL_STATIC_ASSERT(sizeof(struct sl_service) == 232, "sl_service layout");
SL_STATIC_ASSERT((__u64)SL_POLICY_SLOTS * SL_SRC4_TABLE_SIZE <= 0xffffffffull, "slot keys fit 32 bits");
SL_STATIC_ASSERT(__builtin_offsetof(struct sl_service, rate) == 64, "sl_service.rate offset");
SL_STATIC_ASSERT(__builtin_offsetof(struct sl_service, tuning) == 128, "sl_service.tuning offset");
SL_STATIC_ASSERT(sizeof(struct sl_tenant) == 40, "sl_tenant layout");
SL_STATIC_ASSERT(sizeof(struct sl_lpm_v4_key) == 8, "sl_lpm_v4_key layout");
SL_STATIC_ASSERT(sizeof(struct sl_lpm_v6_key) == 20, "sl_lpm_v6_key layout");
SL_STATIC_ASSERT(sizeof(struct sl_source_class) == 8, "sl_source_class layout");
SL_STATIC_ASSERT(sizeof(struct sl_attach_key) == 80, "sl_attach_key layout");
SL_STATIC_ASSERT(sizeof(struct sl_attachment) == 24, "sl_attachment layout");
SL_STATIC_ASSERT(sizeof(struct sl_control_header) == 24, "sl_control_header layout");
SL_STATIC_ASSERT(sizeof(struct sl_control) == 40, "sl_control layout");
SL_STATIC_ASSERT(sizeof(struct sl_bucket) == 8, "sl_bucket layout");
SL_STATIC_ASSERT(sizeof(struct sl_flow_key) == 40, "sl_flow_key layout");
SL_STATIC_ASSERT(sizeof(struct sl_flow) == 24, "sl_flow layout");
SL_STATIC_ASSERT(sizeof(struct sl_flow_census) == 24 + 16 * SL_MAX_SERVICES, "sl_flow_census layout");
SL_STATIC_ASSERT(sizeof(struct sl_census_state) == 8 + 8 * SL_MAX_SERVICES, "sl_census_state layout");
SL_STATIC_ASSERT(sizeof(struct sl_obs_shared) == 16, "sl_obs_shared layout");
SL_STATIC_ASSERT(sizeof(struct sl_obs_counters) == 8 * (7 + SL_HIST_BUCKETS), "sl_obs_counters layout");
SL_STATIC_ASSERT(sizeof(struct sl_source_key) == 24, "sl_source_key layout");
SL_STATIC_ASSERT(sizeof(struct sl_counters) == 8 * SL_R__COUNT, "sl_counters layout");
SL_STATIC_ASSERT(sizeof(struct sl_service_counters) == 16 * SL_R__COUNT, "sl_service_counters layout");
SL_STATIC_ASSERT(sizeof(struct sl_prog_config) == 16, "sl_prog_config layout");
SL_STATIC_ASSERT(sizeof(struct sl_trace) == 24, "sl_trace layout");
SL_STATIC_ASSERT(sizeof(struct sl_global_counters) == 8 * SL_G__COUNT, "sl_global_counters layout");
SL_STATIC_ASSERT(sizeof(struct sl_deny_counters) == 16, "sl_deny_counters layout");
SL_STATIC_ASSERT(SL_MAX_SERVICES <= 0x10000 && SL_MAX_TENANTS <= 0x10000, "ids fit 16 bits");
SL_STATIC_ASSERT((__u64)SL_MAX_SERVICES * SL_MAX_TENANTS <= 0xffffffffull, "pair indexes fit 32 bits");
SL_STATIC_ASSERT(SL_MAX_TENANTS <= 1 << 14 && SL_MAX_DENY_RULES <= 1 << 12, "source classes fit an IPv4 table entry");

#endif /* SLUICE_ABI_H */
