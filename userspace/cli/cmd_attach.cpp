// Lifecycle commands: attach, detach, status, reset.
#include <net/if.h>
#include <unistd.h>

#include <csignal>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <set>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "core/error.hpp"
#include "kernel/attach.hpp"
#include "kernel/bpffs.hpp"
#include "kernel/counters.hpp"
#include "kernel/netns.hpp"
#include "kernel/observation.hpp"
#include "policy/policy_file.hpp"
#include "sluice.skel.h"

namespace sluice::cli {

namespace {

kernel::XdpModeRequest parse_mode(const std::string& text) {
  if (text == "auto") return kernel::XdpModeRequest::Auto;
  if (text == "native") return kernel::XdpModeRequest::Native;
  if (text == "generic") return kernel::XdpModeRequest::Generic;
  throw UsageError("--mode '" + text + "': expected one of auto|native|generic");
}

std::string where(const std::string& netns, const std::string& ifname) {
  return netns.empty() ? ifname : ifname + " (netns " + netns + ")";
}

// After a reboot the maps are new and empty; the saved policy brings them back.
void restore_saved_policy(const GlobalOptions& g) {
  auto dp = open_maps(g);
  if (kernel::PolicyStore(*dp).read().epoch != 0 || access(g.policy_file.c_str(), R_OK) != 0) return;
  policy::Policy saved = policy::load_policy_file(g.policy_file);
  uint64_t epoch = replace_policy(g, saved);
  std::cout << "restored the saved policy from " << g.policy_file << " (epoch " << epoch << ")\n";
}

// Memory the kernel charges for a map, from /proc/self/fdinfo.
uint64_t map_memlock(int fd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
  std::string key;
  uint64_t value = 0;
  while (in >> key) {
    if (key == "memlock:") {
      in >> value;
      return value;
    }
    in.ignore(256, '\n');
  }
  return 0;
}

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 3) {
    v /= 1024;
    u++;
  }
  char buf[32];
  snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::set<std::string> directory_entries(const std::string& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) names.insert(e.path().filename());
  return names;
}

// Whether a recorded attachment is still what the kernel has.
std::string attachment_state(const kernel::Attachment& a) {
  try {
    kernel::NetnsScope ns(a.netns);
    int ifindex = static_cast<int>(if_nametoindex(a.ifname.c_str()));
    if (ifindex == 0) return "interface gone";
    auto id = kernel::sluice_prog_id(ifindex);
    if (!id) return "detached elsewhere";
    return *id == a.info.xdp_prog_id ? "active" : "active (program " + std::to_string(*id) + ")";
  } catch (const UsageError&) {
    return "netns gone";
  }
}

void status(const GlobalOptions& g, bool json) {
  auto dp = open_maps_if_set_up(g);
  if (!dp) {
    print_not_set_up(g, json);
    return;
  }
  kernel::RunningPolicy running = kernel::PolicyStore(*dp).read();
  kernel::CounterSnapshot snap = kernel::read_counters(*dp, running.ids);

  // The policy file: does it say what the kernel runs?
  std::string file_state;
  try {
    policy::Policy saved = policy::load_policy_file(g.policy_file);
    saved.maps = running.policy.maps;
    file_state = saved == running.policy ? "in sync" : "differs from the running policy";
  } catch (const UsageError& e) {
    file_state = std::string("invalid: ") + e.what();
  } catch (const SystemError&) {
    file_state = "missing";
  }

  // The controller's heartbeat.
  uint32_t zero = 0;
  auto hb = kernel::map_lookup<uint32_t, sl_control_header>(dp->map_fd(dp->skel()->maps.ctl_header), zero);
  double age_s = -1;
  bool controller_alive = false;
  if (hb && hb->heartbeat_ns) {
    age_s = static_cast<double>(kernel::monotonic_ns() - hb->heartbeat_ns) / 1e9;
    controller_alive = hb->controller_pid && kill(static_cast<pid_t>(hb->controller_pid), 0) == 0;
  }

  uint64_t admitted = 0, shed = 0;
  for (const auto& pc : snap.pairs) {
    admitted += pc.counters.verdict[SL_R_ADMITTED];
    for (int r = SL_R_TENANT_LIMIT; r < SL_R__COUNT; r++) shed += pc.counters.verdict[r];
  }

  // What the controller decided for each service it governs.
  struct GovernedRow {
    std::vector<std::string> row;
    Json json;
  };
  std::vector<GovernedRow> governed;
  for (const auto& s : running.policy.services) {
    if (s.tuning.adaptive == policy::Adaptive::Off && s.tuning.breaker == policy::BreakerKind::Off) continue;
    uint32_t id = running.ids.services.at(s.name);
    sl_control c = kernel::map_lookup<uint32_t, sl_control>(dp->map_fd(dp->skel()->maps.ctl_services), id)
                       .value_or(sl_control{});
    int64_t inflight = kernel::read_observation(*dp, id).inflight - c.inflight_bias;
    const char* breaker = c.breaker_state == SL_BREAKER_OPEN        ? "open"
                          : c.breaker_state == SL_BREAKER_HALF_OPEN ? "half-open"
                                                                    : "closed";
    double p = static_cast<double>(c.reject_p) / SL_P_ONE;
    std::string admits = c.max_inflight[0] ? std::to_string(c.max_inflight[0]) + "/" + std::to_string(c.max_inflight[1]) +
                                                 "/" + std::to_string(c.max_inflight[2])
                                           : "-";
    governed.push_back({{s.name, std::to_string(c.learned), admits, std::to_string(inflight), breaker, per_second(p)},
                        {{"service", s.name},
                         {"learned", c.learned},
                         {"max_inflight", {c.max_inflight[0], c.max_inflight[1], c.max_inflight[2]}},
                         {"inflight", inflight},
                         {"breaker", breaker},
                         {"reject_p", p}}});
  }

  std::vector<kernel::Attachment> attached = kernel::list_attachments(*dp);
  struct MapUse {
    std::string name;
    uint32_t max_entries;
    uint64_t bytes;
    std::optional<size_t> entries;  // hash maps: how full (an LRU at its size evicts)
  };
  std::vector<MapUse> maps;
  uint64_t total_bytes = 0;
  bpf_map* map;
  bpf_object__for_each_map(map, dp->object()) {
    int fd = bpf_map__fd(map);
    if (fd < 0 || !bpf_map__pin_path(map)) continue;
    uint64_t bytes = map_memlock(fd);
    std::optional<size_t> entries;
    bpf_map_type type = bpf_map__type(map);
    if ((json || g.verbose) && (type == BPF_MAP_TYPE_HASH || type == BPF_MAP_TYPE_LRU_HASH))
      entries = kernel::count_entries(fd, bpf_map__key_size(map), bpf_map__max_entries(map));
    maps.push_back({bpf_map__name(map), bpf_map__max_entries(map), bytes, entries});
    total_bytes += bytes;
  }

  if (json) {
    Json j;
    j["set_up"] = true;
    j["pin_dir"] = g.pin_dir;
    j["policy"] = {{"epoch", running.epoch},
                   {"slot", running.active_slot},
                   {"services", running.policy.services.size()},
                   {"tenants", running.policy.tenants.size()},
                   {"limits", running.policy.limits.size()},
                   {"deny", running.policy.deny.size()},
                   {"file", g.policy_file},
                   {"file_state", file_state}};
    Json gov = Json::array();
    for (const auto& gv : governed) gov.push_back(gv.json);
    j["controller"] = {{"running", controller_alive},
                       {"pid", hb ? hb->controller_pid : 0},
                       {"heartbeat_age_s", age_s},
                       {"governed", gov}};
    Json att = Json::array();
    for (const auto& a : attached)
      att.push_back({{"netns", a.netns},
                     {"dev", a.ifname},
                     {"mode", kernel::mode_name(a.info.xdp_mode)},
                     {"shared_hook", a.info.multiprog != 0},
                     {"prog_id", a.info.xdp_prog_id},
                     {"state", attachment_state(a)}});
    j["attachments"] = att;
    j["counters"] = {{"packets", snap.global.c[SL_G_PACKETS]}, {"admitted", admitted}, {"shed", shed},
                     {"denied", snap.global.c[SL_G_DENIED]}};
    Json mj = Json::array();
    for (const auto& m : maps) {
      Json e = {{"name", m.name}, {"max_entries", m.max_entries}, {"bytes", m.bytes}};
      if (m.entries) e["entries"] = *m.entries;
      mj.push_back(e);
    }
    j["maps"] = mj;
    j["map_bytes"] = total_bytes;
    print_json(std::cout, j);
    return;
  }

  std::cout << "policy:     epoch " << running.epoch << ", " << running.policy.services.size() << " services, "
            << running.policy.tenants.size() << " tenants, " << running.policy.limits.size() << " limits, "
            << running.policy.deny.size() << " deny rules\n";
  std::cout << "saved:      " << g.policy_file << " (" << file_state << ")\n";
  if (file_state.rfind("differs", 0) == 0)
    std::cout << "            (edited, or a change was interrupted; to run what is saved: sluice apply -f " << g.policy_file
              << ")\n";
  if (controller_alive)
    std::cout << "controller: pid " << hb->controller_pid << ", heartbeat " << per_second(age_s) << " s ago\n";
  else
    std::cout << "controller: not running (static policy only)\n";
  if (controller_alive && !governed.empty()) {
    std::cout << "\n";
    Table t({"GOVERNED", ">LEARNED", ">ADMITS L0/L1/L2", ">IN FLIGHT", "BREAKER", ">REJECT P"});
    for (const auto& gv : governed) t.add(gv.row);
    t.print(std::cout);
  }
  std::cout << "traffic:    " << snap.global.c[SL_G_PACKETS] << " packets seen, " << admitted << " admitted, " << shed
            << " shed, " << snap.global.c[SL_G_DENIED] << " denied\n";
  std::cout << "maps:       " << g.pin_dir << ", " << human_bytes(total_bytes) << " in " << maps.size() << " maps\n";
  if (attached.empty()) {
    std::cout << "attached:   nowhere (sluice attach DEV)\n";
  } else {
    std::cout << "\n";
    Table t({"DEV", "NETNS", "MODE", "XDP HOOK", ">PROG", "STATE"});
    for (const auto& a : attached)
      t.add({a.ifname, a.netns.empty() ? "-" : a.netns, kernel::mode_name(a.info.xdp_mode),
             a.info.multiprog ? "shared (libxdp)" : "alone", std::to_string(a.info.xdp_prog_id), attachment_state(a)});
    t.print(std::cout);
  }
  if (g.verbose) {
    std::cout << "\n";
    Table t({"MAP", ">MAX ENTRIES", ">IN USE", ">MEMORY"});
    for (const auto& m : maps)
      t.add({m.name, std::to_string(m.max_entries), m.entries ? std::to_string(*m.entries) : "-",
             human_bytes(m.bytes)});
    t.print(std::cout);
  }
}

// Detach everywhere and remove the pins; the policy file stays.
void reset(const GlobalOptions& g) {
  require_kernel(g);
  if (!maps_exist(g)) {
    std::cout << "nothing to reset in " << g.pin_dir << "\n";
    return;
  }
  {
    auto dp = open_maps(g, /*ignore_incompatible_pins=*/true);
    for (const auto& a : kernel::list_attachments(*dp)) {
      try {
        kernel::NetnsScope ns(a.netns);
        kernel::detach(dp.get(), a.netns, a.ifname);
        std::cout << "detached from " << where(a.netns, a.ifname) << "\n";
      } catch (const std::exception& e) {
        std::cout << "skipped " << where(a.netns, a.ifname) << ": " << e.what() << "\n";
      }
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(g.pin_dir, ec);
  if (ec) throw SystemError("cannot remove " + g.pin_dir, ec.value());
  std::cout << "removed " << g.pin_dir
            << (access(g.policy_file.c_str(), F_OK) == 0 ? " (policy file " + g.policy_file + " kept)" : "") << "\n";
}

}  // namespace

void add_attach_commands(CLI::App& app, GlobalOptions& g) {
  struct Args {
    std::string dev, mode = "auto";
    bool json = false;
  };
  auto a = std::make_shared<Args>();

  CLI::App* attach = app.add_subcommand("attach", "Attach sluice's XDP program to a network device.");
  attach->add_option("DEV", a->dev, "Network device, e.g. eth0")->required();
  attach->add_option("--mode", a->mode, "auto (native, else generic), native or generic")->capture_default_str();
  attach->footer(
      "sluice shares the XDP hook with other programs through libxdp's dispatcher where the kernel allows it.\n"
      "Attaching where sluice is attached already replaces the program in place (an upgrade): policy, buckets\n"
      "and counters live in pinned maps and carry over. If no policy is loaded and the saved policy file\n"
      "exists, it is applied (this is how policy comes back after a reboot).\n"
      "Example:\n  sluice attach eth0\n  sluice -n srv attach veth0 --mode native");
  attach->callback([&g, a] {
    const std::string& dev = a->dev;
    kernel::XdpModeRequest request = parse_mode(a->mode);
    require_kernel(g);
    // A first attach that fails leaves no maps behind: the host is as before.
    const bool first = !std::filesystem::exists(g.pin_dir + "/sl_root");
    const std::set<std::string> there_before = directory_entries(g.pin_dir);
    const bool dir_existed = std::filesystem::exists(g.pin_dir);
    kernel::AttachOutcome out;
    try {
      kernel::ensure_pin_dir(g.pin_dir);
      restore_saved_policy(g);
      kernel::NetnsScope ns(g.netns);
      kernel::DataPathOptions options;
      options.pin_dir = g.pin_dir;
      kernel::DataPath dp(options);
      out = kernel::attach(dp, g.netns, dev, request);
    } catch (...) {
      if (first) {
        std::error_code ec;
        for (const auto& name : directory_entries(g.pin_dir))
          if (!there_before.count(name)) std::filesystem::remove(g.pin_dir + "/" + name, ec);
        if (!dir_existed) std::filesystem::remove(g.pin_dir, ec);
      }
      throw;
    }
    if (!out.note.empty()) std::cerr << "sluice: note: " << out.note << "\n";
    std::cout << (out.upgraded ? "upgraded sluice on " : "attached to ") << where(g.netns, dev) << " ("
              << kernel::mode_name(out.attachment.info.xdp_mode) << " XDP, "
              << (out.attachment.info.multiprog ? "shared hook via libxdp" : "alone on the hook") << ", program "
              << out.attachment.info.xdp_prog_id << ")\n";
  });

  CLI::App* detach = app.add_subcommand("detach", "Remove sluice from a device; its traffic flows unchecked at once.");
  detach->add_option("DEV", a->dev, "Network device")->required();
  detach->footer("Policy and counters stay in the pinned maps; 'sluice attach DEV' resumes where it left off.");
  detach->callback([&g, a] {
    auto dp = open_maps_if_set_up(g);
    kernel::NetnsScope ns(g.netns);
    kernel::detach(dp.get(), g.netns, a->dev);
    std::cout << "detached from " << where(g.netns, a->dev) << "\n";
  });

  CLI::App* st = app.add_subcommand("status", "Show the policy, the controller, attachments and map memory.");
  st->add_flag("--json", a->json, "Machine-readable output.");
  st->footer("With -v, also each map's size and memory.");
  st->callback([&g, a] { status(g, a->json); });

  CLI::App* rs = app.add_subcommand("reset", "Detach everywhere and remove all of sluice's kernel state.");
  rs->footer("The saved policy file is kept: 'sluice attach DEV' afterwards restores the policy from it.");
  rs->callback([&g] { reset(g); });
}

}  // namespace sluice::cli
