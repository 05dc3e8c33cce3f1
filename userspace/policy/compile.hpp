// Policy <-> the contents of one policy slot in the kernel maps.
//
// compile() is the only place that knows how a policy becomes map entries:
// stable ids, the port table, and the merged tenant/deny source tries.
// decompile() reads a slot back into the policy it came from, which is how
// the CLI learns the running policy.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "policy/policy.hpp"
#include "sluice/abi.h"

namespace sluice::policy {

// Ids stay with their names across policy changes, so counters and buckets
// (keyed by id in maps the data path owns) stay with their service or tenant.
struct IdAssignment {
  std::map<std::string, uint32_t> services;  // 1 .. SL_MAX_SERVICES-1
  std::map<std::string, uint32_t> tenants;   // 1 .. SL_MAX_TENANTS-1; "default" is 0
  std::map<Cidr, uint32_t> deny;             // 1 .. SL_MAX_DENY_RULES-1
};

// Everything one policy slot holds, as (key, value) pairs per map.
struct SlotContents {
  sl_policy_info info{};
  std::vector<std::pair<uint32_t, sl_port_entry>> ports;
  std::vector<std::pair<sl_addr_key, sl_addr_service>> svc_addr;
  std::vector<std::pair<uint32_t, sl_service>> services;
  std::vector<std::pair<uint32_t, sl_tenant>> tenants;
  std::vector<std::pair<uint32_t, sl_rate>> limits;  // by pair index
  std::vector<std::pair<sl_lpm_v4_key, sl_source_class>> src_v4;
  std::vector<std::pair<sl_lpm_v6_key, sl_source_class>> src_v6;
  std::vector<std::pair<uint32_t, uint32_t>> src4_table;  // non-zero entries only
};

struct Compiled {
  SlotContents slot;
  IdAssignment ids;
};

// `policy` must be valid. Names present in `previous` keep their ids.
// `max_tenants` is the stride of the pair-indexed arrays of the live maps.
Compiled compile(const Policy& policy, const IdAssignment& previous, uint64_t epoch, uint32_t max_tenants);

// The policy a slot holds, and the ids it uses. Map sizes are not part of a
// slot; the caller fills policy.maps from the live maps.
Policy decompile(const SlotContents& slot, uint32_t max_tenants);
IdAssignment ids_of(const SlotContents& slot);

// The port-table index of a (protocol, port).
inline uint32_t port_index(Proto proto, uint16_t port) {
  return (proto == Proto::Tcp ? SL_PROTO_TCP : SL_PROTO_UDP) << 16 | port;
}

}  // namespace sluice::policy
