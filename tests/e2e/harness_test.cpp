// Tests of the end-to-end harness itself (tests/lib), on the real kernel.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "../lib/netns.hpp"
#include "../lib/sluice_cli.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

bool listed(const std::vector<std::string>& names, const std::string& name)
{
    return std::find(names.begin(), names.end(), name) != names.end();
}

// Polls cond every few milliseconds until it holds or timeout passes.
template <typename Cond>
bool eventually(Cond cond, Millis timeout = 3s)
{
    auto deadline = Clock::now() + timeout;
    while (!cond()) {
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(2ms);
    }
    return true;
}

class Socket {
public:
    explicit Socket(int fd = -1) : fd_(fd) {}
    ~Socket()
    {
        if (fd_ >= 0) close(fd_);
    }
    Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Socket& operator=(Socket&&) = delete;
    int fd() const { return fd_; }

private:
    int fd_;
};

struct Address {
    sockaddr_storage storage{};
    socklen_t len = 0;

    Address() = default;
    Address(const std::string& ip, uint16_t port)
    {
        if (ip.find(':') != std::string::npos) {
            auto* a = reinterpret_cast<sockaddr_in6*>(&storage);
            a->sin6_family = AF_INET6;
            a->sin6_port = htons(port);
            if (inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr) != 1) throw std::invalid_argument(ip);
            len = sizeof *a;
        } else {
            auto* a = reinterpret_cast<sockaddr_in*>(&storage);
            a->sin_family = AF_INET;
            a->sin_port = htons(port);
            if (inet_pton(AF_INET, ip.c_str(), &a->sin_addr) != 1) throw std::invalid_argument(ip);
            len = sizeof *a;
        }
    }
    int family() const { return storage.ss_family; }
    const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
    sockaddr* sa() { return reinterpret_cast<sockaddr*>(&storage); }
    std::string ip() const
    {
        char buf[INET6_ADDRSTRLEN] = {};
        if (family() == AF_INET6)
            inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf, sizeof buf);
        else
            inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf, sizeof buf);
        return buf;
    }
    uint16_t port() const
    {
        return ntohs(family() == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port
                                          : reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
    }
};

// A socket created inside ns and bound to ip (port 0: any), with 5 s I/O
// timeouts; usable from here.
Socket open_socket(const std::string& ns, int type, const std::string& ip)
{
    int fd = -1;
    in_netns(ns, [&] {
        Address local(ip, 0);
        fd = socket(local.family(), type | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, local.sa(), local.len) != 0)
            throw std::runtime_error("socket/bind " + ip + ": " + std::strerror(errno));
        // Bounds connect, send and recv.
        timeval five_seconds{5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &five_seconds, sizeof five_seconds);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &five_seconds, sizeof five_seconds);
    });
    return Socket(fd);
}

Address local_address(const Socket& s)
{
    Address a;
    a.len = sizeof a.storage;
    getsockname(s.fd(), a.sa(), &a.len);
    return a;
}

// One datagram, waiting at most timeout; returns the payload and the sender.
std::optional<std::pair<std::string, Address>> receive(const Socket& s, Millis timeout = 2s)
{
    pollfd pfd{s.fd(), POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char buf[2048];
    Address from;
    from.len = sizeof from.storage;
    ssize_t n = recvfrom(s.fd(), buf, sizeof buf, 0, from.sa(), &from.len);
    if (n < 0) return std::nullopt;
    return std::make_pair(std::string(buf, static_cast<size_t>(n)), from);
}

// A UDP request from client_ip in the client namespace to the server and a
// reply back; checks the server saw client_ip as the source.
void expect_udp_round_trip(const Testbed& tb, const std::string& client_ip, const std::string& server_ip)
{
    SCOPED_TRACE(client_ip + " -> " + server_ip);
    Socket server = open_socket(tb.server_ns(), SOCK_DGRAM, server_ip);
    Socket client = open_socket(tb.client_ns(), SOCK_DGRAM, client_ip);
    Address to(server_ip, local_address(server).port());
    ASSERT_EQ(sendto(client.fd(), "ping", 4, 0, to.sa(), to.len), 4) << std::strerror(errno);
    auto request = receive(server);
    ASSERT_TRUE(request) << "no request reached the server";
    EXPECT_EQ(request->first, "ping");
    EXPECT_EQ(request->second.ip(), client_ip);
    ASSERT_EQ(sendto(server.fd(), "pong", 4, 0, request->second.sa(), request->second.len), 4);
    auto reply = receive(client);
    ASSERT_TRUE(reply) << "no reply reached the client";
    EXPECT_EQ(reply->first, "pong");
    EXPECT_EQ(reply->second.ip(), server_ip);
}

// Runs fn in the network namespace behind fd (which may have lost its name).
void in_netns_fd(int fd, const std::function<void()>& fn)
{
    std::thread worker([&] {
        ASSERT_EQ(setns(fd, CLONE_NEWNET), 0) << std::strerror(errno);
        fn();
    });
    worker.join();
}

std::string host_links() { return run_in("", {"ip", "-o", "link", "show"}).out; }
std::string ip_netns_list() { return run_in("", {"ip", "netns", "list"}).out; }
std::string our_prefix() { return "slt" + std::to_string(getpid()) + "-"; }

// ---------------------------------------------------------------------------

TEST(HarnessTestbed, NamespacesExistAndConnectOverIPv4AndIPv6)
{
    Testbed tb;
    std::string listed_ns = ip_netns_list();
    EXPECT_TRUE(contains(listed_ns, tb.client_ns())) << listed_ns;
    EXPECT_TRUE(contains(listed_ns, tb.server_ns())) << listed_ns;
    EXPECT_LE(tb.client_dev().size(), 15u);
    EXPECT_NE(tb.client_dev(), tb.server_dev());
    EXPECT_EQ(tb.client_ip4(), "198.18." + std::to_string(tb.subnet()) + ".1");
    EXPECT_EQ(tb.server_ip6().rfind("2001:db8:", 0), 0u);

    // Each veth end is inside its namespace with the reported ifindex, and the host sees neither.
    in_netns(tb.client_ns(), [&] { EXPECT_EQ(static_cast<int>(if_nametoindex(tb.client_dev().c_str())), tb.client_ifindex()); });
    in_netns(tb.server_ns(), [&] { EXPECT_EQ(static_cast<int>(if_nametoindex(tb.server_dev().c_str())), tb.server_ifindex()); });
    EXPECT_FALSE(contains(host_links(), our_prefix()));

    // "At once": a first neighbour solicitation lost to a link not yet up
    // would only be retransmitted after 1 s.
    auto start = Clock::now();
    expect_udp_round_trip(tb, tb.client_ip4(), tb.server_ip4());
    expect_udp_round_trip(tb, tb.client_ip6(), tb.server_ip6());
    EXPECT_LT(Clock::now() - start, 900ms) << "IPv4 or IPv6 was not usable at once";
}

TEST(HarnessTestbed, VethOffloadsAreSetForRealChecksumsAndNapi)
{
    Testbed tb;
    for (const auto& [ns, dev] : {std::pair{tb.client_ns(), tb.client_dev()}, std::pair{tb.server_ns(), tb.server_dev()}}) {
        std::string features = tb.run(ns, {"ethtool", "-k", dev});
        EXPECT_TRUE(contains(features, "tx-checksumming: off")) << dev << "\n" << features;
    }
    EXPECT_TRUE(contains(tb.run(tb.server_ns(), {"ethtool", "-k", tb.server_dev()}), "generic-receive-offload: on"));
}

TEST(HarnessTestbed, ClientVethRunsXdpPassInDriverMode)
{
    Testbed tb;
    in_netns(tb.client_ns(), [&] {
        LIBBPF_OPTS(bpf_xdp_query_opts, query);
        ASSERT_EQ(bpf_xdp_query(tb.client_ifindex(), 0, &query), 0);
        EXPECT_EQ(query.attach_mode, XDP_ATTACHED_DRV);
        ASSERT_NE(query.drv_prog_id, 0u);
        int prog = bpf_prog_get_fd_by_id(query.drv_prog_id);
        ASSERT_GE(prog, 0);
        bpf_prog_info info{};
        __u32 len = sizeof info;
        ASSERT_EQ(bpf_obj_get_info_by_fd(prog, &info, &len), 0);
        close(prog);
        EXPECT_STREQ(info.name, "xdp_pass");
    });
    in_netns(tb.server_ns(), [&] {
        LIBBPF_OPTS(bpf_xdp_query_opts, query);
        ASSERT_EQ(bpf_xdp_query(tb.server_ifindex(), 0, &query), 0);
        EXPECT_EQ(query.attach_mode, XDP_ATTACHED_NONE) << "the server veth is left to the code under test";
    });
    EXPECT_TRUE(contains(tb.run("", {"ip", "-n", tb.client_ns(), "-d", "link", "show", "dev", tb.client_dev()}),
                         "xdp"));
}

TEST(HarnessTestbed, OptionsTurnOffIpv6AndXdp)
{
    Testbed tb(TestbedOptions{.ipv6 = false, .tx_checksum_offload_off = true, .server_gro = true, .client_xdp_pass = false});
    EXPECT_EQ(tb.run(tb.client_ns(), {"sysctl", "-n", "net.ipv6.conf.all.disable_ipv6"}), "1\n");
    EXPECT_EQ(tb.run("", {"ip", "-n", tb.server_ns(), "-6", "addr", "show"}), "");
    in_netns(tb.client_ns(), [&] {
        LIBBPF_OPTS(bpf_xdp_query_opts, query);
        ASSERT_EQ(bpf_xdp_query(tb.client_ifindex(), 0, &query), 0);
        EXPECT_EQ(query.attach_mode, XDP_ATTACHED_NONE);
    });
    expect_udp_round_trip(tb, tb.client_ip4(), tb.server_ip4());
}

TEST(HarnessTestbed, ExtraClientAddressesAreUsableSources)
{
    Testbed tb;
    // In the subnet, outside it (the server gets a route), and IPv6.
    std::vector<std::string> sources = {tb.ip4(10), tb.ip4(11), "198.19." + std::to_string(tb.subnet()) + ".10",
                                        tb.ip6(0x10)};
    for (const auto& ip : sources) tb.add_client_address(ip);
    for (const auto& ip : sources)
        expect_udp_round_trip(tb, ip, ip.find(':') != std::string::npos ? tb.server_ip6() : tb.server_ip4());
}

TEST(HarnessTestbed, RunAndSysctlActInsideOneNamespace)
{
    Testbed tb;
    tb.sysctl(tb.server_ns(), "net.core.somaxconn", "77");
    EXPECT_EQ(tb.run(tb.server_ns(), {"sysctl", "-n", "net.core.somaxconn"}), "77\n");
    EXPECT_NE(tb.run(tb.client_ns(), {"sysctl", "-n", "net.core.somaxconn"}), "77\n");
    EXPECT_NE(tb.run("", {"sysctl", "-n", "net.core.somaxconn"}), "77\n");
    EXPECT_THROW(tb.sysctl(tb.server_ns(), "kernel.pid_max", "4096"), std::invalid_argument);
    EXPECT_THROW(tb.sysctl("", "net.core.somaxconn", "77"), std::invalid_argument);

    tb.run(tb.server_ns(), {"tc", "qdisc", "replace", "dev", tb.server_dev(), "root", "pfifo", "limit", "123"});
    EXPECT_TRUE(contains(tb.run(tb.server_ns(), {"tc", "qdisc", "show", "dev", tb.server_dev()}), "limit 123"));

    // Commands see only their own namespace's devices.
    std::string links = tb.run(tb.server_ns(), {"ip", "-o", "link", "show"});
    EXPECT_TRUE(contains(links, tb.server_dev() + "@"));
    EXPECT_FALSE(contains(links, tb.client_dev() + "@"));

    try {
        tb.run(tb.server_ns(), {"ip", "link", "set", "dev", "nosuchdev", "up"});
        ADD_FAILURE() << "a failing command must throw";
    } catch (const std::runtime_error& e) {
        EXPECT_TRUE(contains(e.what(), "nosuchdev")) << e.what();
        EXPECT_TRUE(contains(e.what(), "exit status")) << e.what();
    }
}

TEST(HarnessTestbed, TeardownRemovesNamespacesAndVeths)
{
    std::string client_ns, server_ns, client_dev, server_dev;
    int client_fd = -1, server_fd = -1;
    {
        Testbed tb;
        client_ns = tb.client_ns();
        server_ns = tb.server_ns();
        client_dev = tb.client_dev();
        server_dev = tb.server_dev();
        // Holding the namespaces open keeps them alive past teardown, so we
        // can look inside for the veth ends.
        client_fd = open(("/run/netns/" + client_ns).c_str(), O_RDONLY | O_CLOEXEC);
        server_fd = open(("/run/netns/" + server_ns).c_str(), O_RDONLY | O_CLOEXEC);
        ASSERT_GE(client_fd, 0);
        ASSERT_GE(server_fd, 0);
    }
    EXPECT_FALSE(listed(list_netns(), client_ns));
    EXPECT_FALSE(listed(list_netns(), server_ns));
    EXPECT_FALSE(contains(ip_netns_list(), our_prefix()));
    in_netns_fd(client_fd, [&] { EXPECT_EQ(if_nametoindex(client_dev.c_str()), 0u) << "client veth still exists"; });
    in_netns_fd(server_fd, [&] { EXPECT_EQ(if_nametoindex(server_dev.c_str()), 0u) << "server veth still exists"; });
    close(client_fd);
    close(server_fd);
    EXPECT_FALSE(contains(host_links(), our_prefix()));
}

TEST(HarnessTestbed, ExceptionUnwindingRemovesNamespaces)
{
    std::string client_ns;
    try {
        Testbed tb;
        client_ns = tb.client_ns();
        throw std::runtime_error("test failed midway");
    } catch (const std::runtime_error&) {
    }
    ASSERT_FALSE(client_ns.empty());
    EXPECT_FALSE(listed(list_netns(), client_ns));
}

TEST(HarnessTestbed, ServerProcessIsReachableAndKilledAtTeardown)
{
    pid_t server_pid = 0, grandchild = 0, escaped = 0;
    {
        Testbed tb;
        constexpr uint16_t port = 8080;
        Process& server = tb.spawn(tb.server_ns(), {"/usr/bin/python3", "-m", "http.server", "--bind",
                                                    tb.server_ip4(), std::to_string(port)});
        server_pid = server.pid();
        ASSERT_TRUE(wait_tcp_listening(tb.server_ns(), port, 10s)) << server.stderr_text();
        EXPECT_FALSE(wait_tcp_listening(tb.client_ns(), port, 0ms)) << "the listener is in the server namespace only";

        Socket client = open_socket(tb.client_ns(), SOCK_STREAM, tb.client_ip4());
        Address to(tb.server_ip4(), port);
        ASSERT_EQ(connect(client.fd(), to.sa(), to.len), 0) << std::strerror(errno);
        std::string request = "GET / HTTP/1.0\r\n\r\n";
        ASSERT_EQ(send(client.fd(), request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
        std::string response;
        char buf[4096];
        ssize_t n;
        while ((n = recv(client.fd(), buf, sizeof buf, 0)) > 0) response.append(buf, static_cast<size_t>(n));
        EXPECT_EQ(response.rfind("HTTP/1.0 200", 0), 0u) << response.substr(0, 200);
        EXPECT_TRUE(server.wait_for_output("\"GET / HTTP/1.0\" 200", 5s)) << server.stderr_text();

        // A grandchild in the process group, and one that left the group with setsid.
        Process& shell = tb.spawn(tb.server_ns(), {"sh", "-c", "sleep 600 & echo $!; setsid sleep 600 & echo $!; wait"});
        ASSERT_TRUE(eventually([&] {
            std::string text = shell.stdout_text();
            return std::count(text.begin(), text.end(), '\n') == 2;
        }));
        std::istringstream pids(shell.stdout_text());
        pids >> grandchild >> escaped;
        ASSERT_TRUE(pid_alive(grandchild));
        ASSERT_TRUE(pid_alive(escaped));
        auto members = netns_pids(tb.server_ns());
        EXPECT_NE(std::find(members.begin(), members.end(), escaped), members.end());
    }
    EXPECT_FALSE(pid_alive(server_pid));
    EXPECT_FALSE(pid_alive(grandchild));
    EXPECT_FALSE(pid_alive(escaped));
}

TEST(HarnessProcess, CapturesOutputAndExitStatus)
{
    RunResult r = run_in("", {"sh", "-c", "echo out; echo err >&2; exit 3"});
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.out, "out\n");
    EXPECT_EQ(r.err, "err\n");
    EXPECT_TRUE(run_in("", {"true"}).ok());

    auto file = std::filesystem::temp_directory_path() / ("sluice-harness-" + std::to_string(getpid()) + ".log");
    {
        Process p("", {"sh", "-c", "echo to-file"}, ProcessOptions{.stdout_path = file.string(), .stderr_path = {}, .term_grace = 1s});
        ASSERT_EQ(p.wait_exit(5s), 0);
        EXPECT_EQ(p.stdout_text(), "to-file\n");
    }
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, "to-file");
    std::filesystem::remove(file);
}

TEST(HarnessProcess, TimeoutKillsTheCommand)
{
    auto start = Clock::now();
    RunResult r = run_in("", {"sleep", "30"}, 200ms);
    EXPECT_TRUE(r.timed_out);
    EXPECT_EQ(r.exit_code, -SIGTERM);
    EXPECT_LT(Clock::now() - start, 5s);
}

TEST(HarnessProcess, WaitsForOutputAndDeliversSignals)
{
    Process p("", {"sh", "-c", "echo ready; exec sleep 600"});
    ASSERT_TRUE(p.wait_for_output("ready", 5s));
    EXPECT_TRUE(p.running());
    EXPECT_FALSE(p.wait_exit(0ms));
    p.signal(SIGUSR1);
    EXPECT_EQ(p.wait_exit(5s), -SIGUSR1);
    EXPECT_FALSE(p.running());

    // Exiting without printing ends the wait at once, not at the timeout.
    Process quiet("", {"true"});
    auto start = Clock::now();
    EXPECT_FALSE(quiet.wait_for_output("never printed", 30s));
    EXPECT_LT(Clock::now() - start, 10s);
}

TEST(HarnessProcess, StopEscalatesToSigkill)
{
    Process stubborn("", {"/usr/bin/python3", "-c",
                          "import signal, time\n"
                          "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                          "print('ready', flush=True)\n"
                          "time.sleep(600)\n"},
                     ProcessOptions{.stdout_path = {}, .stderr_path = {}, .term_grace = 300ms});
    ASSERT_TRUE(stubborn.wait_for_output("ready", 10s)) << stubborn.stderr_text();
    pid_t pid = stubborn.pid();
    EXPECT_EQ(stubborn.stop(), -SIGKILL);
    EXPECT_FALSE(pid_alive(pid));
}

TEST(HarnessProcess, SpawnFailuresThrow)
{
    EXPECT_THROW(Process("", {"/nonexistent/command"}), std::runtime_error);
    EXPECT_THROW(Process("no-such-netns-" + std::to_string(getpid()), {"true"}), std::runtime_error);
    EXPECT_THROW(Process("", {}), std::invalid_argument);
}

// ---- crashes and signals in a test process ----------------------------------

struct ChildTestbed {
    pid_t child = -1;
    std::string client_ns, server_ns;
    pid_t sleeper = -1;
    std::string error;
};

// Forks a child that builds a Testbed with a process in it, reports the
// names, then does `then` (which must not return normally). The child first
// resets default_signal, if given, to its default action.
ChildTestbed fork_testbed_child(void (*then)(), int default_signal = 0)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    pid_t child = fork();
    if (child < 0) throw std::runtime_error("fork");
    if (child == 0) {
        close(fds[0]);
        if (default_signal) signal(default_signal, SIG_DFL);
        try {
            Testbed tb;
            Process& sleeper = tb.spawn(tb.server_ns(), {"sleep", "600"});
            dprintf(fds[1], "%s %s %d\n", tb.client_ns().c_str(), tb.server_ns().c_str(), sleeper.pid());
            then();
        } catch (const std::exception& e) {
            dprintf(fds[1], "error %s\n", e.what());
        }
        _exit(99);
    }
    close(fds[1]);
    ChildTestbed result;
    result.child = child;
    pollfd pfd{fds[0], POLLIN, 0};
    std::string line;
    char c;
    while (poll(&pfd, 1, 30000) == 1 && read(fds[0], &c, 1) == 1 && c != '\n') line += c;
    close(fds[0]);
    if (line.rfind("error ", 0) == 0) {
        result.error = line;
        return result;
    }
    std::istringstream fields(line);
    fields >> result.client_ns >> result.server_ns >> result.sleeper;
    if (result.server_ns.empty()) result.error = "the child reported no testbed: '" + line + "'";
    return result;
}

// The child's wait status; a child still running after timeout is killed,
// which the caller sees as death by SIGKILL.
int wait_child(pid_t child, Millis timeout = 30s)
{
    int status = 0;
    if (!eventually([&] { return waitpid(child, &status, WNOHANG) == child; }, timeout)) {
        ADD_FAILURE() << "child " << child << " still running after " << timeout.count() << " ms";
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
    }
    return status;
}



TEST(HarnessCleanup, StaleNamespacesOfAKilledTestAreRemovedByTheNextTestbed)
{
    // SIGKILL: nothing in the dying process can clean up.
    ChildTestbed crashed = fork_testbed_child([] { raise(SIGKILL); });
    int status = wait_child(crashed.child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
    ASSERT_EQ(crashed.error, "");
    ASSERT_TRUE(listed(list_netns(), crashed.client_ns));
    ASSERT_TRUE(listed(list_netns(), crashed.server_ns));
    ASSERT_TRUE(pid_alive(crashed.sleeper));

    Testbed next;
    EXPECT_FALSE(listed(list_netns(), crashed.client_ns));
    EXPECT_FALSE(listed(list_netns(), crashed.server_ns));
    EXPECT_FALSE(pid_alive(crashed.sleeper)) << "a process left in a stale namespace survived";
    EXPECT_TRUE(listed(list_netns(), next.client_ns()));
}

class HarnessSignal : public ::testing::TestWithParam<int> {};

TEST_P(HarnessSignal, TestKilledBySignalCleansUpAndDiesOfIt)
{
    int sig = GetParam();
    ChildTestbed child;
    if (sig == SIGABRT) {
        child = fork_testbed_child([] {
            rlimit no_core{0, 0};
            setrlimit(RLIMIT_CORE, &no_core);
            abort();
        });
    } else {
        // Background jobs of non-interactive shells start with SIGINT
        // ignored, which the harness respects: the child un-ignores it.
        child = fork_testbed_child([] {
            for (;;) pause();
        }, sig);
        ASSERT_EQ(kill(child.child, sig), 0);
    }
    int status = wait_child(child.child);
    ASSERT_EQ(child.error, "");
    ASSERT_TRUE(WIFSIGNALED(status)) << "status " << status;
    EXPECT_EQ(WTERMSIG(status), sig) << "the signal is re-raised after cleanup";
    EXPECT_FALSE(listed(list_netns(), child.client_ns));
    EXPECT_FALSE(listed(list_netns(), child.server_ns));
    EXPECT_TRUE(eventually([&] { return !pid_alive(child.sleeper); })) << "the spawned process survived";
    EXPECT_FALSE(contains(host_links(), "slt" + std::to_string(child.child) + "-"));
}

INSTANTIATE_TEST_SUITE_P(HarnessSignals, HarnessSignal, ::testing::Values(SIGINT, SIGTERM, SIGABRT),
                         [](const auto& info) { return std::string(sigabbrev_np(info.param)); });

}  // namespace
}  // namespace sluice::test
