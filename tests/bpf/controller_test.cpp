// The controller's tick on a real data path's maps: it reads what the kernel
// observed of every governed service and writes every control entry in
// batches, so each value must land on its own service's id, and services it
// does not govern must be left alone. And the census of the flow table that
// tells it which in-flight slots no flow holds any more.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>

#include "../lib/xdp_tester.hpp"
#include "control/controller.hpp"
#include "kernel/flow_census.hpp"
#include "kernel/map.hpp"
#include "sluice.skel.h"

using namespace sluice;
using namespace sluice::test;

namespace {

constexpr uint64_t kT0 = 1'000'000'000'000;
constexpr uint64_t kTick = 100'000'000;

policy::Service service(const char* name, policy::Proto proto, uint16_t port, bool governed) {
  policy::Service s;
  s.name = name;
  s.proto = proto;
  s.port = port;
  if (governed) s.tuning.adaptive = policy::Adaptive::Bbr;
  return s;
}

// Puts a flow in the table (client port `port`, server port 80, TCP) and
// returns its key.
sl_flow_key add_flow(int flows_fd, uint16_t port, uint16_t service_id, sl_flow_state state, uint64_t started_ns,
                     uint32_t census = 0) {
  sl_flow_key key{};
  key.client[15] = 1;
  key.client_port = port;
  key.server_port = 80;
  key.proto = 6;
  sl_flow f{};
  f.state = state;
  f.service_id = service_id;
  f.started_ns = started_ns;
  f.census = census;
  kernel::map_update(flows_fd, key, f, "flows");
  return key;
}

}  // namespace

TEST(Controller, ReadsAndWritesEachGovernedServiceAtItsOwnId) {
  policy::Policy p;
  p.services = {service("web", policy::Proto::Tcp, 80, true), service("plain", policy::Proto::Tcp, 81, false),
                service("dns", policy::Proto::Udp, 53, true)};
  XdpTester t(p);
  const auto& ids = t.running().ids.services;
  uint32_t web = ids.at("web"), plain = ids.at("plain"), dns = ids.at("dns");
  // An ungoverned id between two governed ones: the batches span it.
  ASSERT_LT(std::min(web, dns), plain);
  ASSERT_LT(plain, std::max(web, dns));

  kernel::DataPath& dp = t.datapath();
  int shared_fd = dp.map_fd(dp.skel()->maps.obs_shared);
  int control_fd = dp.map_fd(dp.skel()->maps.ctl_services);
  auto set_inflight = [&](uint32_t id, int64_t inflight) {
    kernel::map_update(shared_fd, id, sl_obs_shared{.inflight = inflight, .probes_admitted = 0}, "obs_shared");
  };
  auto control_of = [&](uint32_t id) { return kernel::map_lookup<uint32_t, sl_control>(control_fd, id).value(); };

  // In-flight slots no flow holds (the flow table is empty): the first tick
  // reconciles them and publishes each service's own bias.
  set_inflight(web, 3);
  set_inflight(dns, 5);
  set_inflight(plain, 9);
  std::string log;
  control::Controller ctl(dp, {}, [&](const std::string& line) { log += line + "\n"; });
  ctl.tick(kT0);
  EXPECT_EQ(control_of(web).inflight_bias, 3) << log;
  EXPECT_EQ(control_of(dns).inflight_bias, 5) << log;
  sl_control untouched{};
  sl_control plain_control = control_of(plain);
  EXPECT_EQ(0, memcmp(&plain_control, &untouched, sizeof untouched)) << "an ungoverned service's control was written";

  // Two requests begin at dns before the next tick (no reconciliation due):
  // the tick reads them for dns alone, net of its bias.
  set_inflight(dns, 7);
  ctl.tick(kT0 + kTick);
  std::map<std::string, int64_t> inflight;
  for (const auto& r : ctl.reports()) inflight[r.name] = r.view.inflight;
  EXPECT_EQ(inflight, (std::map<std::string, int64_t>{{"dns", 2}, {"web", 0}}));
}

// The census of the flow table runs once a second, or less often when it
// would take more than its share of a core: with a share so small that even
// an empty table's census exceeds it, a second leak is not counted a
// second later, while with the default share it is. The log says when the
// interval stretches.
TEST(Controller, ReconcilesLessOftenWhenTheCensusWouldExceedItsShare) {
  policy::Policy p;
  p.services = {service("web", policy::Proto::Tcp, 80, true)};
  for (double share : {0.005, 1e-9}) {
    SCOPED_TRACE(share);
    XdpTester t(p);
    uint32_t web = t.running().ids.services.at("web");
    kernel::DataPath& dp = t.datapath();
    auto set_inflight = [&](int64_t inflight) {
      kernel::map_update(dp.map_fd(dp.skel()->maps.obs_shared), web,
                         sl_obs_shared{.inflight = inflight, .probes_admitted = 0}, "obs_shared");
    };
    auto bias = [&] {
      return kernel::map_lookup<uint32_t, sl_control>(dp.map_fd(dp.skel()->maps.ctl_services), web)->inflight_bias;
    };
    control::ControllerOptions options;
    options.reconcile_cpu_share = share;
    std::string log;
    control::Controller ctl(dp, options, [&](const std::string& line) { log += line + "\n"; });
    set_inflight(3);  // slots no flow holds
    ctl.tick(kT0);
    EXPECT_EQ(bias(), 3);
    set_inflight(5);
    ctl.tick(kT0 + options.reconcile_every_ns);
    EXPECT_EQ(bias(), share < 1e-6 ? 3 : 5);
    EXPECT_EQ(log.find("flow census:") != std::string::npos, share < 1e-6) << log;
  }
}

// A flow holds an in-flight slot while a request is pending, or while its
// connection's reservation is younger than the TTL (a reservation made
// after the controller read its clock included). Idle flows and older
// reservations hold none.
TEST(FlowCensus, CountsPendingRequestsAndFreshReservationsPerService) {
  XdpTester t;
  kernel::DataPath& dp = t.datapath();
  int flows_fd = dp.map_fd(dp.skel()->maps.flows);
  constexpr uint64_t kTtl = 2'000'000'000;
  uint16_t next_port = 1;
  auto add = [&](uint16_t service, sl_flow_state state, uint64_t started_ns) {
    add_flow(flows_fd, next_port++, service, state, started_ns);
  };
  for (int i = 0; i < 3; i++) add(1, SL_FLOW_PENDING, kT0 - 10 * kTtl);  // pending however long
  add(1, SL_FLOW_RESERVED, kT0 - kTtl + 1);   // fresh by 1 ns
  add(1, SL_FLOW_RESERVED, kT0 + 5);          // reserved after the clock was read
  add(1, SL_FLOW_RESERVED, kT0 - kTtl);       // exactly the TTL old: abandoned
  add(1, SL_FLOW_RESERVED, kT0 - 3 * kTtl);   // abandoned
  for (int i = 0; i < 4; i++) add(1, SL_FLOW_IDLE, kT0);
  add(7, SL_FLOW_PENDING, kT0);
  add(SL_MAX_SERVICES - 1, SL_FLOW_PENDING, kT0);

  kernel::FlowCensus census(dp);
  std::vector<uint32_t> live = census.count(kT0, kTtl).live;
  ASSERT_EQ(live.size(), static_cast<size_t>(SL_MAX_SERVICES));
  std::map<uint32_t, uint32_t> nonzero;
  for (uint32_t id = 0; id < live.size(); id++)
    if (live[id]) nonzero[id] = live[id];
  EXPECT_EQ(nonzero, (std::map<uint32_t, uint32_t>{{1, 5}, {7, 1}, {SL_MAX_SERVICES - 1, 1}}));

  // Each census starts from zero; later, the fresh reservations age out.
  live = census.count(kT0 + kTtl, kTtl).live;
  EXPECT_EQ(live[1], 4u);
  EXPECT_EQ(live[7], 1u);
}

// What the census compares with the in-flight counts: those counts as it
// began, the flows it counted (each marked with its id), less the flows
// that took their slot while it ran (the data path marks them, see
// Observe.WhileACensusRunsTheDataPathMarksAndCountsWhatChanges), and the
// slots that flows released before it reached them.
TEST(FlowCensus, ComparesTheFlowsThatHeldASlotAsItBeganWithTheCountsThen) {
  XdpTester t;
  kernel::DataPath& dp = t.datapath();
  int flows_fd = dp.map_fd(dp.skel()->maps.flows);
  int shared_fd = dp.map_fd(dp.skel()->maps.obs_shared);
  kernel::FlowCensus census(dp);
  const uint32_t id = census.next_id();
  ASSERT_NE(id, 0u);
  ASSERT_EQ(id & SL_CENSUS_ENTERED, 0u);

  sl_flow_key older = add_flow(flows_fd, 1, 1, SL_FLOW_PENDING, kT0, id - 2);  // counted by an earlier census
  sl_flow_key unmarked = add_flow(flows_fd, 2, 1, SL_FLOW_PENDING, kT0);
  // Took its slot during this census.
  sl_flow_key entered = add_flow(flows_fd, 3, 1, SL_FLOW_PENDING, kT0, id | SL_CENSUS_ENTERED);
  kernel::map_update(shared_fd, uint32_t{1}, sl_obs_shared{.inflight = 5, .probes_admitted = 0}, "obs_shared");

  kernel::CensusCount count = census.count(kT0, 1'000'000'000);
  EXPECT_EQ(count.held[1], 5);
  EXPECT_EQ(count.live[1], 2u) << "the flow that took its slot during the census is not counted";
  EXPECT_EQ(count.released[1], 0u);
  EXPECT_EQ(count.leaked(1), 3);
  EXPECT_EQ(count.held[2], 0);
  EXPECT_EQ(count.leaked(2), 0);
  auto mark_of = [&](const sl_flow_key& key) {
    return kernel::map_lookup<sl_flow_key, sl_flow>(flows_fd, key)->census;
  };
  EXPECT_EQ(mark_of(older), id) << "a counted flow carries the census's id";
  EXPECT_EQ(mark_of(unmarked), id);
  EXPECT_EQ(mark_of(entered), id | SL_CENSUS_ENTERED);
  // Over: the data path no longer sees it running, and the next one has an id of its own.
  auto state = kernel::map_lookup<uint32_t, sl_census_state>(dp.map_fd(dp.skel()->maps.census_state), 0);
  ASSERT_TRUE(state);
  EXPECT_EQ(state->running, 0u);
  EXPECT_NE(census.next_id(), id);
  EXPECT_EQ(census.next_id() & SL_CENSUS_ENTERED, 0u);
  // Counts below zero are no leak.
  kernel::map_update(shared_fd, uint32_t{1}, sl_obs_shared{.inflight = 1, .probes_admitted = 0}, "obs_shared");
  EXPECT_EQ(census.count(kT0, 1'000'000'000).leaked(1), 0);
}
