#include "kernel/counters.hpp"

#include <ctime>
#include <iterator>

#include "kernel/map.hpp"
#include "sluice.skel.h"

namespace sluice::kernel {

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

sl_service_counters read_service_counters(const DataPath& dp, uint32_t service_id) {
  sl_service_counters sum{};
  for (const auto& cpu :
       percpu_lookup<uint32_t, sl_service_counters>(dp.map_fd(dp.skel()->maps.service_stats), service_id))
    for (int r = 0; r < SL_R__COUNT; r++) {
      sum.shed[r] += cpu.shed[r];
      sum.would_shed[r] += cpu.would_shed[r];
    }
  return sum;
}

CounterSnapshot read_counters(const DataPath& dp, const policy::IdAssignment& ids) {
  CounterSnapshot snap;
  snap.taken_ns = monotonic_ns();
  const uint32_t max_tenants = dp.sizes().max_tenants;

  int pair_fd = dp.map_fd(dp.skel()->maps.pair_stats);
  for (const auto& [_, service] : ids.services) {
    for (const auto& [_, tenant] : ids.tenants) {
      PairCounters pc{service, tenant, {}};
      bool any = false;
      for (const sl_counters& cpu :
           percpu_lookup<uint32_t, sl_counters>(pair_fd, sl_pair_index(service, tenant, max_tenants)))
        for (int r = 0; r < SL_R__COUNT; r++) {
          pc.counters.verdict[r] += cpu.verdict[r];
          any |= cpu.verdict[r] != 0;
        }
      if (any) snap.pairs.push_back(pc);
    }
    snap.services[service] = read_service_counters(dp, service);
  }

  uint32_t zero = 0;
  for (const sl_global_counters& cpu :
       percpu_lookup<uint32_t, sl_global_counters>(dp.map_fd(dp.skel()->maps.global_stats), zero))
    for (int c = 0; c < SL_G__COUNT; c++) snap.global.c[c] += cpu.c[c];

  int deny_fd = dp.map_fd(dp.skel()->maps.deny_stats);
  for (const auto& [_, id] : ids.deny) {
    sl_deny_counters sum{};
    for (const sl_deny_counters& cpu : percpu_lookup<uint32_t, sl_deny_counters>(deny_fd, id)) {
      sum.packets += cpu.packets;
      sum.bytes += cpu.bytes;
    }
    if (sum.packets) snap.deny[id] = sum;
  }
  return snap;
}

const char* reason_name(int reason) {
  static const char* const names[] = {"admitted", "passed",  "request",  "tenant_limit",
                                      "source_limit", "inflight", "breaker", "throttle"};
  static_assert(std::size(names) == SL_R__COUNT, "a name for every reason");
  return reason >= 0 && reason < SL_R__COUNT ? names[reason] : "unknown";
}

const char* global_counter_name(int counter) {
  static const char* const names[] = {
      "packets",     "not_ip",  "truncated", "malformed",  "header_limit", "fragment",    "other_l4",
      "not_service", "no_policy", "denied",  "rst_sent",   "rst_failed",   "out_of_range", "control_stale",
      "unjudged"};
  static_assert(std::size(names) == SL_G__COUNT, "a name for every global counter");
  return counter >= 0 && counter < SL_G__COUNT ? names[counter] : "unknown";
}

}  // namespace sluice::kernel
