// Policy commands: service, tenant, limit, deny, apply, export.
#include <algorithm>
#include <iostream>
#include <map>
#include <memory>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "core/error.hpp"
#include "kernel/counters.hpp"
#include "policy/policy_file.hpp"

namespace sluice::cli {

using namespace sluice::policy;

namespace {

// ---- service ----------------------------------------------------------------

// The options `service add` and `service set` share; only those given apply.
struct ServiceOptions {
  std::map<std::string, CLI::Option*> given;
  std::map<std::string, std::string> value;
  bool dry_run = false, http = false;

  void add(CLI::App* cmd) {
    auto opt = [&](const std::string& name, const std::string& help) {
      given[name] = cmd->add_option("--" + name, value[name], help);
    };
    opt("port", "Destination port of the service (1-65535).");
    opt("proto", "tcp (default) or udp. TCP is charged per new connection, UDP per datagram.");
    opt("addr", "Only packets to this destination address (default: any). 'any' clears it.");
    opt("rate", "Each tenant's rate: N/s, N/m or N/h. 'none' removes it (unlimited).");
    opt("burst", "Bucket depth: how many units may arrive at once (default: one second of --rate).");
    opt("per-source", "Each client address's own rate (hot-spot isolation); 'none' removes it.");
    opt("per-source-burst", "Depth of each per-source bucket (default: one second of --per-source).");
    opt("reject", "How refused work is refused: drop (silent; TCP retries and backs off) or rst "
                  "(TCP only: the client's connect fails at once with 'connection refused').");
    given["dry-run"] = cmd->add_flag("--dry-run,!--no-dry-run", dry_run,
                                     "Count what would be shed, shed nothing (--no-dry-run to enforce).");
    given["http"] = cmd->add_flag("--http,!--no-http", http,
                                  "HTTP/1.x service: read response status lines, count 5xx as errors.");
    opt("adaptive", "Adaptive concurrency limit learned by 'sluice run': off, bbr, aimd or gradient.");
    opt("breaker", "Breaker run by 'sluice run': off, ratio (three-state) or sre (adaptive throttling).");
    opt("timeout", "Latency SLO in ms; requests outstanding longer count as failures (0: none).");
    opt("cpu-threshold", "BBR: apply the in-flight limit when CPU is above PCT percent (0: always).");
    opt("window", "Statistics window of the controller, in ms (default 10000).");
    opt("window-buckets", "Buckets in the window (default 100).");
    opt("breaker-window", "The breakers' window in ms (default 1000), in 10 buckets.");
    opt("breaker-min-calls", "Minimum requests in the window before the breaker may open (default 20).");
    opt("breaker-error-pct", "Ratio breaker: open at this error percentage (default 50).");
    opt("breaker-slow-pct", "Ratio breaker: open at this slow-call percentage (default 0: off).");
    opt("breaker-slow-ms", "Ratio breaker: a call slower than this is slow.");
    opt("breaker-open-ms", "How long the breaker stays open before probing (default 5000).");
    opt("breaker-probes", "Requests let through while half-open (default 5).");
    opt("sre-k", "SRE throttling K: accept up to K x successes before throttling (default 2).");
    opt("cgroup", "The service's cgroup v2 directory; 'sluice run' reads its CPU there (default: host CPU).");
  }

  bool has(const std::string& name) const { return given.at(name)->count() > 0; }
  const std::string& get(const std::string& name) const { return value.at(name); }

  void apply_to(Service& s) const {
    if (has("port")) s.port = static_cast<uint16_t>(parse_uint(get("port"), "--port", 1, 65535));
    if (has("proto")) s.proto = parse_proto(get("proto"), "--proto");
    if (has("addr")) {
      if (get("addr") == "any") {
        s.addr.reset();
      } else {
        s.addr = IpAddr::parse(get("addr"));
        if (!s.addr) throw UsageError("--addr '" + get("addr") + "' is not an IPv4 or IPv6 address");
      }
    }
    apply_rate(s.rate, s.burst, "rate", "burst");
    apply_rate(s.per_source, s.per_source_burst, "per-source", "per-source-burst");
    if (has("reject")) s.reject = parse_reject(get("reject"), "--reject");
    if (has("dry-run")) s.dry_run = dry_run;
    if (has("http")) s.http = http;

    Tuning& t = s.tuning;
    if (has("adaptive")) t.adaptive = parse_adaptive(get("adaptive"), "--adaptive");
    if (has("breaker")) t.breaker = parse_breaker(get("breaker"), "--breaker");
    auto u32 = [&](const char* name, uint32_t& out, uint64_t lo, uint64_t hi) {
      if (has(name)) out = static_cast<uint32_t>(parse_uint(get(name), std::string("--") + name, lo, hi));
    };
    u32("timeout", t.timeout_ms, 0, 3'600'000);
    u32("cpu-threshold", t.cpu_threshold_pct, 0, 100);
    u32("window", t.window_ms, 100, 600'000);
    u32("window-buckets", t.window_buckets, 1, 1000);
    u32("breaker-window", t.breaker_window_ms, 100, 600'000);
    u32("breaker-min-calls", t.breaker_min_calls, 1, 65535);
    u32("breaker-error-pct", t.breaker_error_pct, 1, 100);
    u32("breaker-slow-pct", t.breaker_slow_pct, 0, 100);
    u32("breaker-slow-ms", t.breaker_slow_ms, 0, 3'600'000);
    u32("breaker-open-ms", t.breaker_open_ms, 1, 3'600'000);
    u32("breaker-probes", t.breaker_probes, 1, 65535);
    if (has("sre-k")) t.sre_k = parse_double(get("sre-k"), "--sre-k", 1.0, 10.0);
    if (has("cgroup")) t.cgroup = get("cgroup");
  }

  void apply_rate(Rate& rate, uint32_t& burst, const std::string& rate_opt, const std::string& burst_opt) const {
    if (has(rate_opt)) {
      if (get(rate_opt) == "none") {
        rate = Rate{};
        burst = 0;
      } else {
        rate = parse_rate(get(rate_opt), "--" + rate_opt);
        burst = default_burst(rate);
      }
    }
    if (has(burst_opt)) {
      if (!rate.is_set()) throw UsageError("--" + burst_opt + " needs --" + rate_opt);
      burst = static_cast<uint32_t>(parse_uint(get(burst_opt), "--" + burst_opt, 1, kMaxBurst));
    }
  }
};

std::string describe_rate(const Rate& r, uint32_t burst) {
  return r.is_set() ? to_string(r) + " burst " + std::to_string(burst) : "-";
}

Json service_json(const Service& s) {
  Json j;
  j["name"] = s.name;
  j["proto"] = to_string(s.proto);
  j["port"] = s.port;
  j["addr"] = s.addr ? Json(s.addr->to_string()) : Json(nullptr);
  j["rate"] = s.rate.is_set() ? Json(to_string(s.rate)) : Json(nullptr);
  j["burst"] = s.rate.is_set() ? Json(s.burst) : Json(nullptr);
  j["per_source"] = s.per_source.is_set() ? Json(to_string(s.per_source)) : Json(nullptr);
  j["per_source_burst"] = s.per_source.is_set() ? Json(s.per_source_burst) : Json(nullptr);
  j["reject"] = to_string(s.reject);
  j["dry_run"] = s.dry_run;
  j["http"] = s.http;
  j["adaptive"] = to_string(s.tuning.adaptive);
  j["breaker"] = to_string(s.tuning.breaker);
  j["timeout_ms"] = s.tuning.timeout_ms;
  return j;
}

void add_service_commands(CLI::App& app, GlobalOptions& g) {
  CLI::App* service = app.add_subcommand("service", "Define the services sluice protects.");
  service->require_subcommand(1);

  // Option values live as long as the app: the callbacks hold them.
  struct Args {
    std::string name;
    ServiceOptions add_opts, set_opts;
    bool json = false;
  };
  auto a = std::make_shared<Args>();

  CLI::App* add = service->add_subcommand("add", "Protect a service: a (protocol, port[, address]) and its limits.");
  add->add_option("NAME", a->name, "Service name: 1-31 of a-z 0-9 _ . -")->required();
  a->add_opts.add(add);
  add->footer(
      "Examples:\n"
      "  sluice service add web --port 80 --rate 1000/s --burst 200 --reject rst\n"
      "  sluice service add dns --proto udp --port 53 --rate 5000/s --per-source 50/s\n"
      "  sluice service add api --port 8080 --adaptive bbr --breaker sre --timeout 250 --http\n"
      "Every tenant gets its own bucket of --rate; 'sluice limit set' gives one tenant another rate.");
  add->callback([&g, a] {
    if (!a->add_opts.has("port")) throw UsageError("service add: --port is required");
    change_policy(g, [&](Policy& p) {
      if (p.find_service(a->name))
        throw UsageError("service '" + a->name + "' exists; change it with 'sluice service set " + a->name + " ...'");
      Service s;
      s.name = a->name;
      a->add_opts.apply_to(s);
      p.services.push_back(s);
    });
    std::cout << "service " << a->name << " added\n";
  });

  CLI::App* set = service->add_subcommand("set", "Change some settings of a service; the others stay.");
  set->add_option("NAME", a->name, "Service name")->required();
  a->set_opts.add(set);
  set->callback([&g, a] {
    change_policy(g, [&](Policy& p) {
      auto it = std::find_if(p.services.begin(), p.services.end(), [&](const Service& s) { return s.name == a->name; });
      if (it == p.services.end()) throw UsageError(p.no_service_named(a->name) + " (see: sluice service list)");
      a->set_opts.apply_to(*it);
    });
    std::cout << "service " << a->name << " updated\n";
  });

  CLI::App* del = service->add_subcommand("del", "Stop protecting a service.");
  del->add_option("NAME", a->name, "Service name")->required();
  del->callback([&g, a] {
    const std::string& name = a->name;
    change_policy(g, [&](Policy& p) {
      if (!p.find_service(name)) throw UsageError(p.no_service_named(name) + " (see: sluice service list)");
      for (const auto& l : p.limits)
        if (l.service == name)
          throw UsageError("service '" + name + "' has a limit for tenant '" + l.tenant + "'; remove it first: sluice limit del " +
                           name + " " + l.tenant);
      std::erase_if(p.services, [&](const Service& s) { return s.name == name; });
    });
    std::cout << "service " << name << " deleted\n";
  });

  CLI::App* list = service->add_subcommand("list", "List services and their limits.");
  list->add_flag("--json", a->json, "Machine-readable output.");
  list->callback([&g, a] {
    bool json = a->json;
    Policy p = read_running_policy(g).policy;
    if (json) {
      Json arr = Json::array();
      for (const auto& s : p.services) arr.push_back(service_json(s));
      print_json(std::cout, arr);
      return;
    }
    Table t({"NAME", "PROTO", ">PORT", "ADDR", "RATE", "PER-SOURCE", "REJECT", "MODE", "ADAPTIVE", "BREAKER"});
    for (const auto& s : p.services)
      t.add({s.name, to_string(s.proto), std::to_string(s.port), s.addr ? s.addr->to_string() : "any",
             describe_rate(s.rate, s.burst), describe_rate(s.per_source, s.per_source_burst), to_string(s.reject),
             s.dry_run ? "dry-run" : "enforce", to_string(s.tuning.adaptive), to_string(s.tuning.breaker)});
    if (t.empty())
      std::cout << "no services (add one: sluice service add NAME --port N --rate R/s)\n";
    else
      t.print(std::cout);
  });
}

// ---- tenant -----------------------------------------------------------------

void add_tenant_commands(CLI::App& app, GlobalOptions& g) {
  CLI::App* tenant = app.add_subcommand("tenant", "Group clients by source prefix, with a priority level.");
  tenant->require_subcommand(1);
  struct Args {
    std::string name;
    std::vector<std::string> prefixes;
    std::string level;
    CLI::Option* level_opt = nullptr;
    bool json = false;
  };
  auto a = std::make_shared<Args>();

  CLI::App* add = tenant->add_subcommand("add", "Define a tenant, or add prefixes to one (or change its level).");
  add->add_option("NAME", a->name, "Tenant name; 'default' is every source no prefix matches")->required();
  add->add_option("--prefix", a->prefixes, "Source prefix (CIDR), IPv4 or IPv6; repeat for more.");
  a->level_opt = add->add_option("--level", a->level,
                              "Priority under overload: 0 is shed last (core), 2 first; default 1.");
  add->footer(
      "Examples:\n"
      "  sluice tenant add gold --prefix 198.18.1.0/24 --prefix 2001:db8:1::/48 --level 0\n"
      "  sluice tenant add default --level 2     # unknown sources are shed first\n"
      "A source belongs to the tenant with the longest matching prefix.");
  add->callback([&g, a] {
    const std::string& name = a->name;
    std::vector<Cidr> parsed;
    for (const auto& text : a->prefixes) parsed.push_back(Cidr::parse(text));
    std::optional<uint8_t> lvl;
    if (a->level_opt->count()) lvl = static_cast<uint8_t>(parse_uint(a->level, "--level", 0, SL_LEVELS - 1));
    bool existed = false;
    change_policy(g, [&](Policy& p) {
      auto it = std::find_if(p.tenants.begin(), p.tenants.end(), [&](const Tenant& t) { return t.name == name; });
      existed = it != p.tenants.end();
      if (!existed) {
        if (parsed.empty() && name != kDefaultTenant)
          throw UsageError("tenant add: a new tenant needs at least one --prefix");
        p.tenants.push_back(Tenant{name, {}, kDefaultLevel});
        it = std::prev(p.tenants.end());
      } else if (parsed.empty() && !lvl) {
        throw UsageError("tenant '" + name + "' exists; give --prefix to add prefixes or --level to change its level");
      }
      for (const auto& c : parsed) {
        if (std::find(it->prefixes.begin(), it->prefixes.end(), c) != it->prefixes.end())
          throw UsageError("tenant '" + name + "' already has " + c.to_string());
        it->prefixes.push_back(c);
      }
      if (lvl) it->level = *lvl;
    });
    std::cout << "tenant " << name << (existed ? " updated\n" : " added\n");
  });

  CLI::App* del = tenant->add_subcommand("del", "Delete a tenant (or, with --prefix, only some of its prefixes).");
  del->add_option("NAME", a->name, "Tenant name")->required();
  del->add_option("--prefix", a->prefixes, "Remove only this prefix; repeat for more.");
  del->callback([&g, a] {
    const std::string& name = a->name;
    std::vector<Cidr> parsed;
    for (const auto& text : a->prefixes) parsed.push_back(Cidr::parse(text));
    change_policy(g, [&](Policy& p) {
      auto it = std::find_if(p.tenants.begin(), p.tenants.end(), [&](const Tenant& t) { return t.name == name; });
      if (it == p.tenants.end())
        throw UsageError(p.no_tenant_named(name, /*implicit_default=*/false) + " (see: sluice tenant list)");
      if (!parsed.empty()) {
        for (const auto& c : parsed) {
          auto pos = std::find(it->prefixes.begin(), it->prefixes.end(), c);
          if (pos == it->prefixes.end()) throw UsageError("tenant '" + name + "' has no prefix " + c.to_string());
          it->prefixes.erase(pos);
        }
        return;  // validate() refuses a tenant left without prefixes
      }
      for (const auto& l : p.limits)
        if (l.tenant == name)
          throw UsageError("tenant '" + name + "' has a limit on service '" + l.service +
                           "'; remove it first: sluice limit del " + l.service + " " + name);
      p.tenants.erase(it);
    });
    std::cout << "tenant " << name << (a->prefixes.empty() ? " deleted\n" : " updated\n");
  });

  CLI::App* list = tenant->add_subcommand("list", "List tenants, their prefixes and levels.");
  list->add_flag("--json", a->json, "Machine-readable output.");
  list->callback([&g, a] {
    bool json = a->json;
    Policy p = read_running_policy(g).policy;
    bool has_default = p.find_tenant(kDefaultTenant) != nullptr;
    if (!has_default) p.tenants.insert(p.tenants.begin(), Tenant{kDefaultTenant, {}, kDefaultLevel});
    if (json) {
      Json arr = Json::array();
      for (const auto& t : p.tenants) {
        Json pj = Json::array();
        for (const auto& c : t.prefixes) pj.push_back(c.to_string());
        arr.push_back({{"name", t.name}, {"level", t.level}, {"prefixes", pj}});
      }
      print_json(std::cout, arr);
      return;
    }
    Table t({"NAME", ">LEVEL", "PREFIXES"});
    for (const auto& tn : p.tenants) {
      std::string list;
      for (const auto& c : tn.prefixes) list += (list.empty() ? "" : " ") + c.to_string();
      t.add({tn.name, std::to_string(tn.level), tn.name == kDefaultTenant ? "(every other source)" : list});
    }
    t.print(std::cout);
  });
}

// ---- limit --------------------------------------------------------------------

void add_limit_commands(CLI::App& app, GlobalOptions& g) {
  CLI::App* limit = app.add_subcommand("limit", "Give one tenant its own rate on one service.");
  limit->require_subcommand(1);
  struct Args {
    std::string service, tenant, rate, burst;
    CLI::Option* burst_opt = nullptr;
    bool json = false;
  };
  auto a = std::make_shared<Args>();

  CLI::App* set = limit->add_subcommand("set", "Set a tenant's rate on a service (replaces the service's --rate for it).");
  set->add_option("SERVICE", a->service, "Service name")->required();
  set->add_option("TENANT", a->tenant, "Tenant name ('default' for unmatched sources)")->required();
  set->add_option("--rate", a->rate, "N/s, N/m or N/h")->required();
  a->burst_opt = set->add_option("--burst", a->burst, "Bucket depth (default: one second of --rate)");
  set->footer("Example:\n  sluice limit set web gold --rate 5000/s --burst 500");
  set->callback([&g, a] {
    const std::string &service = a->service, &tenant = a->tenant;
    Rate r = parse_rate(a->rate, "--rate");
    uint32_t b =
        a->burst_opt->count() ? static_cast<uint32_t>(parse_uint(a->burst, "--burst", 1, kMaxBurst)) : default_burst(r);
    change_policy(g, [&](Policy& p) {
      if (!p.find_service(service)) throw UsageError(p.no_service_named(service) + " (see: sluice service list)");
      if (tenant != kDefaultTenant && !p.find_tenant(tenant))
        throw UsageError(p.no_tenant_named(tenant, /*implicit_default=*/true) + " (see: sluice tenant list)");
      std::erase_if(p.limits, [&](const Limit& l) { return l.service == service && l.tenant == tenant; });
      p.limits.push_back(Limit{service, tenant, r, b});
    });
    std::cout << "limit " << service << "/" << tenant << " set to " << to_string(r) << " burst " << b << "\n";
  });

  CLI::App* del = limit->add_subcommand("del", "Remove a tenant's own rate; the service's --rate applies again.");
  del->add_option("SERVICE", a->service, "Service name")->required();
  del->add_option("TENANT", a->tenant, "Tenant name")->required();
  del->callback([&g, a] {
    const std::string &service = a->service, &tenant = a->tenant;
    change_policy(g, [&](Policy& p) {
      size_t removed =
          std::erase_if(p.limits, [&](const Limit& l) { return l.service == service && l.tenant == tenant; });
      if (removed) return;
      if (!p.find_service(service)) throw UsageError(p.no_service_named(service) + " (see: sluice limit list)");
      if (tenant != kDefaultTenant && !p.find_tenant(tenant))
        throw UsageError(p.no_tenant_named(tenant, /*implicit_default=*/true) + " (see: sluice limit list)");
      throw UsageError("no limit for service '" + service + "' and tenant '" + tenant + "' (see: sluice limit list)");
    });
    std::cout << "limit " << service << "/" << tenant << " deleted\n";
  });

  CLI::App* list = limit->add_subcommand("list", "List per-tenant limits.");
  list->add_flag("--json", a->json, "Machine-readable output.");
  list->callback([&g, a] {
    bool json = a->json;
    Policy p = read_running_policy(g).policy;
    if (json) {
      Json arr = Json::array();
      for (const auto& l : p.limits)
        arr.push_back({{"service", l.service}, {"tenant", l.tenant}, {"rate", to_string(l.rate)}, {"burst", l.burst}});
      print_json(std::cout, arr);
      return;
    }
    Table t({"SERVICE", "TENANT", "RATE", ">BURST"});
    for (const auto& l : p.limits) t.add({l.service, l.tenant, to_string(l.rate), std::to_string(l.burst)});
    if (t.empty())
      std::cout << "no per-tenant limits\n";
    else
      t.print(std::cout);
  });
}

// ---- deny -----------------------------------------------------------------------

void add_deny_commands(CLI::App& app, GlobalOptions& g) {
  CLI::App* deny = app.add_subcommand("deny", "Drop every packet from source prefixes.");
  deny->require_subcommand(1);
  struct Args {
    std::string prefix;
    bool json = false;
  };
  auto a = std::make_shared<Args>();

  CLI::App* add = deny->add_subcommand("add", "Drop all traffic from a source prefix.");
  add->add_option("CIDR", a->prefix, "Source prefix, e.g. 198.18.66.0/24 or 2001:db8:66::/48")->required();
  add->callback([&g, a] {
    Cidr c = Cidr::parse(a->prefix);
    change_policy(g, [&](Policy& p) {
      if (std::find(p.deny.begin(), p.deny.end(), c) != p.deny.end())
        throw UsageError(c.to_string() + " is already denied");
      p.deny.push_back(c);
    });
    std::cout << "deny " << c.to_string() << " added\n";
  });

  CLI::App* del = deny->add_subcommand("del", "Stop dropping a source prefix.");
  del->add_option("CIDR", a->prefix, "A prefix from 'sluice deny list'")->required();
  del->callback([&g, a] {
    Cidr c = Cidr::parse(a->prefix);
    change_policy(g, [&](Policy& p) {
      if (!std::erase(p.deny, c)) throw UsageError(c.to_string() + " is not denied (see: sluice deny list)");
    });
    std::cout << "deny " << c.to_string() << " deleted\n";
  });

  CLI::App* list = deny->add_subcommand("list", "List deny rules and what they dropped.");
  list->add_flag("--json", a->json, "Machine-readable output.");
  list->callback([&g, a] {
    bool json = a->json;
    auto dp = open_maps_if_set_up(g);
    kernel::RunningPolicy running = dp ? kernel::PolicyStore(*dp).read() : kernel::RunningPolicy{};
    kernel::CounterSnapshot snap = dp ? kernel::read_counters(*dp, running.ids) : kernel::CounterSnapshot{};
    Json arr = Json::array();
    Table t({"PREFIX", ">PACKETS", ">BYTES"});
    for (const auto& c : running.policy.deny) {
      sl_deny_counters n{};
      if (auto it = snap.deny.find(running.ids.deny.at(c)); it != snap.deny.end()) n = it->second;
      arr.push_back({{"prefix", c.to_string()}, {"packets", n.packets}, {"bytes", n.bytes}});
      t.add({c.to_string(), count(n.packets), count(n.bytes)});
    }
    if (json)
      print_json(std::cout, arr);
    else if (t.empty())
      std::cout << "no deny rules\n";
    else
      t.print(std::cout);
  });
}

// ---- apply / export ---------------------------------------------------------------

void add_file_commands(CLI::App& app, GlobalOptions& g) {
  auto file = std::make_shared<std::string>();
  CLI::App* apply = app.add_subcommand("apply", "Replace the running policy with a policy file, atomically.");
  apply->add_option("-f,--file", *file, "Policy file (TOML); default: the saved policy file");
  apply->footer(
      "The whole file is checked first; on any error nothing changes and the error names the file, line and\n"
      "field. On success the data path switches to the new policy at once, and the file becomes the saved\n"
      "policy (so 'sluice apply' alone restores it after a reboot). See docs/policy.md for the format.");
  apply->callback([&g, file] {
    require_root();  // before reading the file: the first thing to say to a non-root user
    std::string path = file->empty() ? g.policy_file : *file;
    Policy p = load_policy_file(path);
    uint64_t epoch = replace_policy(g, p);
    std::cout << "applied " << path << ": " << p.services.size() << " services, " << p.tenants.size() << " tenants, "
              << p.limits.size() << " limits, " << p.deny.size() << " deny rules (epoch " << epoch << ")\n";
  });

  CLI::App* exp = app.add_subcommand("export", "Print the running policy as a policy file.");
  exp->footer("Example:\n  sluice export > policy.toml && sluice apply -f policy.toml");
  exp->callback([&g] {
    std::cout << to_toml(read_running_policy(g).policy);
  });
}

}  // namespace

void add_policy_commands(CLI::App& app, GlobalOptions& g) {
  add_service_commands(app, g);
  add_tenant_commands(app, g);
  add_limit_commands(app, g);
  add_deny_commands(app, g);
  add_file_commands(app, g);
}

}  // namespace sluice::cli
