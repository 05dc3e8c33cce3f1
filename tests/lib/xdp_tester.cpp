#include "xdp_tester.hpp"

#include <bpf/bpf.h>

#include <stdexcept>

#include "core/error.hpp"
#include "kernel/map.hpp"
#include "sluice.skel.h"

namespace sluice::test {

XdpTester::XdpTester(const policy::Policy& policy, bool fake_clock, bool trace) {
  kernel::DataPathOptions options;
  options.fake_clock = fake_clock;
  options.trace = trace;
  options.sizes = policy.maps;  // the maps are made as the policy asks
  dp_ = std::make_unique<kernel::DataPath>(options);
  dp_->load();
  set_policy(policy);
}

void XdpTester::set_policy(const policy::Policy& policy) {
  policy::Policy p = policy;
  policy::validate(p);
  policy::normalize(p);
  kernel::PolicyStore(*dp_).apply(p);
}

void XdpTester::set_now(uint64_t ns) {
  uint32_t zero = 0;
  kernel::map_update(dp_->map_fd(dp_->skel()->maps.fake_clock), zero, ns, "fake_clock");
}

XdpResult XdpTester::run(const std::vector<uint8_t>& frame, uint32_t repeat) {
  XdpResult r;
  r.packet.resize(frame.size() + 256);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = r.packet.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(r.packet.size()), .repeat = static_cast<int>(repeat));
  int err = bpf_prog_test_run_opts(dp_->xdp_prog_fd(), &opts);
  if (err) throw SystemError("BPF_PROG_TEST_RUN", -err);
  r.action = static_cast<int>(opts.retval);
  r.packet.resize(opts.data_size_out);
  r.duration_ns = opts.duration;
  return r;
}

int XdpTester::run_egress(const std::vector<uint8_t>& frame) {
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = static_cast<uint32_t>(frame.size()));
  int err = bpf_prog_test_run_opts(bpf_program__fd(dp_->skel()->progs.sluice_tc_egress), &opts);
  if (err) throw SystemError("BPF_PROG_TEST_RUN (egress)", -err);
  return static_cast<int>(opts.retval);
}

void XdpTester::set_control(const std::string& service, const sl_control& control) {
  uint32_t id = running().ids.services.at(service);
  kernel::map_update(dp_->map_fd(dp_->skel()->maps.ctl_services), id, control, "ctl_services");
}

void XdpTester::set_heartbeat(uint64_t ns) {
  uint32_t zero = 0;
  sl_control_header h{};
  h.heartbeat_ns = ns;
  kernel::map_update(dp_->map_fd(dp_->skel()->maps.ctl_header), zero, h, "ctl_header");
}

kernel::Observation XdpTester::observe(const std::string& service) const {
  return kernel::read_observation(*dp_, running().ids.services.at(service));
}

kernel::RunningPolicy XdpTester::running() const { return kernel::PolicyStore(*dp_).read(); }

kernel::CounterSnapshot XdpTester::counters() const { return kernel::read_counters(*dp_, running().ids); }

sl_counters XdpTester::pair(const std::string& service, const std::string& tenant) const {
  kernel::RunningPolicy r = running();
  auto s = r.ids.services.find(service);
  auto t = r.ids.tenants.find(tenant);
  if (s == r.ids.services.end() || t == r.ids.tenants.end())
    throw std::invalid_argument("no service '" + service + "' or tenant '" + tenant + "'");
  for (const auto& pc : counters().pairs)
    if (pc.service_id == s->second && pc.tenant_id == t->second) return pc.counters;
  return sl_counters{};
}

sl_service_counters XdpTester::would_shed(const std::string& service) const {
  uint32_t id = running().ids.services.at(service);
  return counters().services.at(id);
}

uint64_t XdpTester::global(sl_global_counter which) const { return counters().global.c[which]; }

sl_trace XdpTester::last_decision() const {
  return dp_->skel()->bss->last_trace;
}

uint64_t XdpTester::deny_packets(const std::string& prefix) const {
  kernel::RunningPolicy r = running();
  auto it = r.ids.deny.find(policy::Cidr::parse(prefix));
  if (it == r.ids.deny.end()) throw std::invalid_argument("no deny rule " + prefix);
  auto snap = counters();
  auto d = snap.deny.find(it->second);
  return d == snap.deny.end() ? 0 : d->second.packets;
}

}  // namespace sluice::test
