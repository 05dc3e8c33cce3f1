// `sluice stats`: what was admitted and shed, per service and tenant.
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "kernel/counters.hpp"

namespace sluice::cli {

namespace {

volatile std::sig_atomic_t g_stop = 0;

struct Names {
  std::map<uint32_t, std::string> services, tenants;
  std::map<uint32_t, std::string> deny;  // id -> prefix
  std::set<uint32_t> dry_run;            // services counting, not shedding

  explicit Names(const kernel::RunningPolicy& r) {
    for (const auto& [name, id] : r.ids.services) services[id] = name;
    for (const auto& [name, id] : r.ids.tenants) tenants[id] = name;
    for (const auto& [prefix, id] : r.ids.deny) deny[id] = prefix.to_string();
    for (const auto& s : r.policy.services)
      if (s.dry_run) dry_run.insert(r.ids.services.at(s.name));
  }
  static std::string lookup(const std::map<uint32_t, std::string>& m, uint32_t id) {
    auto it = m.find(id);
    return it == m.end() ? "#" + std::to_string(id) : it->second;
  }
};

// now - before, counter by counter: the rates of --watch.
kernel::CounterSnapshot minus(const kernel::CounterSnapshot& now, const kernel::CounterSnapshot& before) {
  kernel::CounterSnapshot d = now;
  for (auto& pc : d.pairs)
    for (const auto& old : before.pairs)
      if (old.service_id == pc.service_id && old.tenant_id == pc.tenant_id)
        for (int r = 0; r < SL_R__COUNT; r++) pc.counters.verdict[r] -= old.counters.verdict[r];
  for (auto& [id, sc] : d.services)
    if (auto it = before.services.find(id); it != before.services.end())
      for (int r = 0; r < SL_R__COUNT; r++) sc.would_shed[r] -= it->second.would_shed[r];
  for (int c = 0; c < SL_G__COUNT; c++) d.global.c[c] -= before.global.c[c];
  for (auto& [id, n] : d.deny)
    if (auto it = before.deny.find(id); it != before.deny.end()) {
      n.packets -= it->second.packets;
      n.bytes -= it->second.bytes;
    }
  return d;
}

Json snapshot_json(const kernel::CounterSnapshot& s, const Names& names, uint64_t epoch) {
  Json j;
  j["epoch"] = epoch;
  j["taken_ns"] = s.taken_ns;
  Json pairs = Json::array();
  for (const auto& pc : s.pairs) {
    Json p;
    p["service"] = Names::lookup(names.services, pc.service_id);
    p["tenant"] = Names::lookup(names.tenants, pc.tenant_id);
    p["admitted"] = pc.counters.verdict[SL_R_ADMITTED];
    p["requests"] = pc.counters.verdict[SL_R_REQUEST];
    p["passed"] = pc.counters.verdict[SL_R_PASSED];
    Json shed;
    for (int r = SL_R_TENANT_LIMIT; r < SL_R__COUNT; r++) shed[kernel::reason_name(r)] = pc.counters.verdict[r];
    p["shed"] = shed;
    pairs.push_back(p);
  }
  j["pairs"] = pairs;
  Json dry = Json::object();
  for (const auto& [id, sc] : s.services) {
    if (!names.dry_run.count(id)) continue;
    Json would;
    for (int r = SL_R_TENANT_LIMIT; r < SL_R__COUNT; r++) would[kernel::reason_name(r)] = sc.would_shed[r];
    dry[Names::lookup(names.services, id)] = would;
  }
  j["dry_run_would_shed"] = dry;
  Json g;
  for (int c = 0; c < SL_G__COUNT; c++) g[kernel::global_counter_name(c)] = s.global.c[c];
  j["global"] = g;
  Json deny = Json::array();
  for (const auto& [id, n] : s.deny)
    deny.push_back({{"prefix", Names::lookup(names.deny, id)}, {"packets", n.packets}, {"bytes", n.bytes}});
  j["deny"] = deny;
  return j;
}

// One table; `seconds` > 0 turns counts into rates.
void print_table(const kernel::CounterSnapshot& snap, const Names& names, double seconds) {
  auto num = [&](uint64_t n) { return seconds > 0 ? per_second(static_cast<double>(n) / seconds) : count(n); };
  Table t({"SERVICE", "TENANT", seconds > 0 ? ">ADMITTED/s" : ">ADMITTED", seconds > 0 ? ">REQUESTS/s" : ">REQUESTS",
           seconds > 0 ? ">PASSED/s" : ">PASSED", seconds > 0 ? ">SHED/s" : ">SHED", "WHY"});
  auto reasons = [&](const __u64 (&counts)[SL_R__COUNT], uint64_t* total) {
    std::string why;
    for (int r = SL_R_TENANT_LIMIT; r < SL_R__COUNT; r++) {
      if (total) *total += counts[r];
      if (counts[r]) why += (why.empty() ? "" : ", ") + std::string(kernel::reason_name(r)) + " " + num(counts[r]);
    }
    return why;
  };
  for (const auto& pc : snap.pairs) {
    uint64_t shed = 0;
    std::string why = reasons(pc.counters.verdict, &shed);
    t.add({Names::lookup(names.services, pc.service_id), Names::lookup(names.tenants, pc.tenant_id),
           num(pc.counters.verdict[SL_R_ADMITTED]), num(pc.counters.verdict[SL_R_REQUEST]),
           num(pc.counters.verdict[SL_R_PASSED]), num(shed), why.empty() ? "-" : why});
  }
  if (t.empty())
    std::cout << "no traffic to any service yet\n";
  else
    t.print(std::cout);
  for (const auto& [id, sc] : snap.services)
    if (names.dry_run.count(id)) {
      std::string why = reasons(sc.would_shed, nullptr);
      std::cout << Names::lookup(names.services, id) << " is in dry run: would have shed "
                << (why.empty() ? "nothing" : why) << "\n";
    }
  const sl_global_counters& global = snap.global;

  uint64_t unparsed = global.c[SL_G_TRUNCATED] + global.c[SL_G_MALFORMED] + global.c[SL_G_HEADER_LIMIT];
  std::cout << "\npackets " << num(global.c[SL_G_PACKETS]) << ", not for a service " << num(global.c[SL_G_NOT_SERVICE])
            << ", unparsed " << num(unparsed) << ", fragments " << num(global.c[SL_G_FRAGMENT]) << ", denied "
            << num(global.c[SL_G_DENIED]) << ", rst sent " << num(global.c[SL_G_RST_SENT]) << "\n";
}

}  // namespace

void add_stats_command(CLI::App& app, GlobalOptions& g) {
  struct Args {
    bool json = false, watch = false;
    std::string interval = "1", rounds = "0";
  };
  auto a = std::make_shared<Args>();
  CLI::App* stats = app.add_subcommand("stats", "Show admitted and shed work per service and tenant.");
  stats->add_flag("--json", a->json, "Machine-readable output (with --watch: one JSON object per line).");
  stats->add_flag("--watch", a->watch, "Print rates every --interval seconds until interrupted.");
  stats->add_option("--interval", a->interval, "Seconds between --watch updates (default 1).");
  stats->add_option("--count", a->rounds, "Stop --watch after this many updates (default: until Ctrl-C).");
  stats->footer(
      "Columns: ADMITTED counts units of admission (new TCP connections, UDP datagrams) let in; REQUESTS counts\n"
      "requests begun on admitted connections of observed services; PASSED counts uncharged packets of\n"
      "admitted work; SHED counts refused work, and WHY gives the reasons:\n"
      "  tenant_limit  over the (service, tenant) bucket      source_limit  over the per-source bucket\n"
      "  inflight      over the adaptive in-flight limit      breaker       breaker open\n"
      "  throttle      refused with the adaptive probability p\n"
      "Dry-run services shed nothing; WHY shows what they would have shed.");
  stats->callback([&g, a] {
    const bool json = a->json, watch = a->watch;
    uint64_t every = parse_uint(a->interval, "--interval", 1, 3600);
    uint64_t limit = parse_uint(a->rounds, "--count", 0, UINT32_MAX);
    auto dp = open_maps_if_set_up(g);
    if (!dp) {
      print_not_set_up(g, json);
      return;
    }

    auto take = [&] {
      kernel::RunningPolicy running = kernel::PolicyStore(*dp).read();
      return std::make_pair(running, kernel::read_counters(*dp, running.ids));
    };

    auto [running, prev] = take();
    if (!watch) {
      Names names(running);
      if (json)
        print_json(std::cout, snapshot_json(prev, names, running.epoch));
      else
        print_table(prev, names, 0);
      return;
    }

    std::signal(SIGINT, [](int) { g_stop = 1; });
    std::signal(SIGTERM, [](int) { g_stop = 1; });
    bool tty = isatty(STDOUT_FILENO);
    for (uint64_t round = 0; !g_stop && (limit == 0 || round < limit); round++) {
      for (uint64_t waited = 0; waited < every * 10 && !g_stop; waited++)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (g_stop) break;
      auto [now_policy, now] = take();
      Names names(now_policy);
      double seconds = static_cast<double>(now.taken_ns - prev.taken_ns) / 1e9;
      if (json) {
        Json j = snapshot_json(now, names, now_policy.epoch);
        j["interval_s"] = seconds;
        std::cout << j.dump() << std::endl;
      } else {
        if (tty) std::cout << "\033[H\033[2J";
        std::cout << "sluice stats, rates over the last " << per_second(seconds) << " s (Ctrl-C to stop)\n\n";
        print_table(minus(now, prev), names, seconds);
        std::cout << std::flush;
      }
      prev = now;
    }
  });
}

}  // namespace sluice::cli
