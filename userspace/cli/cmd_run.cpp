// `sluice run`: the controller.
#include <csignal>
#include <ctime>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unistd.h>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "control/controller.hpp"
#include "control/metrics.hpp"
#include "core/error.hpp"
#include "kernel/counters.hpp"
#include "kernel/map.hpp"
#include "sluice.skel.h"

namespace sluice::cli {

namespace {

std::atomic<bool> g_stop{false};

// "2026-11-27 18:01:02.345 " before every log line.
void log_line(const std::string& text) {
  static std::mutex m;
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm local{};
  localtime_r(&ts.tv_sec, &local);
  char stamp[40];
  size_t n = strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &local);
  snprintf(stamp + n, sizeof(stamp) - n, ".%03ld", ts.tv_nsec / 1'000'000);
  std::lock_guard lock(m);
  std::cerr << stamp << " " << text << std::endl;
}

// Refuse to run next to a live controller: two writers of the control map
// would undo each other.
void refuse_second_controller(const kernel::DataPath& dp) {
  uint32_t zero = 0;
  auto hb = kernel::map_lookup<uint32_t, sl_control_header>(dp.map_fd(dp.skel()->maps.ctl_header), zero);
  if (hb && hb->heartbeat_ns && hb->controller_pid && static_cast<pid_t>(hb->controller_pid) != getpid() &&
      kill(static_cast<pid_t>(hb->controller_pid), 0) == 0 &&
      kernel::monotonic_ns() - hb->heartbeat_ns < 5'000'000'000ull)
    throw UsageError("another 'sluice run' (pid " + std::to_string(hb->controller_pid) +
                     ") governs these maps; stop it first");
}

}  // namespace

void add_run_command(CLI::App& app, GlobalOptions& g) {
  struct Args {
    std::string tick = "100", metrics = "127.0.0.1:9464", cpu = "host", run_for = "0";
  };
  auto a = std::make_shared<Args>();
  CLI::App* run = app.add_subcommand("run", "Run the controller: learn each service's capacity, govern the kernel.");
  run->add_option("--tick", a->tick, "Milliseconds between decisions (default 100).");
  run->add_option("--metrics", a->metrics, "Serve Prometheus metrics on IP:PORT, or 'off' (default 127.0.0.1:9464).");
  run->add_option("--cpu", a->cpu, "CPU trigger for services without a cgroup: host (/proc/stat) or psi.");
  run->add_option("--for", a->run_for, "Stop after this many seconds (default: until SIGINT/SIGTERM).");
  run->footer(
      "Governs the services whose policy sets --adaptive or --breaker: every tick it reads what the kernel saw\n"
      "of their requests (completions, latency, errors, in-flight work) and writes in-flight limits, breaker\n"
      "states and reject probabilities back. Logs one line per breaker transition and notable limit change.\n"
      "It writes a heartbeat each tick; the data path ignores control values older than the policy's bound\n"
      "(control_stale_ms, default 2000), so if this process dies, static policy alone applies. On a clean stop\n"
      "the control is lifted at once.");
  run->callback([&g, a] {
    uint64_t tick_ms = parse_uint(a->tick, "--tick", 10, 10'000);
    uint64_t run_for = parse_uint(a->run_for, "--for", 0, 365ull * 86400);
    control::ControllerOptions options;
    options.tick_ns = tick_ms * 1'000'000;
    if (a->cpu == "host")
      options.cpu = control::CpuMode::Host;
    else if (a->cpu == "psi")
      options.cpu = control::CpuMode::Psi;
    else
      throw UsageError("--cpu '" + a->cpu + "': expected host or psi");

    auto dp = open_maps(g);
    refuse_second_controller(*dp);
    g_stop = false;
    std::signal(SIGINT, [](int) { g_stop = true; });
    std::signal(SIGTERM, [](int) { g_stop = true; });

    control::Controller controller(*dp, options, log_line);
    std::unique_ptr<control::MetricsServer> metrics;
    if (a->metrics != "off")
      metrics = std::make_unique<control::MetricsServer>(
          a->metrics, [&dp, &controller] { return control::render_metrics(*dp, controller.reports()); });
    log_line("sluice run: pid " + std::to_string(getpid()) + ", tick " + std::to_string(tick_ms) + " ms" +
             (metrics ? ", metrics on http://" + metrics->address() + "/metrics" : ""));

    std::optional<std::thread> timer;
    if (run_for)
      timer.emplace([run_for] {
        for (uint64_t i = 0; i < run_for * 10 && !g_stop; i++) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        g_stop = true;
      });
    controller.run(g_stop);
    if (timer) timer->join();
    log_line("sluice run: stopping after " + std::to_string(controller.ticks()) + " ticks; control lifted");
  });
}

}  // namespace sluice::cli
