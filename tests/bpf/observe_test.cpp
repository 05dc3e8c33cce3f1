// Observation and adaptive admission in the kernel, through
// BPF_PROG_TEST_RUN of both programs (XDP ingress, TC egress) with crafted
// flows and an injected clock: latency recorded exactly, in-flight exact,
// errors, aborts, timeouts; the controller's values applied, and ignored
// once its heartbeat is stale.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "../lib/packet.hpp"
#include "../lib/xdp_tester.hpp"
#include "kernel/map.hpp"
#include "sluice.skel.h"

using namespace sluice;
using namespace sluice::test;
using policy::Cidr;
using policy::Policy;
using policy::Rate;

namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kT0 = 1'000'000 * kMs;

// A tracked HTTP service on 80 (timeout 100 ms) and a tracked UDP one on 53.
Policy tracked_policy(policy::RejectMode reject = policy::RejectMode::Drop) {
  Policy p;
  policy::Service web;
  web.name = "web";
  web.port = 80;
  web.http = true;
  web.reject = reject;
  web.tuning.adaptive = policy::Adaptive::Bbr;
  web.tuning.timeout_ms = 100;
  p.services.push_back(web);
  policy::Service dns;
  dns.name = "dns";
  dns.proto = policy::Proto::Udp;
  dns.port = 53;
  dns.tuning.adaptive = policy::Adaptive::Bbr;
  p.services.push_back(dns);
  p.tenants.push_back({"core", {Cidr::parse("198.18.10.0/24")}, 0});
  p.tenants.push_back({"batch", {Cidr::parse("198.18.12.0/24")}, 2});
  return p;
}

// At kT0, with a live controller that holds the service's breaker open.
void open_the_breaker(XdpTester& t, const std::string& service) {
  t.set_now(kT0);
  t.set_heartbeat(kT0);
  sl_control ctl{};
  ctl.breaker_state = SL_BREAKER_OPEN;
  t.set_control(service, ctl);
}

// One TCP connection's packets, client side (in) and server side (out).
struct Conn {
  std::string client = "198.18.0.1";
  uint16_t port = 40000;
  uint32_t client_seq = 1000, server_seq = 5000;

  Bytes syn() const { return in(tcp_flag::SYN, ""); }
  Bytes ack() const { return in(tcp_flag::ACK, ""); }
  Bytes request(const std::string& body = "GET / HTTP/1.1\r\nHost: x\r\n\r\n") const {
    return in(tcp_flag::ACK | tcp_flag::PSH, body);
  }
  Bytes client_fin() const { return in(tcp_flag::FIN | tcp_flag::ACK, ""); }
  Bytes response(const std::string& status = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") const {
    return out(tcp_flag::ACK | tcp_flag::PSH, status);
  }
  Bytes server_ack() const { return out(tcp_flag::ACK, ""); }
  Bytes server_rst() const { return out(tcp_flag::RST | tcp_flag::ACK, ""); }

  Bytes in(uint8_t flags, const std::string& payload) const {
    return PacketBuilder().ipv4(client, "198.18.0.2").tcp(port, 80).flags(flags).seq(client_seq)
        .ack_seq(server_seq).payload(payload).build();
  }
  Bytes out(uint8_t flags, const std::string& payload) const {
    return PacketBuilder().ipv4("198.18.0.2", client).tcp(80, port).flags(flags).seq(server_seq)
        .ack_seq(client_seq).payload(payload).build();
  }
};

}  // namespace

TEST(Observe, LatencyIsTheTimeToTheFirstResponseByte) {
  XdpTester t(tracked_policy());
  Conn c;
  t.set_now(kT0);
  EXPECT_EQ(t.run(c.syn()).action, XDP_PASS);
  EXPECT_EQ(t.run(c.ack()).action, XDP_PASS);
  EXPECT_EQ(t.observe("web").counters.started, 0u);  // a connection is not a request
  EXPECT_EQ(t.run(c.request()).action, XDP_PASS);
  auto o = t.observe("web");
  EXPECT_EQ(o.counters.started, 1u);
  EXPECT_EQ(o.inflight, 1);

  t.set_now(kT0 + 250'000);  // 250 us later
  EXPECT_EQ(t.run_egress(c.server_ack()), TC_ACT_OK);  // an ACK answers nothing
  EXPECT_EQ(t.observe("web").counters.responses, 0u);
  EXPECT_EQ(t.run_egress(c.response()), TC_ACT_OK);
  o = t.observe("web");
  EXPECT_EQ(o.counters.responses, 1u);
  EXPECT_EQ(o.counters.latency_sum_ns, 250'000u);
  EXPECT_EQ(o.counters.hist[sl_hist_bucket(250'000)], 1u);
  EXPECT_EQ(o.inflight, 0);
  EXPECT_EQ(o.counters.errors, 0u);
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_REQUEST], 1u);

  // More response bytes end nothing; the next request on the same
  // (keep-alive) connection is a new one.
  t.run_egress(c.response());
  EXPECT_EQ(t.observe("web").counters.responses, 1u);
  t.set_now(kT0 + 10 * kMs);
  t.run(c.request());
  t.set_now(kT0 + 10 * kMs + 1'500'000);
  t.run_egress(c.response());
  o = t.observe("web");
  EXPECT_EQ(o.counters.started, 2u);
  EXPECT_EQ(o.counters.responses, 2u);
  EXPECT_EQ(o.counters.latency_sum_ns, 250'000u + 1'500'000u);
  EXPECT_EQ(o.inflight, 0);
}

// Every per-service map follows [maps] max_services: a service whose id is
// past the default geometry is observed and governed like the first one.
TEST(Observe, ServicesPastTheDefaultGeometryAreObserved) {
  Policy p = tracked_policy();
  p.maps.max_services = 4 * SL_DEFAULT_MAX_SERVICES;
  p.maps.max_tenants = 16;
  p.services.erase(p.services.begin());  // "web" goes last, past the default ids
  for (int i = 0; i < 2 * SL_DEFAULT_MAX_SERVICES; i++) {
    policy::Service filler;
    filler.name = "filler" + std::to_string(i);
    filler.proto = policy::Proto::Udp;
    filler.port = static_cast<uint16_t>(10000 + i);
    p.services.push_back(filler);
  }
  p.services.push_back(tracked_policy().services[0]);
  XdpTester t(p);
  ASSERT_GE(t.running().ids.services.at("web"), uint32_t(SL_DEFAULT_MAX_SERVICES));
  Conn c;
  t.set_now(kT0);
  t.run(c.request());
  EXPECT_EQ(t.observe("web").inflight, 1);
  t.set_now(kT0 + kMs);
  t.run_egress(c.response());
  auto o = t.observe("web");
  EXPECT_EQ(o.counters.responses, 1u);
  EXPECT_EQ(o.counters.latency_sum_ns, kMs);
  EXPECT_EQ(o.inflight, 0);
}

TEST(Observe, PipelinedRequestsShareTheFirstStart) {
  XdpTester t(tracked_policy());
  Conn c;
  t.set_now(kT0);
  t.run(c.request());
  t.set_now(kT0 + kMs);
  t.run(c.request());  // a second request before the first answer
  auto o = t.observe("web");
  EXPECT_EQ(o.counters.started, 1u);
  EXPECT_EQ(o.inflight, 1);
  t.set_now(kT0 + 3 * kMs);
  t.run_egress(c.response());
  o = t.observe("web");
  EXPECT_EQ(o.counters.latency_sum_ns, 3 * kMs);
  EXPECT_EQ(o.inflight, 0);  // never negative, never stuck
}

TEST(Observe, ServerErrorsTimeoutsAndAborts) {
  XdpTester t(tracked_policy());
  t.set_now(kT0);
  Conn a;
  t.run(a.request());
  t.run_egress(a.response("HTTP/1.1 503 Service Unavailable\r\n\r\n"));
  Conn b;
  b.port = 40001;
  t.run(b.request());
  t.set_now(kT0 + 150 * kMs);  // past the 100 ms timeout
  t.run_egress(b.response());
  Conn c;
  c.port = 40002;
  t.run(c.request());
  t.run(c.client_fin());  // the client gave up
  Conn d;
  d.port = 40003;
  t.run(d.request());
  t.run_egress(d.server_rst());  // the server reset it
  auto o = t.observe("web");
  EXPECT_EQ(o.counters.started, 4u);
  EXPECT_EQ(o.counters.responses, 2u);
  EXPECT_EQ(o.counters.errors, 1u);
  EXPECT_EQ(o.counters.timeouts, 1u);
  EXPECT_EQ(o.counters.client_aborts, 1u);
  EXPECT_EQ(o.counters.server_aborts, 1u);
  EXPECT_EQ(o.inflight, 0);
  // A 4xx is not a server error.
  Conn e;
  e.port = 40004;
  t.run(e.request());
  t.run_egress(e.response("HTTP/1.1 404 Not Found\r\n\r\n"));
  EXPECT_EQ(t.observe("web").counters.errors, 1u);
}

TEST(Observe, UdpPairsADatagramWithTheNextReply) {
  XdpTester t(tracked_policy());
  t.set_now(kT0);
  Bytes query = PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").udp(5353, 53).payload("q").build();
  Bytes reply = PacketBuilder().ipv4("198.18.0.2", "198.18.0.1").udp(53, 5353).payload("a").build();
  EXPECT_EQ(t.run(query).action, XDP_PASS);
  EXPECT_EQ(t.observe("dns").inflight, 1);
  t.set_now(kT0 + 40'000);
  t.run_egress(reply);
  auto o = t.observe("dns");
  EXPECT_EQ(o.counters.responses, 1u);
  EXPECT_EQ(o.counters.latency_sum_ns, 40'000u);
  EXPECT_EQ(o.inflight, 0);
  t.run_egress(reply);  // an unasked reply ends nothing
  EXPECT_EQ(t.observe("dns").counters.responses, 1u);
}

// While a census of the flow table runs (its id published in census_state),
// the data path tells it what changed behind its back (struct
// sl_flow_census): a flow that takes a slot is marked as entered during the
// census, which does not count it; a slot released by a flow that held it
// when the census began, and that the census has not counted yet, is
// counted as released. Without these, a request that began on a flow the
// walk had passed, or ended on one it had not reached, made slots look held
// by no flow (1-11 now and then, at 4,000-8,000 requests/s).
TEST(Observe, WhileACensusRunsTheDataPathMarksAndCountsWhatChanges) {
  XdpTester t(tracked_policy());
  kernel::DataPath& dp = t.datapath();
  int state_fd = dp.map_fd(dp.skel()->maps.census_state);
  int flows_fd = dp.map_fd(dp.skel()->maps.flows);
  const uint32_t web = t.running().ids.services.at("web");
  auto flow_of = [&](const Conn& c) {
    for (const sl_flow_key& key : kernel::map_keys<sl_flow_key>(flows_fd))
      if (key.client_port == c.port)
        return std::make_pair(key, *kernel::map_lookup<sl_flow_key, sl_flow>(flows_fd, key));
    throw std::runtime_error("no flow for port " + std::to_string(c.port));
  };
  auto set_running = [&](uint32_t id) {
    sl_census_state state = *kernel::map_lookup<uint32_t, sl_census_state>(state_fd, 0);
    state.running = id;
    kernel::map_update(state_fd, uint32_t{0}, state, "census_state");
  };
  auto released = [&] { return kernel::map_lookup<uint32_t, sl_census_state>(state_fd, 0)->released[web]; };
  auto open = [&](const Conn& c, bool ask) {
    t.run(c.syn());
    t.run(c.ack());
    if (ask) t.run(c.request());
  };

  t.set_now(kT0);
  Conn ends_uncounted{.port = 40001}, ends_counted{.port = 40002}, reserved{.port = 40003}, later{.port = 40004};
  open(ends_uncounted, true);
  open(ends_counted, true);
  open(reserved, false);  // a connection's reservation holds a slot too
  ASSERT_EQ(t.observe("web").inflight, 3);

  constexpr uint32_t kId = 0x5150;
  set_running(kId);
  // The census counts a flow: it marks it with its id.
  auto [counted_key, counted] = flow_of(ends_counted);
  counted.census = kId;
  kernel::map_update(flows_fd, counted_key, counted, "flows");
  // A connection and a request begin during the census.
  Conn during{.port = 40005};
  open(during, true);
  EXPECT_EQ(flow_of(during).second.census, kId | SL_CENSUS_ENTERED);
  EXPECT_EQ(flow_of(ends_uncounted).second.census, 0u) << "a flow that took its slot before is not marked";

  t.set_now(kT0 + kMs);
  t.run_egress(ends_counted.response());
  t.run_egress(during.response());
  EXPECT_EQ(released(), 0u) << "counted by the census, or entered during it: not the census's to learn";
  t.run_egress(ends_uncounted.response());
  EXPECT_EQ(released(), 1u);
  t.run(reserved.client_fin());  // the reservation ends unclaimed
  EXPECT_EQ(released(), 2u);
  EXPECT_EQ(t.observe("web").inflight, 0);

  // Once it is over, nothing is marked or counted.
  set_running(0);
  open(later, true);
  EXPECT_EQ(flow_of(later).second.census, 0u);
  t.run_egress(later.response());
  EXPECT_EQ(released(), 2u);
}

TEST(Observe, InflightIsExactAcrossCpus) {
  XdpTester t(tracked_policy());
  t.set_now(kT0);
  int cpus = static_cast<int>(std::thread::hardware_concurrency());
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; w++)
    threads.emplace_back([&, w] {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(w % cpus, &set);
      pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
      for (int i = 0; i < 300; i++) {
        Conn c;
        c.port = static_cast<uint16_t>(10000 + w * 1000 + i % 50);  // flows shared by rounds
        LIBBPF_OPTS(bpf_test_run_opts, in);
        Bytes req = c.request(), resp = c.response();
        in.data_in = req.data();
        in.data_size_in = static_cast<uint32_t>(req.size());
        bpf_prog_test_run_opts(t.datapath().xdp_prog_fd(), &in);
        LIBBPF_OPTS(bpf_test_run_opts, out);
        out.data_in = resp.data();
        out.data_size_in = static_cast<uint32_t>(resp.size());
        bpf_prog_test_run_opts(bpf_program__fd(t.datapath().skel()->progs.sluice_tc_egress), &out);
      }
    });
  for (auto& th : threads) th.join();
  auto o = t.observe("web");
  EXPECT_EQ(o.inflight, 0);
  EXPECT_EQ(o.counters.started, o.counters.responses);
  EXPECT_EQ(o.counters.started, 1200u);
}

// ---- adaptive admission ----------------------------------------------------------

TEST(Adaptive, InflightLimitRefusesNewConnectionsAndRequests) {
  XdpTester t(tracked_policy());
  t.set_now(kT0);
  t.set_heartbeat(kT0);
  sl_control ctl{};
  ctl.max_inflight[0] = ctl.max_inflight[1] = ctl.max_inflight[2] = 2;
  t.set_control("web", ctl);
  Conn a, b, c;
  b.port = 40001;
  c.port = 40002;
  EXPECT_EQ(t.run(a.request()).action, XDP_PASS);
  EXPECT_EQ(t.run(b.request()).action, XDP_PASS);
  EXPECT_EQ(t.run(c.request()).action, XDP_DROP);  // in-flight 2 = limit
  EXPECT_EQ(t.run(c.syn()).action, XDP_DROP);      // new connections too
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_INFLIGHT], 2u);
  EXPECT_EQ(t.run(a.request()).action, XDP_PASS);  // more of a pending request is not new work
  t.run_egress(a.response());
  EXPECT_EQ(t.run(c.request()).action, XDP_PASS);  // room again
  EXPECT_EQ(t.observe("web").inflight, 2);
}

TEST(Adaptive, RefusedRequestsGetAResetTheClientAccepts) {
  XdpTester t(tracked_policy(policy::RejectMode::Rst));
  open_the_breaker(t, "web");
  Conn c;
  c.client_seq = 777, c.server_seq = 99999;
  Bytes req = c.request("GET /x HTTP/1.1\r\n\r\n");
  XdpResult r = t.run(req);
  ASSERT_EQ(r.action, XDP_TX);
  DecodedPacket rst = decode(r.packet);
  ASSERT_TRUE(rst.tcp);
  EXPECT_EQ(rst.tcp->flags, tcp_flag::RST | tcp_flag::ACK);
  EXPECT_EQ(rst.tcp->seq, 99999u);  // what the client acknowledged: RFC 5961 exact
  EXPECT_EQ(rst.tcp->ack, 777u + 19);
  EXPECT_TRUE(rst.verify_checksums().ok()) << rst.verify_checksums().describe();
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_BREAKER], 1u);
}

namespace {

// `web` with its breaker half-open and a budget of `probes`.
sl_control half_open(XdpTester& t, uint64_t probes) {
  t.set_now(kT0);
  t.set_heartbeat(kT0);
  sl_control ctl{};
  ctl.breaker_state = SL_BREAKER_HALF_OPEN;
  ctl.probe_limit = probes;
  t.set_control("web", ctl);
  return ctl;
}

// How many of `count` new connections from fresh client ports pass.
int syns_passed(XdpTester& t, int count, uint16_t first_port) {
  int passed = 0;
  for (int i = 0; i < count; i++) {
    Conn c;
    c.port = static_cast<uint16_t>(first_port + i);
    passed += t.run(c.syn()).action == XDP_PASS;
  }
  return passed;
}

}  // namespace

TEST(Adaptive, HalfOpenAdmitsExactlyTheProbeBudget) {
  XdpTester t(tracked_policy());
  sl_control ctl = half_open(t, 3);
  EXPECT_EQ(syns_passed(t, 10, 41000), 3);
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_BREAKER], 7u);
  // The controller grants more probes by raising the limit past the counter.
  ctl.probe_limit = t.observe("web").probes_admitted + 2;
  t.set_control("web", ctl);
  EXPECT_EQ(syns_passed(t, 5, 42000), 2);
}

// Probes are for work that reaches the service: connections the static
// bucket refuses (a flood of spoofed SYNs, say) leave them for real ones.
TEST(Adaptive, WorkRefusedByTheBucketsSpendsNoProbes) {
  Policy p = tracked_policy();
  p.services[0].rate = Rate{1, 1};
  p.services[0].burst = 2;
  XdpTester t(p);
  half_open(t, 3);
  EXPECT_EQ(syns_passed(t, 10, 43000), 2);  // the bucket's burst
  EXPECT_EQ(t.observe("web").probes_admitted, 2u);
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_TENANT_LIMIT], 8u);
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_BREAKER], 0u);
  // The third probe is still there for the next connection the bucket admits.
  t.set_now(kT0 + 1'000'000'000);
  Conn later;
  later.port = 44000;
  EXPECT_EQ(t.run(later.syn()).action, XDP_PASS);
  EXPECT_EQ(t.observe("web").probes_admitted, 3u);
}

TEST(Adaptive, RejectProbabilityIsApplied) {
  XdpTester t(tracked_policy());
  t.set_now(kT0);
  t.set_heartbeat(kT0);
  sl_control ctl{};
  ctl.reject_p = SL_P_ONE;
  t.set_control("web", ctl);
  Conn c;
  for (int i = 0; i < 20; i++) EXPECT_EQ(t.run(c.syn()).action, XDP_DROP);
  ctl.reject_p = SL_P_ONE / 2;
  t.set_control("web", ctl);
  int passed = 0;
  for (int i = 0; i < 2000; i++) passed += t.run(c.syn()).action == XDP_PASS;
  EXPECT_GT(passed, 850);  // p = 0.5: 1000 expected, far outside 3 sigma (67) otherwise
  EXPECT_LT(passed, 1150);
}

TEST(Adaptive, LevelTwoIsShedFirstAndLevelZeroLast) {
  XdpTester t(tracked_policy());
  t.set_now(kT0);
  t.set_heartbeat(kT0);
  sl_control ctl{};
  ctl.max_inflight[0] = 10;
  ctl.max_inflight[1] = 9;
  ctl.max_inflight[2] = 8;
  t.set_control("web", ctl);
  auto from = [](const std::string& src, uint16_t port) {
    Conn c;
    c.client = src;
    c.port = port;
    return c;
  };
  for (uint16_t i = 0; i < 8; i++) ASSERT_EQ(t.run(from("198.18.10.1", 100 + i).request()).action, XDP_PASS);
  // In flight 8: batch (level 2) is refused, default (level 1) and core (0) pass.
  EXPECT_EQ(t.run(from("198.18.12.1", 200).syn()).action, XDP_DROP);
  EXPECT_EQ(t.run(from("198.18.99.1", 300).request()).action, XDP_PASS);  // in flight 9
  EXPECT_EQ(t.run(from("198.18.99.2", 301).syn()).action, XDP_DROP);     // default refused at 9
  EXPECT_EQ(t.run(from("198.18.10.9", 400).request()).action, XDP_PASS);  // core fills to 10
  EXPECT_EQ(t.run(from("198.18.10.9", 401).syn()).action, XDP_DROP);
  EXPECT_EQ(t.pair("web", "batch").verdict[SL_R_INFLIGHT], 1u);
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_INFLIGHT], 1u);
  EXPECT_EQ(t.pair("web", "core").verdict[SL_R_INFLIGHT], 1u);
}

TEST(Adaptive, StaleControlIsIgnoredFailOpen) {
  XdpTester t(tracked_policy());
  open_the_breaker(t, "web");
  Conn c;
  EXPECT_EQ(t.run(c.syn()).action, XDP_DROP);
  t.set_now(kT0 + 2000 * kMs);  // exactly the 2 s bound: still fresh
  EXPECT_EQ(t.run(c.syn()).action, XDP_DROP);
  t.set_now(kT0 + 2000 * kMs + 1);  // a nanosecond more: the controller is presumed dead
  EXPECT_EQ(t.run(c.syn()).action, XDP_PASS);
  EXPECT_GE(t.global(SL_G_CONTROL_STALE), 1u);
  t.set_heartbeat(0);  // a controller that stopped cleanly
  EXPECT_EQ(t.run(c.syn()).action, XDP_PASS);
  // Static limits keep applying whatever the controller does.
  Policy p = tracked_policy();
  p.services[0].rate = Rate{1, 3600};
  p.services[0].burst = 1;
  t.set_policy(p);
  Conn d;
  d.port = 41234;
  EXPECT_EQ(t.run(d.syn()).action, XDP_PASS);
  EXPECT_EQ(t.run(d.syn()).action, XDP_DROP);
}

// On the real clock each CPU keeps its verdict on the heartbeat for a tick,
// so a flood of refused work does not read the precise clock per packet.
// A heartbeat cleared, renewed or replaced still counts at once; one that
// stops (a dead controller) is presumed dead at its bound, at most a tick
// late: a packet judged later than bound + tick (10 ms at HZ 100, the
// slowest tick; the test allows one more for a tick the VM delays) finds it
// dead.
TEST(Adaptive, OnTheRealClockHeartbeatsCountAtOnceAndDeathWithinATick) {
  using kernel::monotonic_ns;
  Policy p = tracked_policy();
  p.control_stale_ms = 100;
  XdpTester t(p, /*fake_clock=*/false);
  sl_control ctl{};
  ctl.breaker_state = SL_BREAKER_OPEN;
  t.set_control("web", ctl);
  Conn c;
  t.set_heartbeat(monotonic_ns());
  EXPECT_EQ(t.run(c.syn()).action, XDP_DROP);
  t.set_heartbeat(0);  // a clean stop
  EXPECT_EQ(t.run(c.syn()).action, XDP_PASS);
  t.set_heartbeat(monotonic_ns());  // a new controller
  EXPECT_EQ(t.run(c.syn()).action, XDP_DROP);
  t.set_heartbeat(monotonic_ns() - 1000 * kMs);  // a stalled one's last beat
  EXPECT_EQ(t.run(c.syn()).action, XDP_PASS);

  constexpr uint64_t kBound = 100 * kMs, kTick = 10 * kMs;
  const uint64_t beat = monotonic_ns();
  t.set_heartbeat(beat);
  uint64_t last_refused_at = 0, first_passed_at = 0;
  // Bounded: at most 300 packets over about 300 ms.
  for (int i = 0; i < 300 && monotonic_ns() < beat + 3 * kBound; i++) {
    uint64_t sent = monotonic_ns();
    int action = t.run(c.syn()).action;
    uint64_t judged = monotonic_ns();
    if (action == XDP_DROP) {
      last_refused_at = sent;
    } else {
      EXPECT_GT(judged, beat + kBound) << "presumed dead before its bound";
      first_passed_at = sent;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_NE(first_passed_at, 0u) << "still alive " << (monotonic_ns() - beat) / kMs << " ms after its last beat";
  EXPECT_LE(last_refused_at, beat + kBound + 2 * kTick)
      << "alive " << (last_refused_at - beat) / kMs << " ms after its last beat";
  std::printf("[ numbers ] last refused %.1f ms, first passed %.1f ms after the last beat (bound 100 ms)\n",
              double(last_refused_at - beat) / kMs, double(first_passed_at - beat) / kMs);
}

// The quick judge on the hook hands tracked services to the complete judge.
// Without it (the judges slot empty) their packets pass and are counted,
// while static limits still apply; reconnected, the controller rules again.
TEST(Adaptive, WithoutTheCompleteJudgeTrackedServicesFailOpen) {
  Policy p = tracked_policy();
  policy::Service flood;
  flood.name = "flood";
  flood.proto = policy::Proto::Udp;
  flood.port = 9;
  flood.rate = Rate{1, 3600};
  flood.burst = 1;
  p.services.push_back(flood);
  XdpTester t(p);
  open_the_breaker(t, "web");
  auto datagram = [] { return PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").udp(4000, 9).build(); };
  Conn c;
  ASSERT_EQ(t.run(c.syn()).action, XDP_DROP);  // the open breaker, applied by the complete judge
  ASSERT_EQ(t.run(c.request()).action, XDP_DROP);

  kernel::DataPath& dp = t.datapath();
  uint32_t slot = SL_JUDGE_COMPLETE;
  ASSERT_EQ(bpf_map_delete_elem(dp.map_fd(dp.skel()->maps.judges), &slot), 0);
  EXPECT_EQ(t.run(c.syn()).action, XDP_PASS);
  EXPECT_EQ(t.run(c.request()).action, XDP_PASS);
  EXPECT_EQ(t.global(SL_G_UNJUDGED), 2u);
  EXPECT_EQ(t.run(datagram()).action, XDP_PASS);  // the quick judge alone: its burst of 1
  EXPECT_EQ(t.run(datagram()).action, XDP_DROP);
  EXPECT_EQ(t.pair("flood", "default").verdict[SL_R_TENANT_LIMIT], 1u);
  EXPECT_EQ(t.global(SL_G_UNJUDGED), 2u);

  dp.connect_judges();
  EXPECT_EQ(t.run(c.syn()).action, XDP_DROP);
  EXPECT_EQ(t.global(SL_G_UNJUDGED), 2u);
  EXPECT_EQ(t.global(SL_G_PACKETS), 7u);  // counted once each, by the quick judge
}

TEST(Adaptive, UntrackedServicesIgnoreTheControllerAndAreNotObserved) {
  Policy p = tracked_policy();
  p.services[0].tuning.adaptive = policy::Adaptive::Off;
  p.services[0].tuning.timeout_ms = 0;
  p.services[0].http = false;
  XdpTester t(p);
  open_the_breaker(t, "web");
  Conn c;
  EXPECT_EQ(t.run(c.syn()).action, XDP_PASS);
  EXPECT_EQ(t.run(c.request()).action, XDP_PASS);
  t.run_egress(c.response());
  EXPECT_EQ(t.observe("web").counters.started, 0u);
}

// One request per connection (HTTP/1.0 style): an admitted SYN holds the
// slot its first request will use, so the limit counts connections not yet
// asked and requests alike, and no admitted connection's request is refused.
TEST(Adaptive, AdmittedConnectionsReserveTheirFirstRequest) {
  XdpTester t(tracked_policy());
  t.set_now(kT0);
  t.set_heartbeat(kT0);
  sl_control ctl{};
  ctl.max_inflight[0] = ctl.max_inflight[1] = ctl.max_inflight[2] = 2;
  t.set_control("web", ctl);
  Conn a, b, c;
  b.port = 40001;
  c.port = 40002;
  EXPECT_EQ(t.run(a.syn()).action, XDP_PASS);
  EXPECT_EQ(t.run(a.syn()).action, XDP_PASS);  // a retransmitted SYN reserves nothing more
  EXPECT_EQ(t.run(b.syn()).action, XDP_PASS);
  EXPECT_EQ(t.observe("web").inflight, 2);
  EXPECT_EQ(t.run(c.syn()).action, XDP_DROP);  // both slots are spoken for
  EXPECT_EQ(t.run(a.request()).action, XDP_PASS);
  EXPECT_EQ(t.run(b.request()).action, XDP_PASS);  // never refused: admitted with its SYN
  auto o = t.observe("web");
  EXPECT_EQ(o.inflight, 2);
  EXPECT_EQ(o.counters.started, 2u);
  t.set_now(kT0 + 5 * kMs);
  t.run_egress(a.response());
  EXPECT_EQ(t.observe("web").counters.latency_sum_ns, 5 * kMs);  // timed from the request, not the SYN
  EXPECT_EQ(t.observe("web").inflight, 1);
  // A connection that closes before asking releases its slot, and is no abort.
  EXPECT_EQ(t.run(c.syn()).action, XDP_PASS);
  EXPECT_EQ(t.observe("web").inflight, 2);
  t.run(c.client_fin());
  o = t.observe("web");
  EXPECT_EQ(o.inflight, 1);
  EXPECT_EQ(o.counters.client_aborts, 0u);
}

// Connection: close servers send the response and the FIN in one segment;
// HTTP/1.0 clients may half-close with the request. Neither is an abort.
TEST(Observe, ResponsesAndRequestsCarryingAFinCount) {
  XdpTester t(tracked_policy());
  t.set_now(kT0);
  Conn c;
  t.run(c.request());
  t.set_now(kT0 + 2 * kMs);
  t.run_egress(c.out(tcp_flag::ACK | tcp_flag::PSH | tcp_flag::FIN, "HTTP/1.1 500 Oops\r\n\r\n"));
  auto o = t.observe("web");
  EXPECT_EQ(o.counters.responses, 1u);
  EXPECT_EQ(o.counters.errors, 1u);
  EXPECT_EQ(o.counters.server_aborts, 0u);
  EXPECT_EQ(o.counters.latency_sum_ns, 2 * kMs);
  EXPECT_EQ(o.inflight, 0);

  Conn d;
  d.port = 40001;
  t.run(d.in(tcp_flag::ACK | tcp_flag::PSH | tcp_flag::FIN, "GET / HTTP/1.0\r\n\r\n"));
  o = t.observe("web");
  EXPECT_EQ(o.counters.started, 2u);
  EXPECT_EQ(o.counters.client_aborts, 0u);
  EXPECT_EQ(o.inflight, 1);
  t.run_egress(d.response());
  EXPECT_EQ(t.observe("web").inflight, 0);
}
