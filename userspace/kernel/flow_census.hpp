// The flow census (bpf/flow_census.bpf.c): how many flows of each service
// hold an in-flight slot, counted in the kernel on a data path's flow table.
#pragma once

#include <cstdint>
#include <vector>

#include "kernel/datapath.hpp"

struct flow_census_bpf;

namespace sluice::kernel {

class FlowCensus {
 public:
  // Loads the census program on `dp`'s flow table.
  explicit FlowCensus(const DataPath& dp);
  ~FlowCensus();
  FlowCensus(const FlowCensus&) = delete;
  FlowCensus& operator=(const FlowCensus&) = delete;

  // Flows holding an in-flight slot at `now_ns`, indexed by service id
  // (SL_MAX_SERVICES entries): pending requests, and reservations younger
  // than `reservation_ttl_ns` (struct sl_flow_census).
  std::vector<uint32_t> live(uint64_t now_ns, uint64_t reservation_ttl_ns) const;

 private:
  flow_census_bpf* skel_;
};

}  // namespace sluice::kernel
