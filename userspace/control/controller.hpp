// `sluice run`: the control loop. Every tick it reads what the kernel
// observed of each governed service, lets that service's ServiceController
// decide, writes the control map and then its heartbeat. The data path
// ignores control values once the heartbeat is older than the policy's
// bound, so a dead or stalled controller leaves only static policy.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "control/cpu.hpp"
#include "control/service_control.hpp"
#include "kernel/datapath.hpp"
#include "kernel/flow_census.hpp"
#include "kernel/observation.hpp"
#include "kernel/policy_store.hpp"

namespace sluice::control {

enum class CpuMode { Host, Psi };

struct ControllerOptions {
  uint64_t tick_ns = 100'000'000;        // how often control values are recomputed
  uint64_t cpu_every_ns = 500'000'000;   // kratos samples CPU every 500 ms
  uint64_t reconcile_every_ns = 1'000'000'000;  // in-flight leak checks, at most this often
  // ... and at most this share of a core: a census of a big flow table costs
  // tens of milliseconds, so a big table is counted less often.
  double reconcile_cpu_share = 0.005;
  uint64_t reservation_ttl_ns = 2'000'000'000;  // a SYN's slot without a request
  uint64_t inherit_within_ns = 10'000'000'000;  // a predecessor's limits are recent enough
  CpuMode cpu = CpuMode::Host;           // for services without a cgroup
};

// What the metrics exporter and status show of one governed service.
struct ServiceReport {
  std::string name;
  uint32_t service_id = 0;
  ServiceView view;
  sl_control control{};
};

class Controller {
 public:
  Controller(kernel::DataPath& dp, ControllerOptions options, LogLine log);
  ~Controller();  // clears the heartbeat: the data path fails open at once

  // One tick at `now_ns` (CLOCK_MONOTONIC).
  void tick(uint64_t now_ns);
  // Ticks until `stop` is set.
  void run(const std::atomic<bool>& stop);

  std::vector<ServiceReport> reports() const;
  uint64_t ticks() const { return ticks_; }

 private:
  struct Governed {
    uint32_t id = 0;
    std::unique_ptr<ServiceController> controller;
    std::unique_ptr<CpuSource> cpu;  // the service's cgroup, if it names one
    algo::CpuSmoother smoother;
    int64_t cpu_permille = -1;
    kernel::Observation last;
    sl_service_counters last_shed{};
    sl_control control{};
    int64_t inflight_bias = 0;  // leaked in-flight slots, from reconcile()
  };

  void reload_policy(uint64_t now_ns);
  void sample_cpu(uint64_t now_ns);
  void write_heartbeat(uint64_t now_ns);
  void reconcile(uint64_t now_ns);
  void schedule_reconcile(uint64_t now_ns, uint64_t census_cpu_ns);
  void lift(uint32_t service_id);
  uint32_t governed_id_end() const;

  kernel::DataPath& dp_;
  kernel::FlowCensus census_;
  ControllerOptions options_;
  LogLine log_;
  uint64_t epoch_ = UINT64_MAX;
  std::map<std::string, Governed> services_;
  std::unique_ptr<CpuSource> shared_cpu_;
  algo::CpuSmoother shared_smoother_;
  int64_t shared_cpu_permille_ = -1;
  uint64_t next_cpu_ns_ = 0;
  uint64_t next_reconcile_ns_ = 0;
  uint64_t told_reconcile_every_ns_;  // the census interval last logged (at first, the usual one)
  uint64_t ticks_ = 0;
  mutable std::mutex reports_mutex_;
  std::vector<ServiceReport> reports_;
};

}  // namespace sluice::control
