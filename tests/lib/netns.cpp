#include "netns.hpp"

#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "baseline.skel.h"

namespace sluice::test {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr size_t kMaxIfName = IFNAMSIZ - 1;

bool netns_exists(const std::string& name)
{
    struct stat st;
    return stat(("/run/netns/" + name).c_str(), &st) == 0;
}

// Runs a setup command in ns ("" = here); throws with its stderr on failure.
std::string must_run(const std::string& ns, const std::vector<std::string>& argv, Millis timeout = 10s)
{
    RunResult r = run_in(ns, argv, timeout);
    if (!r.ok()) {
        std::string where = ns.empty() ? "" : " (in netns " + ns + ")";
        std::string why = r.timed_out ? "timed out" : "exit status " + std::to_string(r.exit_code);
        throw std::runtime_error("`" + join(argv) + "`" + where + ": " + why + ": " + r.err);
    }
    return r.out;
}

// Kills everything inside /run/netns/name and waits (bounded) until it is gone.
void empty_netns(const std::string& name)
{
    auto deadline = Clock::now() + 3s;
    while (detail::signal_netns_members(name.c_str(), SIGKILL) > 0 && Clock::now() < deadline)
        std::this_thread::sleep_for(5ms);
}

// Deletes the veth explicitly (synchronous, both ends) before the namespace
// entry: freeing a namespace, and the devices in it, is asynchronous.
void destroy_netns(const std::string& name, const std::string& dev)
{
    if (!netns_exists(name)) return;
    empty_netns(name);
    if (!dev.empty()) run_in("", {"ip", "-n", name, "link", "del", "dev", dev}, 5s);
    detail::remove_netns_entry(name.c_str());
}

int ifindex_in(const std::string& ns, const std::string& dev)
{
    int index = 0;
    in_netns(ns, [&] { index = static_cast<int>(if_nametoindex(dev.c_str())); });
    if (index == 0) throw std::runtime_error("no device " + dev + " in netns " + ns);
    return index;
}

// True if this thread's namespace has IPv6's multicast route (ff00::/8) on dev.
bool has_ipv6_multicast_route(const std::string& dev)
{
    std::ifstream routes("/proc/thread-self/net/ipv6_route");
    std::string line;
    while (std::getline(routes, line)) {
        std::istringstream fields(line);
        std::string dest, prefix_len, token, last;
        fields >> dest >> prefix_len;
        while (fields >> token) last = token;
        if (dest == "ff000000000000000000000000000000" && prefix_len == "08" && last == dev) return true;
    }
    return false;
}

// Link state changes reach IPv4/IPv6 through linkwatch, asynchronously:
// waits until dev is operationally up and, with IPv6, has its multicast
// route (without it the first neighbour solicitations are dropped).
void wait_link_ready(const std::string& ns, const std::string& dev, bool ipv6)
{
    bool ready = false;
    in_netns(ns, [&] {
        int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        auto deadline = Clock::now() + 5s;
        for (;;) {
            ifreq request{};
            std::strncpy(request.ifr_name, dev.c_str(), IFNAMSIZ - 1);
            bool running = ioctl(sock, SIOCGIFFLAGS, &request) == 0 && (request.ifr_flags & IFF_RUNNING);
            ready = running && (!ipv6 || has_ipv6_multicast_route(dev));
            if (ready || Clock::now() >= deadline) break;
            std::this_thread::sleep_for(1ms);
        }
        close(sock);
    });
    if (!ready) throw std::runtime_error(dev + " in netns " + ns + " did not come up within 5 s");
}

void attach_xdp_pass(const std::string& ns, int ifindex, const std::string& dev)
{
    in_netns(ns, [&] {
        baseline_bpf* skel = baseline_bpf__open_and_load();
        if (!skel) throw std::runtime_error(std::string("load baseline BPF object: ") + std::strerror(errno));
        // The attachment belongs to the device: it stays when the fds close.
        int err = bpf_xdp_attach(ifindex, bpf_program__fd(skel->progs.xdp_pass), XDP_FLAGS_DRV_MODE, nullptr);
        baseline_bpf__destroy(skel);
        if (err) throw std::runtime_error("attach xdp_pass to " + dev + ": " + std::strerror(-err));
    });
}

std::atomic<int> g_next_testbed{0};

// The pid in a name of the form slt<pid>-<n>c or slt<pid>-<n>s; 0 for other names.
pid_t testbed_owner(const std::string& name)
{
    auto digits_end = [&](size_t from) {
        size_t i = from;
        while (i < name.size() && name[i] >= '0' && name[i] <= '9') ++i;
        return i;
    };
    if (name.rfind("slt", 0) != 0) return 0;
    size_t pid_end = digits_end(3);
    if (pid_end == 3 || pid_end - 3 > 9 || pid_end >= name.size() || name[pid_end] != '-') return 0;
    size_t n_end = digits_end(pid_end + 1);
    if (n_end == pid_end + 1 || n_end + 1 != name.size() || (name[n_end] != 'c' && name[n_end] != 's')) return 0;
    return static_cast<pid_t>(std::stol(name.substr(3, pid_end - 3)));
}

}  // namespace

std::vector<std::string> list_netns()
{
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/run/netns", ec))
        names.push_back(entry.path().filename().string());
    return names;
}

std::vector<std::string> remove_stale_testbeds()
{
    std::vector<std::string> removed;
    for (const auto& name : list_netns()) {
        pid_t pid = testbed_owner(name);
        if (pid <= 0) continue;
        bool owner_alive = pid == getpid() ? detail::netns_tracked(name) : (kill(pid, 0) == 0 || errno == EPERM);
        if (owner_alive) continue;
        destroy_netns(name, name);
        removed.push_back(name);
    }
    return removed;
}

Testbed::Testbed(TestbedOptions options) : options_(options)
{
    detail::install_emergency_cleanup();
    remove_stale_testbeds();
    try {
        setup();
    } catch (...) {
        teardown();
        throw;
    }
}

Testbed::~Testbed() { teardown(); }

void Testbed::setup()
{
    // The names double as interface names (at most 15 characters): numbers
    // wrap around within the digits left after the pid, skipping live ones.
    std::string prefix = "slt" + std::to_string(getpid()) + "-";
    int limit = 1;
    for (size_t digits = prefix.size() + 1; digits < kMaxIfName && limit < 100000; ++digits) limit *= 10;
    for (int attempt = 0;; ++attempt) {
        if (attempt == limit) throw std::runtime_error("no free testbed name with prefix " + prefix);
        int n = g_next_testbed++ % limit;
        client_ns_ = prefix + std::to_string(n) + "c";
        server_ns_ = prefix + std::to_string(n) + "s";
        if (netns_exists(client_ns_) || netns_exists(server_ns_)) continue;
        subnet_ = n % 256;
        break;
    }
    // Tracked before they exist, so a signal at any point cleans them up.
    client_slot_ = detail::track_netns(client_ns_);
    server_slot_ = detail::track_netns(server_ns_);
    must_run("", {"ip", "netns", "add", client_ns_});
    must_run("", {"ip", "netns", "add", server_ns_});

    if (!options_.ipv6) {
        for (const auto& ns : {client_ns_, server_ns_}) {
            sysctl(ns, "net.ipv6.conf.all.disable_ipv6", "1");
            sysctl(ns, "net.ipv6.conf.default.disable_ipv6", "1");
        }
    }
    // Created directly inside the namespaces: the host never sees either end.
    // Distinct ifindexes on the two ends: the kernel treats a device whose
    // ifindex equals its iflink as a non-urgent link event (linkwatch delays
    // it up to 1 s), and until then IPv6 has no multicast route and drops
    // neighbour solicitations. Fresh namespaces would give both ends index 2.
    must_run("", {"ip", "-n", client_ns_, "link", "add", client_dev(), "index", "10", "type", "veth", "peer",
                  "name", server_dev(), "index", "20", "netns", server_ns_});

    struct Side {
        const std::string& ns;
        const std::string& dev;
        int host;
    };
    for (const Side& side : {Side{client_ns_, client_dev(), 1}, Side{server_ns_, server_dev(), 2}}) {
        must_run("", {"ip", "-n", side.ns, "link", "set", "lo", "up"});
        must_run("", {"ip", "-n", side.ns, "addr", "add", ip4(side.host) + "/24", "dev", side.dev});
        if (options_.ipv6)
            must_run("", {"ip", "-n", side.ns, "-6", "addr", "add", ip6(side.host) + "/64", "dev", side.dev,
                          "nodad"});
        if (options_.tx_checksum_offload_off) must_run(side.ns, {"ethtool", "-K", side.dev, "tx", "off"});
        must_run("", {"ip", "-n", side.ns, "link", "set", side.dev, "up"});
    }
    if (options_.server_gro) must_run(server_ns_, {"ethtool", "-K", server_dev(), "gro", "on"});

    wait_link_ready(client_ns_, client_dev(), options_.ipv6);
    wait_link_ready(server_ns_, server_dev(), options_.ipv6);

    client_ifindex_ = ifindex_in(client_ns_, client_dev());
    server_ifindex_ = ifindex_in(server_ns_, server_dev());
    if (options_.client_xdp_pass) attach_xdp_pass(client_ns_, client_ifindex_, client_dev());
}

void Testbed::teardown() noexcept
{
    try {
        processes_.clear();
        // One delete removes both veth ends; the second call finds it gone.
        if (!client_ns_.empty()) destroy_netns(client_ns_, client_dev());
        if (!server_ns_.empty()) destroy_netns(server_ns_, server_dev());
    } catch (...) {
        // Best effort: whatever remains is removed by the next remove_stale_testbeds().
    }
    detail::untrack_netns(client_slot_);
    detail::untrack_netns(server_slot_);
    client_slot_ = server_slot_ = -1;
}

std::string Testbed::ip4(int host) const
{
    return "198.18." + std::to_string(subnet_) + "." + std::to_string(host);
}

std::string Testbed::ip6(int host) const
{
    char text[64];
    std::snprintf(text, sizeof text, "2001:db8:%x::%x", subnet_, host);
    // Canonical form (2001:db8::1 for subnet 0), as getsockname and ip print it.
    in6_addr address;
    inet_pton(AF_INET6, text, &address);
    inet_ntop(AF_INET6, &address, text, sizeof text);
    return text;
}

void Testbed::add_client_address(const std::string& ip)
{
    bool v6 = ip.find(':') != std::string::npos;
    auto slash = ip.find('/');
    std::string address = ip.substr(0, slash);
    std::string host_route = address + (v6 ? "/128" : "/32");
    std::string cidr = slash == std::string::npos ? host_route : ip;
    std::vector<std::string> add = {"ip", "-n", client_ns_, v6 ? "-6" : "-4", "addr", "add", cidr, "dev", client_dev()};
    if (v6) add.push_back("nodad");
    must_run("", add);
    must_run("", {"ip", "-n", server_ns_, v6 ? "-6" : "-4", "route", "replace", host_route, "dev", server_dev()});
}

std::string Testbed::run(const std::string& ns, const std::vector<std::string>& argv, Millis timeout)
{
    return must_run(ns, argv, timeout);
}

void Testbed::sysctl(const std::string& ns, const std::string& key, const std::string& value)
{
    // Only net.* is per namespace, and only the testbed's may change: the
    // host's must stay as they are.
    if (key.rfind("net.", 0) != 0 && key.rfind("net/", 0) != 0)
        throw std::invalid_argument("sysctl " + key + " is not per network namespace");
    if (ns != client_ns_ && ns != server_ns_)
        throw std::invalid_argument("sysctl " + key + ": '" + ns + "' is not a namespace of this testbed");
    std::string path = key;
    if (path.find('/') == std::string::npos)
        for (char& c : path)
            if (c == '.') c = '/';
    path = "/proc/sys/" + path;
    // /proc/sys/net resolves against the writing thread's network namespace.
    in_netns(ns, [&] {
        std::ofstream out(path);
        out << value << '\n';
        out.flush();
        if (!out) throw std::runtime_error("sysctl " + key + "=" + value + " in netns " + ns + ": write failed");
    });
}

Process& Testbed::spawn(const std::string& ns, std::vector<std::string> argv, ProcessOptions options)
{
    processes_.push_back(std::make_unique<Process>(ns, std::move(argv), std::move(options)));
    return *processes_.back();
}

}  // namespace sluice::test
