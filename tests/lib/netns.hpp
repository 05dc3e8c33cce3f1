// A two-namespace testbed for end-to-end tests: a client and a server network
// namespace joined by a veth pair, removed again however the test ends.
//
//   sluice::test::Testbed tb;
//   tb.spawn(tb.server_ns(), {"python3", "-m", "http.server", "--bind", tb.server_ip4(), "8080"});
//   ASSERT_TRUE(sluice::test::wait_tcp_listening(tb.server_ns(), 8080, 5s));
//   tb.add_client_address(tb.ip4(10));  // a second tenant
//   auto r = sluice::test::run_in(tb.client_ns(), {"python3", "-c", "...connect from 198.18.N.10..."});
//   EXPECT_EQ(r.exit_code, 0) << r.err;
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "process.hpp"

namespace sluice::test {

struct TestbedOptions {
    bool ipv6 = true;
    // veth receivers trust CHECKSUM_PARTIAL: with tx offload off on both ends,
    // every checksum on the wire (including crafted replies) is really checked.
    bool tx_checksum_offload_off = true;
    // GRO makes the server veth run NAPI, which native XDP there needs.
    bool server_gro = true;
    // XDP_TX frames from the server veth are only delivered if its peer runs
    // XDP: attach baseline's xdp_pass to the client veth (native mode).
    bool client_xdp_pass = true;
};

class Testbed {
public:
    // Removes stale namespaces of dead test processes first, then builds
    // slt<pid>-<n>c and slt<pid>-<n>s. Throws std::runtime_error (after
    // cleaning up what it made) if any step fails.
    explicit Testbed(TestbedOptions options = {});
    // Stops spawned processes, kills anything else left in the namespaces,
    // deletes the veth pair and both namespaces.
    ~Testbed();

    Testbed(const Testbed&) = delete;
    Testbed& operator=(const Testbed&) = delete;

    const std::string& client_ns() const { return client_ns_; }
    const std::string& server_ns() const { return server_ns_; }
    // Each veth end has the name of the namespace it lives in.
    const std::string& client_dev() const { return client_ns_; }
    const std::string& server_dev() const { return server_ns_; }
    int client_ifindex() const { return client_ifindex_; }
    int server_ifindex() const { return server_ifindex_; }

    // Client is host 1, server host 2 of 198.18.<subnet>.0/24 and 2001:db8:<subnet>::/64.
    int subnet() const { return subnet_; }
    bool ipv6() const { return options_.ipv6; }
    std::string ip4(int host) const;
    std::string ip6(int host) const;
    std::string client_ip4() const { return ip4(1); }
    std::string server_ip4() const { return ip4(2); }
    std::string client_ip6() const { return ip6(1); }
    std::string server_ip6() const { return ip6(2); }

    // Adds a further source address on the client veth (IPv4 as /32, IPv6 as
    // /128 without DAD, or with an explicit prefix) and a route to it on the
    // server, so addresses outside the testbed's subnet work too.
    void add_client_address(const std::string& ip);

    // Runs a short command in ns (tc, sysctl, ip, ...). Throws
    // std::runtime_error with the command's stderr if it fails or times out.
    std::string run(const std::string& ns, const std::vector<std::string>& argv,
                    Millis timeout = std::chrono::seconds(10));
    // Writes /proc/sys/<key with '.' as '/'> inside ns, e.g. ("net.core.somaxconn", "64").
    // Only net.* keys and this testbed's namespaces are accepted (std::invalid_argument
    // otherwise): anything else would change the host.
    void sysctl(const std::string& ns, const std::string& key, const std::string& value);
    // Starts a long-running process in ns; it is stopped at teardown at the
    // latest. The reference stays valid while the Testbed lives.
    Process& spawn(const std::string& ns, std::vector<std::string> argv, ProcessOptions options = {});

private:
    void setup();
    void teardown() noexcept;

    TestbedOptions options_;
    int subnet_ = 0;
    std::string client_ns_;
    std::string server_ns_;
    int client_slot_ = -1;
    int server_slot_ = -1;
    int client_ifindex_ = 0;
    int server_ifindex_ = 0;
    std::vector<std::unique_ptr<Process>> processes_;
};

// Namespaces named slt<pid>-<n>{c,s} whose pid is dead (or is ours but no
// live Testbed tracks them): kills what runs in them and deletes them.
// Testbed's constructor calls it. Returns the names removed.
std::vector<std::string> remove_stale_testbeds();

// Names under /run/netns.
std::vector<std::string> list_netns();

}  // namespace sluice::test
