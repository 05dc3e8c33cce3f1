// End-to-end proofs of issue 5's promises (reliability under faults and bad
// input), on the real kernel: namespace testbeds on veth, the real `sluice`
// binary against a private installation (pin directory and policy file),
// real servers (a counting UDP sink, capsrv) and real clients (loadgen).
//
//   ReliabilityUpgrade       re-attaching (a fresh load of the programs) under load loses nothing;
//                            a first attach that fails half-way leaves the device as it was
//   ReliabilityController    restarting `sluice run` under overload keeps the learned limit
//   ReliabilityKilledApply   a CLI killed mid-apply leaves the old policy or the new one
//   ReliabilityPersistence   the policy file is always whole; bad files are refused; attach restores it
//   ReliabilityResources     the flow table is sized by [maps], evicts under a flood, leaks are reconciled
//                            and requests during the census are not taken for leaks
//   ReliabilitySecurity      pins, pin directory and policy file are root-only
//
// Every test prints what it saw on "[ numbers ]" lines; docs/reliability.md
// quotes them. Longer runs (more kills, more upgrades):
//   SLUICE_RELIABILITY_KILLS=300 SLUICE_RELIABILITY_SAVE_KILLS=200 SLUICE_RELIABILITY_UPGRADES=20
//   SLUICE_RELIABILITY_RESTART_SECONDS=30 (a longer run after the controller restart)
//   SLUICE_RELIABILITY_SEED=N fixes the random kill points (otherwise printed).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../lib/e2e_services.hpp"
#include "../lib/netns.hpp"
#include "../lib/process.hpp"
#include "../lib/sluice_cli.hpp"
#include "sluice/abi.h"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr const char* kFileEnd = "# end of sluice policy";

// ---- small helpers ------------------------------------------------------------

void numbers(const std::string& line)
{
    std::printf("[ numbers ] %s\n", line.c_str());
    std::fflush(stdout);
}

std::string octal(unsigned mode)
{
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04o", mode & 07777);
    return buf;
}

int env_int(const char* name, int fallback)
{
    const char* v = std::getenv(name);
    return v && *v ? std::atoi(v) : fallback;
}

uint64_t u64(const json& j) { return j.get<uint64_t>(); }

::testing::AssertionResult within_pct(double actual, double expected, double pct)
{
    if (std::abs(actual - expected) <= std::abs(expected) * pct / 100.0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << actual << " is not within " << pct << "% of " << expected << " (off by "
                                         << (actual - expected) / expected * 100.0 << "%)";
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

std::mt19937_64 seeded_rng(const char* what)
{
    uint64_t seed = std::getenv("SLUICE_RELIABILITY_SEED")
                        ? uint64_t(env_int("SLUICE_RELIABILITY_SEED", 1))
                        : (uint64_t(std::random_device{}()) << 32 | std::random_device{}());
    numbers(std::string(what) + ": random seed " + std::to_string(seed) + " (SLUICE_RELIABILITY_SEED to repeat)");
    return std::mt19937_64(seed);
}

std::string read_or_empty(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_bytes(const std::string& path, const std::string& bytes)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
    if (!out) throw std::runtime_error("cannot write " + path);
}

// ---- sockets in namespaces -------------------------------------------------------

// A TCP socket listening in a namespace, never accepting by itself: the
// kernel completes handshakes into its queue; drain() empties it.
class Listener {
public:
    Listener(const std::string& ns, const std::string& ip, int port)
    {
        in_netns(ns, [&] {
            fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            int one = 1;
            setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            sockaddr_in sin = v4(ip, port);
            if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 || listen(fd_, 4096) != 0)
                throw std::runtime_error("listen " + ip + ":" + std::to_string(port) + ": " + std::strerror(errno));
        });
    }
    ~Listener()
    {
        if (fd_ >= 0) close(fd_);
    }
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;

    void drain()
    {
        for (int c; (c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC)) >= 0;) close(c);
    }

private:
    int fd_ = -1;
};

enum class Conn { connected, refused, timeout, error };

const char* name(Conn c)
{
    switch (c) {
    case Conn::connected: return "connected";
    case Conn::refused: return "refused";
    case Conn::timeout: return "timeout";
    case Conn::error: return "error";
    }
    return "?";
}

// One TCP connection attempt from ns (bound to src unless empty); closed at
// once with an RST.
Conn try_connect(const std::string& ns, const std::string& src, const std::string& dst, int port, Millis timeout)
{
    Conn result = Conn::error;
    in_netns(ns, [&] {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return;
        linger lg{1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        if (!src.empty()) {
            sockaddr_in s = v4(src, 0);
            if (bind(fd, reinterpret_cast<sockaddr*>(&s), sizeof s) != 0) {
                close(fd);
                return;
            }
        }
        sockaddr_in d = v4(dst, port);
        int rc = connect(fd, reinterpret_cast<sockaddr*>(&d), sizeof d);
        if (rc != 0 && errno == EINPROGRESS) {
            pollfd p{fd, POLLOUT, 0};
            rc = poll(&p, 1, int(timeout.count()));
            if (rc == 0) {
                result = Conn::timeout;
                close(fd);
                return;
            }
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            result = err == 0 ? Conn::connected : err == ECONNREFUSED ? Conn::refused : Conn::error;
        } else if (rc == 0) {
            result = Conn::connected;
        } else {
            result = errno == ECONNREFUSED ? Conn::refused : Conn::error;
        }
        close(fd);
    });
    return result;
}

// ---- loadgen ------------------------------------------------------------------

// A run whose generator fell behind its schedule (p99 send lag above 20 ms:
// the shared machine starved it) did not offer the load it was asked to, so
// its per-second figures say nothing about sluice. Tests that assert them
// repeat such a run once.
struct Retry {
    bool allowed = true;
    bool wanted = false;
};

bool generator_starved(const json& l, Retry& retry)
{
    double lag_ms = l.at("send_lag_us").at("p99").get<double>() / 1000;
    if (!retry.allowed || lag_ms <= 20) return false;
    numbers("the generator fell behind (send lag p99 " + fmt("%.0f", lag_ms) + " ms): the run is repeated");
    retry.wanted = true;
    return true;
}

// Runs body once, and again if it asked for a retry.
void with_one_retry(const std::function<void(Retry&)>& body)
{
    Retry first;
    body(first);
    if (first.wanted) {
        Retry second{false};
        body(second);
    }
}

// ---- pinned maps, read directly -------------------------------------------------

struct PinnedMap {
    int fd = -1;
    bpf_map_info info{};

    explicit PinnedMap(const std::string& path)
    {
        fd = bpf_obj_get(path.c_str());
        if (fd < 0) throw std::runtime_error("bpf_obj_get " + path + ": " + std::strerror(errno));
        uint32_t len = sizeof info;
        if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) throw std::runtime_error("map info " + path);
    }
    ~PinnedMap() { close(fd); }
    PinnedMap(const PinnedMap&) = delete;
    PinnedMap& operator=(const PinnedMap&) = delete;

    // One walk over the keys. When the key a step starts from has been
    // deleted meanwhile, a hash map's walk starts over from its first key;
    // the walk ends there, so a busy table's keys are not counted twice.
    std::vector<std::vector<uint8_t>> keys(size_t at_most = SIZE_MAX) const
    {
        std::vector<std::vector<uint8_t>> out;
        std::set<std::vector<uint8_t>> seen;
        std::vector<uint8_t> key(info.key_size), next(info.key_size);
        const void* prev = nullptr;
        while (out.size() < at_most && bpf_map_get_next_key(fd, prev, next.data()) == 0) {
            if (!seen.insert(next).second) break;
            out.push_back(next);
            key = next;
            prev = key.data();
        }
        return out;
    }
    size_t count() const { return keys().size(); }
    size_t erase_all() const
    {
        size_t n = 0;
        for (const auto& k : keys())
            if (bpf_map_delete_elem(fd, k.data()) == 0) n++;
        return n;
    }
};

// ---- generated policies -----------------------------------------------------------

struct PolicyShape {
    int services = 150;
    int tenants = 2000;
    int max_services = 160;
    int max_tenants = 2048;
};

// A large policy; variants 0 and 1 differ in every service's port and rate,
// every tenant's prefixes and level, every limit, and in one service and one
// deny rule that only one of them has (see the probes of KilledApply).
std::string big_policy(int variant, const PolicyShape& shape, const std::string& denied_source)
{
    std::ostringstream o;
    if (variant == 0) o << "deny = [\"" << denied_source << "/32\"]\n\n";
    o << "[maps]\nmax_services = " << shape.max_services << "\nmax_tenants = " << shape.max_tenants << "\n\n";
    for (int i = 0; i < shape.services; i++) {
        o << "[[service]]\nname = \"svc" << i << "\"\nproto = \"" << (i % 3 == 0 ? "udp" : "tcp") << "\"\nport = "
          << 20000 + i + variant * 1000 << "\nrate = \"" << (i + 1) * 10 + variant * 5 << "/s\"\n";
        if (i % 5 == 0) o << "per_source = \"" << 50 + variant << "/s\"\n";
        if (i % 7 == 0 && i % 3 != 0) o << "reject = \"" << (variant ? "drop" : "rst") << "\"\n";
        o << "\n";
    }
    // The probe services: only one policy has each.
    o << "[[service]]\nname = \"probe-" << (variant ? "b" : "a") << "\"\nport = " << (variant ? 9200 : 9100)
      << "\nrate = \"1/h\"\nburst = 1\nreject = \"rst\"\n\n";
    for (int i = 0; i < shape.tenants; i++) {
        int a = i + variant * shape.tenants;
        char v6[64];
        std::snprintf(v6, sizeof v6, "2001:db8:f%03x:%x00::/56", a / 256, a % 256);
        o << "[[tenant]]\nname = \"t" << i << "\"\nprefixes = [\"" << v6 << "\"";
        if (i < 100) o << ", \"198.19." << (i + variant * 100) % 256 << ".0/24\"";
        o << "]\nlevel = " << (i + variant) % 3 << "\n\n";
    }
    for (int i = 0; i < std::min(50, shape.services); i++)
        o << "[[limit]]\nservice = \"svc" << i << "\"\ntenant = \"t" << i * 7 % shape.tenants << "\"\nrate = \""
          << 1000 + i + variant << "/s\"\nburst = " << 100 + variant << "\n\n";
    return o.str();
}

// ==================================================================================
// 1. Upgrade under load
// ==================================================================================

// A UDP service at 5x its static limit; during the run `sluice attach` on the
// attached device, five times: each replaces the XDP and TC programs in
// place with a fresh load of this build, while the pinned maps (policy,
// buckets, counters) carry over. Nothing may be lost or admitted extra.
//
// Where sluice is alone on the device's XDP hook the replacement is one
// atomic netlink call; behind libxdp's dispatcher (another XDP program is
// on the device) libxdp has no replace, so the new program is added and the
// old one removed (the second test).
void upgrade_under_load(bool behind_dispatcher)
{
    constexpr int kRate = 300, kBurst = 60, kOffered = 5 * kRate, kPort = 5353;
    const int upgrades = env_int("SLUICE_RELIABILITY_UPGRADES", 5);
    Testbed tb;
    SluiceCli cli;
    // xdp-loader enters the namespace with nsenter, not 'ip netns exec',
    // which would hide bpffs and with it libxdp's dispatcher.
    auto xdp_loader = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"nsenter", "--net=/run/netns/" + tb.server_ns(), "xdp-loader"});
        return tb.run("", args);
    };
    const std::vector<std::string> attach = {"-n", tb.server_ns(), "attach", tb.server_dev(), "--mode", "native"};
    if (behind_dispatcher) {
        xdp_loader({"load", "-m", "native", "-n", "xdp_pass", tb.server_dev(), build_dir() + "/bpf/baseline.bpf.o"});
        std::string loader = xdp_loader({"status", tb.server_dev()});
        if (!contains(loader, "xdp_dispatcher")) {
            // The kernel refused libxdp's dispatcher (on the development VM:
            // "Compatibility check for dispatcher program failed: Operation
            // not permitted"), so xdp_pass holds the hook alone. Then what
            // must hold is the other side of sharing: sluice refuses to push
            // the other program out, says why, and leaves no trace.
            RunResult r = cli.run(attach);
            numbers("libxdp's dispatcher is not available here; sluice attach said: " + r.err);
            EXPECT_NE(r.exit_code, 0);
            EXPECT_TRUE(one_line(r.err)) << r.err;
            EXPECT_TRUE(contains(r.err, "already runs the XDP program 'xdp_pass'")) << r.err;
            EXPECT_TRUE(contains(r.err, "xdp-loader unload " + tb.server_dev())) << r.err;
            std::string after = xdp_loader({"status", tb.server_dev()});
            EXPECT_TRUE(contains(after, "xdp_pass")) << after;
            EXPECT_FALSE(contains(after, "sluice")) << after;
            EXPECT_FALSE(std::filesystem::exists(cli.pin_dir())) << "a failed first attach left maps behind";
            xdp_loader({"unload", "--all", tb.server_dev()});
            return;
        }
    }
    cli.must(attach);
    // How long an upgrade takes on this (shared) machine now: the load must
    // last long enough for all of them, with room to spare.
    auto t_attach = Clock::now();
    cli.must(attach);
    const double attach_s = since(t_attach);
    const double kSeconds = std::max(4.0, std::ceil(1.2 + 1.5 * upgrades * attach_s));
    cli.must({"service", "add", "dns", "--proto", "udp", "--port", std::to_string(kPort), "--rate",
              std::to_string(kRate) + "/s", "--burst", std::to_string(kBurst)});
    const std::string policy_before = cli.must({"export"});
    json st = cli.json({"status", "--json"});
    ASSERT_EQ(st.at("attachments").size(), 1u) << st.dump();
    const std::string mode = st.at("attachments").at(0).at("mode").get<std::string>();
    const bool shared = st.at("attachments").at(0).at("shared_hook").get<bool>();
    ASSERT_EQ(shared, behind_dispatcher) << st.dump();
    const std::string target = tb.server_ip4() + ":" + std::to_string(kPort);
    auto tc_prog = [&] {
        std::string out = tb.run(tb.server_ns(), {"tc", "filter", "show", "dev", tb.server_dev(), "egress"});
        auto at = out.find(" id ");
        return at == std::string::npos ? std::string("none") : out.substr(at + 4, out.find(' ', at + 4) - at - 4);
    };

    struct Run {
        uint64_t received = 0, sent = 0, admitted = 0, shed = 0;
        double window = 0, expected = 0;
        std::vector<std::string> xdp_progs, tc_progs;
        std::vector<double> at_s;
    };
    auto run = [&](int reattach) {
        Run r;
        Counts c0 = counts(cli, "dns");
        UdpSink sink(tb.server_ns(), tb.server_ip4(), kPort);
        Load load(tb.client_ns(), "udp", target, kOffered, kSeconds);
        for (int i = 0; i < reattach; i++) {
            // Started from 0.2 s on, evenly, the last one 1.5 upgrade times
            // and 0.5 s before the end of the run; each must end before the
            // load does.
            const double last = kSeconds - 0.5 - 1.5 * attach_s;
            std::this_thread::sleep_until(
                load.started() +
                std::chrono::milliseconds(int(1000 * (0.2 + (last - 0.2) * i / std::max(1, reattach - 1)))));
            std::string out = cli.must(attach);
            r.at_s.push_back(since(load.started()));
            EXPECT_LT(r.at_s.back(), kSeconds) << "upgrade " << i << " ended after the load";
            EXPECT_TRUE(contains(out, "upgraded sluice on " + tb.server_dev())) << out;
            auto p = out.find("program ");
            r.xdp_progs.push_back(p == std::string::npos ? "?" : out.substr(p + 8, out.find(')', p) - p - 8));
            r.tc_progs.push_back(tc_prog());
        }
        const json& l = load.result();
        r.received = UdpSink::total(sink.stop());
        Counts c1 = counts(cli, "dns");
        r.sent = u64(l.at("sent"));
        r.admitted = c1.admitted - c0.admitted;
        r.shed = c1.shed_total() - c0.shed_total();
        // UDP has no drain: elapsed runs from the first send to the last.
        r.window = l.at("elapsed_s").get<double>();
        r.expected = kRate * r.window + kBurst;
        numbers(std::string(reattach ? "with " + std::to_string(reattach) + " upgrades" : "uninterrupted") +
                ": sent " + std::to_string(r.sent) + " in " + fmt("%.3f", r.window) + " s, expected R*T+B = " +
                fmt("%.0f", r.expected) + ", server received " + std::to_string(r.received) + ", sluice admitted " +
                std::to_string(r.admitted) + ", shed " + std::to_string(r.shed) + "; " + describe(l));
        return r;
    };

    Run plain = run(0);
    std::this_thread::sleep_for(500ms);  // the bucket refills (B/R = 0.2 s)
    const std::string tc_before = tc_prog();
    Run up = run(upgrades);
    std::string when;
    for (size_t i = 0; i < up.at_s.size(); i++)
        when += " " + fmt("%.2f", up.at_s[i]) + "s:xdp" + up.xdp_progs[i] + "/tc" + up.tc_progs[i];
    numbers("XDP " + mode + (shared ? " (libxdp dispatcher)" : " (alone on the hook)") + "; an upgrade took " +
            fmt("%.2f", attach_s) + " s before the runs, so they lasted " + fmt("%.0f", kSeconds) +
            " s; upgrades ended at" + when + "; tc before " + tc_before);

    for (const Run* r : {&plain, &up}) {
        SCOPED_TRACE(r == &plain ? "uninterrupted" : "with upgrades");
        EXPECT_EQ(r->sent, uint64_t(kOffered * kSeconds));
        EXPECT_TRUE(within_pct(double(r->received), r->expected, 5)) << "datagrams the server received";
        // Every admitted datagram arrived, and the counter did not lose or
        // double any: continuous across program replacements.
        EXPECT_EQ(r->admitted, r->received);
        EXPECT_EQ(r->admitted + r->shed, r->sent) << "each datagram judged exactly once";
    }
    // Compared with the uninterrupted run, and closer than one burst: an
    // upgrade that refilled or emptied the bucket would show by B = 60.
    EXPECT_TRUE(within_pct(double(up.received), double(plain.received), 5));
    EXPECT_LT(std::abs(double(up.received) - up.expected), kBurst / 2.0);
    EXPECT_LT(std::abs(double(plain.received) - plain.expected), kBurst / 2.0);
    // Each upgrade was a fresh load of both programs.
    std::set<std::string> xdp(up.xdp_progs.begin(), up.xdp_progs.end()), tc(up.tc_progs.begin(), up.tc_progs.end());
    EXPECT_EQ(xdp.size(), size_t(upgrades)) << when;
    EXPECT_EQ(tc.size(), size_t(upgrades)) << when;
    EXPECT_FALSE(tc.count(tc_before)) << when;
    st = cli.json({"status", "--json"});
    ASSERT_EQ(st.at("attachments").size(), 1u) << st.dump();
    EXPECT_EQ(std::to_string(u64(st.at("attachments").at(0).at("prog_id"))), up.xdp_progs.back());
    EXPECT_EQ(st.at("attachments").at(0).at("state"), "active");
    EXPECT_EQ(cli.must({"export"}), policy_before) << "the policy carried over unchanged";
    if (behind_dispatcher) {
        std::string loader = xdp_loader({"status", tb.server_dev()});
        numbers("xdp-loader status after the upgrades:\n" + loader);
        EXPECT_TRUE(contains(loader, "xdp_pass")) << "the other program stayed: " << loader;
        cli.must({"-n", tb.server_ns(), "detach", tb.server_dev()});
        xdp_loader({"unload", "--all", tb.server_dev()});
    }
}

TEST(ReliabilityUpgrade, ReattachingUnderLoadAdmitsExactlyWhatAnUninterruptedRunAdmits)
{
    upgrade_under_load(false);
}

TEST(ReliabilityUpgrade, SharingTheHookBehindLibxdpLosesNothingOrIsRefusedClearly)
{
    upgrade_under_load(true);
}

// A first attach that fails half-way leaves the device as it was. Here the
// egress hook already holds another user's filter at sluice's priority for
// another protocol, which the kernel refuses to mix with sluice's filter:
// the XDP program, on the hook by then, comes off again, no pins remain,
// and the other filter is untouched. Once it is gone, attach works.
TEST(ReliabilityUpgrade, AnAttachThatFailsHalfWayLeavesTheDeviceAsItWas)
{
    Testbed tb;
    SluiceCli cli;
    const std::string ns = tb.server_ns(), dev = tb.server_dev();
    // The foreign filter's program, pinned where tc can take it (tc's own
    // loader would leave its directories in bpffs behind).
    struct Pins {
        std::string dir = "/sys/fs/bpf/sluice-e2e-foreign-" + std::to_string(getpid());
        ~Pins() { std::filesystem::remove_all(dir); }
    } foreign;
    tb.run("", {"bpftool", "prog", "loadall", build_dir() + "/bpf/baseline.bpf.o", foreign.dir});
    tb.run(ns, {"tc", "qdisc", "add", "dev", dev, "clsact"});
    tb.run("", {"nsenter", "--net=/run/netns/" + ns, "tc", "filter", "add", "dev", dev, "egress", "prio", "81",
                "protocol", "ip", "bpf", "da", "pinned", foreign.dir + "/tc_pass"});
    auto link = [&] { return tb.run(ns, {"ip", "link", "show", "dev", dev}); };
    auto egress = [&] { return tb.run(ns, {"tc", "filter", "show", "dev", dev, "egress"}); };

    RunResult r = cli.run({"-n", ns, "attach", dev, "--mode", "native"});
    numbers("attach next to a foreign egress filter at priority 81: " + r.err);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_TRUE(one_line(r.err)) << r.err;
    EXPECT_TRUE(contains(r.err, "cannot attach the egress program to " + dev)) << r.err;
    EXPECT_FALSE(contains(link(), "xdp")) << link();
    EXPECT_TRUE(contains(egress(), "tc_pass")) << egress();
    EXPECT_FALSE(std::filesystem::exists(cli.pin_dir())) << "a failed first attach left maps behind";

    tb.run(ns, {"tc", "filter", "del", "dev", dev, "egress", "prio", "81"});
    cli.must({"-n", ns, "attach", dev, "--mode", "native"});
    EXPECT_TRUE(contains(link(), "xdp")) << link();
    EXPECT_TRUE(contains(egress(), "sluice_tc_egres")) << egress();
    cli.must({"-n", ns, "detach", dev});
    EXPECT_FALSE(contains(link(), "xdp")) << link();
}

// ==================================================================================
// 2. Controller restart under overload
// ==================================================================================

// A tracked service (BBR, capsrv 8 x 20 ms behind it) at 5x overload; once
// the limit is learned, `sluice run` is stopped (SIGTERM) and a new one
// started at once. The successor must start from the limit its predecessor
// left in the control map, goodput must stay at capacity through the
// restart, and policy and counters must be untouched. The successor also
// keeps the estimate where its predecessor held it (near the server's
// concurrency: near_workers(), the bound the adaptive e2e tests hold an
// uninterrupted controller to): it inherits the queue-free response time
// too, so the queue built in the gap between the two is not mistaken for
// the service's normal response time.
void restart_under_overload(Retry& retry)
{
    constexpr int kWorkers = 8, kServiceMs = 20, kPort = 8080;
    constexpr double kCapacity = kWorkers * 1000.0 / kServiceMs;  // 400/s
    const int kSeconds = env_int("SLUICE_RELIABILITY_RESTART_SECONDS", 11);
    constexpr double kRestartAt = 5.0;
    Testbed tb;
    SluiceCli cli;
    cli.must({"-n", tb.server_ns(), "attach", tb.server_dev()});
    cli.must({"service", "add", "web", "--port", std::to_string(kPort), "--adaptive", "bbr", "--cpu-threshold", "0",
              "--http", "--reject", "rst"});
    const std::string policy_before = cli.must({"export"});
    start_capsrv(tb, kPort, kWorkers, kServiceMs);
    const std::string estimate = "sluice_limit_estimate{service=\"web\"}";

    Counts start = counts(cli, "web");
    auto first = std::make_unique<Controller>(cli, "web");
    Load load(tb.client_ns(), "http", tb.server_ip4() + ":" + std::to_string(kPort), int(5 * kCapacity), kSeconds,
              {"--timeout", "1000"});
    // The predecessor's estimate from 3 s on, every 200 ms, as a baseline.
    std::vector<double> before_trace;
    std::this_thread::sleep_until(load.started() + 3s);
    while (since(load.started()) < kRestartAt) {
        before_trace.push_back(first->metric(estimate));
        std::this_thread::sleep_for(200ms);
    }
    const double learned = first->metric(estimate);
    const Counts before = counts(cli, "web");

    // Stop and start again at once.
    const auto t0 = Clock::now();
    first->process().signal(SIGTERM);
    auto status = first->process().wait_exit(5s);
    const double exited_s = since(t0);
    const std::string first_log = first->log();
    auto second = std::make_unique<Controller>(cli, "web");
    const double governing_s = since(t0);
    const Counts after = counts(cli, "web");
    const double restarted_at = since(load.started());
    // The successor's estimate for the rest of the run, every 200 ms.
    std::vector<double> trace;
    while (load.running() && since(load.started()) < kSeconds - 0.3) {
        trace.push_back(second->metric(estimate));
        std::this_thread::sleep_for(200ms);
    }
    const json& l = load.result();
    const Counts end = counts(cli, "web");
    json srv = capsrv_stats(tb, kPort);

    std::string second_log = second->log(), governed_line;
    {
        std::istringstream in(second_log);
        for (std::string line; std::getline(in, line);)
            if (contains(line, "web: governed")) governed_line = line;
    }
    numbers("5x overload (" + fmt("%.0f", 5 * kCapacity) + "/s) on capacity " + fmt("%.0f", kCapacity) +
            "/s; restart at " + fmt("%.2f", restarted_at) + " s: predecessor exited " + fmt("%.3f", exited_s) +
            " s after SIGTERM, successor governed " + fmt("%.3f", governing_s) + " s after it; admitted in between " +
            std::to_string(after.admitted - before.admitted) + " (the server completes " +
            fmt("%.0f", kCapacity * governing_s) + " in that time)");
    auto p50 = series(l, "p50_us");
    for (auto& x : p50) x /= 1000;
    numbers("estimate every 200 ms: predecessor (3 s to the restart) " + list(before_trace) + ", successor " +
            list(trace) + "; successor's log: " + governed_line);
    numbers("per-second p50 latency (ms) of the successes: " + list(p50));
    numbers("load: " + describe(l));
    if (generator_starved(l, retry)) return;
    ASSERT_TRUE(status.has_value() && *status == 0) << first_log;

    // The successor started from what the predecessor learned.
    auto at = second_log.find("starting from ");
    ASSERT_NE(at, std::string::npos) << second_log;
    const int inherited = std::stoi(second_log.substr(at + 14));
    EXPECT_NEAR(inherited, learned, std::max(1.0, 0.25 * learned)) << second_log;
    EXPECT_TRUE(near_workers(inherited, kWorkers)) << second_log;
    {
        ASSERT_FALSE(trace.empty());
        auto outside = [&](const std::vector<double>& v) {
            return std::count_if(v.begin(), v.end(), [&](double x) { return !near_workers(x, kWorkers); });
        };
        EXPECT_EQ(outside(before_trace), 0) << "predecessor's estimate " << list(before_trace);
        EXPECT_EQ(outside(trace), 0) << "the successor's estimate left the band (" << 0.85 * kWorkers << " to "
                                     << kWorkers + 2 << ") its predecessor held " << list(before_trace) << ": "
                                     << list(trace) << "; p50 latency per second (ms) " << list(p50);
    }

    // Goodput stays at >= 90% of capacity every second from the third on,
    // through the restart.
    auto ok = series(l, "success");
    ASSERT_GE(ok.size(), size_t(kSeconds));
    for (int s = 3; s < kSeconds; s++) EXPECT_GE(ok[s], 0.9 * kCapacity) << "second " << s << ": " << describe(l);

    // Policy and counters intact: the counters only grew, every refusal was
    // answered, and every admitted connection reached the server.
    EXPECT_EQ(cli.must({"export"}), policy_before);
    EXPECT_GE(after.admitted, before.admitted);
    EXPECT_GE(after.shed_total(), before.shed_total());
    EXPECT_EQ(outcome(l, "refused"), end.shed_total() - start.shed_total());
    EXPECT_EQ(u64(srv.at("accepted")) - u64(srv.at("stats_requests")), end.admitted - start.admitted);
    EXPECT_EQ(outcome(l, "timeout"), 0u) << describe(l);
}

TEST(ReliabilityController, RestartUnderOverloadKeepsTheLearnedLimitAndGoodput)
{
    with_one_retry([](Retry& r) { restart_under_overload(r); });
}

// ---- killing policy commands ----------------------------------------------------

// One policy command run to completion, timed: how long it ran, and when
// the epoch in sl_root changed (the switch), polled every 200 us.
struct Timed {
    double duration = 0, switched = -1;
};

uint64_t running_epoch(const PinnedMap& root)
{
    uint32_t zero = 0;
    sl_root r{};
    if (bpf_map_lookup_elem(root.fd, &zero, &r) != 0) throw std::runtime_error("cannot read sl_root");
    return r.epoch;
}

Timed run_timed(const SluiceCli& cli, const std::vector<std::string>& args)
{
    PinnedMap root(cli.pin_dir() + "/sl_root");
    const uint64_t e0 = running_epoch(root);
    Timed t;
    auto start = Clock::now();
    Process p("", cli.command(args));
    std::optional<int> st;
    while (!(st = p.wait_exit(0ms))) {
        if (t.switched < 0 && running_epoch(root) != e0) t.switched = since(start);
        std::this_thread::sleep_for(200us);
    }
    t.duration = since(start);
    if (*st != 0) throw std::runtime_error("`sluice " + args[0] + "` failed: " + p.stderr_text());
    if (t.switched < 0) t.switched = t.duration;
    return t;
}

// Where each kill lands, in seconds after the command started. The run
// time is estimated from the calibration runs, then from every run that
// finished (the machine's speed drifts: it is shared). Attempts that
// finished before their kill alone would pull the estimate down: only the
// short runs do; the caller adds whole runs it timed itself. Points
// are low-discrepancy (each lands where no earlier one did): two of three
// over the whole run, [0, 1.1 d), one of three around the switch,
// [switch - 0.03 d, d), where the few milliseconds between the switch and
// the exit are.
class KillSchedule {
public:
    KillSchedule(const std::vector<Timed>& calibration, double offset) : offset_(offset)
    {
        std::vector<double> fractions;
        for (const auto& t : calibration) {
            durations_.push_back(t.duration);
            fractions.push_back(t.switched / t.duration);
        }
        switch_fraction_ = median(fractions);
    }

    double next()
    {
        const double d = run_time();
        const double frac = std::fmod(offset_ + n_ * 0.6180339887498949, 1.0);
        const bool near_switch = n_++ % 3 == 2;
        const double from = near_switch ? std::max(0.0, (switch_fraction_ - 0.03) * d) : 0.0;
        const double to = near_switch ? d : 1.1 * d;
        return from + frac * (to - from);
    }
    void finished_after(double seconds) { durations_.push_back(seconds); }
    bool near_switch_next() const { return n_ % 3 == 2; }
    double run_time() const
    {
        size_t n = std::min<size_t>(5, durations_.size());
        return median(std::vector<double>(durations_.end() - long(n), durations_.end()));
    }
    double switch_fraction() const { return switch_fraction_; }

private:
    double offset_;
    int n_ = 0;
    double switch_fraction_ = 1;
    std::vector<double> durations_;
};

// Sends SIGKILL to p `delay` seconds after `start` unless it exits first.
// The exit status, and how long the command ran if it finished by itself.
std::pair<int, std::optional<double>> kill_after(Process& p, Clock::time_point start, double delay)
{
    const auto deadline = start + std::chrono::microseconds(int64_t(delay * 1e6));
    while (Clock::now() < deadline) {
        if (auto st = p.wait_exit(0ms)) return {*st, since(start)};
        std::this_thread::sleep_for(std::min<Clock::duration>(1ms, deadline - Clock::now()));
    }
    p.signal(SIGKILL);
    auto st = p.wait_exit(30s);
    if (!st) throw std::runtime_error("a killed command did not exit");
    return {*st, std::nullopt};
}

// ==================================================================================
// 3. A CLI killed mid-apply
// ==================================================================================

// Two large policies (150 services and 2,000 tenants each, differing in
// everything); `sluice apply -f OTHER` killed with SIGKILL at random points
// spread over the time an apply takes. After each kill the running policy
// is exactly one of the two, and the data path agrees with it: a deny rule
// and a service that only A has, and a service that only B has, are probed
// with real connections.
TEST(ReliabilityKilledApply, KilledApplyLeavesTheOldPolicyOrTheNewNeverAMix)
{
    const int wanted_kills = env_int("SLUICE_RELIABILITY_KILLS", 30);
    Testbed tb;
    const std::string denied = tb.ip4(200);
    tb.add_client_address(denied);
    SluiceCli cli;
    PolicyShape shape;
    const std::string text[2] = {big_policy(0, shape, denied), big_policy(1, shape, denied)};
    const std::string file[2] = {cli.scratch().write("a.toml", text[0]), cli.scratch().write("b.toml", text[1])};
    // The saved policy file sizes the maps when attach creates them, and
    // attach restores it.
    cli.scratch().write("policy.toml", text[0]);
    std::string out = cli.must({"-n", tb.server_ns(), "attach", tb.server_dev()});
    ASSERT_TRUE(contains(out, "restored the saved policy")) << out;

    Listener l9100(tb.server_ns(), tb.server_ip4(), 9100), l9200(tb.server_ns(), tb.server_ip4(), 9200),
        l9300(tb.server_ns(), tb.server_ip4(), 9300);
    // Which policy the data path runs, seen by packets: from `denied` to
    // 9300 (no service) only A drops; 9100 is rate 1/h burst 1 with RST
    // only in A, 9200 only in B: of two connections at least one is refused.
    auto probe = [&]() -> int {  // 0: A, 1: B, -1: neither
        Conn d = try_connect(tb.client_ns(), denied, tb.server_ip4(), 9300, 250ms);
        int refused[2] = {0, 0};
        for (int k = 0; k < 2; k++)
            for (int p = 0; p < 2; p++)
                refused[p] +=
                    try_connect(tb.client_ns(), "", tb.server_ip4(), p ? 9200 : 9100, 1000ms) == Conn::refused;
        for (Listener* l : {&l9100, &l9200, &l9300}) l->drain();
        if (d == Conn::timeout && refused[0] >= 1 && refused[1] == 0) return 0;
        if (d == Conn::connected && refused[0] == 0 && refused[1] >= 1) return 1;
        ADD_FAILURE() << "the data path runs neither policy: from the denied source " << name(d) << ", refused on 9100 "
                      << refused[0] << "/2, on 9200 " << refused[1] << "/2";
        return -1;
    };

    std::vector<Timed> calibration;
    auto apply_timed = [&](int which) {
        calibration.push_back(run_timed(cli, {"apply", "-f", file[which]}));
        return calibration.back().duration;
    };
    std::string exported[2], saved[2];
    exported[0] = cli.must({"export"});
    ASSERT_EQ(probe(), 0);
    std::vector<double> durations;
    durations.push_back(apply_timed(1));
    exported[1] = cli.must({"export"});
    saved[1] = read_file(cli.policy_file());
    ASSERT_EQ(probe(), 1);
    durations.push_back(apply_timed(0));
    saved[0] = read_file(cli.policy_file());
    ASSERT_EQ(cli.must({"export"}), exported[0]);
    ASSERT_EQ(probe(), 0);
    durations.push_back(apply_timed(1));
    ASSERT_EQ(cli.must({"export"}), exported[1]);
    ASSERT_NE(exported[0], exported[1]);
    std::vector<double> switched_at;
    for (const auto& t : calibration) switched_at.push_back(t.switched);
    numbers("policies of " + std::to_string(shape.services + 1) + " services, " + std::to_string(shape.tenants) +
            " tenants, 50 limits: " + std::to_string(exported[0].size()) + " and " +
            std::to_string(exported[1].size()) + " bytes exported; a whole apply takes " + fmt("%.3f", durations[0]) +
            ", " + fmt("%.3f", durations[1]) + ", " + fmt("%.3f", durations[2]) + " s; the switch came at " +
            fmt("%.3f", switched_at[0]) + ", " + fmt("%.3f", switched_at[1]) + ", " + fmt("%.3f", switched_at[2]) +
            " s");

    auto rng = seeded_rng("killed apply");
    KillSchedule schedule(calibration, std::uniform_real_distribution<double>(0.0, 1.0)(rng));
    int running = 1, kills = 0, finished = 0, ended_old = 0, ended_new = 0, mixes = 0, disagreements = 0;
    int file_in_sync = 0, file_ahead = 0, file_bad = 0, timed_between = 0;
    std::vector<double> points;
    // Until the wanted kills, and (bounded) until kills have landed on both
    // sides of the switch: the window after it is a few milliseconds.
    auto more = [&] { return kills < wanted_kills || ended_old == 0 || ended_new == 0; };
    for (int attempt = 0; more() && attempt < 3 * wanted_kills + 30; attempt++) {
        SCOPED_TRACE("attempt " + std::to_string(attempt));
        if (schedule.near_switch_next()) {
            // A whole apply first, to the other policy: the few milliseconds
            // after the switch are only hit with a fresh run time.
            calibration.push_back(run_timed(cli, {"apply", "-f", file[1 - running]}));
            schedule.finished_after(calibration.back().duration);
            running = 1 - running;
            timed_between++;
        }
        const int target = 1 - running;
        const double delay = schedule.next();
        auto t = Clock::now();
        Process p("", cli.command({"apply", "-f", file[target]}));
        auto [st, ran] = kill_after(p, t, delay);
        bool killed = st == -SIGKILL;
        if (killed) {
            kills++;
            points.push_back(delay);
        } else {
            finished++;
            if (ran) schedule.finished_after(*ran);
            EXPECT_EQ(st, 0) << p.stderr_text();
        }

        Process exporter("", cli.command({"export"}));
        int seen = probe();
        auto est = exporter.wait_exit(30s);
        ASSERT_TRUE(est.has_value() && *est == 0) << exporter.stderr_text();
        const std::string now = exporter.stdout_text();
        int policy = now == exported[0] ? 0 : now == exported[1] ? 1 : -1;
        if (policy < 0) {
            mixes++;
            ADD_FAILURE() << "after a kill at " << delay << " s the running policy is neither A nor B:\n"
                          << now.substr(0, 2000);
            continue;
        }
        if (seen != policy) {
            disagreements++;
            ADD_FAILURE() << "export says " << "AB"[policy] << ", the data path behaves like "
                          << (seen < 0 ? '?' : "AB"[seen]) << " (kill at " << delay << " s)";
        }
        if (killed) {
            (policy == running ? ended_old : ended_new)++;
        } else {
            EXPECT_EQ(policy, target) << "a finished apply left the old policy";
        }
        // The saved file is whole: one of the two policies, and never behind
        // the kernel (sluice saves first, then switches).
        const std::string f = read_file(cli.policy_file());
        if (f == saved[policy]) {
            file_in_sync++;
        } else if (f == saved[1 - policy]) {
            file_ahead++;
            EXPECT_EQ(policy, running) << "the kernel switched to a policy the file does not hold";
        } else {
            file_bad++;
            ADD_FAILURE() << "the saved policy file is neither policy:\n" << f.substr(0, 2000);
        }
        running = policy;
    }
    std::sort(points.begin(), points.end());
    numbers("killed " + std::to_string(kills) + " applies (" + std::to_string(finished) +
            " more finished before their kill; " + std::to_string(timed_between) + " whole applies timed between) at " +
            std::to_string(std::set<double>(points.begin(), points.end()).size()) + " distinct points from " +
            fmt("%.3f", points.empty() ? 0 : points.front()) + " to " +
            fmt("%.3f", points.empty() ? 0 : points.back()) + " s (run time at the end " +
            fmt("%.3f", schedule.run_time()) + " s, switching at " + fmt("%.0f%%", 100 * schedule.switch_fraction()) +
            " of it): " + std::to_string(ended_old) + " left the old policy, " + std::to_string(ended_new) +
            " the new one, " + std::to_string(mixes) + " a mix; data path disagreed with export " +
            std::to_string(disagreements) + " times; the saved file was the running policy " +
            std::to_string(file_in_sync) +
            " times, the new policy with the old one still running (a kill between the save and the switch) " +
            std::to_string(file_ahead) +
            " times, neither " + std::to_string(file_bad) + " times");
    EXPECT_GE(kills, wanted_kills);
    EXPECT_EQ(mixes, 0);
    EXPECT_EQ(disagreements, 0);
    EXPECT_GT(ended_old, 0) << "no kill landed before the switch";
    EXPECT_GT(ended_new, 0) << "no kill landed after the switch";
}

// ==================================================================================
// 4. Persistence
// ==================================================================================

TEST(ReliabilityPersistence, PolicyFileIsAlwaysWholeBadFilesAreRefusedAndAttachRestoresIt)
{
    const int wanted_kills = env_int("SLUICE_RELIABILITY_SAVE_KILLS", 20);
    Testbed tb;
    SluiceCli cli;
    PolicyShape shape{40, 200, 64, 256};
    cli.scratch().write("policy.toml", big_policy(0, shape, tb.ip4(200)));
    cli.must({"-n", tb.server_ns(), "attach", tb.server_dev()});
    const std::string dir = fs::path(cli.policy_file()).parent_path().string();
    auto temp_files = [&] {
        int n = 0;
        for (const auto& e : fs::directory_iterator(dir))
            if (e.path().filename().string().rfind("policy.toml.tmp", 0) == 0) n++;
        return n;
    };
    auto add = [&](int i) {
        return cli.command({"service", "add", "k" + std::to_string(i), "--port", std::to_string(30000 + i),
                                 "--rate", std::to_string(100 + i) + "/s"});
    };

    // How long `service add` takes, and when it switches (it saves the
    // file, then applies).
    std::vector<Timed> calibration;
    for (int i = 0; i < 3; i++) {
        auto argv = add(1000 + i);
        calibration.push_back(run_timed(cli, std::vector<std::string>(argv.begin() + 6, argv.end())));
    }
    auto rng = seeded_rng("killed service add");
    KillSchedule schedule(calibration, std::uniform_real_distribution<double>(0.0, 1.0)(rng));
    std::string kernel_before = cli.must({"export"}), file_before = read_file(cli.policy_file());
    ASSERT_EQ(kernel_before, file_before);
    int next = 0, kills = 0, finished = 0, same = 0, both_new = 0, file_ahead = 0, bad = 0;
    for (int attempt = 0; kills < wanted_kills && attempt < 3 * wanted_kills; attempt++) {
        SCOPED_TRACE("attempt " + std::to_string(attempt));
        const double delay = schedule.next();
        auto t = Clock::now();
        Process p("", add(next));
        auto [st, ran] = kill_after(p, t, delay);
        if (st == -SIGKILL) {
            kills++;
        } else {
            finished++;
            if (ran) schedule.finished_after(*ran);
            EXPECT_EQ(st, 0) << p.stderr_text();
        }

        const std::string kernel = cli.must({"export"}), file = read_or_empty(cli.policy_file());
        const bool kernel_new = kernel != kernel_before;
        json status = cli.json({"status", "--json"});
        const std::string file_state = status.at("policy").at("file_state").get<std::string>();
        // status compares the file with the running policy.
        EXPECT_EQ(file_state, file == kernel ? "in sync" : "differs from the running policy");
        const bool file_has_it = contains(file, "name = \"k" + std::to_string(next) + "\"");
        if (file == file_before && !kernel_new) {
            same++;
        } else if (kernel_new && file == kernel) {
            both_new++;
        } else if (!kernel_new && file != file_before && file_has_it) {
            // Killed between the save and the switch: the file holds the
            // change, whole, and status says it differs from what runs.
            file_ahead++;
        } else {
            bad++;
            ADD_FAILURE() << "after a kill at " << delay << " s: kernel " << (kernel_new ? "new" : "old")
                          << ", policy file neither the old policy nor the new (" << file.size()
                          << " bytes, ends with '" << file.substr(file.size() > 40 ? file.size() - 40 : 0) << "')";
        }
        EXPECT_TRUE(file.size() > std::strlen(kFileEnd) && contains(file, kFileEnd)) << "the file is not whole";
        if (kernel_new) next++;
        kernel_before = kernel;
        file_before = file;
    }
    const int temps = temp_files();
    numbers("`service add` on a policy of " + std::to_string(shape.services + 1) + " services and " +
            std::to_string(shape.tenants) + " tenants takes " + fmt("%.3f", schedule.run_time()) + " s (switching at " +
            fmt("%.0f%%", 100 * schedule.switch_fraction()) + " of it); killed " + std::to_string(kills) +
            " (" + std::to_string(finished) + " finished first): file and kernel both old " + std::to_string(same) +
            ", both new " + std::to_string(both_new) + ", file new and kernel old " + std::to_string(file_ahead) +
            ", file neither " + std::to_string(bad) + "; temporary files left beside the policy file: " +
            std::to_string(temps));
    EXPECT_GE(kills, wanted_kills);
    EXPECT_EQ(bad, 0);
    // A killed save may leave its temporary file; the next save removes it.
    EXPECT_LE(temps, 1);

    // Corrupted and truncated files are refused with one line, exit 2, and
    // change neither the running policy nor the saved file.
    const std::string running = cli.must({"export"}), saved = read_file(cli.policy_file());
    auto expect_refused = [&](const std::string& what, const std::string& bytes, const std::string& says) {
        SCOPED_TRACE(what);
        const std::string path = cli.scratch().file("bad.toml");
        write_bytes(path, bytes);
        RunResult r = cli.run({"apply", "-f", path});
        EXPECT_EQ(r.exit_code, 2) << r.err;
        EXPECT_TRUE(one_line(r.err)) << r.err;
        EXPECT_EQ(r.err.rfind("sluice: " + path + ":", 0), 0u) << r.err;
        if (!says.empty()) {
            EXPECT_TRUE(contains(r.err, says)) << r.err;
        }
        EXPECT_EQ(r.out, "");
        return r.err;
    };
    // Bytes no TOML document may hold: control characters (not TAB, LF,
    // CR) anywhere, and lone non-ASCII bytes (the file is ASCII), at
    // non-adjacent random offsets.
    std::vector<uint8_t> bad_bytes;
    for (int b = 0; b < 256; b++)
        if ((b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b >= 0x7f) bad_bytes.push_back(uint8_t(b));
    std::uniform_int_distribution<size_t> pos(0, running.size() - 1);
    std::uniform_int_distribution<size_t> pick(0, bad_bytes.size() - 1);
    std::vector<std::string> errors;
    for (int i = 0; i < 12; i++) {
        std::string bytes = running;
        std::set<size_t> at;
        for (int k = 0; k < 1 + i % 4; k++) {
            size_t p = pos(rng);
            if (!at.count(p - 1) && !at.count(p + 1)) at.insert(p);
        }
        std::string where;
        for (size_t p : at) {
            bytes[p] = char(bad_bytes[pick(rng)]);
            char hex[8];
            std::snprintf(hex, sizeof hex, "%02x", unsigned(uint8_t(bytes[p])));
            where += " " + std::to_string(p) + "=0x" + hex;
        }
        errors.push_back(expect_refused("corrupted at" + where, bytes, ""));
    }
    std::uniform_int_distribution<size_t> cut(1, running.size() - std::strlen(kFileEnd) - 2);
    for (int i = 0; i < 12; i++) {
        size_t n = i == 0 ? 0 : cut(rng);
        errors.push_back(expect_refused("truncated to " + std::to_string(n) + " bytes", running.substr(0, n),
                                        n == 0 ? "empty" : "truncated"));
    }
    EXPECT_EQ(cli.must({"export"}), running);
    EXPECT_EQ(read_file(cli.policy_file()), saved);
    numbers("12 corrupted and 12 truncated copies of a " + std::to_string(running.size()) +
            "-byte policy refused, running policy and saved file unchanged; e.g.: " + errors[0].substr(0, 160) +
            " | " + errors[13].substr(0, 200));

    // After reset, attach restores the policy from the saved file.
    cli.must({"reset"});
    ASSERT_FALSE(cli.json({"status", "--json"}).at("set_up").get<bool>());
    std::string out = cli.must({"-n", tb.server_ns(), "attach", tb.server_dev()});
    EXPECT_TRUE(contains(out, "restored the saved policy from " + cli.policy_file())) << out;
    EXPECT_EQ(cli.must({"export"}), saved);
    json st = cli.json({"status", "--json"});
    EXPECT_EQ(st.at("policy").at("file_state"), "in sync") << st.dump();
}

// ==================================================================================
// 5. Resource bounds: the flow table
// ==================================================================================

// The flow table is sized by [maps] flow_entries (1024 here, set in the saved
// policy file before the maps exist). A flood of long-lived new connections
// to one tracked service (`slow`, a breaker-only service in front of a
// server that answers 8 requests a second: each connection stays open until
// the client gives up after 3 s, about 3,000 flows at once) must fill the
// table and evict, while `web` (adaptive, in front of capsrv 8 x 20 ms at
// half its capacity) keeps serving; when the load stops, the in-flight
// count the controller publishes returns to 0: slots of evicted flows are
// found and reconciled.
void flood_of_new_flows()
{
    constexpr int kFlows = 1024, kWeb = 8080, kSlow = 8081, kFlood = 1000, kWebRate = 200;  // web's capacity: 400/s
    constexpr double kSeconds = 4;
    Testbed tb;
    SluiceCli cli;
    constexpr int kSources = 4096;  // source_entries, checked alongside
    cli.scratch().write("policy.toml", "[maps]\nflow_entries = " + std::to_string(kFlows) +
                                           "\nsource_entries = " + std::to_string(kSources) + "\n");
    cli.must({"-n", tb.server_ns(), "attach", tb.server_dev()});
    cli.must({"service", "add", "web", "--port", std::to_string(kWeb), "--adaptive", "bbr", "--cpu-threshold", "0",
              "--http", "--reject", "rst"});
    cli.must({"service", "add", "slow", "--port", std::to_string(kSlow), "--breaker", "ratio", "--http"});
    start_capsrv(tb, kWeb, 8, 20);
    start_capsrv(tb, kSlow, 4, 500);

    json st = cli.json({"status", "--json"});
    uint64_t flow_max = 0, flow_bytes = 0, source_max = 0, sum = 0;
    for (const auto& m : st.at("maps")) {
        sum += u64(m.at("bytes"));
        if (m.at("name") == "flows") flow_max = u64(m.at("max_entries")), flow_bytes = u64(m.at("bytes"));
        if (m.at("name") == "source_buckets") source_max = u64(m.at("max_entries"));
    }
    PinnedMap flows(cli.pin_dir() + "/flows");
    const std::string verbose = cli.must({"-v", "status"});
    std::string flows_line;
    {
        std::istringstream in(verbose);
        for (std::string line; std::getline(in, line);)
            if (line.rfind("flows ", 0) == 0) flows_line = line;
    }
    numbers("[maps] flow_entries = " + std::to_string(kFlows) + " in the policy file before the maps were made; "
            "status --json: flows max_entries " + std::to_string(flow_max) + ", " + std::to_string(flow_bytes) +
            " bytes; the kernel's map: max_entries " + std::to_string(flows.info.max_entries) +
            "; source_buckets (source_entries = " + std::to_string(kSources) + "): max_entries " +
            std::to_string(source_max) + "; map memory " +
            std::to_string(u64(st.at("map_bytes"))) + " bytes in " + std::to_string(st.at("maps").size()) +
            " maps; status -v: '" + flows_line + "'; export [maps]: " +
            (contains(cli.must({"export"}), "flow_entries = " + std::to_string(kFlows)) ? "1024" : "default"));
    EXPECT_EQ(flows.info.max_entries, uint32_t(kFlows)) << "the flow table is not sized by [maps] flow_entries";
    EXPECT_EQ(flow_max, uint64_t(kFlows));
    EXPECT_EQ(source_max, uint64_t(kSources));
    EXPECT_EQ(flow_max, flows.info.max_entries) << "status reports the kernel's map";
    EXPECT_EQ(u64(st.at("map_bytes")), sum);
    EXPECT_GT(flow_bytes, 0u);

    Controller ctl(cli, "web");
    ASSERT_TRUE(await([&] { return ctl.find("sluice_inflight{service=\"slow\"}").has_value(); }, 3s));
    // web alone for 4 s (its baseline: seconds 1-3), then with the flood
    // (seconds 4-7).
    Load web(tb.client_ns(), "http", tb.server_ip4() + ":" + std::to_string(kWeb), kWebRate, kSeconds + 5,
             {"--timeout", "1000"});
    std::this_thread::sleep_until(web.started() + 4s);
    Load flood(tb.client_ns(), "http", tb.server_ip4() + ":" + std::to_string(kSlow), kFlood, kSeconds,
               {"--timeout", "3000", "--max-sockets", "10000"});
    size_t peak = 0;
    double inflight_peak = 0;
    while (flood.running() && since(flood.started()) < kSeconds + 5) {
        peak = std::max(peak, flows.count());
        inflight_peak = std::max(inflight_peak, ctl.find("sluice_inflight{service=\"slow\"}").value_or(0));
        std::this_thread::sleep_for(200ms);
    }
    const json& f = flood.result();
    const json& w = web.result();
    numbers("flood: " + describe(f));
    numbers("web during the flood: " + describe(w));

    // When the load has stopped, in-flight returns to its true value: 0.
    auto zero = [&] {
        return ctl.metric("sluice_inflight{service=\"slow\"}") == 0 &&
               ctl.metric("sluice_inflight{service=\"web\"}") == 0;
    };
    auto t = Clock::now();
    bool settled = await(zero, 5s, 100ms);
    const double settle_s = since(t);
    const std::string log = ctl.log();
    std::string leaks;
    {
        std::istringstream in(log);
        for (std::string line; std::getline(in, line);)
            if (contains(line, "in-flight slots held by no live flow")) leaks += "\n    " + line;
    }
    numbers("flow table: peak " + std::to_string(peak) + " entries (max_entries " +
            std::to_string(flows.info.max_entries) + "); slow's published in-flight peaked at " +
            fmt("%.0f", inflight_peak) + "; back to 0 " + (settled ? fmt("%.2f s after the load", settle_s) : "never") +
            "; reconciliation log:" + (leaks.empty() ? " none" : leaks));

    // The table filled and the LRU kept it bounded. The kernel's LRU frees
    // room in batches of up to 128 entries per CPU before it is full, so a
    // sampled peak may sit that far below flow_entries (here 937 to 987).
    const size_t lru_batches = 128 * size_t(libbpf_num_possible_cpus());
    EXPECT_LE(peak, size_t(kFlows)) << "the flow table held more flows than flow_entries";
    EXPECT_GE(peak, size_t(kFlows) - std::min(size_t(kFlows) / 2, lru_batches))
        << "the flood did not fill the flow table";
    // Evicted pending flows leaked slots, which the controller found.
    EXPECT_FALSE(leaks.empty()) << "no in-flight slot was reconciled: nothing was evicted";
    EXPECT_TRUE(settled) << ctl.page();
    // The flooded service's requests were sent and admitted (its server is
    // just slow), and web served as well during the flood as before it.
    EXPECT_GE(u64(f.at("sent")), uint64_t(0.9 * kFlood * kSeconds)) << describe(f);
    auto ok = series(w, "success");
    ASSERT_GE(ok.size(), size_t(kSeconds + 4));
    double alone = (ok[1] + ok[2] + ok[3]) / 3, flooded = 0;
    for (int i = 4; i < 4 + int(kSeconds); i++) flooded += ok[i] / kSeconds;
    numbers("web: " + fmt("%.1f", alone) + "/s succeeded alone (seconds 1-3), " + fmt("%.1f", flooded) +
            "/s during the flood (seconds 4-7), of " + std::to_string(kWebRate) + "/s offered");
    EXPECT_GE(flooded, 0.9 * alone) << describe(w);
}

TEST(ReliabilityResources, FloodOfNewFlowsEvictsFromTheConfiguredTableAndKeepsServicesWorking)
{
    flood_of_new_flows();
}

// The leak the previous test provokes, injected directly: under 5x overload
// (the learned limit is what admits), every flow of the table is deleted at
// once, which is what LRU eviction does to a flow. The slots of the pending
// requests are then held by no flow and the kernel's in-flight count is too
// high by that many, so the service is refused until the controller finds
// them (it reconciles once a second); then goodput is back at capacity, and
// in-flight reads 0 when the load stops.
void lost_flows_are_reconciled(Retry& retry)
{
    constexpr int kWeb = 8080, kWorkers = 8, kServiceMs = 20;
    constexpr double kCapacity = kWorkers * 1000.0 / kServiceMs;
    constexpr int kSeconds = 8;
    constexpr double kInjectAt = 4.0;
    Testbed tb;
    SluiceCli cli;
    cli.must({"-n", tb.server_ns(), "attach", tb.server_dev()});
    cli.must({"service", "add", "web", "--port", std::to_string(kWeb), "--adaptive", "bbr", "--cpu-threshold", "0",
              "--http", "--reject", "rst"});
    start_capsrv(tb, kWeb, kWorkers, kServiceMs);
    Controller ctl(cli, "web");
    PinnedMap flows(cli.pin_dir() + "/flows");
    Load load(tb.client_ns(), "http", tb.server_ip4() + ":" + std::to_string(kWeb), int(5 * kCapacity), kSeconds,
              {"--timeout", "1000"});
    std::this_thread::sleep_until(load.started() + std::chrono::milliseconds(int(kInjectAt * 1000)));
    const double inflight_before = ctl.metric("sluice_inflight{service=\"web\"}");
    const std::string log_before = ctl.log();
    const size_t erased = flows.erase_all();
    const double injected_at = since(load.started());
    const auto t = Clock::now();
    // The first report of leaked slots after the deletion (a report of 0 is
    // the bias going back once the leak is gone).
    std::string line;
    bool found = await(
        [&] {
            std::istringstream in(ctl.log().substr(log_before.size()));
            for (std::string l; std::getline(in, l);)
                if (contains(l, "in-flight slots held by no live flow") && !contains(l, ": 0 in-flight")) {
                    line = l;
                    return true;
                }
            return false;
        },
        3s, 20ms);
    const double found_s = since(t);
    // The metrics page tells the same number.
    const std::string leaked_metric = "sluice_inflight_leaked{service=\"web\"}";
    const auto reported = [&]() -> double {
        size_t at = line.find("web: ");
        return at == std::string::npos ? -1 : std::stod(line.substr(at + 5));
    };
    const bool metric_agrees =
        found && await([&] { return ctl.find(leaked_metric).value_or(-2) == reported(); }, 1s, 20ms);
    const json& l = load.result();
    bool settled = await([&] { return ctl.metric("sluice_inflight{service=\"web\"}") == 0; }, 5s, 100ms);
    numbers("deleted all " + std::to_string(erased) + " flows at " + fmt("%.2f", injected_at) + " s (in-flight " +
            fmt("%.0f", inflight_before) + "); reconciled " + fmt("%.2f", found_s) + " s later: '" + line +
            "'; in-flight after the load: " + (settled ? "0" : "not 0"));
    numbers("load: " + describe(l));
    {
        std::istringstream in(log_before);
        std::string earlier;
        for (std::string e; std::getline(in, e);)
            if (contains(e, "in-flight slots held by no live flow")) earlier += "\n    " + e;
        numbers("reconciliation before the deletion:" + (earlier.empty() ? std::string(" none") : earlier));
    }
    if (generator_starved(l, retry)) return;
    EXPECT_GT(erased, 0u);
    EXPECT_TRUE(found) << ctl.log();
    EXPECT_LE(found_s, 1.2) << "reconciliation runs once a second";
    EXPECT_TRUE(metric_agrees) << leaked_metric << " " << ctl.find(leaked_metric).value_or(-1) << ", log: " << line;
    EXPECT_TRUE(settled) << ctl.page();
    // Goodput at capacity again from the second after the reconciliation on.
    auto ok = series(l, "success");
    ASSERT_GE(ok.size(), size_t(kSeconds));
    for (size_t s = size_t(std::ceil(injected_at + found_s)); s < size_t(kSeconds); s++)
        EXPECT_GE(ok[s], 0.9 * kCapacity) << "second " << s << ": " << describe(l);
}

TEST(ReliabilityResources, InFlightSlotsOfLostFlowsAreReconciled)
{
    with_one_retry(lost_flows_are_reconciled);
}

// No leak where there is none. Requests begin and end while the census
// walks the flow table; a request that began on a flow the walk had passed,
// or ended on one it had not reached, made slots look held by no flow, which
// the controller reported and took off the in-flight count for a second.
// Before the census learned of them, this test failed in 2 of 4 runs
// (5-9 slots; 20,000 idle flows make the walk 3-4 ms). A breaker-only
// service: governed, so reconciled, and nothing refused.
void churn_is_not_taken_for_leaks(Retry& retry)
{
    constexpr int kWeb = 8080, kRate = 8000, kIdleFlows = 20'000;
    constexpr double kSeconds = 8;
    Testbed tb;
    SluiceCli cli;
    cli.must({"-n", tb.server_ns(), "attach", tb.server_dev()});
    cli.must({"service", "add", "web", "--port", std::to_string(kWeb), "--breaker", "ratio", "--http"});
    start_capsrv(tb, kWeb, 64, 2);  // 32,000/s
    // Idle flows (from 2001:db8::/32) hold no slot; they make the walk as
    // long as on a busier host.
    PinnedMap flows(cli.pin_dir() + "/flows");
    for (uint32_t i = 0; i < uint32_t(kIdleFlows); i++) {
        sl_flow_key key{};
        key.client[0] = 0x20, key.client[1] = 0x01, key.client[2] = 0x0d, key.client[3] = 0xb8;
        std::memcpy(&key.client[12], &i, sizeof i);
        key.client_port = 40000;
        key.server_port = kWeb;
        key.proto = IPPROTO_TCP;
        sl_flow idle{};
        ASSERT_EQ(bpf_map_update_elem(flows.fd, &key, &idle, BPF_NOEXIST), 0) << std::strerror(errno);
    }
    Controller ctl(cli, "web");
    const json& l = run_load(tb.client_ns(), "http", tb.server_ip4() + ":" + std::to_string(kWeb), kRate, kSeconds,
                             {"--timeout", "1000"});
    std::string reports;
    std::istringstream in(ctl.log());
    for (std::string line; std::getline(in, line);)
        if (contains(line, "in-flight slots held by no live flow")) reports += "\n    " + line;
    numbers("load: " + describe(l));
    numbers("leaks reported:" + (reports.empty() ? std::string(" none") : reports));
    if (generator_starved(l, retry)) return;
    // The load ran through (so requests did begin and end during each census).
    EXPECT_GE(outcome(l, "2xx"), uint64_t(0.99 * kRate * kSeconds)) << describe(l);
    EXPECT_TRUE(reports.empty()) << reports;
}

TEST(ReliabilityResources, RequestsDuringTheCensusAreNotTakenForLeaks)
{
    with_one_retry(churn_is_not_taken_for_leaks);
}

// ==================================================================================
// 6. Security
// ==================================================================================

TEST(ReliabilitySecurity, PinsAndPolicyFileAreRootOnlyWhateverTheUmask)
{
    constexpr uid_t kNobody = 65534;
    SluiceCli cli;
    // sluice makes the policy file's directory itself (two levels here).
    const std::string policy = cli.scratch().file("etc/sluice/policy.toml");
    const mode_t old_umask = umask(0);  // the children inherit the most permissive umask
    RunResult r = cli.run({"--policy-file", policy, "service", "add", "web", "--port", "8080", "--rate", "100/s"});
    umask(old_umask);
    ASSERT_EQ(r.exit_code, 0) << r.err;

    auto mode_of = [](const std::string& path) {
        struct stat st {};
        if (lstat(path.c_str(), &st) != 0) throw std::runtime_error("stat " + path);
        return st;
    };
    struct stat dir = mode_of(cli.pin_dir());
    EXPECT_TRUE(S_ISDIR(dir.st_mode));
    EXPECT_EQ(dir.st_mode & 07777, 0700u) << cli.pin_dir();
    EXPECT_EQ(dir.st_uid, 0u);
    int pins = 0;
    for (const auto& e : fs::directory_iterator(cli.pin_dir())) {
        struct stat st = mode_of(e.path().string());
        EXPECT_TRUE(S_ISREG(st.st_mode)) << e.path();
        EXPECT_EQ(st.st_mode & 07777, 0600u) << e.path();
        EXPECT_EQ(st.st_uid, 0u) << e.path();
        pins++;
    }
    struct stat file = mode_of(policy), leaf = mode_of(fs::path(policy).parent_path().string()),
                parent = mode_of(fs::path(policy).parent_path().parent_path().string());
    EXPECT_EQ(file.st_mode & 07777, 0600u);
    EXPECT_EQ(leaf.st_mode & 07777, 0700u);
    EXPECT_EQ(parent.st_mode & 07777, 0755u) << "a directory sluice made above the policy file's";

    // Not root: nothing to read there, and every command is refused.
    RunResult ls = run_in("", {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "ls",
                               cli.pin_dir()});
    RunResult cat = run_in("", {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "cat",
                                policy});
    RunResult exp = cli.run_as(kNobody, kNobody, {"export"});
    EXPECT_NE(ls.exit_code, 0) << ls.out;
    EXPECT_NE(cat.exit_code, 0) << cat.out;
    EXPECT_TRUE(contains(ls.err + cat.err, "Permission denied")) << ls.err << cat.err;
    EXPECT_NE(exp.exit_code, 0);
    EXPECT_EQ(exp.err.rfind("sluice: permission denied", 0), 0u) << exp.err;
    numbers("umask 0: pin directory " + octal(dir.st_mode) + ", " + std::to_string(pins) +
            " pins all 0600; policy file " + octal(file.st_mode) + " in a directory " + octal(leaf.st_mode) +
            " (its parent, also made by sluice: " + octal(parent.st_mode) + "); as nobody: ls pins: " +
            ls.err.substr(0, ls.err.find('\n')) + "; cat policy: " + cat.err.substr(0, cat.err.find('\n')) +
            "; sluice export: " + exp.err.substr(0, exp.err.find('\n')));
}

}  // namespace
}  // namespace sluice::test
