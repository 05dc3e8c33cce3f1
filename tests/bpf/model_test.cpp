// The kernel against the C++ reference model, verdict by verdict: random
// packet sequences with chosen timestamps go through the real XDP program
// (injected clock) and through algo::TokenBucket (x/time/rate semantics,
// written independently of the data path's GCRA). They must agree on every
// packet.
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <thread>

#include "../lib/packet.hpp"
#include "../lib/xdp_tester.hpp"
#include "algo/token_bucket.hpp"
#include "policy/rate.hpp"

using namespace sluice;
using namespace sluice::test;
using policy::Cidr;
using policy::Rate;

namespace {

struct Source {
  std::string addr;
  std::string tenant;
};

// Random sources across three tenants and the default tenant, both families.
const std::vector<Source> kSources = {
    {"198.18.1.1", "gold"},  {"198.18.1.2", "gold"},     {"2001:db8:1::5", "gold"}, {"198.18.2.1", "silver"},
    {"198.18.2.9", "silver"}, {"198.18.3.3", "bronze"},  {"203.0.113.1", "default"}, {"2001:db8:ff::1", "default"},
};

Bytes syn_from(const std::string& src, uint16_t sport) {
  PacketBuilder b;
  if (src.find(':') != std::string::npos)
    b.ipv6(src, "2001:db8::2");
  else
    b.ipv4(src, "198.18.0.2");
  return b.tcp(sport, 80).flags(tcp_flag::SYN).seq(sport).build();
}

}  // namespace

TEST(KernelVersusModel, VerdictsAgreeOnRandomSequences) {
  for (uint32_t seed = 1; seed <= 6; seed++) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    auto pick = [&](uint64_t lo, uint64_t hi) { return lo + rng() % (hi - lo + 1); };

    // A random policy: service rate, per-source rate, one tenant override.
    // Rates that divide a second evenly, and whole-millisecond or zero gaps
    // below, so arrivals land exactly on bucket boundaries often: that is
    // where an off-by-one would hide.
    const uint32_t even_rates[] = {10, 20, 50, 100, 125, 200, 250, 500, 1000};
    auto even_rate = [&] { return Rate{even_rates[pick(0, std::size(even_rates) - 1)], 1}; };
    Rate service_rate = even_rate();
    uint32_t service_burst = static_cast<uint32_t>(pick(1, 20));
    Rate source_rate = even_rate();
    uint32_t source_burst = static_cast<uint32_t>(pick(1, 10));
    Rate gold_rate = even_rate();
    uint32_t gold_burst = static_cast<uint32_t>(pick(1, 30));
    bool per_source = seed % 2 == 0;

    policy::Policy p;
    policy::Service web;
    web.name = "web";
    web.port = 80;
    web.rate = service_rate;
    web.burst = service_burst;
    if (per_source) {
      web.per_source = source_rate;
      web.per_source_burst = source_burst;
    }
    p.services.push_back(web);
    p.tenants.push_back({"gold", {Cidr::parse("198.18.1.0/24"), Cidr::parse("2001:db8:1::/48")}, 0});
    p.tenants.push_back({"silver", {Cidr::parse("198.18.2.0/24")}, 1});
    p.tenants.push_back({"bronze", {Cidr::parse("198.18.3.0/24")}, 2});
    p.limits.push_back({"web", "gold", gold_rate, gold_burst});
    XdpTester t(p);

    // The model: a token bucket per tenant, one per source when configured.
    auto bucket = [](Rate r, uint32_t burst) {
      return std::make_unique<algo::TokenBucket>(policy::to_kernel(r, burst).interval_ns, burst);
    };
    std::map<std::string, std::unique_ptr<algo::TokenBucket>> tenants, sources;
    for (const auto& s : kSources) {
      if (!tenants.count(s.tenant))
        tenants[s.tenant] = s.tenant == "gold" ? bucket(gold_rate, gold_burst) : bucket(service_rate, service_burst);
      sources[s.addr] = bucket(source_rate, source_burst);
    }

    uint64_t now = 5'000'000'000ull;
    // Eight sources in four tenants: about twice the service rate per tenant.
    uint64_t mean_gap = 1'000'000'000ull / (service_rate.tokens * 8) * 3 / 2;
    int agreed = 0, admitted = 0;
    for (int i = 0; i < 1500; i++) {
      // Two seeds in three keep every arrival on a whole millisecond (so
      // buckets run exactly empty or exactly full); the third goes anywhere.
      if (seed % 3 != 0)
        now += pick(0, 1) * pick(0, 2 * mean_gap / 1'000'000 + 1) * 1'000'000;
      else
        now += pick(0, 2 * mean_gap);
      const Source& s = kSources[pick(0, kSources.size() - 1)];
      bool model = true;
      if (per_source) model = sources[s.addr]->allow(now);
      if (model) model = tenants[s.tenant]->allow(now);

      t.set_now(now);
      XdpResult r = t.run(syn_from(s.addr, static_cast<uint16_t>(1000 + i)));
      bool kernel = r.action == XDP_PASS;
      ASSERT_EQ(kernel, model) << "packet " << i << " from " << s.addr << " at " << now;
      agreed++;
      admitted += kernel;
    }
    EXPECT_EQ(agreed, 1500);
    EXPECT_GT(admitted, 0);
    EXPECT_LT(admitted, 1500);  // the sequence exercised both verdicts
  }
}

// Many CPUs race on one bucket: compare-and-swap admits exactly the burst.
TEST(KernelVersusModel, ConcurrentRunsNeverOverAdmit) {
  policy::Policy p;
  policy::Service web;
  web.name = "web";
  web.port = 80;
  web.rate = Rate{1, 3600};
  web.burst = 3000;
  p.services.push_back(web);
  XdpTester t(p);
  t.set_now(10'000'000'000ull);

  Bytes frame = syn_from("198.18.0.1", 1);
  std::atomic<int> passed{0};
  std::vector<std::thread> threads;
  int cpus = static_cast<int>(std::thread::hardware_concurrency());
  int workers = std::max(4, 2 * cpus);
  for (int w = 0; w < workers; w++)
    threads.emplace_back([&, w] {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(w % cpus, &set);
      pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
      Bytes out(frame.size() + 64);
      for (int i = 0; i < 1500; i++) {
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
                    .data_size_in = static_cast<uint32_t>(frame.size()),
                    .data_size_out = static_cast<uint32_t>(out.size()));
        if (bpf_prog_test_run_opts(t.datapath().xdp_prog_fd(), &opts) == 0 && opts.retval == XDP_PASS) passed++;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(passed.load(), 3000);
  sl_counters c = t.pair("web", "default");
  EXPECT_EQ(c.verdict[SL_R_ADMITTED], 3000u);
  EXPECT_EQ(c.verdict[SL_R_TENANT_LIMIT], static_cast<uint64_t>(workers * 1500 - 3000));
}
