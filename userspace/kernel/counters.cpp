#include "kernel/counters.hpp"

#include <algorithm>
#include <ctime>
#include <iterator>
#include <map>
#include <span>
#include <string>
#include <tuple>

#include "kernel/map.hpp"
#include "sluice.skel.h"

namespace sluice::kernel {

uint64_t clock_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t monotonic_ns() { return clock_ns(CLOCK_MONOTONIC); }

namespace {

sl_service_counters sum_over_cpus(std::span<const sl_service_counters> cpus) {
  sl_service_counters sum{};
  for (const auto& cpu : cpus)
    for (int r = 0; r < SL_R__COUNT; r++) {
      sum.shed[r] += cpu.shed[r];
      sum.would_shed[r] += cpu.would_shed[r];
    }
  return sum;
}

}  // namespace

sl_service_counters read_service_counters(const DataPath& dp, uint32_t service_id) {
  return sum_over_cpus(
      percpu_lookup<uint32_t, sl_service_counters>(dp.map_fd(dp.skel()->maps.service_stats), service_id));
}

std::vector<sl_service_counters> read_service_counters_below(const DataPath& dp, uint32_t end) {
  std::vector<sl_service_counters> out(end);
  percpu_array_scan<sl_service_counters>(
      dp.map_fd(dp.skel()->maps.service_stats), end,
      [&](uint32_t id, std::span<const sl_service_counters> cpus) { out[id] = sum_over_cpus(cpus); });
  return out;
}

CounterSnapshot read_counters(const DataPath& dp, const policy::IdAssignment& ids) {
  CounterSnapshot snap;
  snap.taken_ns = monotonic_ns();
  const uint32_t max_tenants = dp.sizes().max_tenants;

  // Pairs are indexed service id x max_tenants + tenant id, so the pairs of
  // the policy's services lie below (highest id + 1) x max_tenants: read in
  // batches, as 100 services x 10,000 tenants are a million pairs.
  std::map<uint32_t, std::string> service_name, tenant_name;
  for (const auto& [name, id] : ids.services) service_name[id] = name;
  for (const auto& [name, id] : ids.tenants)
    if (id < max_tenants) tenant_name[id] = name;
  uint32_t end = service_name.empty() ? 0 : (service_name.rbegin()->first + 1) * max_tenants;
  percpu_array_scan<sl_counters>(
      dp.map_fd(dp.skel()->maps.pair_stats), end, [&](uint32_t pair, std::span<const sl_counters> cpus) {
        uint32_t service = pair / max_tenants, tenant = pair % max_tenants;
        if (!service_name.count(service) || !tenant_name.count(tenant)) return;
        PairCounters pc{service, tenant, {}};
        bool any = false;
        for (const sl_counters& cpu : cpus)
          for (int r = 0; r < SL_R__COUNT; r++) {
            pc.counters.verdict[r] += cpu.verdict[r];
            any |= cpu.verdict[r] != 0;
          }
        if (any) snap.pairs.push_back(pc);
      });
  // By service name, then tenant name, as the policy lists them.
  std::sort(snap.pairs.begin(), snap.pairs.end(), [&](const PairCounters& a, const PairCounters& b) {
    return std::tie(service_name.at(a.service_id), tenant_name.at(a.tenant_id)) <
           std::tie(service_name.at(b.service_id), tenant_name.at(b.tenant_id));
  });
  std::vector<sl_service_counters> services =
      read_service_counters_below(dp, service_name.empty() ? 0 : service_name.rbegin()->first + 1);
  for (const auto& [service, _] : service_name) snap.services[service] = services.at(service);

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
