// Runs the real sluice XDP program in the kernel with BPF_PROG_TEST_RUN:
// private (unpinned) maps, a policy applied the way the CLI applies it, and
// an injected clock, so a test chooses every packet and every timestamp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernel/counters.hpp"
#include "kernel/datapath.hpp"
#include "kernel/observation.hpp"
#include "kernel/policy_store.hpp"
#include "policy/policy.hpp"

namespace sluice::test {

struct XdpResult {
  int action = -1;              // XDP_PASS, XDP_DROP, XDP_TX, ...
  std::vector<uint8_t> packet;  // the frame after the program ran
  uint32_t duration_ns = 0;     // kernel-measured, per run (averaged over repeat)
};

class XdpTester {
 public:
  explicit XdpTester(const policy::Policy& policy = {}, bool fake_clock = true, bool trace = false);

  void set_policy(const policy::Policy& policy);  // validated, then applied atomically
  void set_now(uint64_t ns);                       // the data path's "now"

  XdpResult run(const std::vector<uint8_t>& frame, uint32_t repeat = 1);
  // The TC egress program on a frame the server sends; returns the TC action.
  int run_egress(const std::vector<uint8_t>& frame);

  // What the controller would write: a service's control values, the heartbeat.
  void set_control(const std::string& service, const sl_control& control);
  void set_heartbeat(uint64_t ns);

  // Observation of a service: counters summed over CPUs, and in-flight work.
  kernel::Observation observe(const std::string& service) const;

  kernel::DataPath& datapath() { return *dp_; }
  kernel::RunningPolicy running() const;
  kernel::CounterSnapshot counters() const;
  // Counters of one (service, tenant) pair, by name; zero if never charged.
  sl_counters pair(const std::string& service, const std::string& tenant) const;
  // What a dry-run service would have shed, by reason.
  sl_service_counters would_shed(const std::string& service) const;
  uint64_t global(sl_global_counter which) const;
  uint64_t deny_packets(const std::string& prefix) const;
  // How the last packet was judged (needs trace = true).
  sl_trace last_decision() const;

 private:
  std::unique_ptr<kernel::DataPath> dp_;
};

}  // namespace sluice::test
