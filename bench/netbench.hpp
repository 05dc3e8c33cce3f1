// Shared pieces of the network benchmarks (shed_rate, syn_flood, overload):
// CPU pinning and busy-time accounting, threaded NAPI on veth, the XDP
// traffic generator (live frames, or the pump), and a UDP receiver. Private
// sluice installations and scratch directories are the tests' (tests/lib/
// sluice_cli.hpp), tagged "bench". Everything that is set up is undone by a
// destructor, so a benchmark that throws halfway leaves nothing behind.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../tests/lib/netns.hpp"
#include "../tests/lib/packet.hpp"
#include "../tests/lib/sluice_cli.hpp"
#include "bench.hpp"

struct traffic_gen_bpf;
struct bpf_link;

namespace sluice::bench {

// The two roles of the machine's cores: the generator (and load generator)
// runs on kGenCpu, the receive path under test on kRxCpu.
inline constexpr int kGenCpu = 0;
inline constexpr int kRxCpu = 1;

// Throws unless the machine has the two CPUs the benchmarks pin to.
void require_two_cpus();

// ---- CPU time -----------------------------------------------------------------

// CPU time a thread has run, in ns (/proc/<tid>/schedstat, scheduler clock).
uint64_t thread_cpu_ns(pid_t tid);
// Sum over all threads of a process (/proc/<pid>/task/*/schedstat).
uint64_t process_cpu_ns(pid_t pid);
// Busy (non-idle, non-iowait) time of one CPU from /proc/stat, in ns (10 ms
// resolution): everything that ran there, ours or not.
uint64_t core_busy_ns(int cpu);
// How often a task has gone to sleep on its own (voluntary_ctxt_switches in
// /proc/<tid>/status): for a NAPI kthread, the number of times it ran out of
// work and was woken again.
uint64_t voluntary_switches(pid_t tid);

// Pins the calling thread, or task tid, to one CPU (throws on failure).
void pin_self(int cpu);
void pin_task(pid_t tid, int cpu);
// Nice -20 for a task (0: the calling thread): on a machine shared with other
// work, it gets most of its core (weight 88761 against 1024 for a nice-0
// task) when it runs for long; but a waking task may still wait for a
// running one's slice.
void favour_task(pid_t tid);
// SCHED_FIFO for a task (0: the calling thread): it runs as soon as it wakes
// and until it sleeps, like softirq work on a NIC's core, and other work on
// the core waits (the kernel's RT throttling still leaves it 5%). For the
// receive side only, for the seconds of a measurement: the NAPI thread at
// kReceivePriority, a reader that must never wait for it one above.
inline constexpr int kReceivePriority = 10;
void realtime_task(pid_t tid, int priority = kReceivePriority);

// ---- network namespaces ----------------------------------------------------------

// Turns on threaded NAPI for dev in ns (GRO or XDP must have given it NAPI)
// and pins its kthread to cpu, SCHED_FIFO if realtime (else nice -20).
// Returns the kthread's pid.
pid_t threaded_napi(const std::string& ns, const std::string& dev, int cpu, bool realtime);

// `ethtool -S dev` in ns as name -> value.
std::map<std::string, uint64_t> ethtool_stats(const std::string& ns, const std::string& dev);

// Packets received by dev in ns (`ip -s link`: rx packets).
uint64_t rx_packets(const std::string& ns, const std::string& dev);

// A counter of /proc/net/{snmp,netstat} in ns, e.g. ("TcpExt", "SyncookiesSent").
uint64_t net_stat(const std::string& ns, const std::string& group, const std::string& name);

// Replaces the XDP program on a device (native mode): the baseline skeleton's
// xdp_drop or xdp_pass. The attachment stays with the device.
void attach_baseline(const std::string& ns, int ifindex, bool drop);
void attach_xdp(const std::string& ns, int ifindex, int prog_fd);
void detach_xdp(const std::string& ns, int ifindex);

// The kernel's run-time statistics of the native XDP program on a device:
// cumulative ns spent in it and runs. They only grow while a BpfStatsOn exists.
struct XdpRunStats {
  uint64_t run_ns = 0, runs = 0;
};
XdpRunStats xdp_run_stats(const std::string& ns, int ifindex);

// BPF run-time statistics on for the object's lifetime (BPF_ENABLE_STATS: the
// kernel switches them off again when the last holder closes its fd). They
// cost two clock reads per program run: never on while throughput is measured.
class BpfStatsOn {
 public:
  BpfStatsOn();
  ~BpfStatsOn();
  BpfStatsOn(const BpfStatsOn&) = delete;
  BpfStatsOn& operator=(const BpfStatsOn&) = delete;

 private:
  int fd_;
};

// Runs `nft -f -` with the given ruleset text in ns (throws on error).
void nft(const std::string& ns, const std::string& ruleset);
// Packets counted by the named counter of table `netdev <table>`.
uint64_t nft_counter(const std::string& ns, const std::string& table, const std::string& counter);

// ---- scratch and sluice -------------------------------------------------------------

// The tag of the benchmarks' scratch directories (/tmp/sluice-bench-<pid>-XXXXXX)
// and sluice installations (pins in /sys/fs/bpf/sluice-bench-<pid>-<n>):
// test::ScratchDir(kBenchTag), test::SluiceCli(kBenchTag). Their
// constructors (and tools/bench.sh at its end) remove those of benchmark
// processes that were killed before their destructors ran. (Namespaces and
// processes are the Testbed's: tests/lib/netns.hpp cleans those.)
inline constexpr const char* kBenchTag = "bench";

// ---- the generator -------------------------------------------------------------------

// Hands frames to a veth as a NIC driver would: the device's peer takes
// them in NAPI as xdp_frames (no socket, no skb, no copy on its core). The
// program (bpf/traffic_gen.bpf.c) rewrites the source of each frame. Two
// ways, chosen once, when the generator is made:
// - live frames, where the kernel allows them: BPF_PROG_TEST_RUN +
//   BPF_F_TEST_XDP_LIVE_FRAMES on the calling thread, which bpf_redirect()s
//   each frame into the device;
// - the pump, where the kernel refuses them (EPERM on some locked-down
//   kernels) or when asked for: a veth loop in the device's namespace whose
//   NAPI thread (on the generator's CPU) broadcasts each frame back into the
//   loop and into the device. The receiving core then frees a page per
//   frame, which live frames return to their page pool: its per-packet cost
//   is higher, so ratios to a baseline of the same run are not those of live
//   frames.
class Generator {
 public:
  enum class Rewrite : uint32_t { None = 0, Ipv4Source = 1, Syn = 2 };
  enum class Kind { LiveFrames, Pump };
  struct Flow {
    test::Bytes frame;         // template: Ethernet + IPv4 + UDP, or + TCP SYN with an MSS option
    Rewrite rewrite = Rewrite::Ipv4Source;
    uint32_t src_base = 0;     // host order
    uint32_t src_count = 1;
  };
  struct Result {
    uint64_t frames = 0;  // handed to the device (each taken in, or dropped on a full ring)
    double seconds = 0;
  };

  // Auto: live frames if the kernel runs them (one probe), else the pump.
  // LiveFrames throws if the kernel refuses them.
  explicit Generator(GeneratorChoice choice = GeneratorChoice::Auto);
  ~Generator();
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // Why the pump makes the frames: the kernel's refusal of live frames, or
  // the choice ("" with live frames).
  const std::string& why_pump() const { return why_pump_; }
  Kind kind() const { return why_pump_.empty() ? Kind::LiveFrames : Kind::Pump; }
  // How frames are made, for a report's method line and its commands.
  std::string method() const;
  std::vector<std::string> commands() const;

  // Sends the flow's frames into ifindex (a device of netns ns) from cpu
  // until `seconds` have passed or `max_frames` were sent, whichever comes
  // first. With live frames the calling thread moves into ns on a fresh
  // thread pinned to cpu; the pump is built in ns on first use (and again if
  // ns or ifindex change) and its NAPI thread is pinned to cpu.
  Result run(const std::string& ns, int ifindex, int cpu, const Flow& flow, double seconds, uint64_t max_frames);

  // The skeleton's read_drop program (reads the headers, drops), a reference
  // for the receiving side.
  int read_drop_fd() const;

 private:
  void set_flow(const Flow& flow);
  Result run_live(const std::string& ns, int ifindex, int cpu, const Flow& flow, double seconds, uint64_t max_frames);
  Result run_pump(const std::string& ns, int ifindex, int cpu, const Flow& flow, double seconds, uint64_t max_frames);
  void build_pump(const std::string& ns, int ifindex, int cpu);
  void remove_pump();

  traffic_gen_bpf* skel_ = nullptr;
  std::string why_pump_;  // "" with live frames: kind() follows from it
  struct Pump {  // the veth loop, while built
    std::string ns;
    int target_ifindex = 0;
    int seed_ifindex = 0;  // the loop's end that frames are seeded into
    bpf_link* link = nullptr;
  };
  std::optional<Pump> pump_;
};

// Frame templates for the generator, addressed to the server end of tb.
test::Bytes udp_frame(const std::string& src_mac, const std::string& dst_mac, const std::string& dst_ip,
                      uint16_t dport);
test::Bytes syn_frame(const std::string& src_mac, const std::string& dst_mac, const std::string& dst_ip,
                      uint16_t dport);
// The MAC address of dev in ns.
std::string mac_of(const std::string& ns, const std::string& dev);

// ---- a user-space UDP receiver --------------------------------------------------------

// A UDP server on a thread of this process: a socket bound in ns to port, a
// thread pinned to cpu that reads (recvmmsg, 64 at a time) and discards,
// counting datagrams. What an application that rejects in user space pays
// at least. Stops within 100 ms of stop() or destruction.
class UdpSink {
 public:
  // realtime: SCHED_FIFO one priority above a realtime NAPI thread (else
  // nice -20). Under a flood the NAPI thread never runs out of work, and at
  // its own priority the reader would wait for it while the socket's buffer
  // overflows: above it, the reader runs whenever datagrams wait, the best
  // case for an application.
  UdpSink(const std::string& ns, const std::string& ip, uint16_t port, int cpu, bool realtime);
  ~UdpSink();
  UdpSink(const UdpSink&) = delete;
  UdpSink& operator=(const UdpSink&) = delete;

  uint64_t received() const { return received_.load(); }
  uint64_t cpu_ns() const;  // of the reading thread
  void stop();

 private:
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> received_{0};
  std::atomic<pid_t> tid_{0};
  std::thread thread_;
};

// Formats a number with a fixed number of decimals.
std::string fixed(double v, int decimals);

// Ends a benchmark that started at t0 (now_ns()): its section's "elapsed_s"
// and a progress line "<label>: took N s".
void record_elapsed(Json& section, const std::string& label, uint64_t t0);

}  // namespace sluice::bench
