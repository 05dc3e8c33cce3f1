#include "kernel/observation.hpp"

#include "kernel/map.hpp"
#include "sluice.skel.h"

namespace sluice::kernel {

namespace {

// Every field of sl_obs_counters is a u64 counter; treat it as an array.
constexpr size_t kFields = sizeof(sl_obs_counters) / sizeof(uint64_t);
static_assert(sizeof(sl_obs_counters) % sizeof(uint64_t) == 0);

uint64_t* fields(sl_obs_counters& c) { return reinterpret_cast<uint64_t*>(&c); }
const uint64_t* fields(const sl_obs_counters& c) { return reinterpret_cast<const uint64_t*>(&c); }

}  // namespace

Observation read_observation(const DataPath& dp, uint32_t service_id) {
  Observation o;
  for (const auto& cpu : percpu_lookup<uint32_t, sl_obs_counters>(dp.map_fd(dp.skel()->maps.obs_stats), service_id))
    for (size_t i = 0; i < kFields; i++) fields(o.counters)[i] += fields(cpu)[i];
  if (auto shared = map_lookup<uint32_t, sl_obs_shared>(dp.map_fd(dp.skel()->maps.obs_shared), service_id)) {
    o.inflight = shared->inflight;
    o.probes_admitted = shared->probes_admitted;
  }
  return o;
}

Observation minus(const Observation& a, const Observation& b) {
  Observation d = a;
  for (size_t i = 0; i < kFields; i++) fields(d.counters)[i] -= fields(b.counters)[i];
  return d;
}

}  // namespace sluice::kernel
