// Item 4 of issue 4: overload curves with a real, unmodified server.
//
// The server is capsrv (tools/capsrv) in sleep mode: 4 workers x 10 ms, so
// its capacity is exactly 400 requests/s whatever else runs on the machine,
// and it queues every request without shedding, so unprotected it collapses
// the way real services do. loadgen (tools/loadgen) offers open-loop HTTP
// load, a new connection per request, at 0.5x .. 20x that capacity, from
// the client namespace; each point starts from a fresh server.
//
// Cores: loadgen and the client veth's NAPI thread on CPU 0; the server, the
// protection in front of it (nginx, `sluice run`) and the server veth's NAPI thread (where
// sluice's XDP program and the kernel's TCP receive path run) on CPU 1, all
// at nice -20 so that other work on the machine disturbs little. The CPU
// left to the server is 1 - (NAPI thread + protection processes) / wall time
// on CPU 1: the share of the server's core that receiving and shedding the
// load did not take.
//
// Protections are a table (see protections()): adding one is a name, a
// start and a stop.
#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>

#include "netbench.hpp"

namespace sluice::bench {

namespace {

using namespace std::chrono_literals;

constexpr int kWorkers = 4;
constexpr double kServiceMs = 10;
constexpr double kCapacity = kWorkers * 1000.0 / kServiceMs;  // requests/s
constexpr uint16_t kPort = 8080;                               // what clients connect to
constexpr uint16_t kBackendPort = 8081;                        // capsrv behind a proxy
constexpr int kTimeoutMs = 1000;                               // the clients' patience
const std::vector<double> kLoads = {0.5, 1, 2, 5, 10, 20};      // x capacity

std::vector<std::string> on_cpu(int cpu, std::vector<std::string> argv) {
  std::vector<std::string> out = {"nice", "-n", "-20", "taskset", "-c", std::to_string(cpu)};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

class OverloadBed;

// Where a protection runs and what it needs to know.
struct PointContext {
  OverloadBed& bed;
  test::Process* controller = nullptr;  // `sluice run`, for its last word on the limit
};

struct Protection {
  std::string name, what;
  std::string how;     // commands and configuration, for the report
  bool proxy = false;  // capsrv listens on 127.0.0.1:kBackendPort, the protection on kPort
  std::function<void(PointContext&)> start;
  std::function<void(PointContext&)> stop;
};

class OverloadBed {
 public:
  explicit OverloadBed(const Options& opt) : opt_(opt), scratch_(kBenchTag), sluice_(kBenchTag) {
    require_two_cpus();
    test::TestbedOptions o;
    o.ipv6 = false;
    o.client_xdp_pass = true;  // sluice's RSTs (XDP_TX) reach the client
    o.server_gro = true;
    tb_ = std::make_unique<test::Testbed>(o);
    for (const auto& ns : {tb_->client_ns(), tb_->server_ns()}) {
      tb_->sysctl(ns, "net.core.somaxconn", "65535");
      tb_->sysctl(ns, "net.ipv4.tcp_max_syn_backlog", "65535");
      tb_->sysctl(ns, "net.ipv4.ip_local_port_range", "10000 65000");
    }
    client_napi_ = threaded_napi(tb_->client_ns(), tb_->client_dev(), kGenCpu, false);
    napi_ = threaded_napi(tb_->server_ns(), tb_->server_dev(), kRxCpu, false);
    capsrv_ = opt.build_dir + "/tools/capsrv";
    loadgen_ = opt.build_dir + "/tools/loadgen";
  }

  test::Testbed& tb() { return *tb_; }
  const test::SluiceCli& sluice() const { return sluice_; }
  const test::ScratchDir& scratch() const { return scratch_; }
  pid_t napi() const { return napi_; }

  // Starts a long-running process in the server namespace (stopped by stop_all()).
  test::Process& spawn_server(const std::vector<std::string>& argv) {
    procs_.push_back(std::make_unique<test::Process>(tb_->server_ns(), on_cpu(kRxCpu, argv)));
    return *procs_.back();
  }
  void stop_all() { procs_.clear(); }

  // CPU time so far of the processes in the server namespace whose command
  // name starts with comm.
  uint64_t server_cpu_ns(const std::string& comm) {
    uint64_t sum = 0;
    for (pid_t pid : test::netns_pids(tb_->server_ns())) {
      std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
      std::string c;
      std::getline(in, c);
      if (c.rfind(comm, 0) == 0) sum += process_cpu_ns(pid);
    }
    return sum;
  }

  const std::string& capsrv() const { return capsrv_; }
  const std::string& loadgen() const { return loadgen_; }
  const Options& opt() const { return opt_; }

 private:
  const Options& opt_;
  test::ScratchDir scratch_;
  test::SluiceCli sluice_;
  std::unique_ptr<test::Testbed> tb_;
  std::vector<std::unique_ptr<test::Process>> procs_;  // before tb_ goes: declared after it
  pid_t client_napi_ = 0, napi_ = 0;
  std::string capsrv_, loadgen_;
};

std::string nginx_config(const std::string& dir, const std::string& listen, double rate) {
  const std::string d = dir + "/nginx";
  return "worker_processes 1;\n"
         "user root;\n"
         "pid " + d + "/nginx.pid;\n"
         "error_log " + d + "/error.log error;\n"
         "worker_rlimit_nofile 200000;\n"
         "events { worker_connections 65536; }\n"
         "http {\n"
         "  access_log off;\n"
         "  client_body_temp_path " + d + "/body;\n"
         "  proxy_temp_path " + d + "/proxy;\n"
         "  fastcgi_temp_path " + d + "/fastcgi;\n"
         "  uwsgi_temp_path " + d + "/uwsgi;\n"
         "  scgi_temp_path " + d + "/scgi;\n"
         "  limit_req_zone $server_name zone=flood:1m rate=" + std::to_string(static_cast<int>(rate)) + "r/s;\n"
         "  limit_req_status 503;\n"
         "  upstream backend { server 127.0.0.1:" + std::to_string(kBackendPort) + "; keepalive 64; }\n"
         "  server {\n"
         "    listen " + listen + " backlog=65535;\n"
         "    server_name sluicebench;\n"
         "    location / {\n"
         "      limit_req zone=flood burst=" + std::to_string(kWorkers) + " nodelay;\n"
         "      proxy_pass http://backend;\n"
         "      proxy_http_version 1.1;\n"
         "      proxy_set_header Connection \"\";\n"
         "      proxy_read_timeout 60s;\n"
         "    }\n"
         "  }\n"
         "}\n";
}

// The protections compared, in the order of the report. To add one: a name,
// what it is, and how to start and stop it around a point.
std::vector<Protection> protections() {
  std::vector<Protection> all;
  all.push_back({"none", "no protection: clients reach capsrv directly", "", false, [](PointContext&) {},
                 [](PointContext&) {}});
  all.push_back(
      {"nginx_limit_req",
       "nginx (1 worker) as a reverse proxy in front, limit_req at capacity (burst = workers, nodelay, 503 when over)",
       "nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'  (capsrv on 127.0.0.1:" + std::to_string(kBackendPort) +
           ")\n# nginx.conf\n" + nginx_config("DIR", "SERVER_IP:" + std::to_string(kPort), kCapacity),
       true,
       [](PointContext& ctx) {
         auto& bed = ctx.bed;
         const std::string dir = bed.scratch().path();
         std::filesystem::create_directories(dir + "/nginx");
         std::string conf = bed.scratch().write(
             "nginx.conf", nginx_config(dir, bed.tb().server_ip4() + ":" + std::to_string(kPort), kCapacity));
         auto& p = bed.spawn_server({"nginx", "-p", dir + "/nginx", "-c", conf, "-g", "daemon off;"});
         if (!test::wait_tcp_listening(bed.tb().server_ns(), kPort, 5s))
           throw std::runtime_error("nginx did not start: " + p.stderr_text());
       },
       [](PointContext&) {}});
  all.push_back({"sluice_static",
                 "sluice in XDP on the server veth: TCP service at capacity (--rate 400/s --burst 4), --reject rst",
                 "sluice -n SERVER_NS attach SERVER_VETH --mode native\nsluice service add web --port " +
                     std::to_string(kPort) + " --rate " + std::to_string(static_cast<int>(kCapacity)) + "/s --burst " +
                     std::to_string(kWorkers) + " --reject rst",
                 false,
                 [](PointContext& ctx) {
                   auto& bed = ctx.bed;
                   bed.sluice().must({"-n", bed.tb().server_ns(), "attach", bed.tb().server_dev(), "--mode", "native"});
                   bed.sluice().must({"service", "add", "web", "--port", std::to_string(kPort), "--rate",
                                      std::to_string(static_cast<int>(kCapacity)) + "/s", "--burst",
                                      std::to_string(kWorkers), "--reject", "rst"});
                 },
                 [](PointContext& ctx) { ctx.bed.sluice().reset(); }});
  // No rate at all: the limit is what `sluice run` learns from the server's
  // latency and in-flight work (capsrv sleeps, so the CPU trigger is off).
  // Each point starts from nothing, so the learning is part of every point.
  all.push_back({"sluice_adaptive",
                 "sluice in XDP, no static rate: --adaptive bbr (--cpu-threshold 0, --http), --reject rst, the limit "
                 "learned by `sluice run` on the server's core",
                 "sluice -n SERVER_NS attach SERVER_VETH --mode native\nsluice service add web --port " +
                     std::to_string(kPort) + " --adaptive bbr --cpu-threshold 0 --http --reject rst\n"
                     "nice -n -20 taskset -c " + std::to_string(kRxCpu) + " sluice run --metrics off",
                 false,
                 [](PointContext& ctx) {
                   auto& bed = ctx.bed;
                   bed.sluice().must({"-n", bed.tb().server_ns(), "attach", bed.tb().server_dev(), "--mode", "native"});
                   bed.sluice().must({"service", "add", "web", "--port", std::to_string(kPort), "--adaptive", "bbr",
                                      "--cpu-threshold", "0", "--http", "--reject", "rst"});
                   auto& run = bed.spawn_server(bed.sluice().command({"run", "--metrics", "off"}));
                   if (!run.wait_for_output("governed", 5s))
                     throw std::runtime_error("sluice run did not start: " + run.stderr_text());
                   ctx.controller = &run;
                 },
                 [](PointContext& ctx) { ctx.bed.sluice().reset(); }});
  return all;
}

struct PointResult {
  Json loadgen;           // loadgen's JSON
  double server_cpu = 0;  // capsrv, fraction of a core
  double protection_cpu = 0;  // nginx, or `sluice run`
  double napi_cpu = 0;        // the server veth's NAPI thread (XDP, TCP receive)
  double core_busy = 0;       // CPU 1 from /proc/stat: everything, ours or not
  double rx_pps = 0;          // packets the server veth received per second
  double napi_wakeups = 0;    // per second: times the NAPI thread ran out of work and was woken again
  double wall_s = 0;
  std::string controller_said;  // the controller's last limit line, if one governed the point
};

PointResult run_point(OverloadBed& bed, const Protection& prot, double rate, double duration) {
  PointContext ctx{bed};
  auto& tb = bed.tb();
  struct Cleanup {
    OverloadBed& bed;
    const Protection& prot;
    PointContext& ctx;
    bool started = false;
    ~Cleanup() {
      bed.stop_all();  // the server and whatever the protection spawned
      try {
        if (started) prot.stop(ctx);
      } catch (...) {
      }
    }
  } cleanup{bed, prot, ctx};

  std::string listen = prot.proxy ? "127.0.0.1:" + std::to_string(kBackendPort)
                                  : tb.server_ip4() + ":" + std::to_string(kPort);
  auto& server = bed.spawn_server({bed.capsrv(), "--listen", listen, "--workers", std::to_string(kWorkers),
                                   "--service-time", fixed(kServiceMs, 1)});
  if (!server.wait_for_output("listening on", 5s)) throw std::runtime_error("capsrv did not start: " + server.stderr_text());
  cleanup.started = true;
  prot.start(ctx);

  auto cpu_now = [&] {
    return std::array<uint64_t, 4>{bed.server_cpu_ns("capsrv"),
                                   bed.server_cpu_ns("nginx") + bed.server_cpu_ns("sluice"),
                                   thread_cpu_ns(bed.napi()), core_busy_ns(kRxCpu)};
  };
  auto c0 = cpu_now();
  uint64_t rx0 = rx_packets(tb.server_ns(), tb.server_dev()), w0 = voluntary_switches(bed.napi());
  uint64_t t0 = now_ns();
  test::RunResult r = test::run_in(
      tb.client_ns(),
      on_cpu(kGenCpu, {bed.loadgen(), "http", "--target", tb.server_ip4() + ":" + std::to_string(kPort), "--rate",
                       fixed(rate, 0), "--duration", fixed(duration, 1), "--timeout", std::to_string(kTimeoutMs),
                       "--json", "-q"}),
      std::chrono::milliseconds(static_cast<int>(duration * 1000) + 15000));
  uint64_t t1 = now_ns();
  auto c1 = cpu_now();
  uint64_t rx1 = rx_packets(tb.server_ns(), tb.server_dev()), w1 = voluntary_switches(bed.napi());
  if (!r.ok()) throw std::runtime_error("loadgen failed (" + std::to_string(r.exit_code) + "): " + r.err);

  PointResult p;
  p.loadgen = Json::parse(r.out);
  p.wall_s = static_cast<double>(t1 - t0) / 1e9;
  auto frac = [&](int i) { return static_cast<double>(c1[i] - c0[i]) / 1e9 / p.wall_s; };
  p.server_cpu = frac(0);
  p.protection_cpu = frac(1);
  p.napi_cpu = frac(2);
  p.core_busy = frac(3);
  p.rx_pps = static_cast<double>(rx1 - rx0) / p.wall_s;
  p.napi_wakeups = static_cast<double>(w1 - w0) / p.wall_s;
  if (ctx.controller) {
    std::istringstream log(ctx.controller->stdout_text() + ctx.controller->stderr_text());
    for (std::string line; std::getline(log, line);)
      if (line.find(" limit ") != std::string::npos) p.controller_said = line.substr(line.find(' ', 11) + 1);
  }
  return p;
}

}  // namespace

void overload(Report& report, const Options& opt) {
  const uint64_t t0 = now_ns();
  const int rounds = opt.quick ? 1 : 5;
  const double duration = opt.quick ? 2.5 : 10;
  OverloadBed bed(opt);
  const auto prots = protections();

  // samples[protection][load][round]
  std::vector<std::vector<std::vector<PointResult>>> samples(prots.size(),
                                                             std::vector<std::vector<PointResult>>(kLoads.size()));
  for (int r = 0; r < rounds; r++) {
    for (size_t l = 0; l < kLoads.size(); l++) {
      std::string line;
      for (size_t p = 0; p < prots.size(); p++) {
        PointResult res = run_point(bed, prots[p], kLoads[l] * kCapacity, duration);
        line += " " + prots[p].name + "=" + fixed(res.loadgen.value("goodput", 0.0), 0) + "/s p99 " +
                fixed(res.loadgen["latency_us"].value("p99", 0.0) / 1000, 1) + " ms";
        if (!res.controller_said.empty()) line += " (last: " + res.controller_said + ")";
        samples[p][l].push_back(std::move(res));
      }
      progress("overload: round " + std::to_string(r + 1) + "/" + std::to_string(rounds) + ", " +
               fixed(kLoads[l], 1) + "x:" + line);
    }
  }

  // Unloaded p99 of each round: no protection at the lowest load.
  std::vector<double> unloaded_p99;
  for (int r = 0; r < rounds; r++) unloaded_p99.push_back(samples[0][0][r].loadgen["latency_us"].value("p99", 0.0));
  const double unloaded = median(unloaded_p99);

  Json& out = report.section("overload");
  out["method"] =
      "capsrv --workers " + std::to_string(kWorkers) + " --service-time " + fixed(kServiceMs, 0) +
      " (sleep: capacity " + fixed(kCapacity, 0) +
      "/s exactly) in the server netns, fresh for every point; loadgen http (open loop, constant arrivals, new "
      "connection per request, timeout " + std::to_string(kTimeoutMs) + " ms) from the client netns for " +
      fixed(duration, 0) + " s per point; loadgen + client NAPI on CPU 0, server + protection + server NAPI on CPU 1, "
      "nice -20; " + std::to_string(rounds) + " round(s), loads interleaved with protections, median per point; "
      "p99 ratio against the unloaded p99 (no protection, 0.5x) of the same round";
  out["commands"] = {
      {"server", "nice -n -20 taskset -c " + std::to_string(kRxCpu) + " capsrv --listen SERVER_IP:" +
                     std::to_string(kPort) + " --workers " + std::to_string(kWorkers) + " --service-time " +
                     fixed(kServiceMs, 1) + "   (behind a proxy: --listen 127.0.0.1:" + std::to_string(kBackendPort) + ")"},
      {"load", "nice -n -20 taskset -c " + std::to_string(kGenCpu) + " loadgen http --target SERVER_IP:" +
                   std::to_string(kPort) + " --rate LOAD_X*" + fixed(kCapacity, 0) + " --duration " + fixed(duration, 0) +
                   " --timeout " + std::to_string(kTimeoutMs) + " --json -q   (in the client netns)"},
      {"napi", "echo 1 > /sys/class/net/VETH/threaded (each end, in its netns); napi/VETH-* kthread pinned with "
               "sched_setaffinity: server end to CPU " + std::to_string(kRxCpu) + ", client end to CPU " +
               std::to_string(kGenCpu) + "; setpriority -20"},
      {"sysctl", "net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535 net.ipv4.ip_local_port_range='10000 "
                 "65000' (both netns)"}};
  out["capacity_rps"] = kCapacity;
  out["loads_x"] = kLoads;
  out["rounds"] = rounds;
  out["seconds_per_point"] = duration;
  out["unloaded_p99_us"] = unloaded;
  Json curves = Json::array();
  for (size_t p = 0; p < prots.size(); p++) {
    Json points = Json::array();
    for (size_t l = 0; l < kLoads.size(); l++) {
      auto med = [&](const std::function<double(const PointResult&)>& f) {
        std::vector<double> v;
        for (const auto& s : samples[p][l]) v.push_back(f(s));
        return median(v);
      };
      auto lat = [&](const char* k) { return med([&](const PointResult& s) { return s.loadgen["latency_us"].value(k, 0.0); }); };
      auto outcome = [&](const char* k) {
        return med([&](const PointResult& s) { return s.loadgen["outcomes"].value(k, 0.0); });
      };
      std::vector<double> p99_ratio;
      for (int r = 0; r < rounds; r++)
        p99_ratio.push_back(unloaded_p99[r] > 0 ? samples[p][l][r].loadgen["latency_us"].value("p99", 0.0) / unloaded_p99[r] : 0);
      // The p99 of each second of the load against the unloaded p99 (median
      // over rounds): a limit learned from nothing shows in the first.
      auto p99_series = [](const PointResult& s) {
        return s.loadgen.value("series", Json::object()).value("p99_us", Json::array());
      };
      size_t seconds = samples[p][l].empty() ? 0 : SIZE_MAX;
      for (const auto& s : samples[p][l]) seconds = std::min(seconds, p99_series(s).size());
      Json p99_ratio_by_second = Json::array();  // null: a second without answers
      for (size_t i = 0; i < seconds; i++) {
        std::vector<double> v;
        for (int r = 0; r < rounds; r++) {
          const Json q = p99_series(samples[p][l][r])[i];
          if (unloaded_p99[r] > 0 && q.is_number() && q.get<double>() > 0) v.push_back(q.get<double>() / unloaded_p99[r]);
        }
        p99_ratio_by_second.push_back(v.empty() ? Json() : Json(median(v)));
      }
      double goodput = med([](const PointResult& s) { return s.loadgen.value("goodput", 0.0); });
      double napi = med([](const PointResult& s) { return s.napi_cpu; });
      double prot_cpu = med([](const PointResult& s) { return s.protection_cpu; });
      Json rounds_goodput = Json::array(), rounds_p99 = Json::array(), rounds_lag = Json::array(),
           rounds_controller = Json::array(), rounds_p99_per_second = Json::array();
      for (const auto& s : samples[p][l]) {
        if (!s.controller_said.empty()) rounds_controller.push_back(s.controller_said);
        rounds_goodput.push_back(s.loadgen.value("goodput", 0.0));
        rounds_p99.push_back(s.loadgen["latency_us"].value("p99", 0.0));
        rounds_p99_per_second.push_back(p99_series(s));
        rounds_lag.push_back(s.loadgen["send_lag_us"].value("p99", 0.0));
      }
      points.push_back({{"load_x", kLoads[l]},
                        {"offered_rps", med([](const PointResult& s) { return s.loadgen.value("offered_rate", 0.0); })},
                        {"goodput_rps", goodput},
                        {"goodput_of_capacity", goodput / kCapacity},
                        {"p50_us", lat("p50")},
                        {"p99_us", lat("p99")},
                        {"p999_us", lat("p999")},
                        {"p99_vs_unloaded", median(p99_ratio)},
                        {"p99_vs_unloaded_by_second", p99_ratio_by_second},
                        {"ok", med([](const PointResult& s) { return s.loadgen.value("success", 0.0); })},
                        {"refused", outcome("refused")},
                        {"timeout", outcome("timeout")},
                        {"http_5xx", outcome("5xx")},
                        {"reset", outcome("reset")},
                        {"skipped", outcome("skipped_no_socket") + outcome("skipped_late")},
                        {"send_lag_p99_us", med([](const PointResult& s) { return s.loadgen["send_lag_us"].value("p99", 0.0); })},
                        {"server_cpu", med([](const PointResult& s) { return s.server_cpu; })},
                        {"protection_cpu", prot_cpu},
                        {"napi_cpu", napi},
                        {"cpu_left_to_server", std::max(0.0, 1.0 - napi - prot_cpu)},
                        {"core_busy", med([](const PointResult& s) { return s.core_busy; })},
                        {"rx_pps", med([](const PointResult& s) { return s.rx_pps; })},
                        {"napi_wakeups_per_s", med([](const PointResult& s) { return s.napi_wakeups; })},
                        {"samples_goodput_rps", rounds_goodput},
                        {"samples_p99_us", rounds_p99},
                        {"samples_p99_us_per_second", rounds_p99_per_second},
                        {"samples_send_lag_p99_us", rounds_lag},
                        {"samples_controller_last_limit", rounds_controller}});
    }
    curves.push_back(
        {{"protection", prots[p].name}, {"what", prots[p].what}, {"how", prots[p].how}, {"points", points}});
  }
  out["curves"] = curves;

  // Targets at 10x: issue 4 sets them for sluice adaptive; every other
  // protection's row is kept to compare (compare_only).
  Json targets = Json::array();
  size_t at10 = std::find(kLoads.begin(), kLoads.end(), 10.0) - kLoads.begin();
  for (const auto& c : curves) {
    const Json& pt = c["points"][at10];
    double g = pt["goodput_of_capacity"].get<double>(), q = pt["p99_vs_unloaded"].get<double>();
    bool compare_only = c["protection"] != "sluice_adaptive";
    targets.push_back({{"what", c["protection"].get<std::string>() + " at 10x: goodput >= 90% of capacity"},
                       {"ratio", g},
                       {"target", 0.9},
                       {"met", g >= 0.9},
                       {"compare_only", compare_only}});
    targets.push_back({{"what", c["protection"].get<std::string>() + " at 10x: admitted p99 <= 2x unloaded p99"},
                       {"ratio", q},
                       {"target", 2.0},
                       {"met", q > 0 && q <= 2.0},
                       {"at_most", true},
                       {"by_second", pt["p99_vs_unloaded_by_second"]},
                       {"compare_only", compare_only}});
  }
  out["targets"] = targets;
  record_elapsed(out, "overload", t0);
}

}  // namespace sluice::bench
