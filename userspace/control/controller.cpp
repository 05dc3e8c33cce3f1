#include "control/controller.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "kernel/counters.hpp"
#include "kernel/map.hpp"
#include "sluice.skel.h"

namespace sluice::control {

Controller::Controller(kernel::DataPath& dp, ControllerOptions options, LogLine log)
    : dp_(dp), census_(dp), options_(options), log_(std::move(log)),
      told_reconcile_every_ns_(options_.reconcile_every_ns) {
  shared_cpu_ = options_.cpu == CpuMode::Psi ? psi_cpu() : host_cpu();
}

Controller::~Controller() {
  // A clean stop fails open at once instead of after the staleness bound:
  // with no heartbeat the data path ignores every control value. The values
  // stay, so a successor can start from the learned limits.
  uint32_t zero = 0;
  int fd = dp_.map_fd(dp_.skel()->maps.ctl_header);
  sl_control_header h = kernel::map_lookup<uint32_t, sl_control_header>(fd, zero).value_or(sl_control_header{});
  h.heartbeat_ns = 0;
  bpf_map_update_elem(fd, &zero, &h, BPF_ANY);
}

void Controller::lift(uint32_t service_id) {
  sl_control none{};
  bpf_map_update_elem(dp_.map_fd(dp_.skel()->maps.ctl_services), &service_id, &none, BPF_ANY);
}

// Follow the policy: govern services with an adaptive limit or a breaker,
// keep the learned state of those whose settings did not change.
void Controller::reload_policy(uint64_t now_ns) {
  // One small lookup per tick; the whole policy (all tenants, all prefixes)
  // is read only when it changed.
  uint32_t zero = 0;
  auto root = kernel::map_lookup<uint32_t, sl_root>(dp_.map_fd(dp_.skel()->maps.sl_root), zero);
  if ((root ? root->epoch : 0) == epoch_) return;
  kernel::RunningPolicy running = kernel::PolicyStore(dp_).read();
  epoch_ = running.epoch;

  std::map<std::string, Governed> next;
  for (const auto& s : running.policy.services) {
    if (s.tuning.adaptive == policy::Adaptive::Off && s.tuning.breaker == policy::BreakerKind::Off) continue;
    uint32_t id = running.ids.services.at(s.name);
    auto old = services_.find(s.name);
    if (old != services_.end() && old->second.id == id && old->second.controller->tuning() == s.tuning) {
      next.emplace(s.name, std::move(old->second));
      continue;
    }
    Governed g;
    g.id = id;
    // A controller that ran before us (restart, upgrade) left its learned
    // limit; start from it while the heartbeat says it is recent.
    Inherited inherited;
    uint32_t zero = 0;
    auto hb = kernel::map_lookup<uint32_t, sl_control_header>(dp_.map_fd(dp_.skel()->maps.ctl_header), zero);
    if (hb && hb->last_tick_ns && now_ns - hb->last_tick_ns < options_.inherit_within_ns)
      if (auto prev = kernel::map_lookup<uint32_t, sl_control>(dp_.map_fd(dp_.skel()->maps.ctl_services), id))
        inherited = Inherited::from(*prev);
    g.controller = std::make_unique<ServiceController>(s.name, s.tuning, now_ns, inherited);
    if (!s.tuning.cgroup.empty()) g.cpu = cgroup_cpu(s.tuning.cgroup);
    g.last = kernel::read_observation(dp_, id);
    g.last_shed = kernel::read_service_counters(dp_, id);
    log_(s.name + ": governed (" + policy::to_string(s.tuning.adaptive) + " limit" +
         (inherited.limit ? " starting from " + std::to_string(inherited.limit) +
                                (inherited.rt_floor_us ? " at " + std::to_string(inherited.rt_floor_us) + " us"
                                                       : std::string())
                          : std::string()) +
         ", " +
         policy::to_string(s.tuning.breaker) + " breaker, cpu from " +
         (g.cpu ? g.cpu->describe() : shared_cpu_->describe()) + ")");
    next.emplace(s.name, std::move(g));
  }
  for (const auto& [name, g] : services_)
    if (!next.count(name) || next.at(name).id != g.id) {
      lift(g.id);
      if (!next.count(name)) log_(name + ": no longer governed");
    }
  services_ = std::move(next);
}

void Controller::sample_cpu(uint64_t now_ns) {
  if (now_ns < next_cpu_ns_) return;
  next_cpu_ns_ = now_ns + options_.cpu_every_ns;
  if (auto v = shared_cpu_->sample(now_ns)) shared_cpu_permille_ = shared_smoother_.update(*v);
  for (auto& [_, g] : services_)
    if (g.cpu)
      if (auto v = g.cpu->sample(now_ns)) g.cpu_permille = g.smoother.update(*v);
}

// The kernel's in-flight counter only moves when a flow changes state, so a
// flow the LRU evicts while pending, or a SYN's reservation that never
// becomes a request, would hold its slot forever. Count the flows that
// really hold one (kernel::FlowCensus, which also keeps requests that begin
// or end during its walk from looking like leaks); the difference is
// published as inflight_bias, which the data path subtracts. The census
// costs in proportion to the flow table (13-29 ms for 262,144 flows here),
// so it runs once a second, or less often if that would take more than
// reconcile_cpu_share of a core.
void Controller::reconcile(uint64_t now_ns) {
  if (now_ns < next_reconcile_ns_ || services_.empty()) return;
  // The census runs in this thread (a syscall): its CPU time is this thread's.
  uint64_t cpu_before_ns = kernel::clock_ns(CLOCK_THREAD_CPUTIME_ID);
  kernel::CensusCount census = census_.count(now_ns, options_.reservation_ttl_ns);
  uint64_t census_cpu_ns = kernel::clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu_before_ns;
  schedule_reconcile(now_ns, census_cpu_ns);
  for (auto& [name, g] : services_) {
    int64_t leaked = census.leaked(g.id);
    if (leaked != g.inflight_bias && (leaked > 0 || g.inflight_bias > 0))
      log_(name + ": " + std::to_string(leaked) + " in-flight slots held by no live flow (evicted or abandoned)");
    g.inflight_bias = leaked;
  }
}

// The next reconcile: a second on, or later if the census that just took
// `census_cpu_ns` would otherwise exceed its share of a core. The log says
// when the interval stretches (or shrinks back), not at every small change.
void Controller::schedule_reconcile(uint64_t now_ns, uint64_t census_cpu_ns) {
  auto within_share = static_cast<uint64_t>(static_cast<double>(census_cpu_ns) / options_.reconcile_cpu_share);
  uint64_t every_ns = std::max(options_.reconcile_every_ns, within_share);
  next_reconcile_ns_ = now_ns + every_ns;
  if (every_ns >= 2 * told_reconcile_every_ns_ || 2 * every_ns <= told_reconcile_every_ns_) {
    char line[160];
    std::snprintf(line, sizeof line,
                  "flow census: %.1f ms of CPU; in-flight leaks are counted every %.1f s (at most %.1f%% of a core)",
                  static_cast<double>(census_cpu_ns) / 1e6, static_cast<double>(every_ns) / 1e9,
                  100 * options_.reconcile_cpu_share);
    log_(line);
    told_reconcile_every_ns_ = every_ns;
  }
}

void Controller::write_heartbeat(uint64_t now_ns) {
  uint32_t zero = 0;
  sl_control_header h{};
  h.heartbeat_ns = now_ns;
  h.last_tick_ns = now_ns;
  h.controller_pid = static_cast<uint32_t>(getpid());
  kernel::map_update(dp_.map_fd(dp_.skel()->maps.ctl_header), zero, h, "ctl_header");
}

// One past the highest id of a governed service (0 when none is).
uint32_t Controller::governed_id_end() const {
  uint32_t end = 0;
  for (const auto& [_, g] : services_) end = std::max(end, g.id + 1);
  return end;
}

void Controller::tick(uint64_t now_ns) {
  reload_policy(now_ns);
  sample_cpu(now_ns);
  reconcile(now_ns);
  // What the kernel observed and the new control values move in a few
  // batched syscalls per tick, not a few per service: with 100 services the
  // syscalls were most of the controller's CPU (bench/controller_cost).
  std::vector<kernel::Observation> observed;
  std::vector<sl_service_counters> shed_counters;
  if (uint32_t end = governed_id_end(); end > 0) {
    observed = kernel::read_observations(dp_, end);
    shed_counters = kernel::read_service_counters_below(dp_, end);
  }
  std::vector<uint32_t> ids;
  std::vector<sl_control> controls;
  std::vector<ServiceReport> reports;
  for (auto& [name, g] : services_) {
    const kernel::Observation& now = observed.at(g.id);
    const sl_service_counters& shed = shed_counters.at(g.id);
    ServiceSample s;
    s.delta = kernel::minus(now, g.last);
    for (int r = 0; r < SL_R__COUNT; r++) s.shed_delta.shed[r] = shed.shed[r] - g.last_shed.shed[r];
    s.inflight = now.inflight - g.inflight_bias;
    s.probes_admitted = now.probes_admitted;
    g.last = now;
    g.last_shed = shed;

    int64_t cpu = g.cpu ? g.cpu_permille : shared_cpu_permille_;
    g.control = g.controller->tick(now_ns, s, cpu, log_);
    g.control.inflight_bias = static_cast<int32_t>(g.inflight_bias);
    ids.push_back(g.id);
    controls.push_back(g.control);
    reports.push_back(ServiceReport{name, g.id, g.controller->view(), g.control});
  }
  kernel::map_update_batch(dp_.map_fd(dp_.skel()->maps.ctl_services), ids, controls, "ctl_services");
  write_heartbeat(now_ns);
  ticks_++;
  std::lock_guard lock(reports_mutex_);
  reports_ = std::move(reports);
}

void Controller::run(const std::atomic<bool>& stop) {
  auto next = std::chrono::steady_clock::now();
  while (!stop.load()) {
    tick(kernel::monotonic_ns());
    next += std::chrono::nanoseconds(options_.tick_ns);
    auto now = std::chrono::steady_clock::now();
    if (next < now) next = now;  // fell behind: don't try to catch up in a burst
    while (!stop.load() && std::chrono::steady_clock::now() < next)
      std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(next - std::chrono::steady_clock::now(),
                                                                      std::chrono::milliseconds(20)));
  }
}

std::vector<ServiceReport> Controller::reports() const {
  std::lock_guard lock(reports_mutex_);
  return reports_;
}

}  // namespace sluice::control
