// Items 2 and 3 of issue 4: how many packets one receiving core can shed.
//
// A client and a server namespace on a veth pair. The generator (bpf/
// traffic_gen.bpf.c, run with BPF_PROG_TEST_RUN + BPF_F_TEST_XDP_LIVE_FRAMES
// on CPU 0 in the client namespace) bpf_redirect()s frames into the client
// veth; veth hands them to the server veth's NAPI as xdp_frames, the way a
// NIC driver hands over DMA'd frames (no socket, no skb, no copy). The server
// veth runs threaded NAPI, its kthread pinned to CPU 1: that thread is the
// receiving core's whole receive path (XDP, GRO, nft netdev ingress, IP, UDP,
// TCP, SYN-ACK transmission). Its CPU time (/proc/<pid>/schedstat, ns) plus,
// for the user-space case, the reading thread's is the busy time; packets
// shed / busy seconds is the shed rate of one core. The client veth runs
// xdp_drop (and threaded NAPI pinned to CPU 0), so replies (SYN-ACKs, ICMP)
// cost the receiving core their transmission and nothing after.
//
// Scheduling: the server's NAPI thread (and the user-space reader, one
// priority above it) run SCHED_FIFO on CPU 1, so they run as soon as there
// is work, as softirq work would on a NIC's core, while builds and tests of
// others share the machine; the generator runs at nice -20 on CPU 0.
//
// shed_rate: 64-byte UDP datagrams to port 9 from 1024 spoofed sources.
// syn_flood: TCP SYNs (with MSS option, valid checksums) from 65536 spoofed
// sources, a fresh port and ISN each, to a listening server on port 80.
#include <algorithm>
#include <functional>
#include <memory>
#include <optional>

#include "netbench.hpp"

namespace sluice::bench {

namespace {

constexpr uint16_t kUdpPort = 9;
constexpr uint16_t kTcpPort = 80;
constexpr uint32_t kSpoofBase = (198u << 24) | (19u << 16);  // 198.19.0.0
constexpr const char* kTable = "sluicebench";                  // the nftables cases' table

// One way of shedding, set up and torn down around each measurement.
struct ShedCase {
  std::string name, what;
  std::string how;  // the commands or rules, for the report
  std::function<void()> setup;
  std::function<uint64_t()> shed;  // cumulative packets shed (or handled) so far
  std::function<uint64_t()> extra_busy_ns = [] { return uint64_t{0}; };  // busy time beyond the NAPI thread
  std::function<void()> teardown;
  bool xdp = false;  // sheds in the server veth's XDP hook: its time there is measured too
};

struct Sample {
  double per_core_mpps = 0;   // shed per second of receive-core busy time
  double throughput_mpps = 0; // shed per wall second
  double busy = 0;            // receive-core busy fraction
  double offered_mpps = 0;    // generator frames per wall second
  double delivered_mpps = 0;  // frames the receiving veth took in (the rest found its ring full)
  double core_busy = 0;       // CPU 1 busy from /proc/stat: ours and everybody else's
};

// The network of the two benchmarks, the cases they share, and the runner of
// their cases.
class ShedBed {
 public:
  explicit ShedBed(const Options& opt)
      // Many short rounds: this VM switches between fast and slow phases
      // every few seconds (see the report), and cases measured within a
      // second of each other share a phase far more often than cases 2 s
      // apart, so the per-round ratios scatter less.
      : rounds_(opt.quick ? 3 : 15), hook_rounds_(opt.quick ? 1 : 3), seconds_(opt.quick ? 0.8 : 0.6),
        sluice_(kBenchTag), gen_(opt.generator) {
    for (const auto& v : opt.sluice_variants)
      variants_.push_back({v.name, v.path, std::make_unique<test::SluiceCli>(kBenchTag, v.path)});
    require_two_cpus();
    test::TestbedOptions o;
    o.ipv6 = false;
    o.client_xdp_pass = false;
    o.server_gro = true;  // NAPI on the server veth with or without XDP
    tb_ = std::make_unique<test::Testbed>(o);
    const auto& s = tb_->server_ns();
    tb_->sysctl(s, "net.ipv4.conf.all.rp_filter", "0");
    tb_->sysctl(s, "net.ipv4.conf.default.rp_filter", "0");
    tb_->sysctl(s, "net.ipv4.conf." + tb_->server_dev() + ".rp_filter", "0");
    // Replies to the spoofed sources go back over the veth (a return route,
    // a fixed neighbour) and die in the client veth's xdp_drop.
    client_mac_ = mac_of(tb_->client_ns(), tb_->client_dev());
    server_mac_ = mac_of(s, tb_->server_dev());
    tb_->run(s, {"ip", "neigh", "replace", tb_->client_ip4(), "lladdr", client_mac_, "dev", tb_->server_dev(), "nud",
                 "permanent"});
    tb_->run(s, {"ip", "route", "replace", "198.19.0.0/16", "via", tb_->client_ip4(), "dev", tb_->server_dev()});
    attach_baseline(tb_->client_ns(), tb_->client_ifindex(), true);
    client_napi_ = threaded_napi(tb_->client_ns(), tb_->client_dev(), kGenCpu, false);
    napi_ = threaded_napi(s, tb_->server_dev(), kRxCpu, true);
  }

  // A case set up for the scope of one measurement, torn down however it ends.
  class SetUp {
   public:
    explicit SetUp(const ShedCase& c) : c_(c) { c_.setup(); }
    ~SetUp() {
      try {
        c_.teardown();
      } catch (...) {
      }
    }
    SetUp(const SetUp&) = delete;
    SetUp& operator=(const SetUp&) = delete;

   private:
    const ShedCase& c_;
  };

  // Buckets emptied, caches and the neighbour warm before anything is measured.
  void warm_up(const Generator::Flow& flow) {
    gen_.run(tb_->client_ns(), tb_->client_ifindex(), kGenCpu, flow, 0.1, 1u << 22);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  test::Testbed& tb() { return *tb_; }
  const Generator& generator() const { return gen_; }
  const std::string& client_mac() const { return client_mac_; }
  const std::string& server_mac() const { return server_mac_; }
  uint64_t xdp_drops() {
    return ethtool_stats(tb_->server_ns(), tb_->server_dev())["rx_queue_0_xdp_drops"];
  }

  Sample measure(const ShedCase& c, const Generator::Flow& flow, double seconds) {
    SetUp set_up(c);
    warm_up(flow);
    auto delivered = [&] { return ethtool_stats(tb_->server_ns(), tb_->server_dev())["rx_queue_0_xdp_packets"]; };
    uint64_t rx0 = delivered(), core0 = core_busy_ns(kRxCpu);
    uint64_t shed0 = c.shed(), busy0 = thread_cpu_ns(napi_) + c.extra_busy_ns();
    Generator::Result g = gen_.run(tb_->client_ns(), tb_->client_ifindex(), kGenCpu, flow, seconds, 1ull << 32);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the ring drains
    uint64_t shed1 = c.shed(), busy1 = thread_cpu_ns(napi_) + c.extra_busy_ns();
    uint64_t rx1 = delivered(), core1 = core_busy_ns(kRxCpu);
    Sample s;
    double busy_s = static_cast<double>(busy1 - busy0) / 1e9;
    double shed = static_cast<double>(shed1 - shed0);
    s.per_core_mpps = busy_s > 0 ? shed / busy_s / 1e6 : 0;
    s.throughput_mpps = shed / g.seconds / 1e6;
    s.busy = busy_s / g.seconds;
    s.offered_mpps = static_cast<double>(g.frames) / g.seconds / 1e6;
    s.delivered_mpps = static_cast<double>(rx1 - rx0) / g.seconds / 1e6;
    s.core_busy = static_cast<double>(core1 - core0) / 1e9 / g.seconds;
    return s;
  }

  // ns per packet inside the server veth's XDP hook while case c sheds
  // flow, from the kernel's run-time statistics. A pass of its own: the
  // statistics add two clock reads to every run, so they are off while
  // throughput is measured; for the same reason the core's busy time in
  // this pass says little, and the report compares with the rounds'.
  double hook_ns(const ShedCase& c, const Generator::Flow& flow, double seconds) {
    SetUp set_up(c);
    warm_up(flow);
    BpfStatsOn stats;
    XdpRunStats before = xdp_run_stats(tb_->server_ns(), tb_->server_ifindex());
    gen_.run(tb_->client_ns(), tb_->client_ifindex(), kGenCpu, flow, seconds, 1ull << 32);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    XdpRunStats after = xdp_run_stats(tb_->server_ns(), tb_->server_ifindex());
    uint64_t runs = after.runs - before.runs;
    return runs ? static_cast<double>(after.run_ns - before.run_ns) / static_cast<double>(runs) : 0;
  }

  // The first cases of both benchmarks: bare XDP drop (the baseline of every
  // ratio), a native XDP program that reads the Ethernet, IPv4 and l4 ("UDP",
  // "TCP") headers, then drops, and sluice attached in native XDP with one
  // service, which `sluice SERVICE...` adds (e.g. {"service", "add", ...});
  // then the same for every --sluice-variant, as case sluice_<name>.
  std::vector<ShedCase> xdp_cases(const std::string& l4, const std::string& sluice_what,
                                  const std::vector<std::string>& service) {
    const std::string s = tb_->server_ns();
    const int ifindex = tb_->server_ifindex();
    const std::vector<std::string> attach = {"-n", s, "attach", tb_->server_dev(), "--mode", "native"};
    std::vector<ShedCase> cases = {
        {"bare_xdp_drop", "baseline: native XDP program that only returns XDP_DROP",
         "bpf_xdp_attach(server veth, xdp_drop of bpf/baseline.bpf.c, XDP_FLAGS_DRV_MODE)",
         [s, ifindex] { attach_baseline(s, ifindex, true); }, [this] { return xdp_drops(); },
         [] { return uint64_t{0}; }, [s, ifindex] { detach_xdp(s, ifindex); }, true},
        {"xdp_read_drop", "reference: native XDP program that reads the Ethernet, IPv4 and " + l4 + " headers, then drops",
         "bpf_xdp_attach(server veth, read_drop of bpf/traffic_gen.bpf.c, XDP_FLAGS_DRV_MODE)",
         [this, s, ifindex] { attach_xdp(s, ifindex, gen_.read_drop_fd()); }, [this] { return xdp_drops(); },
         [] { return uint64_t{0}; }, [s, ifindex] { detach_xdp(s, ifindex); }, true},
        sluice_case("sluice", sluice_what, "sluice", sluice_, attach, service),
    };
    for (auto& v : variants_)
      cases.push_back(sluice_case("sluice_" + v.name, "variant: " + sluice_what + ", with the sluice build " + v.path,
                                  v.path, *v.cli, attach, service));
    return cases;
  }

  // What each --sluice-variant did against this build's sluice: the median of
  // their per-round ratios.
  Json variants_vs_sluice(const Json& rows) const;

  // A ruleset for the netdev ingress hook of the server veth: table kTable,
  // an optional set (its declaration), and one rule that counts what it
  // sheds in counter "shed".
  std::string nft_rules(const std::string& set, const std::string& rule) const {
    return std::string("table netdev ") + kTable + " {\n  counter shed {}\n" + set +
           "  chain in {\n    type filter hook ingress device \"" + tb_->server_dev() +
           "\" priority 0; policy accept;\n    " + rule + "\n  }\n}\n";
  }

  // Sheds with an nft_rules() ruleset: loaded for the case, table deleted after.
  ShedCase nft_case(const std::string& name, const std::string& what, const std::string& rules) {
    const std::string s = tb_->server_ns();
    return {name,
            what,
            "nft -f - <<EOF\n" + rules + "EOF",
            [s, rules] { nft(s, rules); },
            [s] { return nft_counter(s, kTable, "shed"); },
            [] { return uint64_t{0}; },
            [s] { nft(s, std::string("delete table netdev ") + kTable + "\n"); }};
  }

  // Runs the cases in interleaved rounds on flow, then writes what both
  // benchmarks report: the method (with the traffic), rounds, seconds per
  // case, the commands (the testbed's, then extra_commands) and the rows,
  // which it returns.
  Json run(Json& out, const std::vector<ShedCase>& cases, const Generator::Flow& flow, const std::string& label,
           const std::string& traffic, const std::vector<std::string>& extra_commands = {});

 private:
  // sluice attached by `cli` (running `binary`, as the commands say), with
  // the service that `service` adds; reset after the case.
  ShedCase sluice_case(const std::string& name, const std::string& what, const std::string& binary,
                       test::SluiceCli& cli, const std::vector<std::string>& attach,
                       const std::vector<std::string>& service) {
    test::SluiceCli* c = &cli;
    return {name,
            what,
            binary + " " + test::join(attach) + "\n" + binary + " " + test::join(service),
            [c, attach, service] {
              c->must(attach);
              c->must(service);
            },
            [this] { return xdp_drops(); },
            [] { return uint64_t{0}; },
            [c] { c->reset(); },
            true};
  }

  int rounds_, hook_rounds_;  // throughput rounds; rounds of the pass with BPF statistics on
  double seconds_;
  test::SluiceCli sluice_;  // destroyed last: `sluice reset` once the devices are gone
  struct Variant {  // a --sluice-variant with an installation of its own
    std::string name, path;
    std::unique_ptr<test::SluiceCli> cli;
  };
  std::vector<Variant> variants_;
  std::unique_ptr<test::Testbed> tb_;
  Generator gen_;
  std::string client_mac_, server_mac_;
  pid_t client_napi_ = 0, napi_ = 0;
};

// Runs every case once per round, rounds interleaved; returns samples[case][round].
std::vector<std::vector<Sample>> run_rounds(ShedBed& bed, const std::vector<ShedCase>& cases,
                                            const Generator::Flow& flow, int rounds, double seconds,
                                            const std::string& label) {
  std::vector<std::vector<Sample>> samples(cases.size());
  for (int r = 0; r < rounds; r++) {
    std::string line;
    for (size_t c = 0; c < cases.size(); c++) {
      samples[c].push_back(bed.measure(cases[c], flow, seconds));
      line += " " + cases[c].name + "=" + fixed(samples[c].back().per_core_mpps, 2);
    }
    progress(label + ": round " + std::to_string(r + 1) + "/" + std::to_string(rounds) + " (Mpps per core)" + line);
  }
  return samples;
}

Json rows_json(const std::vector<ShedCase>& cases, const std::vector<std::vector<Sample>>& samples) {
  auto series = [&](size_t c, double Sample::*field) {
    std::vector<double> v;
    for (const auto& s : samples[c]) v.push_back(s.*field);
    return v;
  };
  Json rows = Json::array();
  for (size_t c = 0; c < cases.size(); c++) {
    // Ratio to bare XDP drop within each round (they ran seconds apart), then the median.
    std::vector<double> ratio;
    for (size_t r = 0; r < samples[c].size(); r++) {
      double bare = samples[0][r].per_core_mpps;
      ratio.push_back(bare > 0 ? samples[c][r].per_core_mpps / bare : 0);
    }
    auto per_core = series(c, &Sample::per_core_mpps);
    rows.push_back({{"case", cases[c].name},
                    {"what", cases[c].what},
                    {"how", cases[c].how},
                    {"mpps_per_core", median(per_core)},
                    {"ratio_to_bare_xdp_drop", median(ratio)},
                    {"min_mpps_per_core", *std::min_element(per_core.begin(), per_core.end())},
                    {"max_mpps_per_core", *std::max_element(per_core.begin(), per_core.end())},
                    {"throughput_mpps", median(series(c, &Sample::throughput_mpps))},
                    {"busy_fraction", median(series(c, &Sample::busy))},
                    {"offered_mpps", median(series(c, &Sample::offered_mpps))},
                    {"delivered_mpps", median(series(c, &Sample::delivered_mpps))},
                    {"core_busy_fraction", median(series(c, &Sample::core_busy))},
                    {"samples_mpps_per_core", per_core},
                    {"samples_ratio", ratio},
                    {"samples_busy_fraction", series(c, &Sample::busy)}});
  }
  return rows;
}

const Json& row(const Json& rows, const std::string& name) {
  for (const auto& r : rows)
    if (r["case"] == name) return r;
  throw std::logic_error("no row " + name);
}

// Median over rounds of a / b within each round.
double paired_ratio(const Json& rows, const std::string& a, const std::string& b) {
  const Json &ra = row(rows, a)["samples_mpps_per_core"], &rb = row(rows, b)["samples_mpps_per_core"];
  std::vector<double> v;
  for (size_t i = 0; i < ra.size() && i < rb.size(); i++)
    if (rb[i].get<double>() > 0) v.push_back(ra[i].get<double>() / rb[i].get<double>());
  return median(v);
}

Json ShedBed::variants_vs_sluice(const Json& rows) const {
  Json out = Json::object();
  for (const auto& v : variants_) out["sluice_" + v.name] = paired_ratio(rows, "sluice_" + v.name, "sluice");
  return out;
}

// A target on sluice's rate against `baseline`'s, in the same rounds. It
// carries what the header-reading reference reached against the same
// baseline: roughly the ceiling of any filter that reads the packet here.
Json target(const std::string& what, const Json& rows, const std::string& baseline, double at_least) {
  double ratio = paired_ratio(rows, "sluice", baseline);
  return {{"what", what},
          {"ratio", ratio},
          {"target", at_least},
          {"met", ratio >= at_least},
          {"reference",
           {{"case", "xdp_read_drop"},
            {"what", "reads the headers, drops"},
            {"ratio", paired_ratio(rows, "xdp_read_drop", baseline)}}}};
}

// Issue 4 sets the shed-rate and SYN targets for frames that arrive as live
// frames do. With the pump the receiving core also frees a page per frame,
// which every case pays: the ratios shrink towards 1, so they are kept to
// compare, not judged.
void judge_targets_only_with_live_frames(Json& out, const Generator& gen) {
  if (gen.kind() == Generator::Kind::LiveFrames) return;
  for (auto& t : out["targets"]) {
    t["compare_only"] = true;
    t["not_judged"] = "measured with the XDP pump (" + gen.why_pump() + "); the targets are for live frames";
  }
}

// How the testbed was set up, as commands, for the report.
Json setup_commands(const Generator& gen) {
  Json commands = Json::array({
      "ip netns add CLIENT_NS; ip netns add SERVER_NS; ip -n CLIENT_NS link add CLIENT_VETH type veth peer name "
      "SERVER_VETH netns SERVER_NS (tests/lib/netns.hpp Testbed: 198.18.N.1/24 and .2/24, tx checksum offload off)",
      "ethtool -K SERVER_VETH gro on   (NAPI on the receiving veth, with or without XDP)",
      "sysctl net.ipv4.conf.{all,default,SERVER_VETH}.rp_filter=0 (server netns)",
      "ip -n SERVER_NS neigh replace CLIENT_IP lladdr CLIENT_MAC dev SERVER_VETH nud permanent; ip -n SERVER_NS route "
      "replace 198.19.0.0/16 via CLIENT_IP   (replies to the spoofed sources go back to the client)",
      "xdp_drop (bpf/baseline.bpf.c) on CLIENT_VETH, native: replies die there",
      "echo 1 > /sys/class/net/VETH/threaded (ip netns exec, each end); NAPI kthreads pinned with sched_setaffinity: "
      "client end to CPU " + std::to_string(kGenCpu) + " (nice -20), server end to CPU " + std::to_string(kRxCpu) +
          " (SCHED_FIFO " + std::to_string(kReceivePriority) + ")",
      "busy time: /proc/<napi kthread>/schedstat field 1 (ns on CPU) before and after; shed count from ethtool -S "
      "SERVER_VETH (rx_queue_0_xdp_drops), the nft counter, TcpExt SyncookiesSent, or the reader's count",
      "time in the XDP hook (a pass after the rounds): bpf(BPF_ENABLE_STATS, BPF_STATS_RUN_TIME) held open for the "
      "pass; run_time_ns and run_cnt of the program on SERVER_VETH (bpftool prog show) before and after",
  });
  for (const auto& c : gen.commands()) commands.push_back(c);
  return commands;
}

std::string method_text(const Generator& gen, int rounds, double seconds) {
  return gen.method() + "; receive path: server veth, GRO on, threaded NAPI, kthread pinned to CPU " +
         std::to_string(kRxCpu) +
         "; busy time: /proc/<napi kthread>/schedstat (+ the reading thread for user space); " +
         std::to_string(rounds) + " interleaved rounds of " + fixed(seconds, 1) +
         " s per case (after 0.1 s warm-up), median; ratios: per round (cases seconds apart), then the median";
}

Json ShedBed::run(Json& out, const std::vector<ShedCase>& cases, const Generator::Flow& flow,
                  const std::string& label, const std::string& traffic,
                  const std::vector<std::string>& extra_commands) {
  auto samples = run_rounds(*this, cases, flow, rounds_, seconds_, label);
  out["method"] = method_text(gen_, rounds_, seconds_) + "; traffic: " + traffic;
  out["rounds"] = rounds_;
  out["seconds_per_case"] = seconds_;
  out["commands"] = setup_commands(gen_);
  out["generator"] = gen_.kind() == Generator::Kind::LiveFrames ? "live_frames" : "pump";
  if (gen_.kind() == Generator::Kind::Pump) out["why_pump"] = gen_.why_pump();
  for (const auto& c : extra_commands) out["commands"].push_back(c);
  Json rows = rows_json(cases, samples);

  // The time in the XDP hook, in interleaved rounds of its own.
  const double hook_seconds = seconds_ / 2;
  std::vector<std::vector<double>> hook(cases.size());
  for (int r = 0; r < hook_rounds_; r++) {
    std::string line;
    for (size_t c = 0; c < cases.size(); c++)
      if (cases[c].xdp) {
        hook[c].push_back(hook_ns(cases[c], flow, hook_seconds));
        line += " " + cases[c].name + "=" + fixed(hook[c].back(), 1);
      }
    progress(label + ": time in the XDP hook, round " + std::to_string(r + 1) + "/" + std::to_string(hook_rounds_) +
             " (ns per packet)" + line);
  }
  for (size_t c = 0; c < cases.size(); c++)
    if (!hook[c].empty()) {
      rows[c]["hook_ns_per_packet"] = median(hook[c]);
      rows[c]["samples_hook_ns_per_packet"] = hook[c];
    }
  out["hook_method"] = "the kernel's BPF run-time statistics (BPF_ENABLE_STATS; run_time_ns / run_cnt of the "
                       "program on the server veth) over " +
                       fixed(hook_seconds, 1) + " s of the same traffic, " + std::to_string(hook_rounds_) +
                       " interleaved round(s) after the throughput rounds, median; each run also pays the "
                       "statistics' two clock reads";
  out["rows"] = rows;
  return rows;
}

}  // namespace

void shed_rate(Report& report, const Options& opt) {
  const uint64_t t0 = now_ns();
  ShedBed bed(opt);
  auto& tb = bed.tb();
  const std::string port = std::to_string(kUdpPort);
  std::optional<UdpSink> sink;

  std::vector<ShedCase> cases =
      bed.xdp_cases("UDP", "sluice in native XDP, UDP service on port 9 at 1000/s: all but 1000/s dropped",
                    {"service", "add", "flood", "--proto", "udp", "--port", port, "--rate", "1000/s"});
  cases.push_back(bed.nft_case(
      "nft_limit_rate", "nftables netdev ingress hook: limit rate over 1000/second, drop",
      bed.nft_rules("", "udp dport " + port + " limit rate over 1000/second counter name \"shed\" drop")));
  cases.push_back(bed.nft_case(
      "nft_meter", "nftables netdev ingress hook: per-source meter (dynamic set), over 10/second per source dropped",
      bed.nft_rules("  set persrc { type ipv4_addr; size 65536; flags dynamic,timeout; timeout 60s; }\n",
                    "udp dport " + port +
                        " update @persrc { ip saddr limit rate over 10/second } counter name \"shed\" drop")));
  cases.push_back(
      {"udp_app", "user-space UDP server on CPU 1: reads (recvmmsg, 64 at a time) and discards; reads counted",
       "a thread of sluice_bench: socket bound to the server address, port 9, SO_RCVBUF 4 MB, SCHED_FIFO one "
       "priority above the NAPI thread (it reads whenever datagrams wait)",
       [&] { sink.emplace(tb.server_ns(), tb.server_ip4(), kUdpPort, kRxCpu, true); },
       [&] { return sink->received(); }, [&] { return sink->cpu_ns(); }, [&] { sink.reset(); }});

  const Generator::Flow flow{udp_frame(bed.client_mac(), bed.server_mac(), tb.server_ip4(), kUdpPort),
                             Generator::Rewrite::Ipv4Source, kSpoofBase, 1024};
  Json& out = report.section("shed_rate");
  Json rows = bed.run(out, cases, flow, "shed rate",
                      "64-byte UDP datagrams to port 9 from 1024 spoofed sources 198.19.0.0/22");
  out["targets"] = {
      target("shed rate: sluice >= 0.8x bare XDP drop", rows, "bare_xdp_drop", 0.8),
      target("shed rate: sluice >= 6x nft limit rate", rows, "nft_limit_rate", 6),
      target("shed rate: sluice >= 40x user-space UDP app", rows, "udp_app", 40),
  };
  judge_targets_only_with_live_frames(out, bed.generator());
  out["sluice_vs_read_drop"] = paired_ratio(rows, "sluice", "xdp_read_drop");
  if (!opt.sluice_variants.empty()) out["variants_vs_sluice"] = bed.variants_vs_sluice(rows);
  record_elapsed(out, "shed rate", t0);
}

void syn_flood(Report& report, const Options& opt) {
  const uint64_t t0 = now_ns();
  ShedBed bed(opt);
  auto& tb = bed.tb();
  const std::string s = tb.server_ns();
  tb.sysctl(s, "net.ipv4.tcp_syncookies", "2");  // every SYN answered by a cookie: the kernel's cheapest path
  // The listening server: unmodified, idle (no handshake ever completes).
  std::string capsrv = opt.build_dir + "/tools/capsrv";
  auto& server = tb.spawn(s, {"taskset", "-c", std::to_string(kRxCpu), capsrv, "--listen",
                              tb.server_ip4() + ":" + std::to_string(kTcpPort), "--workers", "1", "--service-time", "0"});
  if (!server.wait_for_output("listening on", std::chrono::seconds(5)))
    throw std::runtime_error("capsrv did not start: " + server.stderr_text());

  const std::string port = std::to_string(kTcpPort);
  std::vector<ShedCase> cases = bed.xdp_cases(
      "TCP", "sluice in native XDP, TCP service on port 80 at 1000/s, --reject drop: SYNs over the limit dropped",
      {"service", "add", "web", "--port", port, "--rate", "1000/s", "--reject", "drop"});
  cases.push_back({"syn_cookies", "no filter: the kernel answers every SYN with a SYN cookie; cookies sent counted",
                   "sysctl net.ipv4.tcp_syncookies=2 (server netns); counted: TcpExt SyncookiesSent", [] {},
                   [&] { return net_stat(s, "TcpExt", "SyncookiesSent"); }, [] { return uint64_t{0}; }, [] {}});
  cases.push_back(bed.nft_case(
      "nft_limit_rate", "nftables netdev ingress hook: SYNs to port 80 over 1000/second dropped",
      bed.nft_rules("", "tcp dport " + port +
                            " tcp flags & (syn | ack) == syn limit rate over 1000/second counter name \"shed\" drop")));

  const Generator::Flow flow{syn_frame(bed.client_mac(), bed.server_mac(), tb.server_ip4(), kTcpPort),
                             Generator::Rewrite::Syn, kSpoofBase, 65536};
  Json& out = report.section("syn_flood");
  Json rows = bed.run(out, cases, flow, "syn flood",
                      "TCP SYNs (MSS option, valid checksums) from 65536 spoofed sources 198.19.0.0/16, fresh source "
                      "port and ISN per SYN, to capsrv listening on port 80; SYN-ACKs routed back to the client veth "
                      "(xdp_drop there)",
                      {"sysctl net.ipv4.tcp_syncookies=2 (server netns)",
                       "taskset -c " + std::to_string(kRxCpu) + " capsrv --listen SERVER_IP:" +
                           std::to_string(kTcpPort) + " --workers 1 --service-time 0   (the listening server)"});
  out["targets"] = {
      target("SYN flood: sluice >= 20x the SYN-cookie path", rows, "syn_cookies", 20)};
  judge_targets_only_with_live_frames(out, bed.generator());
  out["sluice_vs_nft"] = paired_ratio(rows, "sluice", "nft_limit_rate");
  out["sluice_vs_read_drop"] = paired_ratio(rows, "sluice", "xdp_read_drop");
  if (!opt.sluice_variants.empty()) out["variants_vs_sluice"] = bed.variants_vs_sluice(rows);
  record_elapsed(out, "syn flood", t0);
}

}  // namespace sluice::bench
