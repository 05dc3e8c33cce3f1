// A snapshot of the data path's counters, summed over CPUs.
#pragma once

#include <cstdint>
#include <ctime>
#include <map>
#include <vector>

#include "kernel/datapath.hpp"
#include "policy/compile.hpp"
#include "sluice/abi.h"

namespace sluice::kernel {

struct PairCounters {
  uint32_t service_id = 0;
  uint32_t tenant_id = 0;
  sl_counters counters{};
};

struct CounterSnapshot {
  uint64_t taken_ns = 0;  // CLOCK_MONOTONIC
  std::vector<PairCounters> pairs;                          // pairs that saw traffic
  std::map<uint32_t, sl_service_counters> services;         // service id -> dry-run counters
  sl_global_counters global{};
  std::map<uint32_t, sl_deny_counters> deny;  // deny id -> counters (non-zero only)
};

// One service's totals over all its tenants.
sl_service_counters read_service_counters(const DataPath& dp, uint32_t service_id);
// The same for every service id below `end`, indexed by id, in batched reads.
std::vector<sl_service_counters> read_service_counters_below(const DataPath& dp, uint32_t end);

// Reads the counters of the running policy's services, tenants and deny rules.
CounterSnapshot read_counters(const DataPath& dp, const policy::IdAssignment& ids);

// A clock's reading in nanoseconds; monotonic_ns() is CLOCK_MONOTONIC's,
// the clock of the data path's timestamps.
uint64_t clock_ns(clockid_t clock);
uint64_t monotonic_ns();

// Names of enum sl_reason and enum sl_global_counter values, for output.
const char* reason_name(int reason);
const char* global_counter_name(int counter);

}  // namespace sluice::kernel
