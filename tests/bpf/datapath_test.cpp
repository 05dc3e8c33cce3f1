// The XDP data path in the real kernel, through BPF_PROG_TEST_RUN, with
// crafted packets and an injected clock: every header variant, malformed
// and truncated packets, each verdict and counter, and RST replies byte by
// byte.
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include "../lib/packet.hpp"
#include "../lib/xdp_tester.hpp"
#include "sluice.skel.h"

using namespace sluice;
using namespace sluice::test;
using policy::Cidr;
using policy::Policy;
using policy::Rate;

namespace {

constexpr uint64_t kSecond = 1'000'000'000;
constexpr uint64_t kT0 = 1000 * kSecond;  // an arbitrary, non-zero "now"

policy::Service tcp_service(const std::string& name, uint16_t port, Rate rate = {}, uint32_t burst = 0) {
  policy::Service s;
  s.name = name;
  s.port = port;
  s.rate = rate;
  s.burst = burst;
  return s;
}

policy::Service udp_service(const std::string& name, uint16_t port, Rate rate = {}, uint32_t burst = 0) {
  policy::Service s = tcp_service(name, port, rate, burst);
  s.proto = policy::Proto::Udp;
  return s;
}

Bytes syn(std::string_view src = "198.18.0.1", std::string_view dst = "198.18.0.2", uint16_t dport = 80,
          uint16_t sport = 40000) {
  return PacketBuilder().ipv4(src, dst).tcp(sport, dport).flags(tcp_flag::SYN).seq(1000).build();
}

Bytes syn6(std::string_view src = "2001:db8::1", std::string_view dst = "2001:db8::2", uint16_t dport = 80) {
  return PacketBuilder().ipv6(src, dst).tcp(40000, dport).flags(tcp_flag::SYN).seq(1000).build();
}

Bytes datagram(std::string_view src = "198.18.0.1", uint16_t dport = 53) {
  return PacketBuilder().ipv4(src, "198.18.0.2").udp(40000, dport).payload("query").build();
}

// A tester with one TCP service "web" on port 80 and one UDP service "dns"
// on 53, both generous enough that nothing is shed unless a test says so.
Policy open_policy() {
  Policy p;
  p.services.push_back(tcp_service("web", 80, Rate{1'000'000, 1}, 1'000'000));
  p.services.push_back(udp_service("dns", 53, Rate{1'000'000, 1}, 1'000'000));
  return p;
}

}  // namespace

// ---- before any policy ------------------------------------------------------

TEST(DataPath, WithoutPolicyEverythingPasses) {
  kernel::DataPathOptions options;
  options.fake_clock = true;
  kernel::DataPath dp(options);
  dp.load();
  Bytes frame = syn();
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = static_cast<uint32_t>(frame.size()));
  ASSERT_EQ(bpf_prog_test_run_opts(dp.xdp_prog_fd(), &opts), 0);
  EXPECT_EQ(opts.retval, XDP_PASS);
  EXPECT_EQ(kernel::read_counters(dp, {}).global.c[SL_G_NO_POLICY], 1u);
}

// ---- parsing: every header variant is classified and charged ------------------

TEST(DataPath, EveryHeaderVariantIsChargedToItsService) {
  XdpTester t(open_policy());
  t.set_now(kT0);
  std::vector<std::pair<std::string, Bytes>> variants = {
      {"ipv4", syn()},
      {"ipv6", syn6()},
      {"vlan", PacketBuilder().vlan(100).ipv4("198.18.0.1", "198.18.0.2").tcp(1, 80).flags(tcp_flag::SYN).build()},
      {"qinq", PacketBuilder().qinq(10, 20).ipv6("2001:db8::1", "2001:db8::2").tcp(1, 80).flags(tcp_flag::SYN).build()},
      {"802.1ad single", PacketBuilder().vlan(7, ethertype::VLAN_8021AD).ipv4("198.18.0.1", "198.18.0.2").tcp(1, 80)
                             .flags(tcp_flag::SYN).build()},
      {"ipv4 options (40 bytes)", PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").ip_options(Bytes(40, 1)).tcp(1, 80)
                                      .flags(tcp_flag::SYN).build()},
      {"tcp options", PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").tcp(1, 80).flags(tcp_flag::SYN)
                          .tcp_options({2, 4, 5, 0xb4, 1, 1, 4, 2}).build()},
      {"ipv6 hop-by-hop + routing + dstopts", PacketBuilder().ipv6("2001:db8::1", "2001:db8::2")
                                                  .ext(Ipv6ExtSpec::hop_by_hop())
                                                  .ext(Ipv6ExtSpec::routing(2))
                                                  .ext(Ipv6ExtSpec::destination_options(1))
                                                  .tcp(1, 80).flags(tcp_flag::SYN).build()},
      {"ipv6 first fragment", PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").ext(Ipv6ExtSpec::fragment(0, true))
                                  .tcp(1, 80).flags(tcp_flag::SYN).build()},
      {"ipv6 ah", PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").ext(Ipv6ExtSpec::auth()).tcp(1, 80)
                      .flags(tcp_flag::SYN).build()},
      {"ipv4 first fragment (MF, offset 0)", PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").mf().tcp(1, 80)
                                                 .flags(tcp_flag::SYN).build()},
      {"padded frame", PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").tcp(1, 80).flags(tcp_flag::SYN).pad_to(128)
                           .build()},
  };
  uint64_t expected = 0;
  for (const auto& [name, frame] : variants) {
    XdpResult r = t.run(frame);
    EXPECT_EQ(r.action, XDP_PASS) << name;
    EXPECT_EQ(t.pair("web", "default").verdict[SL_R_ADMITTED], ++expected) << name;
  }
  // Eight IPv6 extension headers are walked; the ninth is one too many.
  PacketBuilder eight = PacketBuilder().ipv6("2001:db8::1", "2001:db8::2");
  for (int i = 0; i < 8; i++) eight.ext(Ipv6ExtSpec::destination_options());
  EXPECT_EQ(t.run(eight.tcp(1, 80).flags(tcp_flag::SYN).build()).action, XDP_PASS);
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_ADMITTED], ++expected);
  PacketBuilder nine = PacketBuilder().ipv6("2001:db8::1", "2001:db8::2");
  for (int i = 0; i < 9; i++) nine.ext(Ipv6ExtSpec::destination_options());
  EXPECT_EQ(t.run(nine.tcp(1, 80).flags(tcp_flag::SYN).build()).action, XDP_PASS);
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_ADMITTED], expected);
  EXPECT_EQ(t.global(SL_G_HEADER_LIMIT), 1u);
}

TEST(DataPath, UnparsablePacketsPassAndAreNeverCharged) {
  Policy p = open_policy();
  p.services[0].rate = Rate{1, 3600};  // one SYN an hour: any charge would show
  p.services[0].burst = 1;
  XdpTester t(p);
  t.set_now(kT0);

  struct Case {
    std::string name;
    Bytes frame;
    sl_global_counter counter;
  };
  std::vector<Case> cases = {
      {"arp", PacketBuilder().raw_l3(ethertype::ARP, Bytes(28, 0)).build(), SL_G_NOT_IP},
      {"three vlan tags", PacketBuilder().vlan(1).vlan(2).vlan(3).ipv4("198.18.0.1", "198.18.0.2").tcp(1, 80)
                              .flags(tcp_flag::SYN).build(), SL_G_HEADER_LIMIT},
      {"ihl 4", PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").ihl(4).tcp(1, 80).flags(tcp_flag::SYN).build(),
       SL_G_MALFORMED},
      {"ip version 6 in an ipv4 frame", PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").ip_version(6).tcp(1, 80)
                                            .flags(tcp_flag::SYN).build(), SL_G_MALFORMED},
      {"total length below header", PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").total_length(12).tcp(1, 80)
                                        .flags(tcp_flag::SYN).build(), SL_G_MALFORMED},
      {"total length beyond frame", PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").total_length(1400).tcp(1, 80)
                                        .flags(tcp_flag::SYN).build(), SL_G_TRUNCATED},
      {"tcp data offset 4", PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").tcp(1, 80).flags(tcp_flag::SYN)
                                .data_offset(4).build(), SL_G_MALFORMED},
      {"tcp data offset past payload", PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").tcp(1, 80)
                                           .flags(tcp_flag::SYN).data_offset(15).build(), SL_G_MALFORMED},
      {"ipv6 payload length beyond frame", PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").payload_length(900)
                                               .tcp(1, 80).flags(tcp_flag::SYN).build(), SL_G_TRUNCATED},
      {"ipv6 ext header past payload", PacketBuilder().ipv6("2001:db8::1", "2001:db8::2")
                                           .ext(Ipv6ExtSpec::destination_options(1)).payload_length(8)
                                           .tcp(1, 80).flags(tcp_flag::SYN).truncate(14 + 40 + 8).build(),
       SL_G_MALFORMED},
  };
  for (const auto& c : cases) {
    uint64_t before = t.global(c.counter);
    XdpResult r = t.run(c.frame);
    EXPECT_EQ(r.action, XDP_PASS) << c.name;
    EXPECT_EQ(t.global(c.counter), before + 1) << c.name;
  }
  // Truncated at every offset: passed, never charged. (BPF_PROG_TEST_RUN
  // refuses frames shorter than an Ethernet header; so do NICs.)
  Bytes whole = syn();
  for (size_t len = 14; len < whole.size(); len++) {
    Bytes cut(whole.begin(), whole.begin() + len);
    EXPECT_EQ(t.run(cut).action, XDP_PASS) << "truncated to " << len;
  }
  Bytes whole6 = PacketBuilder().vlan(5).ipv6("2001:db8::1", "2001:db8::2").ext(Ipv6ExtSpec::hop_by_hop(1))
                     .tcp(1, 80).flags(tcp_flag::SYN).build();
  for (size_t len = 14; len < whole6.size(); len++) {
    Bytes cut(whole6.begin(), whole6.begin() + len);
    EXPECT_EQ(t.run(cut).action, XDP_PASS) << "ipv6 truncated to " << len;
  }
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_ADMITTED], 0u);
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_TENANT_LIMIT], 0u);
  EXPECT_EQ(t.global(SL_G_TRUNCATED), 2u + (whole.size() - 14) + (whole6.size() - 14));
}

TEST(DataPath, NonFirstFragmentsPassUnchargedButDenyRulesStillApply) {
  Policy p = open_policy();
  p.services[1].rate = Rate{1, 3600};
  p.services[1].burst = 1;
  p.deny.push_back(Cidr::parse("198.18.66.0/24"));
  XdpTester t(p);
  t.set_now(kT0);

  // The first fragment carries the UDP header and is charged.
  Bytes first = PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").mf().udp(1, 53).payload(Bytes(64, 0)).build();
  EXPECT_EQ(t.run(first).action, XDP_PASS);
  EXPECT_EQ(t.pair("dns", "default").verdict[SL_R_ADMITTED], 1u);
  // Later fragments have no ports: passed, counted, not charged (the bucket is empty now).
  Bytes later = PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").frag_offset(9).l4_raw(17, Bytes(64, 0)).build();
  Bytes later6 = PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").ext(Ipv6ExtSpec::fragment(9, false))
                     .l4_raw(17, Bytes(64, 0)).build();
  EXPECT_EQ(t.run(later).action, XDP_PASS);
  EXPECT_EQ(t.run(later6).action, XDP_PASS);
  EXPECT_EQ(t.global(SL_G_FRAGMENT), 2u);
  EXPECT_EQ(t.pair("dns", "default").verdict[SL_R_TENANT_LIMIT], 0u);
  // A fragment from a denied source is dropped: the source is known.
  Bytes denied = PacketBuilder().ipv4("198.18.66.5", "198.18.0.2").frag_offset(9).l4_raw(17, Bytes(64, 0)).build();
  EXPECT_EQ(t.run(denied).action, XDP_DROP);
}

TEST(DataPath, TrafficForNoServiceOrOtherProtocolsPasses) {
  XdpTester t(open_policy());
  t.set_now(kT0);
  EXPECT_EQ(t.run(syn("198.18.0.1", "198.18.0.2", 443)).action, XDP_PASS);
  EXPECT_EQ(t.global(SL_G_NOT_SERVICE), 1u);
  EXPECT_EQ(t.run(PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").l4_raw(ipproto::ICMP, Bytes(8, 0)).build()).action,
            XDP_PASS);
  EXPECT_EQ(t.global(SL_G_OTHER_L4), 1u);
  // UDP to a TCP service's port is not that service.
  EXPECT_EQ(t.run(datagram("198.18.0.1", 80)).action, XDP_PASS);
  EXPECT_EQ(t.global(SL_G_NOT_SERVICE), 2u);
}

// ---- admission -------------------------------------------------------------------

TEST(DataPath, TokenBucketAdmitsBurstThenRate) {
  Policy p;
  p.services.push_back(tcp_service("web", 80, Rate{10, 1}, 3));
  XdpTester t(p);
  t.set_now(kT0);
  for (int i = 0; i < 3; i++) EXPECT_EQ(t.run(syn()).action, XDP_PASS) << i;
  EXPECT_EQ(t.run(syn()).action, XDP_DROP);
  t.set_now(kT0 + kSecond / 10 - 1);  // one nanosecond short of a token
  EXPECT_EQ(t.run(syn()).action, XDP_DROP);
  t.set_now(kT0 + kSecond / 10);
  EXPECT_EQ(t.run(syn()).action, XDP_PASS);
  EXPECT_EQ(t.run(syn()).action, XDP_DROP);
  t.set_now(kT0 + 100 * kSecond);  // a long idle period refills to the burst, no more
  for (int i = 0; i < 3; i++) EXPECT_EQ(t.run(syn()).action, XDP_PASS) << i;
  EXPECT_EQ(t.run(syn()).action, XDP_DROP);
  sl_counters c = t.pair("web", "default");
  EXPECT_EQ(c.verdict[SL_R_ADMITTED], 7u);
  EXPECT_EQ(c.verdict[SL_R_TENANT_LIMIT], 4u);
}

TEST(DataPath, EstablishedConnectionsAreNeverChargedOrDropped) {
  Policy p;
  p.services.push_back(tcp_service("web", 80, Rate{1, 3600}, 1));
  XdpTester t(p);
  t.set_now(kT0);
  EXPECT_EQ(t.run(syn()).action, XDP_PASS);
  EXPECT_EQ(t.run(syn()).action, XDP_DROP);  // the bucket is empty
  for (uint8_t flags : {tcp_flag::ACK, uint8_t(tcp_flag::ACK | tcp_flag::PSH), uint8_t(tcp_flag::FIN | tcp_flag::ACK),
                        tcp_flag::RST, uint8_t(tcp_flag::SYN | tcp_flag::ACK)}) {
    Bytes frame = PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").tcp(40000, 80).flags(flags).payload("GET /").build();
    EXPECT_EQ(t.run(frame).action, XDP_PASS) << int(flags);
  }
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_PASSED], 5u);
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_ADMITTED], 1u);
}

TEST(DataPath, UdpIsChargedPerDatagram) {
  Policy p;
  p.services.push_back(udp_service("dns", 53, Rate{100, 1}, 5));
  XdpTester t(p);
  t.set_now(kT0);
  int passed = 0;
  for (int i = 0; i < 20; i++) passed += t.run(datagram()).action == XDP_PASS;
  EXPECT_EQ(passed, 5);
  EXPECT_EQ(t.pair("dns", "default").verdict[SL_R_TENANT_LIMIT], 15u);
}

TEST(DataPath, TenantsByLongestPrefixEachWithTheirOwnBucket) {
  Policy p;
  p.services.push_back(tcp_service("web", 80, Rate{1, 3600}, 2));
  p.tenants.push_back(policy::Tenant{"wide", {Cidr::parse("198.18.0.0/16"), Cidr::parse("2001:db8::/32")}, 1});
  p.tenants.push_back(policy::Tenant{"narrow", {Cidr::parse("198.18.5.0/24")}, 0});
  p.limits.push_back(policy::Limit{"web", "narrow", Rate{1, 3600}, 4});
  XdpTester t(p);
  t.set_now(kT0);
  auto admitted = [&](std::string_view src, int tries) {
    int n = 0;
    for (int i = 0; i < tries; i++) n += t.run(src.find(':') == std::string_view::npos ? syn(src) : syn6(src)).action ==
                                         XDP_PASS;
    return n;
  };
  EXPECT_EQ(admitted("198.18.5.9", 10), 4);   // narrow: its own limit of 4
  EXPECT_EQ(admitted("198.18.7.9", 10), 2);   // wide: the service's burst of 2
  EXPECT_EQ(admitted("2001:db8:7::1", 10), 0);  // wide again: same tenant, same bucket
  EXPECT_EQ(admitted("203.0.113.1", 10), 2);  // the default tenant
  EXPECT_EQ(t.pair("web", "narrow").verdict[SL_R_ADMITTED], 4u);
  EXPECT_EQ(t.pair("web", "wide").verdict[SL_R_ADMITTED], 2u);
  EXPECT_EQ(t.pair("web", "wide").verdict[SL_R_TENANT_LIMIT], 18u);
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_ADMITTED], 2u);
}

TEST(DataPath, PerSourceBucketsIsolateHotSources) {
  Policy p;
  policy::Service s = tcp_service("web", 80, Rate{1, 3600}, 10);
  s.per_source = Rate{1, 3600};
  s.per_source_burst = 3;
  p.services.push_back(s);
  XdpTester t(p);
  t.set_now(kT0);
  int hot = 0, cold = 0;
  for (int i = 0; i < 20; i++) hot += t.run(syn("198.18.0.1")).action == XDP_PASS;
  for (int i = 0; i < 20; i++) cold += t.run(syn("198.18.0.7")).action == XDP_PASS;
  EXPECT_EQ(hot, 3);   // the hot source is held to its own bucket...
  EXPECT_EQ(cold, 3);  // ...and did not drain the tenant's bucket for others
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_SOURCE_LIMIT], 34u);
  // IPv6 sources are buckets of their own too.
  int v6 = 0;
  for (int i = 0; i < 5; i++) v6 += t.run(syn6("2001:db8::99")).action == XDP_PASS;
  EXPECT_EQ(v6, 3);
  // The tenant bucket (10) now has 1 left.
  EXPECT_EQ(t.run(syn("198.18.0.50")).action, XDP_PASS);
  EXPECT_EQ(t.run(syn("198.18.0.51")).action, XDP_DROP);
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_TENANT_LIMIT], 1u);
}

// The quick judge on the hook judges plain IPv4 alone: with the complete
// judge gone, plain IPv4 to a service with static limits (per-source ones
// too), deny rules and traffic for no service are still judged, while every
// other header variant is handed over, passes and is counted unjudged.
TEST(DataPath, TheQuickJudgeJudgesPlainIpv4AloneAndHandsOverTheRest) {
  Policy p;
  policy::Service web = tcp_service("web", 80, Rate{1, 3600}, 1);
  web.per_source = Rate{1, 3600};
  web.per_source_burst = 1;
  p.services.push_back(web);
  p.deny.push_back(Cidr::parse("203.0.113.0/24"));
  XdpTester t(p);
  t.set_now(kT0);
  kernel::DataPath& dp = t.datapath();
  uint32_t slot = SL_JUDGE_COMPLETE;
  ASSERT_EQ(bpf_map_delete_elem(dp.map_fd(dp.skel()->maps.judges), &slot), 0);

  EXPECT_EQ(t.run(syn("198.18.0.1")).action, XDP_PASS);  // the tenant's one token, and the source's
  EXPECT_EQ(t.run(syn("198.18.0.1")).action, XDP_DROP);  // the source's bucket is empty
  EXPECT_EQ(t.run(syn("198.18.0.7")).action, XDP_DROP);  // the tenant's bucket is empty
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_SOURCE_LIMIT], 1u);
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_TENANT_LIMIT], 1u);
  EXPECT_EQ(t.run(syn("203.0.113.9")).action, XDP_DROP);
  EXPECT_EQ(t.global(SL_G_DENIED), 1u);
  EXPECT_EQ(t.run(syn("198.18.0.1", "198.18.0.2", 443)).action, XDP_PASS);
  EXPECT_EQ(t.global(SL_G_NOT_SERVICE), 1u);
  EXPECT_EQ(t.global(SL_G_UNJUDGED), 0u);

  std::vector<std::pair<std::string, Bytes>> handed_over = {
      {"ipv6", syn6()},
      {"vlan", PacketBuilder().vlan(100).ipv4("198.18.0.9", "198.18.0.2").tcp(1, 80).flags(tcp_flag::SYN).build()},
      {"ipv4 options", PacketBuilder().ipv4("198.18.0.9", "198.18.0.2").ip_options(Bytes(4, 1)).tcp(1, 80)
                           .flags(tcp_flag::SYN).build()},
      {"ipv4 first fragment", PacketBuilder().ipv4("198.18.0.9", "198.18.0.2").mf().tcp(1, 80)
                                  .flags(tcp_flag::SYN).build()},
      {"truncated tcp", PacketBuilder().ipv4("198.18.0.9", "198.18.0.2").tcp(1, 80).flags(tcp_flag::SYN)
                            .truncate(14 + 20 + 10).build()},
  };
  uint64_t unjudged = 0;
  for (const auto& [name, frame] : handed_over) {
    EXPECT_EQ(t.run(frame).action, XDP_PASS) << name;
    EXPECT_EQ(t.global(SL_G_UNJUDGED), ++unjudged) << name;
  }
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_TENANT_LIMIT], 1u);  // none of them was charged

  dp.connect_judges();
  EXPECT_EQ(t.run(syn6()).action, XDP_DROP);  // the complete judge is back: the tenant's bucket is empty
  EXPECT_EQ(t.global(SL_G_UNJUDGED), unjudged);
  EXPECT_EQ(t.global(SL_G_PACKETS), 5u + handed_over.size() + 1);
}

TEST(DataPath, DenyRulesDropEverythingFromAPrefixAndCountPerRule) {
  Policy p = open_policy();
  p.tenants.push_back(policy::Tenant{"gold", {Cidr::parse("198.18.1.0/24")}, 0});
  p.deny.push_back(Cidr::parse("198.18.0.0/16"));   // contains gold's prefix: gold is denied too
  p.deny.push_back(Cidr::parse("2001:db8:bad::/48"));
  p.deny.push_back(Cidr::parse("203.0.113.7/32"));
  XdpTester t(p);
  t.set_now(kT0);
  EXPECT_EQ(t.run(syn("198.18.1.1")).action, XDP_DROP);
  EXPECT_EQ(t.run(datagram("198.18.200.3")).action, XDP_DROP);
  Bytes established = PacketBuilder().ipv4("198.18.9.9", "198.18.0.2").tcp(1, 80).flags(tcp_flag::ACK).build();
  EXPECT_EQ(t.run(established).action, XDP_DROP);  // deny covers all traffic, not only new work
  EXPECT_EQ(t.run(syn6("2001:db8:bad::1")).action, XDP_DROP);
  EXPECT_EQ(t.run(syn("203.0.113.7")).action, XDP_DROP);
  EXPECT_EQ(t.run(syn("203.0.113.8")).action, XDP_PASS);
  EXPECT_EQ(t.deny_packets("198.18.0.0/16"), 3u);
  EXPECT_EQ(t.deny_packets("2001:db8:bad::/48"), 1u);
  EXPECT_EQ(t.deny_packets("203.0.113.7/32"), 1u);
  EXPECT_EQ(t.global(SL_G_DENIED), 5u);
  EXPECT_EQ(t.pair("web", "gold").verdict[SL_R_ADMITTED], 0u);
}

TEST(DataPath, DryRunCountsWhatWouldBeShedAndShedsNothing) {
  Policy p;
  policy::Service s = tcp_service("web", 80, Rate{1, 3600}, 2);
  s.dry_run = true;
  s.reject = policy::RejectMode::Rst;
  p.services.push_back(s);
  XdpTester t(p);
  t.set_now(kT0);
  for (int i = 0; i < 10; i++) EXPECT_EQ(t.run(syn()).action, XDP_PASS);
  sl_counters c = t.pair("web", "default");
  EXPECT_EQ(c.verdict[SL_R_ADMITTED], 10u);
  EXPECT_EQ(c.verdict[SL_R_TENANT_LIMIT], 0u);
  EXPECT_EQ(t.would_shed("web").would_shed[SL_R_TENANT_LIMIT], 8u);
  EXPECT_EQ(t.global(SL_G_RST_SENT), 0u);
}

TEST(DataPath, ServicesBoundToAnAddressWinOverTheAnyAddressService) {
  Policy p;
  p.services.push_back(tcp_service("any", 80));
  policy::Service pinned = tcp_service("pinned", 80);
  pinned.addr = policy::IpAddr::parse("198.18.0.9");
  p.services.push_back(pinned);
  policy::Service v6only = tcp_service("v6only", 8080);
  v6only.addr = policy::IpAddr::parse("2001:db8::9");
  p.services.push_back(v6only);
  XdpTester t(p);
  t.set_now(kT0);
  t.run(syn("198.18.0.1", "198.18.0.9"));
  t.run(syn("198.18.0.1", "198.18.0.2"));
  t.run(syn6("2001:db8::1", "2001:db8::9", 8080));
  t.run(syn6("2001:db8::1", "2001:db8::2", 8080));  // no service for that address
  EXPECT_EQ(t.pair("pinned", "default").verdict[SL_R_ADMITTED], 1u);
  EXPECT_EQ(t.pair("any", "default").verdict[SL_R_ADMITTED], 1u);
  EXPECT_EQ(t.pair("v6only", "default").verdict[SL_R_ADMITTED], 1u);
  EXPECT_EQ(t.global(SL_G_NOT_SERVICE), 1u);
}

// ---- RST replies, byte by byte ------------------------------------------------------

namespace {

// Checks `reply` answers `request` (both decoded) as RFC 793 says a refused
// SYN is answered, with correct checksums.
void expect_rst_for(const Bytes& request_frame, const XdpResult& r) {
  ASSERT_EQ(r.action, XDP_TX);
  DecodedPacket req = decode(request_frame);
  DecodedPacket rep = decode(r.packet);
  ASSERT_TRUE(rep.ok()) << rep.error;
  EXPECT_EQ(rep.dst, req.src);
  EXPECT_EQ(rep.src, req.dst);
  EXPECT_EQ(rep.vlans, req.vlans);
  ASSERT_TRUE(rep.tcp);
  EXPECT_EQ(rep.tcp->sport, req.tcp->dport);
  EXPECT_EQ(rep.tcp->dport, req.tcp->sport);
  EXPECT_EQ(rep.tcp->seq, 0u);
  EXPECT_EQ(rep.tcp->ack, req.tcp->seq + 1 + req.tcp->payload.size());
  EXPECT_EQ(rep.tcp->flags, tcp_flag::RST | tcp_flag::ACK);
  EXPECT_EQ(rep.tcp->data_offset, 5);
  EXPECT_EQ(rep.tcp->window, 0);
  EXPECT_TRUE(rep.tcp->payload.empty());
  if (req.ipv4) {
    ASSERT_TRUE(rep.ipv4);
    EXPECT_EQ(rep.ipv4->src, req.ipv4->dst);
    EXPECT_EQ(rep.ipv4->dst, req.ipv4->src);
    EXPECT_EQ(rep.ipv4->ihl, 5);  // options are not echoed
    EXPECT_EQ(rep.ipv4->ttl, 64);
    EXPECT_TRUE(rep.ipv4->df);
    EXPECT_EQ(rep.ipv4->total_length, 40);
    EXPECT_EQ(r.packet.size(), rep.l3_offset + 40);
  } else {
    ASSERT_TRUE(rep.ipv6);
    EXPECT_EQ(rep.ipv6->src, req.ipv6->dst);
    EXPECT_EQ(rep.ipv6->dst, req.ipv6->src);
    EXPECT_TRUE(rep.ipv6->ext.empty());  // extension headers are not echoed
    EXPECT_EQ(rep.ipv6->payload_length, 20);
    EXPECT_EQ(rep.ipv6->hop_limit, 64);
    EXPECT_EQ(r.packet.size(), rep.l3_offset + 60);
  }
  ChecksumReport sums = rep.verify_checksums();
  EXPECT_TRUE(sums.ok()) << sums.describe();
  if (req.ipv4) {
    EXPECT_TRUE(sums.ipv4.checked);
  }
  EXPECT_TRUE(sums.l4.checked);
}

}  // namespace

TEST(DataPath, RefusedSynsAreAnsweredWithAValidRst) {
  Policy p;
  policy::Service s = tcp_service("web", 80, Rate{1, 3600}, 1);
  s.reject = policy::RejectMode::Rst;
  p.services.push_back(s);
  XdpTester t(p);
  t.set_now(kT0);
  ASSERT_EQ(t.run(syn()).action, XDP_PASS);  // takes the only token

  std::vector<std::pair<std::string, Bytes>> requests = {
      {"ipv4", PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").tcp(40000, 80).flags(tcp_flag::SYN).seq(0xfffffffe)
                   .tcp_options({2, 4, 5, 0xb4}).build()},
      {"ipv4 with options and vlan", PacketBuilder().vlan(42).ipv4("198.18.3.4", "198.18.0.2")
                                         .ip_options({7, 7, 4, 0, 0, 0, 0, 0}).tcp(1234, 80).flags(tcp_flag::SYN)
                                         .seq(77).build()},
      {"ipv4 syn with data (fast open)", PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").tcp(5, 80)
                                             .flags(tcp_flag::SYN).seq(100).payload("hello").build()},
      {"ipv6", PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").tcp(40000, 80).flags(tcp_flag::SYN).seq(123456)
                   .build()},
      {"ipv6 qinq with extension headers", PacketBuilder().qinq(1, 2).ipv6("2001:db8:1::5", "2001:db8::2")
                                               .ext(Ipv6ExtSpec::hop_by_hop()).ext(Ipv6ExtSpec::destination_options(1))
                                               .tcp(999, 80).flags(tcp_flag::SYN).seq(42).build()},
  };
  for (const auto& [name, frame] : requests) {
    SCOPED_TRACE(name);
    expect_rst_for(frame, t.run(frame));
  }
  EXPECT_EQ(t.global(SL_G_RST_SENT), requests.size());
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_TENANT_LIMIT], requests.size());
}

TEST(DataPath, UdpServicesAlwaysDrop) {
  Policy p;
  p.services.push_back(udp_service("dns", 53, Rate{1, 3600}, 1));
  XdpTester t(p);
  t.set_now(kT0);
  EXPECT_EQ(t.run(datagram()).action, XDP_PASS);
  EXPECT_EQ(t.run(datagram()).action, XDP_DROP);
}

// ---- policy changes -------------------------------------------------------------------

TEST(DataPath, BucketsAndCountersSurviveAPolicyChangeThatKeepsTheService) {
  Policy p;
  p.services.push_back(tcp_service("web", 80, Rate{1, 3600}, 2));
  XdpTester t(p);
  t.set_now(kT0);
  EXPECT_EQ(t.run(syn()).action, XDP_PASS);
  EXPECT_EQ(t.run(syn()).action, XDP_PASS);
  EXPECT_EQ(t.run(syn()).action, XDP_DROP);
  p.services.push_back(tcp_service("other", 81));
  p.deny.push_back(Cidr::parse("203.0.113.0/24"));
  t.set_policy(p);
  EXPECT_EQ(t.run(syn()).action, XDP_DROP);  // still empty: the bucket carried over
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_ADMITTED], 2u);
  EXPECT_EQ(t.running().epoch, 2u);
}

TEST(DataPath, AServiceThatReusesAnIdStartsWithFreshState) {
  Policy p;
  p.services.push_back(tcp_service("old", 80, Rate{1, 3600}, 1));
  XdpTester t(p);
  t.set_now(kT0);
  EXPECT_EQ(t.run(syn()).action, XDP_PASS);
  EXPECT_EQ(t.run(syn()).action, XDP_DROP);
  uint32_t old_id = t.running().ids.services.at("old");
  p.services = {tcp_service("new", 80, Rate{1, 3600}, 1)};
  t.set_policy(p);
  ASSERT_EQ(t.running().ids.services.at("new"), old_id);
  EXPECT_EQ(t.pair("new", "default").verdict[SL_R_ADMITTED], 0u);  // no inherited counters
  EXPECT_EQ(t.run(syn()).action, XDP_PASS);                         // nor an inherited empty bucket
}

// A change is written into the slot that holds the policy before last, so
// it must leave nothing of that policy behind: no port, service, tenant
// prefix or deny rule.
TEST(DataPath, APolicyChangeLeavesNothingOfThePolicyBeforeLast) {
  Policy first;
  first.services.push_back(tcp_service("web", 80, Rate{1, 3600}, 1));
  first.tenants.push_back(policy::Tenant{"lab", {Cidr::parse("198.18.17.0/24")}, 1});
  first.deny.push_back(Cidr::parse("198.18.9.0/24"));
  XdpTester t(first);
  t.set_now(kT0);
  ASSERT_EQ(t.run(syn("198.18.9.1")).action, XDP_DROP);   // denied
  ASSERT_EQ(t.run(syn("198.18.17.1")).action, XDP_PASS);  // lab's only token
  ASSERT_EQ(t.run(syn("198.18.17.1")).action, XDP_DROP);
  const uint32_t first_slot = t.running().active_slot;

  Policy later;
  later.services.push_back(tcp_service("api", 81));
  later.tenants.push_back(policy::Tenant{"other", {Cidr::parse("203.0.113.0/24")}, 1});  // the table is read
  t.set_policy(later);
  t.set_policy(later);
  ASSERT_EQ(t.running().active_slot, first_slot);  // written over the first policy
  EXPECT_EQ(t.run(syn("198.18.9.1")).action, XDP_PASS);
  EXPECT_EQ(t.run(syn("198.18.17.1")).action, XDP_PASS);
  EXPECT_EQ(t.global(SL_G_NOT_SERVICE), 2u);  // port 80 is no service any more
  EXPECT_EQ(t.run(syn("198.18.17.1", "198.18.0.2", 81)).action, XDP_PASS);
  EXPECT_EQ(t.pair("api", "default").verdict[SL_R_ADMITTED], 1u);  // lab's prefix is gone
  ASSERT_EQ(t.running().policy.services.size(), 1u);
  EXPECT_EQ(t.running().policy.services[0].name, "api");
}

// Found by reading parse.h next to the reference classifier: SYN+FIN and
// SYN+RST open nothing and must not be charged or answered (never answer a
// RST with a RST), and a fragmented SYN cannot be answered with a correct ACK.
TEST(DataPath, OddSynsAreNeitherChargedNorAnswered) {
  Policy p;
  policy::Service s = tcp_service("web", 80, Rate{1, 3600}, 1);
  s.reject = policy::RejectMode::Rst;
  p.services.push_back(s);
  XdpTester t(p);
  t.set_now(kT0);
  ASSERT_EQ(t.run(syn()).action, XDP_PASS);  // takes the only token
  for (uint8_t flags : {uint8_t(tcp_flag::SYN | tcp_flag::FIN), uint8_t(tcp_flag::SYN | tcp_flag::RST)}) {
    Bytes odd = PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").tcp(1, 80).flags(flags).build();
    EXPECT_EQ(t.run(odd).action, XDP_PASS) << int(flags);
  }
  EXPECT_EQ(t.pair("web", "default").verdict[SL_R_PASSED], 2u);
  EXPECT_EQ(t.global(SL_G_RST_SENT), 0u);

  Bytes fragmented4 = PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").mf().tcp(1, 80).flags(tcp_flag::SYN).build();
  Bytes fragmented6 = PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").ext(Ipv6ExtSpec::fragment(0, true))
                          .tcp(1, 80).flags(tcp_flag::SYN).build();
  EXPECT_EQ(t.run(fragmented4).action, XDP_DROP);
  EXPECT_EQ(t.run(fragmented6).action, XDP_DROP);
  EXPECT_EQ(t.global(SL_G_RST_SENT), 0u);
  EXPECT_EQ(t.run(syn()).action, XDP_TX);  // an ordinary refused SYN still gets its RST
}

// The IPv4 source table must agree with longest-prefix matching everywhere,
// including prefixes that need the /24 and /32 levels.
TEST(DataPath, Ipv4SourceTableMatchesLongestPrefixAtEveryLevel) {
  Policy p = open_policy();
  p.tenants.push_back(policy::Tenant{"a8", {Cidr::parse("198.0.0.0/8")}, 1});
  p.tenants.push_back(policy::Tenant{"a20", {Cidr::parse("198.18.16.0/20")}, 1});
  p.tenants.push_back(policy::Tenant{"a24", {Cidr::parse("198.18.17.0/24")}, 1});
  p.tenants.push_back(policy::Tenant{"a30", {Cidr::parse("198.18.17.4/30")}, 1});
  p.tenants.push_back(policy::Tenant{"host", {Cidr::parse("198.18.17.6/32")}, 1});
  p.deny.push_back(Cidr::parse("198.18.17.128/25"));
  XdpTester t(p);
  t.set_now(kT0);
  std::vector<std::pair<std::string, std::string>> expect = {
      {"198.1.2.3", "a8"},      {"198.18.0.1", "a8"},    {"198.18.16.1", "a20"}, {"198.18.31.255", "a20"},
      {"198.18.17.1", "a24"},   {"198.18.17.4", "a30"},  {"198.18.17.7", "a30"}, {"198.18.17.6", "host"},
      {"198.18.17.8", "a24"},   {"199.0.0.1", "default"},
  };
  for (const auto& [src, tenant] : expect) {
    uint64_t before = t.pair("web", tenant).verdict[SL_R_ADMITTED];
    EXPECT_EQ(t.run(syn(src)).action, XDP_PASS) << src;
    EXPECT_EQ(t.pair("web", tenant).verdict[SL_R_ADMITTED], before + 1) << src << " should be " << tenant;
  }
  EXPECT_EQ(t.run(syn("198.18.17.200")).action, XDP_DROP);  // the /25 deny inside a24
  EXPECT_EQ(t.run(syn("198.18.17.127")).action, XDP_PASS);
}

// Found by the packet fuzzer: IPv4 is kept IPv4-mapped in the maps, so keys
// must carry the family, or an IPv6 packet to or from ::ffff:a.b.c.d is
// taken for IPv4 a.b.c.d.
TEST(DataPath, Ipv4MappedIpv6AddressesAreNotIpv4) {
  Policy p;
  p.services.push_back(tcp_service("any", 80));
  policy::Service bound = tcp_service("bound", 80);
  bound.addr = policy::IpAddr::parse("198.18.0.10");
  p.services.push_back(bound);
  policy::Service dns = udp_service("dns", 53);
  dns.per_source = Rate{1, 3600};
  dns.per_source_burst = 2;
  p.services.push_back(dns);
  XdpTester t(p);
  t.set_now(kT0);
  // A: an IPv6 SYN to ::ffff:198.18.0.10 is not for the service bound to IPv4 198.18.0.10.
  t.run(syn6("2001:db8::1", "::ffff:198.18.0.10"));
  EXPECT_EQ(t.pair("bound", "default").verdict[SL_R_ADMITTED], 0u);
  EXPECT_EQ(t.pair("any", "default").verdict[SL_R_ADMITTED], 1u);
  // B: an IPv6 client ::ffff:198.18.1.5 has its own per-source bucket.
  Bytes mapped = PacketBuilder().ipv6("::ffff:198.18.1.5", "2001:db8::2").udp(1, 53).payload("q").build();
  EXPECT_EQ(t.run(mapped).action, XDP_PASS);
  EXPECT_EQ(t.run(mapped).action, XDP_PASS);
  EXPECT_EQ(t.run(mapped).action, XDP_DROP);                        // its own bucket is empty...
  EXPECT_EQ(t.run(datagram("198.18.1.5")).action, XDP_PASS);        // ...the IPv4 client's is not
}
