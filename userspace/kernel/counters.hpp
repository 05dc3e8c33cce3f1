// A snapshot of the data path's counters, summed over CPUs.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "kernel/datapath.hpp"
#include "sluice/abi.h"

namespace sluice::kernel {

struct PairCounters {
  uint32_t service_id = 0;
  uint32_t tenant_id = 0;
  sl_counters counters{};
};

struct CounterSnapshot {
  uint64_t taken_ns = 0;  // CLOCK_MONOTONIC
  std::vector<PairCounters> pairs;
  sl_global_counters global{};
  std::map<uint32_t, sl_deny_counters> deny;  // deny id -> counters (non-zero only)
};

// `deny_ids`: the deny rules to read (those of the running policy).
CounterSnapshot read_counters(const DataPath& dp, const std::vector<uint32_t>& deny_ids);

uint64_t monotonic_ns();

// Names of enum sl_reason and enum sl_global_counter values, for output.
const char* reason_name(int reason);
const char* global_counter_name(int counter);

}  // namespace sluice::kernel
