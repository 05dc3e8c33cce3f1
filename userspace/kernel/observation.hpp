// What the data path observed of a service's requests, summed over CPUs.
#pragma once

#include <cstdint>
#include <map>
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

// Flows holding an in-flight slot, per service: pending requests, and
// reservations younger than `reservation_ttl_ns` (older ones never became a
// request: a client that went away, or a spoofed SYN). Reads the flow table
// in batches.
std::map<uint32_t, int64_t> live_flows(const DataPath& dp, uint64_t now_ns, uint64_t reservation_ttl_ns);

}  // namespace sluice::kernel
