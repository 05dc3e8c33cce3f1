// The flow census (bpf/flow_census.bpf.c): how many flows of each service
// hold an in-flight slot, counted in the kernel on a data path's flow table
// against its in-flight counts.
#pragma once

#include <cstdint>
#include <vector>

#include "kernel/datapath.hpp"

struct flow_census_bpf;

namespace sluice::kernel {

// What one census found, indexed by service id (SL_MAX_SERVICES entries;
// struct sl_flow_census says how they are counted).
struct CensusCount {
  std::vector<int64_t> held;       // the in-flight count as the census began
  std::vector<uint32_t> live;      // flows found holding the slot they held then
  std::vector<uint32_t> released;  // slots such flows released before the walk reached them

  // In-flight slots that no flow holds (never negative).
  int64_t leaked(uint32_t service_id) const;
};

class FlowCensus {
 public:
  // Loads the census program on `dp`'s flow table.
  explicit FlowCensus(const DataPath& dp);
  ~FlowCensus();
  FlowCensus(const FlowCensus&) = delete;
  FlowCensus& operator=(const FlowCensus&) = delete;

  // A census at `now_ns`: a flow is live while a request is pending, or
  // while its reservation is younger than `reservation_ttl_ns`.
  CensusCount count(uint64_t now_ns, uint64_t reservation_ttl_ns);

  // The id the next census carries (even, not 0). Flows keep the id of the
  // last census that counted them, so ids differ between censuses, also of
  // controllers before this one: they start from the clock.
  uint32_t next_id() const { return next_id_; }

 private:
  flow_census_bpf* skel_;
  uint32_t next_id_;
};

}  // namespace sluice::kernel
