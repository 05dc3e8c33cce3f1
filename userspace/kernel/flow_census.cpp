#include "kernel/flow_census.hpp"

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <stdexcept>

#include "core/error.hpp"
#include "kernel/counters.hpp"
#include "kernel/log.hpp"
#include "sluice.skel.h"
#include "flow_census.skel.h"

namespace sluice::kernel {

namespace {

// Ids are even (SL_CENSUS_ENTERED is the low bit) and never 0.
uint32_t census_id(uint64_t seed) {
  auto id = static_cast<uint32_t>(seed) & ~SL_CENSUS_ENTERED;
  return id ? id : 2;
}

}  // namespace

int64_t CensusCount::leaked(uint32_t service_id) const {
  return std::max<int64_t>(0, held.at(service_id) - live.at(service_id) - released.at(service_id));
}

FlowCensus::FlowCensus(const DataPath& dp)
    : skel_(flow_census_bpf::open()), next_id_(census_id(clock_ns(CLOCK_MONOTONIC) >> 10)) {
  if (!skel_) throw SystemError("cannot open the flow census program", errno);
  clear_library_message();
  int err = bpf_map__reuse_fd(skel_->maps.flows, dp.map_fd(dp.skel()->maps.flows));
  if (!err) err = bpf_map__reuse_fd(skel_->maps.obs_shared, dp.map_fd(dp.skel()->maps.obs_shared));
  if (!err) err = bpf_map__reuse_fd(skel_->maps.census_state, dp.map_fd(dp.skel()->maps.census_state));
  if (!err) err = flow_census_bpf::load(skel_);
  if (err) {
    flow_census_bpf::destroy(skel_);
    throw SystemError(with_library_message("cannot load the flow census program"), -err);
  }
}

FlowCensus::~FlowCensus() { flow_census_bpf::destroy(skel_); }

CensusCount FlowCensus::count(uint64_t now_ns, uint64_t reservation_ttl_ns) {
  // The program's global data is mapped here: inputs in, counts out.
  sl_flow_census& census = skel_->bss->census;
  census = sl_flow_census{};
  census.now_ns = now_ns;
  census.reservation_ttl_ns = reservation_ttl_ns;
  census.id = next_id_;
  next_id_ = census_id(next_id_ + 2);
  LIBBPF_OPTS(bpf_test_run_opts, opts);
  if (int err = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.count_live_flows), &opts))
    throw SystemError("cannot run the flow census", -err);
  if (opts.retval) throw std::runtime_error("the flow census could not run (no census state)");
  return CensusCount{std::vector<int64_t>(census.held, census.held + SL_MAX_SERVICES),
                     std::vector<uint32_t>(census.live, census.live + SL_MAX_SERVICES),
                     std::vector<uint32_t>(census.released, census.released + SL_MAX_SERVICES)};
}

}  // namespace sluice::kernel
