#include "netbench.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

#include "baseline.skel.h"
#include "traffic_gen.skel.h"

namespace sluice::bench {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::string must_run(const std::string& ns, const std::vector<std::string>& argv,
                     test::Millis timeout = std::chrono::seconds(20)) {
  test::RunResult r = test::run_in(ns, argv, timeout);
  if (!r.ok()) {
    std::string where = ns.empty() ? "" : " (in netns " + ns + ")";
    throw std::runtime_error("`" + test::join(argv) + "`" + where + ": " +
                             (r.timed_out ? "timed out" : "exit status " + std::to_string(r.exit_code)) + ": " +
                             r.err + r.out);
  }
  return r.out;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// comm of a task, "" if it is gone.
std::string comm_of(pid_t pid) {
  std::string c = slurp("/proc/" + std::to_string(pid) + "/comm");
  while (!c.empty() && c.back() == '\n') c.pop_back();
  return c;
}

std::set<pid_t> tasks_with_comm_prefix(const std::string& prefix) {
  std::set<pid_t> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::stol(name));
    if (comm_of(pid).rfind(prefix, 0) == 0) out.insert(pid);
  }
  return out;
}

}  // namespace

void require_two_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0 || !CPU_ISSET(kGenCpu, &set) || !CPU_ISSET(kRxCpu, &set))
    throw std::runtime_error("these benchmarks need CPUs 0 and 1 (generator and receiver)");
}

// ---- CPU time -----------------------------------------------------------------

uint64_t thread_cpu_ns(pid_t tid) {
  std::ifstream in("/proc/" + std::to_string(tid) + "/schedstat");
  uint64_t run = 0;
  if (!(in >> run)) throw std::runtime_error("cannot read /proc/" + std::to_string(tid) + "/schedstat");
  return run;
}

uint64_t process_cpu_ns(pid_t pid) {
  uint64_t sum = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(entry.path() / "schedstat");
    uint64_t run = 0;
    if (in >> run) sum += run;
  }
  return sum;
}

uint64_t core_busy_ns(int cpu) {
  std::ifstream in("/proc/stat");
  std::string want = "cpu" + std::to_string(cpu);
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string name;
    fields >> name;
    if (name != want) continue;
    uint64_t v[8] = {};
    for (auto& x : v) fields >> x;
    uint64_t busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];  // user nice system irq softirq steal
    return busy * (1'000'000'000ull / static_cast<uint64_t>(sysconf(_SC_CLK_TCK)));
  }
  throw std::runtime_error("no " + want + " in /proc/stat");
}

uint64_t voluntary_switches(pid_t tid) {
  std::ifstream in("/proc/" + std::to_string(tid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("voluntary_ctxt_switches:", 0) == 0) return std::stoull(line.substr(line.find(':') + 1));
  throw std::runtime_error("no voluntary_ctxt_switches for task " + std::to_string(tid));
}

void pin_task(pid_t tid, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(tid, sizeof set, &set) != 0)
    throw std::runtime_error("pin task " + std::to_string(tid) + " to CPU " + std::to_string(cpu) + ": " +
                             std::strerror(errno));
}

void pin_self(int cpu) { pin_task(0, cpu); }

void realtime_task(pid_t tid, int priority) {
  sched_param p{};
  p.sched_priority = priority;
  if (sched_setscheduler(tid, SCHED_FIFO, &p) != 0)
    throw std::runtime_error("SCHED_FIFO for " + std::to_string(tid) + ": " + std::strerror(errno));
}

void favour_task(pid_t tid) {
  if (tid == 0) tid = static_cast<pid_t>(syscall(SYS_gettid));
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(tid), -20) != 0)
    throw std::runtime_error("setpriority(" + std::to_string(tid) + ", -20): " + std::strerror(errno));
}

// ---- network namespaces ----------------------------------------------------------

pid_t threaded_napi(const std::string& ns, const std::string& dev, int cpu, bool realtime) {
  // The kthread is "napi/<dev>-<napi id>", cut to 15 characters: tell it
  // from others (the peer's, other testbeds') by which one appears.
  const std::string prefix = ("napi/" + dev).substr(0, 15);
  std::set<pid_t> before = tasks_with_comm_prefix(prefix);
  must_run("", {"ip", "netns", "exec", ns, "sh", "-c", "echo 0 > /sys/class/net/" + dev + "/threaded"});
  must_run("", {"ip", "netns", "exec", ns, "sh", "-c", "echo 1 > /sys/class/net/" + dev + "/threaded"});
  std::vector<pid_t> fresh;
  for (int attempt = 0; attempt < 100 && fresh.empty(); attempt++) {
    for (pid_t pid : tasks_with_comm_prefix(prefix))
      if (!before.count(pid)) fresh.push_back(pid);
    if (fresh.empty()) std::this_thread::sleep_for(10ms);
  }
  if (fresh.size() != 1)
    throw std::runtime_error("threaded NAPI on " + dev + ": expected one new kthread '" + prefix + "...', found " +
                             std::to_string(fresh.size()));
  pin_task(fresh[0], cpu);
  if (realtime)
    realtime_task(fresh[0]);
  else
    favour_task(fresh[0]);
  return fresh[0];
}

std::map<std::string, uint64_t> ethtool_stats(const std::string& ns, const std::string& dev) {
  std::map<std::string, uint64_t> out;
  std::istringstream lines(must_run(ns, {"ethtool", "-S", dev}));
  for (std::string line; std::getline(lines, line);) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    key.erase(0, key.find_first_not_of(" \t"));
    try {
      out[key] = std::stoull(line.substr(colon + 1));
    } catch (...) {
    }
  }
  return out;
}

uint64_t rx_packets(const std::string& ns, const std::string& dev) {
  auto doc = nlohmann::json::parse(must_run(ns, {"ip", "-s", "-j", "link", "show", "dev", dev}));
  return doc.at(0).at("stats64").at("rx").at("packets").get<uint64_t>();
}

uint64_t net_stat(const std::string& ns, const std::string& group, const std::string& name) {
  uint64_t value = 0;
  bool found = false;
  test::in_netns(ns, [&] {
    for (const char* file : {"/proc/thread-self/net/netstat", "/proc/thread-self/net/snmp"}) {
      std::ifstream in(file);
      std::string names, values;
      while (std::getline(in, names) && std::getline(in, values)) {
        std::istringstream n(names), v(values);
        std::string key, val;
        n >> key;
        v >> val;
        if (key != group + ":") continue;
        while (n >> key && v >> val)
          if (key == name) {
            value = std::stoull(val);
            found = true;
          }
      }
    }
  });
  if (!found) throw std::runtime_error("no " + group + " " + name + " in /proc/net of " + ns);
  return value;
}

void attach_baseline(const std::string& ns, int ifindex, bool drop) {
  test::in_netns(ns, [&] {
    baseline_bpf* skel = baseline_bpf::open_and_load();
    if (!skel) throw std::runtime_error(std::string("load baseline BPF object: ") + std::strerror(errno));
    int fd = bpf_program__fd(drop ? skel->progs.xdp_drop : skel->progs.xdp_pass);
    int err = bpf_xdp_attach(ifindex, fd, XDP_FLAGS_DRV_MODE, nullptr);
    baseline_bpf::destroy(skel);
    if (err) throw std::runtime_error(std::string("attach baseline XDP program: ") + std::strerror(-err));
  });
}

void attach_xdp(const std::string& ns, int ifindex, int prog_fd) {
  test::in_netns(ns, [&] {
    int err = bpf_xdp_attach(ifindex, prog_fd, XDP_FLAGS_DRV_MODE, nullptr);
    if (err) throw std::runtime_error(std::string("attach XDP program: ") + std::strerror(-err));
  });
}

void detach_xdp(const std::string& ns, int ifindex) {
  test::in_netns(ns, [&] { bpf_xdp_detach(ifindex, XDP_FLAGS_DRV_MODE, nullptr); });
}

XdpRunStats xdp_run_stats(const std::string& ns, int ifindex) {
  XdpRunStats out;
  test::in_netns(ns, [&] {
    uint32_t id = 0;
    int err = bpf_xdp_query_id(ifindex, XDP_FLAGS_DRV_MODE, &id);
    if (err || id == 0) throw std::runtime_error("no native XDP program on ifindex " + std::to_string(ifindex));
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) throw std::runtime_error(std::string("open XDP program: ") + std::strerror(errno));
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    err = bpf_obj_get_info_by_fd(fd, &info, &len);
    close(fd);
    if (err) throw std::runtime_error(std::string("read XDP program info: ") + std::strerror(errno));
    out.run_ns = info.run_time_ns;
    out.runs = info.run_cnt;
  });
  return out;
}

BpfStatsOn::BpfStatsOn() : fd_(bpf_enable_stats(BPF_STATS_RUN_TIME)) {
  if (fd_ < 0) throw std::runtime_error(std::string("enable BPF run-time statistics: ") + std::strerror(errno));
}

BpfStatsOn::~BpfStatsOn() { close(fd_); }

void nft(const std::string& ns, const std::string& ruleset) {
  test::ScratchDir dir(kBenchTag);
  must_run(ns, {"nft", "-f", dir.write("rules.nft", ruleset)});
}

uint64_t nft_counter(const std::string& ns, const std::string& table, const std::string& counter) {
  auto doc = nlohmann::json::parse(must_run(ns, {"nft", "-j", "list", "counter", "netdev", table, counter}));
  for (const auto& item : doc.at("nftables"))
    if (item.contains("counter")) return item["counter"].at("packets").get<uint64_t>();
  throw std::runtime_error("nft counter " + table + "/" + counter + " not found");
}

// ---- the generator -------------------------------------------------------------------

namespace {

// The pump's veth loop: frames are seeded into kPumpSeedDev, and `pump` runs
// on its peer kPumpDev. Names of the generator's namespace only.
constexpr const char* kPumpSeedDev = "sbpump0";
constexpr const char* kPumpDev = "sbpump1";
// Frames circulating in the loop: enough to keep the pump's NAPI polls full
// (64 a poll), few enough for a veth ring (256).
constexpr int kPumpSeedFrames = 128;
// The pump's ports (pump_ports of bpf/traffic_gen.bpf.c).
constexpr uint32_t kPumpLoopPort = 0, kPumpTargetPort = 1;

// Whether the kernel runs a program on live frames: once, on one frame that
// read_drop drops (IPv4, source 0.0.0.1, nowhere to go). Returns "" or the
// kernel's refusal.
std::string live_frames_refusal(int read_drop_fd) {
  test::Bytes frame(60, 0);
  frame[12] = 0x08;  // IPv4
  frame[14] = 0x45;  // version 4, 20-byte header
  frame[29] = 1;     // source 0.0.0.1, destination 0.0.0.0
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = static_cast<uint32_t>(frame.size()),
              .repeat = 1, .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
  if (bpf_prog_test_run_opts(read_drop_fd, &opts) == 0) return "";
  return std::string("BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: ") + std::strerror(errno);
}

int ifindex_in(const std::string& ns, const std::string& dev) {
  int index = 0;
  test::in_netns(ns, [&] { index = static_cast<int>(if_nametoindex(dev.c_str())); });
  if (index == 0) throw std::runtime_error("no device " + dev + " in netns " + ns);
  return index;
}

}  // namespace

Generator::Generator(GeneratorChoice choice) {
  skel_ = traffic_gen_bpf::open_and_load();
  if (!skel_) throw std::runtime_error(std::string("load the traffic generator: ") + std::strerror(errno));
  if (choice == GeneratorChoice::Pump) {
    why_pump_ = "chosen with --generator pump";
    return;
  }
  const std::string refusal = live_frames_refusal(read_drop_fd());
  if (refusal.empty()) return;
  if (choice == GeneratorChoice::LiveFrames) {
    traffic_gen_bpf::destroy(skel_);
    throw std::runtime_error("the kernel refused live frames (" + refusal + "); --generator pump or auto uses the "
                             "XDP pump instead");
  }
  why_pump_ = "the kernel refused live frames: " + refusal;
  progress("generator: " + why_pump_ + "; frames come from the XDP pump");
}

Generator::~Generator() {
  remove_pump();
  traffic_gen_bpf::destroy(skel_);
}

int Generator::read_drop_fd() const { return bpf_program__fd(skel_->progs.read_drop); }

std::string Generator::method() const {
  if (kind() == Kind::LiveFrames)
    return "generator: BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES on CPU " + std::to_string(kGenCpu) +
           " in the client netns, bpf_redirect into the client veth";
  return "generator: the XDP pump (" + why_pump_ +
         "): `pump` of bpf/traffic_gen.bpf.c in native XDP on a veth loop in the client netns, its threaded NAPI "
         "on CPU " +
         std::to_string(kGenCpu) + ", seeded with " + std::to_string(kPumpSeedFrames) +
         " frames from a packet socket; it broadcasts each frame into the client veth and (a clone) back into the "
         "loop, so the receiving core frees a page per frame where live frames return theirs to a page pool";
}

std::vector<std::string> Generator::commands() const {
  if (kind() == Kind::LiveFrames)
    return {"generator (CPU " + std::to_string(kGenCpu) +
            ", nice -20, in the client netns): bpf_prog_test_run_opts(gen of bpf/traffic_gen.bpf.c, data_in = "
            "64-byte template frame, repeat = 262144, flags = BPF_F_TEST_XDP_LIVE_FRAMES) in a loop for the case's "
            "seconds; the program rewrites the source (and SYN port/ISN), fixes checksums and bpf_redirect()s into "
            "CLIENT_VETH"};
  return {std::string("ip -n CLIENT_NS link add ") + kPumpSeedDev + " type veth peer name " + kPumpDev +
              "; both up; bpf_program__attach_xdp(pump of bpf/traffic_gen.bpf.c, " + kPumpDev +
              "); echo 1 > /sys/class/net/" + kPumpDev + "/threaded, kthread on CPU " + std::to_string(kGenCpu) +
              " (nice -20)",
          std::string("pump_ports: 0 -> ") + kPumpSeedDev + ", 1 -> CLIENT_VETH; per case: pump_limit = frames + "
              "the case's bound, " + std::to_string(kPumpSeedFrames) + " template frames sent into " +
              kPumpSeedDev + " (AF_PACKET), pump_limit = 0 when the case's seconds are over; the program rewrites "
              "the source (and SYN port/ISN), fixes checksums and broadcasts each frame to both ports"};
}

void Generator::set_flow(const Flow& flow) {
  skel_->bss->src_base = flow.src_base;
  skel_->bss->rewrite = static_cast<uint32_t>(flow.rewrite);
  skel_->data->src_count = flow.src_count ? flow.src_count : 1;
}

Generator::Result Generator::run(const std::string& ns, int ifindex, int cpu, const Flow& flow, double seconds,
                                 uint64_t max_frames) {
  return kind() == Kind::LiveFrames ? run_live(ns, ifindex, cpu, flow, seconds, max_frames)
                                   : run_pump(ns, ifindex, cpu, flow, seconds, max_frames);
}

Generator::Result Generator::run_live(const std::string& ns, int ifindex, int cpu, const Flow& flow, double seconds,
                                      uint64_t max_frames) {
  Result result;
  test::in_netns(ns, [&] {
    pin_self(cpu);
    favour_task(0);
    skel_->bss->redirect_ifindex = static_cast<uint32_t>(ifindex);
    set_flow(flow);
    const uint32_t chunk = 1u << 18;
    test::Bytes frame = flow.frame;
    uint64_t start = now_ns();
    uint64_t deadline = start + static_cast<uint64_t>(seconds * 1e9);
    while (result.frames < max_frames && now_ns() < deadline) {
      LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                  .data_size_in = static_cast<uint32_t>(frame.size()), .repeat = static_cast<int>(chunk),
                  .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
      if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.gen), &opts) != 0)
        throw std::runtime_error(std::string("generator: BPF_PROG_TEST_RUN (live frames): ") + std::strerror(errno));
      result.frames += chunk;
    }
    result.seconds = static_cast<double>(now_ns() - start) / 1e9;
  });
  return result;
}

void Generator::build_pump(const std::string& ns, int ifindex, int cpu) {
  remove_pump();
  must_run(ns, {"ip", "link", "add", kPumpSeedDev, "type", "veth", "peer", "name", kPumpDev});
  pump_ = Pump{ns, ifindex, 0, nullptr};  // from here on remove_pump() deletes the loop
  pump_->seed_ifindex = ifindex_in(ns, kPumpSeedDev);
  must_run(ns, {"ip", "link", "set", kPumpSeedDev, "up"});
  must_run(ns, {"ip", "link", "set", kPumpDev, "up"});
  const int pump_ifindex = ifindex_in(ns, kPumpDev);
  test::in_netns(ns, [&] {
    // A link, not a netlink attachment: if this process dies, the program
    // goes with it and the loop stops.
    pump_->link = bpf_program__attach_xdp(skel_->progs.pump, pump_ifindex);
    if (!pump_->link) throw std::runtime_error(std::string("attach the XDP pump: ") + std::strerror(errno));
    const int ports = bpf_map__fd(skel_->maps.pump_ports);
    const uint32_t loop = static_cast<uint32_t>(pump_->seed_ifindex), target = static_cast<uint32_t>(ifindex);
    if (bpf_map_update_elem(ports, &kPumpLoopPort, &loop, BPF_ANY) != 0 ||
        bpf_map_update_elem(ports, &kPumpTargetPort, &target, BPF_ANY) != 0)
      throw std::runtime_error(std::string("set the pump's ports: ") + std::strerror(errno));
  });
  threaded_napi(ns, kPumpDev, cpu, false);
}

void Generator::remove_pump() {
  if (!pump_) return;
  skel_->bss->pump_limit = 0;
  if (pump_->link) bpf_link__destroy(pump_->link);
  test::run_in(pump_->ns, {"ip", "link", "del", kPumpSeedDev});  // the namespace may be gone already
  pump_.reset();
}

Generator::Result Generator::run_pump(const std::string& ns, int ifindex, int cpu, const Flow& flow, double seconds,
                                      uint64_t max_frames) {
  if (!pump_ || pump_->ns != ns || pump_->target_ifindex != ifindex) build_pump(ns, ifindex, cpu);
  set_flow(flow);
  Result result;
  test::in_netns(ns, [&] {
    int sock = socket(AF_PACKET, SOCK_RAW, 0);
    if (sock < 0) throw std::runtime_error(std::string("the pump's packet socket: ") + std::strerror(errno));
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = pump_->seed_ifindex;
    to.sll_halen = ETH_ALEN;
    std::memcpy(to.sll_addr, flow.frame.data(), ETH_ALEN);
    const uint64_t first = skel_->bss->frames;
    skel_->bss->pump_limit = first + max_frames;
    uint64_t start = now_ns();
    for (int i = 0; i < kPumpSeedFrames; i++)
      if (sendto(sock, flow.frame.data(), flow.frame.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
        int err = errno;
        close(sock);
        skel_->bss->pump_limit = 0;
        throw std::runtime_error(std::string("seed the pump: ") + std::strerror(err));
      }
    close(sock);
    const uint64_t deadline = start + static_cast<uint64_t>(seconds * 1e9);
    for (uint64_t now = now_ns(); now < deadline && skel_->bss->frames < skel_->bss->pump_limit; now = now_ns())
      std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(std::chrono::nanoseconds(deadline - now), 5ms));
    skel_->bss->pump_limit = 0;
    result.frames = skel_->bss->frames - first;
    result.seconds = static_cast<double>(now_ns() - start) / 1e9;
  });
  return result;
}

std::string mac_of(const std::string& ns, const std::string& dev) {
  auto doc = nlohmann::json::parse(must_run(ns, {"ip", "-j", "link", "show", "dev", dev}));
  return doc.at(0).at("address").get<std::string>();
}

test::Bytes udp_frame(const std::string& src_mac, const std::string& dst_mac, const std::string& dst_ip,
                      uint16_t dport) {
  return test::PacketBuilder()
      .src_mac(src_mac)
      .dst_mac(dst_mac)
      .ipv4("198.19.0.1", dst_ip)
      .udp(40000, dport)
      .l4_checksum(0)  // none: the generator rewrites the source
      .payload(test::Bytes(18, 0))  // a 64-byte frame
      .build();
}

test::Bytes syn_frame(const std::string& src_mac, const std::string& dst_mac, const std::string& dst_ip,
                      uint16_t dport) {
  return test::PacketBuilder()
      .src_mac(src_mac)
      .dst_mac(dst_mac)
      .ipv4("198.19.0.1", dst_ip)
      .df()
      .tcp(40000, dport)
      .flags(test::tcp_flag::SYN)
      .window(64240)
      .tcp_options({2, 4, 0x05, 0xb4})  // MSS 1460
      .build();
}

// ---- UdpSink --------------------------------------------------------------------------

UdpSink::UdpSink(const std::string& ns, const std::string& ip, uint16_t port, int cpu, bool realtime) {
  test::in_netns(ns, [&] {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error(std::string("udp socket: ") + std::strerror(errno));
    int buf = 4 << 20;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf);
    timeval tv{0, 100'000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      int e = errno;
      close(fd_);
      fd_ = -1;
      throw std::runtime_error("bind udp " + ip + ":" + std::to_string(port) + ": " + std::strerror(e));
    }
  });
  thread_ = std::thread([this, cpu, realtime] {
    try {
      pin_self(cpu);
      if (realtime)
        realtime_task(0, kReceivePriority + 1);
      else
        favour_task(0);
    } catch (...) {
    }
    tid_ = static_cast<pid_t>(syscall(SYS_gettid));
    constexpr int kBatch = 64;
    static thread_local char bufs[kBatch][2048];
    mmsghdr msgs[kBatch];
    iovec iov[kBatch];
    while (!stop_.load(std::memory_order_relaxed)) {
      for (int i = 0; i < kBatch; i++) {
        iov[i] = {bufs[i], sizeof bufs[i]};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      int n = recvmmsg(fd_, msgs, kBatch, MSG_WAITFORONE, nullptr);
      if (n > 0) received_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    }
  });
  while (tid_.load() == 0) std::this_thread::sleep_for(1ms);
}

UdpSink::~UdpSink() {
  stop();
  if (fd_ >= 0) close(fd_);
}

void UdpSink::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

uint64_t UdpSink::cpu_ns() const { return thread_cpu_ns(tid_.load()); }

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

void record_elapsed(Json& section, const std::string& label, uint64_t t0) {
  section["elapsed_s"] = static_cast<double>(now_ns() - t0) / 1e9;
  progress(label + ": took " + fixed(section["elapsed_s"].get<double>(), 0) + " s");
}

}  // namespace sluice::bench
