// What the data path observed of a service's requests, summed over CPUs.
#pragma once

#include <cstdint>
#include <vector>

#include "kernel/datapath.hpp"
#include "sluice/abi.h"

namespace sluice::kernel {

struct Observation {
  sl_obs_counters counters{};  // monotonic totals since the maps were made
  int64_t inflight = 0;        // requests started and not ended (may include leaked ones)
  uint64_t probes_admitted = 0;
};

Observation read_observation(const DataPath& dp, uint32_t service_id);
// The same for every service id below `end`, indexed by id, in batched reads.
std::vector<Observation> read_observations(const DataPath& dp, uint32_t end);

// a - b, counter by counter (in-flight and probes are levels: a's are kept).
Observation minus(const Observation& a, const Observation& b);

}  // namespace sluice::kernel
