#include "kernel/flow_census.hpp"

#include <bpf/bpf.h>

#include <cerrno>

#include "core/error.hpp"
#include "kernel/log.hpp"
#include "sluice.skel.h"
#include "flow_census.skel.h"

namespace sluice::kernel {

FlowCensus::FlowCensus(const DataPath& dp) : skel_(flow_census_bpf::open()) {
  if (!skel_) throw SystemError("cannot open the flow census program", errno);
  clear_library_message();
  int err = bpf_map__reuse_fd(skel_->maps.flows, dp.map_fd(dp.skel()->maps.flows));
  if (!err) err = flow_census_bpf::load(skel_);
  if (err) {
    flow_census_bpf::destroy(skel_);
    throw SystemError(with_library_message("cannot load the flow census program"), -err);
  }
}

FlowCensus::~FlowCensus() { flow_census_bpf::destroy(skel_); }

std::vector<uint32_t> FlowCensus::live(uint64_t now_ns, uint64_t reservation_ttl_ns) const {
  // The program's global data is mapped here: inputs in, counts out.
  sl_flow_census& census = skel_->bss->census;
  census = sl_flow_census{};
  census.now_ns = now_ns;
  census.reservation_ttl_ns = reservation_ttl_ns;
  LIBBPF_OPTS(bpf_test_run_opts, opts);
  if (int err = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.count_live_flows), &opts))
    throw SystemError("cannot run the flow census", -err);
  return std::vector<uint32_t>(census.live, census.live + SL_MAX_SERVICES);
}

}  // namespace sluice::kernel
