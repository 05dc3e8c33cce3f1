#include "kernel/observation.hpp"

#include "kernel/map.hpp"

#include <span>
#include <vector>
#include "sluice.skel.h"

namespace sluice::kernel {

namespace {

// Every field of sl_obs_counters is a u64 counter; treat it as an array.
constexpr size_t kFields = sizeof(sl_obs_counters) / sizeof(uint64_t);
static_assert(sizeof(sl_obs_counters) % sizeof(uint64_t) == 0);

uint64_t* fields(sl_obs_counters& c) { return reinterpret_cast<uint64_t*>(&c); }
const uint64_t* fields(const sl_obs_counters& c) { return reinterpret_cast<const uint64_t*>(&c); }

sl_obs_counters sum_over_cpus(std::span<const sl_obs_counters> cpus) {
  sl_obs_counters sum{};
  for (const auto& cpu : cpus)
    for (size_t i = 0; i < kFields; i++) fields(sum)[i] += fields(cpu)[i];
  return sum;
}

void take_shared(Observation& o, const sl_obs_shared& shared) {
  o.inflight = shared.inflight;
  o.probes_admitted = shared.probes_admitted;
}

}  // namespace

Observation read_observation(const DataPath& dp, uint32_t service_id) {
  Observation o;
  o.counters = sum_over_cpus(
      percpu_lookup<uint32_t, sl_obs_counters>(dp.map_fd(dp.skel()->maps.obs_stats), service_id));
  if (auto shared = map_lookup<uint32_t, sl_obs_shared>(dp.map_fd(dp.skel()->maps.obs_shared), service_id))
    take_shared(o, *shared);
  return o;
}

std::vector<Observation> read_observations(const DataPath& dp, uint32_t end) {
  std::vector<Observation> out(end);
  percpu_array_scan<sl_obs_counters>(dp.map_fd(dp.skel()->maps.obs_stats), end,
                                     [&](uint32_t id, std::span<const sl_obs_counters> cpus) {
                                       out[id].counters = sum_over_cpus(cpus);
                                     });
  array_scan<sl_obs_shared>(dp.map_fd(dp.skel()->maps.obs_shared), end,
                            [&](uint32_t id, const sl_obs_shared& shared) { take_shared(out[id], shared); });
  return out;
}

Observation minus(const Observation& a, const Observation& b) {
  Observation d = a;
  for (size_t i = 0; i < kFields; i++) fields(d.counters)[i] -= fields(b.counters)[i];
  return d;
}

}  // namespace sluice::kernel
