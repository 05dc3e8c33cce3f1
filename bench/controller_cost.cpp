// What `sluice run` costs: CPU time per second of wall time while it governs
// 100 services with 10,000 tenants (issue 3's target: at most 2% of a core)
// and 100,000 open connections sit in the flow table, which the controller
// counts to find leaked in-flight slots. The controller runs as its own
// process on private pinned maps; its CPU time is read from /proc/<pid>/stat
// after a warm-up, over a measured span.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "bench.hpp"
#include "kernel/bpffs.hpp"
#include "kernel/datapath.hpp"
#include "kernel/map.hpp"
#include "kernel/policy_store.hpp"
#include "policy/policy.hpp"
#include "sluice.skel.h"

namespace sluice::bench {

namespace {

// utime + stime of a process, in seconds.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; i++) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

policy::Policy big_policy(uint32_t services, uint32_t tenants) {
  policy::Policy p;
  p.maps.max_services = 128;
  p.maps.max_tenants = 10'240;
  for (uint32_t s = 0; s < services; s++) {
    policy::Service svc;
    svc.name = "svc" + std::to_string(s);
    svc.port = static_cast<uint16_t>(10'000 + s);
    svc.rate = {1000, 1};
    svc.burst = 100;
    svc.http = true;
    svc.tuning.adaptive = policy::Adaptive::Bbr;
    svc.tuning.breaker = s % 2 ? policy::BreakerKind::Ratio : policy::BreakerKind::Sre;
    p.services.push_back(svc);
  }
  for (uint32_t t = 0; t < tenants; t++) {
    uint8_t a[4] = {198, 19, static_cast<uint8_t>(t >> 8), static_cast<uint8_t>(t & 0xff)};
    p.tenants.push_back({"t" + std::to_string(t), {policy::Cidr{policy::IpAddr::from_v4(a), 32}},
                         static_cast<uint8_t>(t % 3)});
  }
  return p;
}

// `per_service` open connections of each service in the flow table, one in
// ten with a request pending, as the data path would have made them, and
// each service's in-flight count to match.
void open_connections(const kernel::DataPath& dp, const policy::IdAssignment& ids, uint32_t per_service) {
  std::vector<sl_flow_key> keys;
  std::vector<sl_flow> flows;
  uint32_t n = 0;
  for (const auto& [_, id] : ids.services) {
    for (uint32_t c = 0; c < per_service; c++, n++) {
      sl_flow_key k{};
      uint8_t client[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 19, static_cast<uint8_t>(n >> 8),
                            static_cast<uint8_t>(n)};
      std::copy(std::begin(client), std::end(client), k.client);
      std::copy(std::begin(client), std::end(client), k.server);
      k.server[15] = 1;
      k.client_port = static_cast<uint16_t>(1024 + (n >> 16));
      k.server_port = static_cast<uint16_t>(10'000 + id);
      k.proto = IPPROTO_TCP;
      sl_flow f{};
      f.state = c % 10 == 0 ? SL_FLOW_PENDING : SL_FLOW_IDLE;
      f.service_id = static_cast<uint16_t>(id);
      keys.push_back(k);
      flows.push_back(f);
    }
    sl_obs_shared shared{};
    shared.inflight = (per_service + 9) / 10;
    kernel::map_update(dp.map_fd(dp.skel()->maps.obs_shared), id, shared, "obs_shared");
  }
  kernel::map_update_batch(dp.map_fd(dp.skel()->maps.flows), keys, flows, "flows");
}

}  // namespace

void controller_cost(Report& report, const Options& opt) {
  const uint32_t services = 100, tenants = 10'000, connections_per_service = 1'000;
  const int measure_s = opt.quick ? 10 : 30;
  std::string pin_dir = "/sys/fs/bpf/sluice-bench-ctl-" + std::to_string(getpid());
  kernel::ensure_pin_dir(pin_dir);

  policy::Policy p = big_policy(services, tenants);
  policy::validate(p);
  policy::normalize(p);
  auto started = std::chrono::steady_clock::now();
  {
    kernel::DataPathOptions o;
    o.pin_dir = pin_dir;
    o.sizes = p.maps;
    o.load_programs = false;
    kernel::DataPath dp(o);
    dp.load();
    kernel::PolicyStore(dp).apply(p);
    open_connections(dp, kernel::PolicyStore(dp).read().ids, connections_per_service);
  }
  double apply_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const uint32_t connections = services * connections_per_service;
  progress("controller cost: policy of " + std::to_string(services) + " services x " + std::to_string(tenants) +
           " tenants applied, " + std::to_string(connections) + " connections opened, in " + std::to_string(apply_s) +
           " s");

  std::string sluice = opt.build_dir + "/sluice";
  pid_t pid = fork();
  if (pid == 0) {
    setenv("SLUICE_PIN_DIR", pin_dir.c_str(), 1);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    execl(sluice.c_str(), "sluice", "run", "--metrics", "off", "--for", std::to_string(measure_s + 10).c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  std::this_thread::sleep_for(std::chrono::seconds(3));  // start-up: reading the policy, first ticks
  double cpu0 = cpu_seconds(pid);
  auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(measure_s));
  double cpu1 = cpu_seconds(pid);
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);

  {  // remove the maps
    std::error_code ec;
    std::filesystem::remove_all(pin_dir, ec);
  }
  double share = (cpu1 - cpu0) / wall;
  Json& out = report.section("controller_cost");
  out["method"] = "sluice run (tick 100 ms) on maps of its own (a private pin directory) with " +
                  std::to_string(services) + " governed services (BBR + breakers) and " + std::to_string(tenants) +
                  " tenants, and " + std::to_string(connections) +
                  " open connections in the flow table (one in ten with a request pending); CPU time "
                  "(utime+stime from /proc/PID/stat) over " +
                  std::to_string(measure_s) + " s after a 3 s warm-up, divided by wall time";
  out["services"] = services;
  out["tenants"] = tenants;
  out["connections"] = connections;
  out["policy_apply_s"] = apply_s;
  out["cpu_share_of_one_core"] = share;
  out["targets"] = Json::array({{{"what", "controller at 100 services x 10,000 tenants <= 2% of a core"},
                                 {"value", share},
                                 {"met", share <= 0.02}}});
}

}  // namespace sluice::bench
