// End-to-end tests of the closed loop (issue 3): the real kernel, a real
// unmodified server (capsrv, a testbed HTTP server of known capacity) in the
// server namespace of a Testbed, real clients (loadgen) in the client
// namespace, and the real `sluice run` controller in the host namespace,
// governing the pinned maps of a private sluice installation.
//
// Every number asserted is what the client, the server or the kernel really
// saw; each test prints them ("[ numbers ]" lines) so a run can be compared
// with the targets.
//
// The server: capsrv with C = 8 workers of 20 ms (sleep) serves 400 req/s and
// collapses when offered more (an unbounded FIFO; see docs/tools.md).
#include <signal.h>
#include <time.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../lib/e2e_services.hpp"
#include "../lib/netns.hpp"
#include "../lib/process.hpp"
#include "../lib/sluice_cli.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kWorkers = 8;
constexpr int kServiceMs = 20;
constexpr double kCapacity = kWorkers * 1000.0 / kServiceMs;  // 400 req/s
constexpr int kPort = 8080;
const std::string kWeb = "service=\"web\"";

// CLOCK_MONOTONIC, the clock of the kernel's heartbeat and of `sluice stats`' taken_ns.
uint64_t mono_ns()
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

// CLOCK_REALTIME in seconds, the clock of the controller's log stamps.
double wall_s()
{
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return double(ts.tv_sec) + ts.tv_nsec / 1e9;
}

void numbers(const std::string& line) { std::printf("[ numbers  ] %s\n", line.c_str()); std::fflush(stdout); }

// ---- clients ------------------------------------------------------------------

// loadgen http (new connection per request, 1 s timeout) in the background.
Load http_load(const std::string& ns, const std::string& target, int rate, int seconds,
               std::vector<std::string> extra = {})
{
    extra.insert(extra.begin(), {"--timeout", "1000"});
    return Load(ns, "http", target, rate, seconds, std::move(extra));
}

// Mean of v[from, to).
double mean(const std::vector<double>& v, size_t from, size_t to)
{
    to = std::min(to, v.size());
    if (from >= to) return 0;
    double s = 0;
    for (size_t i = from; i < to; i++) s += v[i];
    return s / double(to - from);
}

// A fresh testbed, sluice attached to the server veth.
struct Bed {
    Testbed tb;
    SluiceCli cli;
    std::string target;

    Bed() : target(tb.server_ip4() + ":" + std::to_string(kPort))
    {
        cli.must({"-n", tb.server_ns(), "attach", tb.server_dev()});
    }
    void service(std::vector<std::string> options)
    {
        std::vector<std::string> argv = {"service", "add", "web", "--port", std::to_string(kPort)};
        argv.insert(argv.end(), options.begin(), options.end());
        cli.must(argv);
    }
};

// The service of the capacity tests: BBR always applied, requests seen
// (HTTP), refusals answered with an RST.
const std::vector<std::string> kAdaptiveService = {"--adaptive", "bbr", "--cpu-threshold", "0",
                                                   "--http",     "--reject", "rst"};
const std::string kEstimate = "sluice_limit_estimate{" + kWeb + "}";

// Waits until the learned limit has settled: ten samples in a row (half a
// second) near the workers (near_workers()), counted from 2 s after the
// load began (it is called right after), when the start-up overshoot
// (4 -> 10 -> 8) is over.
::testing::AssertionResult limit_settles(const Controller& ctl)
{
    int settled = 0;
    const auto from = std::chrono::steady_clock::now() + 2s;
    if (await(
            [&] {
                if (std::chrono::steady_clock::now() < from) return false;
                settled = near_workers(ctl.metric(kEstimate), kWorkers) ? settled + 1 : 0;
                return settled >= 10;
            },
            8s))
        return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "the learned limit did not settle near " << kWorkers << "\n" << ctl.log();
}

// ---- 1. capacity learning under 5x overload --------------------------------------

TEST(AdaptiveE2eCapacity, LearnsTheLimitAndKeepsGoodputUnderFiveTimesOverload)
{
    Bed bed;
    Testbed& tb = bed.tb;
    const int overload = int(5 * kCapacity), seconds = 8;

    // Without sluice (a port that is no service: XDP passes it untouched), the
    // same overload sinks a fresh server.
    json bare;
    {
        Process& srv = start_capsrv(tb, kPort + 1, kWorkers, kServiceMs);
        bare = http_load(tb.client_ns(), tb.server_ip4() + ":" + std::to_string(kPort + 1), overload, 6).result();
        srv.stop();
    }
    numbers("without sluice, 5x: " + describe(bare));

    bed.service(kAdaptiveService);
    start_capsrv(tb, kPort, kWorkers, kServiceMs);

    // The server's unloaded p99, at half its capacity, before the controller
    // runs (sluice attached, nothing to shed).
    json calm = http_load(tb.client_ns(), bed.target, int(kCapacity / 2), 4).result();
    numbers("sluice attached, no controller, 0.5x: " + describe(calm));
    ASSERT_EQ(outcome(calm, "2xx"), calm.at("scheduled").get<uint64_t>()) << describe(calm);
    const double calm_p99_ms = calm.at("latency_us").at("p99").get<double>() / 1000;

    // The controller starts from nothing learned.
    Controller ctl(bed.cli, "web");

    // 5x overload; the learned limit sampled every 100 ms.
    Load over = http_load(tb.client_ns(), bed.target, overload, seconds);
    std::vector<std::pair<double, double>> estimate;  // (s since the load began, limit)
    while (over.running() && since(over.started()) < seconds) {
        estimate.emplace_back(since(over.started()), ctl.metric(kEstimate));
        std::this_thread::sleep_for(100ms);
    }
    const json& o = over.result();
    Counts kernel = counts(bed.cli, "web");
    numbers("with sluice, 5x: " + describe(o));
    numbers("kernel: " + describe(kernel));
    std::string trace;
    for (auto [t, v] : estimate) trace += fmt(" %.1f:", t) + fmt("%.0f", v);
    numbers("learned limit (s:limit):" + trace);

    // The learned limit is near C from 3 s on (and stays there).
    ASSERT_GT(estimate.size(), 40u);
    std::string outside;
    for (auto [t, v] : estimate)
        if (t >= 3.0 && !near_workers(v, kWorkers)) outside += fmt(" %.1f:", t) + fmt("%.0f", v);
    EXPECT_TRUE(outside.empty()) << "learned limit outside [" << 0.85 * kWorkers << ", " << kWorkers + 2
                                 << "] from 3 s on (s:limit):" << outside << "\n" << ctl.log();

    // Goodput after the first 3 s: at least 90% of the capacity.
    auto ok = series(o, "success");
    double goodput = mean(ok, 3, seconds);
    numbers("goodput s3-s8 " + fmt("%.1f", goodput) + "/s = " + fmt("%.0f%%", 100 * goodput / kCapacity) +
            " of capacity");
    EXPECT_GE(goodput, 0.9 * kCapacity) << describe(o);

    // Admitted requests' p99 (all of them, the learning included): at most
    // 2x the unloaded p99.
    const double p99_ms = o.at("latency_us").at("p99").get<double>() / 1000;
    numbers("p99: unloaded " + fmt("%.1f", calm_p99_ms) + " ms, admitted under 5x overload " + fmt("%.1f", p99_ms) +
            " ms, ratio " + fmt("%.2f", p99_ms / calm_p99_ms));
    EXPECT_LE(p99_ms, 2 * calm_p99_ms) << describe(o);

    // The excess was refused in the kernel (RST: the client is told at once),
    // for the in-flight limit only.
    EXPECT_GT(kernel.of("inflight"), uint64_t(seconds * (overload - kCapacity) * 0.7)) << describe(kernel);
    EXPECT_EQ(kernel.shed_total(), kernel.of("inflight")) << describe(kernel);
    EXPECT_NEAR(double(outcome(o, "refused")), double(kernel.of("inflight")), 0.01 * kernel.of("inflight") + 5);

    // And without sluice: collapse.
    auto bare_ok = series(bare, "success");
    double bare_goodput = mean(bare_ok, 3, 6);
    double bare_p99_ms = bare.at("latency_us").at("p99").get<double>() / 1000;
    numbers("without sluice: goodput s3-s6 " + fmt("%.1f", bare_goodput) + "/s, p99 " + fmt("%.1f", bare_p99_ms) +
            " ms");
    EXPECT_LT(bare_goodput, 0.5 * kCapacity) << describe(bare);
    EXPECT_GT(bare_p99_ms, 5 * calm_p99_ms) << describe(bare);
}

// Two controller bugs these tests found, kept as their regression tests.

// A tick that comes late (the controller descheduled on a busy host; here
// SIGSTOP for 400 ms, well inside the staleness bound) must not count the
// completions of the whole gap as one bucket's: maxPass is a max over the
// window's buckets, so one long tick inflates the learned limit for the
// whole window (observed: 9 -> 38 in flight, p99 33 -> 120 ms).
TEST(AdaptiveE2eCapacity, ALateTickDoesNotInflateTheLearnedLimit)
{
    Bed bed;
    Testbed& tb = bed.tb;
    bed.service(kAdaptiveService);
    start_capsrv(tb, kPort, kWorkers, kServiceMs);
    Controller ctl(bed.cli, "web");
    Load over = http_load(tb.client_ns(), bed.target, int(5 * kCapacity), 8);
    ASSERT_TRUE(limit_settles(ctl));
    ctl.process().signal(SIGSTOP);
    std::this_thread::sleep_for(400ms);
    ctl.process().signal(SIGCONT);
    std::string trace;
    bool all_near = true;
    for (auto t0 = Clock::now(); since(t0) < 3;) {
        double v = ctl.metric(kEstimate);
        trace += fmt(" %.0f", v);
        all_near = all_near && near_workers(v, kWorkers);
        std::this_thread::sleep_for(100ms);
    }
    const json& o = over.result();
    numbers("learned limit after a 400 ms stall:" + trace + "; " + describe(o));
    if (!all_near) numbers("controller log:\n" + ctl.log());
    EXPECT_TRUE(all_near) << trace;
}

// A service slower than the controller's tick and its buckets (8 workers x
// 150 ms, 53 requests/s): its answers come in bunches, a few a tick, and the
// limit must still be its concurrency (maxPass over two response times, at
// least one pass in the span rather than one a bucket). Measured: 9 from 1 s
// on, p99 229 ms (one second 274 ms); the controller before both read 10,
// p99 264 ms.
TEST(AdaptiveE2eCapacity, AServiceSlowerThanATickLearnsItsConcurrency)
{
    Bed bed;
    Testbed& tb = bed.tb;
    constexpr int kSlowMs = 150;
    constexpr double kSlowCapacity = kWorkers * 1000.0 / kSlowMs;
    const int seconds = 16;
    bed.service(kAdaptiveService);
    start_capsrv(tb, kPort, kWorkers, kSlowMs);
    Controller ctl(bed.cli, "web");
    Load over = http_load(tb.client_ns(), bed.target, int(5 * kSlowCapacity), seconds);
    std::vector<std::pair<double, double>> samples;
    while (over.running() && since(over.started()) < seconds) {
        samples.emplace_back(since(over.started()), ctl.metric(kEstimate));
        std::this_thread::sleep_for(100ms);
    }
    const json& o = over.result();
    std::string trace, outside;
    for (auto [t, v] : samples) {
        trace += fmt(" %.1f:", t) + fmt("%.0f", v);
        if (t >= 4 && std::abs(v - kWorkers) > 0.15 * kWorkers) outside += fmt(" %.1f:", t) + fmt("%.0f", v);
    }
    double goodput = mean(series(o, "success"), 4, seconds);
    std::vector<double> p99 = series(o, "p99_us");
    double worst_p99_ms = 0;
    for (size_t s = 4; s + 1 < p99.size(); s++) worst_p99_ms = std::max(worst_p99_ms, p99[s] / 1000);
    numbers("8 x 150 ms at 5x: learned limit (s:limit):" + trace);
    numbers("goodput s4-s" + std::to_string(seconds) + " " + fmt("%.1f", goodput) + "/s of " +
            fmt("%.1f", kSlowCapacity) + ", worst p99 of a second " + fmt("%.0f", worst_p99_ms) + " ms; " +
            describe(o));
    EXPECT_TRUE(outside.empty()) << "outside 8 +-15% from 4 s on:" << outside << "\n" << ctl.log();
    EXPECT_GE(goodput, 0.9 * kSlowCapacity) << describe(o);
    // At most a service time of queue (one more than the workers admitted),
    // with room for the scheduler: 229-274 ms measured.
    EXPECT_LE(worst_p99_ms, 2.5 * kSlowMs) << describe(o);
}

// A single worker (1 x 50 ms, 20 requests/s) overloaded 5x from the start,
// with Poisson arrivals (their bursts are what deepened the first queue in
// the model). The first limit (4, admitted as 5 or 6) queues four deep over
// one worker; unless the test of the first floor's measure counts, the
// floor comes from the queue (250 ms) and slow start doubles the limit on
// it. Settled, one or two answers wait behind the one in service.
// Measured, the worst second from 3 s on, seeds 1-6: 99, 197, 147, 99, 197
// and 101 ms (this seed 1: 99 ms in four runs). The controller before took
// 0.5-1 s in seconds 3-5 for seeds 1, 3 and 4, and in 1 of 3 runs of this
// one. (ServiceControl.ASingleWorkerOverloadedFromTheStartFindsItsFloor is
// the deterministic check, in the model.)
TEST(AdaptiveE2eCapacity, ASingleWorkerOverloadedFromTheStartFindsItsFloor)
{
    constexpr int kOneWorkerMs = 50, seconds = 10;
    constexpr double kOneWorkerCapacity = 1000.0 / kOneWorkerMs;
    Bed bed;
    Testbed& tb = bed.tb;
    bed.service(kAdaptiveService);
    start_capsrv(tb, kPort, 1, kOneWorkerMs);
    Controller ctl(bed.cli, "web");
    json o = http_load(tb.client_ns(), bed.target, int(5 * kOneWorkerCapacity), seconds,
                       {"--arrivals", "poisson", "--seed", "1"})
                 .result();
    auto p99_us = series(o, "p99_us");
    auto ok = series(o, "success");
    numbers("1 worker x 50 ms, 5x: " + describe(o) + "; p99 per second (ms):" + [&] {
        std::string t;
        for (double v : p99_us) t += fmt(" %.0f", v / 1000);
        return t;
    }());
    ASSERT_GE(p99_us.size(), size_t(seconds));
    double worst_ms = 0;
    for (int s = 3; s < seconds; s++) worst_ms = std::max(worst_ms, p99_us[s] / 1000);
    EXPECT_LE(worst_ms, 6 * kOneWorkerMs) << "the p99 of a second from 3 s on (a floor from the queue: 0.5-1 s)\n"
                                          << ctl.log();
    EXPECT_GE(mean(ok, 3, seconds), 0.9 * kOneWorkerCapacity) << describe(o);
}

// A server that gets slower under 5x overload (a slower dependency: 20 -> 32
// ms a request, capacity 400 -> 250/s). Once the window forgot the faster
// passes, Little's law with the old floor would hold it at 5 of its 8
// workers (250/s x 20 ms) and waste a third of what it can still serve; the
// next drain probe finds answers slower with the queue drained, a second
// agrees, and the floor follows. The limit stays at the concurrency, and
// the goodput at the slower capacity.
TEST(AdaptiveE2eCapacity, AServerThatSlowsDownKeepsItsConcurrency)
{
    Bed bed;
    Testbed& tb = bed.tb;
    const std::string slow = bed.cli.scratch().file("slow");
    constexpr double kSlowerMs = 32, kSlowerCapacity = kWorkers * 1000.0 / kSlowerMs;  // 250/s
    bed.service(kAdaptiveService);
    start_capsrv(tb, kPort, kWorkers, kServiceMs, {"--slow-file", slow, "--slow-time", fmt("%.0f", kSlowerMs)});
    Controller ctl(bed.cli, "web");
    Load over = http_load(tb.client_ns(), bed.target, int(5 * kCapacity), 30);
    ASSERT_TRUE(limit_settles(ctl));
    // Into the window: the slowdown does not meet the first drain probe.
    std::this_thread::sleep_for(3s);

    std::ofstream(slow).put('\n');
    const double slowed_at = wall_s();
    ASSERT_TRUE(capsrv_stats(tb, kPort).at("slowed").get<bool>());
    // The next drain probe comes within a window (10 s), the second 0.5 s
    // later: before the faster passes leave the window.
    std::string waiting;
    ASSERT_TRUE(await(
        [&] {
            waiting += fmt(" %.0f", ctl.metric(kEstimate));
            return ctl.logged_at("web: the service got slower").has_value();
        },
        14s, 500ms))
        << ctl.log();
    numbers("learned limit every 0.5 s until the floor moved:" + waiting);
    const double confirmed_at = *ctl.logged_at("web: the service got slower");
    std::string line = ctl.log().substr(ctl.log().find("web: the service got slower"));
    line = line.substr(0, line.find('\n'));
    double floor_ms = 0;
    ASSERT_EQ(std::sscanf(line.c_str(), "web: the service got slower: floor %*f -> %lf ms", &floor_ms), 1) << line;
    numbers("slowed at +0 s; confirmed " + fmt("%.1f", confirmed_at - slowed_at) + " s later: " + line);
    EXPECT_NEAR(floor_ms, kSlowerMs, 0.1 * kSlowerMs) << line;

    // Then, for 5 s: the limit at the concurrency, the goodput at the new capacity.
    const int from_s = int(std::ceil(since(over.started())));
    std::string trace;
    double worst = 0;
    while (since(over.started()) < from_s + 5) {
        double v = ctl.metric(kEstimate);
        trace += fmt(" %.0f", v);
        worst = std::max(worst, std::abs(v - kWorkers));
        std::this_thread::sleep_for(100ms);
    }
    over.interrupt();
    const json& o = over.result();
    double goodput = mean(series(o, "success"), from_s, from_s + 5);
    numbers("after: learned limit" + trace + "; goodput " + fmt("%.1f", goodput) + "/s (" +
            fmt("%.0f%%", 100 * goodput / kSlowerCapacity) + " of the slower capacity); " + describe(o));
    EXPECT_LE(worst, 0.25 * kWorkers) << trace << "\n" << ctl.log();
    EXPECT_GE(goodput, 0.9 * kSlowerCapacity) << describe(o);
    EXPECT_EQ(ctl.log().find("got slower", ctl.log().find("got slower") + 1), std::string::npos)
        << "the floor moved more than once:\n" << ctl.log();
}

// At half the capacity nothing is shed once the controller has started.
// With --cpu-threshold 0 the limit applies from the first tick; it starts
// near nothing (an overload that begins with the controller is held at
// once) and doubles each tick it refuses work until the service shows a
// queue, so only the first second may refuse a little. (Before this was
// fixed, maxPass x minRT at low load was the current concurrency and the
// limit clipped the load's bursts for good: 9-30% refused.)
TEST(AdaptiveE2eCapacity, ShedsNothingAtHalfCapacityAfterTheColdStart)
{
    Bed bed;
    Testbed& tb = bed.tb;
    bed.service(kAdaptiveService);
    start_capsrv(tb, kPort, kWorkers, kServiceMs);
    Controller ctl(bed.cli, "web");
    json l = http_load(tb.client_ns(), bed.target, int(kCapacity / 2), 8).result();
    Counts k = counts(bed.cli, "web");
    numbers("0.5x with the controller: " + describe(l) + "; kernel " + describe(k));
    const json& failed = l.at("series").at("failed");
    uint64_t after_first_second = 0;
    for (size_t i = 1; i < failed.size(); i++) after_first_second += failed[i].get<uint64_t>();
    EXPECT_EQ(after_first_second, 0u) << describe(l);
    EXPECT_LE(double(k.shed_total()), 0.02 * l.at("scheduled").get<double>()) << describe(k);
}

// A server whose answers vary as much as an exponential distribution's
// (8 workers x 20 ms on average, coefficient of variation 1: capsrv
// --service-spread 1). Ticks of a few dozen such answers have means that
// stray by a fifth, and the least of them was the floor: far below the
// service's mean, it made Little's law hold fewer in flight than the
// workers, the refusals lowered the rate measured, and the limit shrank.
// Now the floor pools answers until their mean is precise: at half the
// capacity nothing is refused after the cold start, and at 5x the goodput
// stays at the capacity.
TEST(AdaptiveE2eCapacity, AServerWhoseAnswersVaryKeepsItsCapacity)
{
    Bed bed;
    Testbed& tb = bed.tb;
    bed.service(kAdaptiveService);
    start_capsrv(tb, kPort, kWorkers, kServiceMs, {"--service-spread", "1"});
    Controller ctl(bed.cli, "web");

    const int half_s = 12;
    json half = http_load(tb.client_ns(), bed.target, int(kCapacity / 2), half_s).result();
    std::vector<double> refused = series(half, "failed");
    double refused_after = 0, offered_after = 0;
    std::vector<double> offered = series(half, "offered");
    for (size_t s = 2; s < refused.size() && s < offered.size(); s++) {
        refused_after += refused[s];
        offered_after += offered[s];
    }
    std::vector<double> half_p99 = series(half, "p99_us");
    std::vector<double> sorted(half_p99.begin() + std::min<size_t>(2, half_p99.size()), half_p99.end());
    std::sort(sorted.begin(), sorted.end());
    double unloaded_p99_ms = sorted.empty() ? 0 : sorted[sorted.size() / 2] / 1000;
    numbers("0.5x, answers varying (cv 1): refused from 2 s on " + fmt("%.0f", refused_after) + " of " +
            fmt("%.0f", offered_after) + "; p99 of a second (median) " + fmt("%.0f", unloaded_p99_ms) + " ms; limit " +
            fmt("%.0f", ctl.metric(kEstimate)) + "; " + describe(half));
    EXPECT_LE(refused_after, 0.02 * offered_after) << describe(half) << "\n" << ctl.log();

    const int over_s = 12;
    Load over = http_load(tb.client_ns(), bed.target, int(5 * kCapacity), over_s);
    std::string trace;
    while (over.running() && since(over.started()) < over_s) {
        trace += fmt(" %.0f", ctl.metric(kEstimate));
        std::this_thread::sleep_for(500ms);
    }
    const json& o = over.result();
    double goodput = mean(series(o, "success"), 4, over_s);
    std::vector<double> p99 = series(o, "p99_us");
    double worst_p99_ms = 0;
    for (size_t s = 4; s + 1 < p99.size(); s++) worst_p99_ms = std::max(worst_p99_ms, p99[s] / 1000);
    numbers("5x: learned limit every 0.5 s" + trace + "; goodput s4-s" + std::to_string(over_s) + " " +
            fmt("%.1f", goodput) + "/s of " + fmt("%.0f", kCapacity) + ", worst p99 of a second " +
            fmt("%.0f", worst_p99_ms) + " ms; " + describe(o));
    EXPECT_GE(goodput, 0.9 * kCapacity) << describe(o) << "\n" << ctl.log();
    // Admitted answers wait little: within twice what they take unloaded.
    EXPECT_LE(worst_p99_ms, 2 * unloaded_p99_ms) << describe(o);
}

// Under the breaker tests' load (half the capacity), the server answers it
// all with 200 during the next second.
void expect_served_ok(Testbed& tb, const std::string& when)
{
    std::this_thread::sleep_for(300ms);  // requests admitted before now finish
    uint64_t ok1 = capsrv_stats(tb, kPort).at("ok").get<uint64_t>();
    std::this_thread::sleep_for(1s);
    uint64_t ok2 = capsrv_stats(tb, kPort).at("ok").get<uint64_t>();
    numbers(when + ": the server answered " + std::to_string(ok2 - ok1) + " requests with 200 in 1 s");
    EXPECT_GE(double(ok2 - ok1), 0.9 * kCapacity / 2) << when;
}

// ---- 2. breakers on 5xx ------------------------------------------------------------

// The server starts answering 503 (its fail file appears) under steady load
// below capacity: the three-state breaker opens within 1 s and the kernel
// sheds for reason "breaker"; after the open interval it half-opens and
// probes (failing probes reopen it); once the server recovers, the probes
// succeed and it closes.
TEST(AdaptiveE2eBreaker, RatioBreakerOpensOnServerErrorsProbesAndClosesAfterRecovery)
{
    Bed bed;
    Testbed& tb = bed.tb;
    const std::string fail = bed.cli.scratch().file("fail");
    bed.service({"--breaker", "ratio", "--http", "--reject", "rst"});
    start_capsrv(tb, kPort, kWorkers, kServiceMs, {"--fail-file", fail});
    Controller ctl(bed.cli, "web");
    const std::string state = "sluice_breaker_state{" + kWeb + "}";
    auto answered = [&] { return ctl.metric("sluice_request_outcomes_total{" + kWeb + ",outcome=\"answered\"}"); };

    Load load = http_load(tb.client_ns(), bed.target, int(kCapacity / 2), 30);
    ASSERT_TRUE(await([&] { return answered() >= 300; }, 5s)) << ctl.page();
    ASSERT_EQ(ctl.metric(state), 0) << ctl.log();

    // The dependency fails.
    const double failed_at = wall_s();
    std::ofstream(fail).put('\n');
    ASSERT_TRUE(await([&] { return ctl.metric(state) == 1; }, 3s)) << ctl.log();
    auto opened = ctl.logged_at("web: breaker CLOSED -> OPEN: error ratio");
    ASSERT_TRUE(opened) << ctl.log();
    numbers("breaker opened " + fmt("%.3f", *opened - failed_at) + " s after the server began to fail");
    EXPECT_LE(*opened - failed_at, 1.0) << ctl.log();

    // While open, the kernel sheds new work and none of it reaches the server.
    std::this_thread::sleep_for(300ms);  // requests admitted before the opening finish
    Counts c1 = counts(bed.cli, "web");
    uint64_t served1 = capsrv_stats(tb, kPort).at("served").get<uint64_t>();
    std::this_thread::sleep_for(1s);
    Counts c2 = counts(bed.cli, "web");
    uint64_t served2 = capsrv_stats(tb, kPort).at("served").get<uint64_t>();
    numbers("open for 1 s: shed for breaker +" + std::to_string(c2.of("breaker") - c1.of("breaker")) +
            ", admitted +" + std::to_string(c2.admitted - c1.admitted) + ", server served +" +
            std::to_string(served2 - served1));
    EXPECT_GT(c2.of("breaker") - c1.of("breaker"), uint64_t(0.8 * kCapacity / 2)) << describe(c2);
    EXPECT_EQ(c2.admitted, c1.admitted);
    EXPECT_EQ(served2, served1);

    // After the open interval (5 s) it half-opens; the probes still fail.
    ASSERT_TRUE(await([&] { return ctl.logged_at("web: breaker HALF_OPEN -> OPEN: probe failed").has_value(); }, 8s))
        << ctl.log();
    auto half1 = ctl.logged_at("web: breaker OPEN -> HALF_OPEN");
    auto reopened = ctl.logged_at("web: breaker HALF_OPEN -> OPEN");
    ASSERT_TRUE(half1 && reopened) << ctl.log();
    numbers("half-open " + fmt("%.3f", *half1 - *opened) + " s after opening; failed probe reopened it " +
            fmt("%.3f", *reopened - *half1) + " s later");
    EXPECT_NEAR(*half1 - *opened, 5.0, 0.3) << ctl.log();
    EXPECT_LE(*reopened - *half1, 0.5) << ctl.log();

    // The server recovers; after the next open interval the probes succeed.
    std::filesystem::remove(fail);
    const double recovered_at = wall_s();
    ASSERT_TRUE(await([&] { return ctl.logged_at("web: breaker HALF_OPEN -> CLOSED").has_value(); }, 8s)) << ctl.log();
    auto half2 = ctl.logged_at("web: breaker OPEN -> HALF_OPEN", 1);
    auto closed = ctl.logged_at("web: breaker HALF_OPEN -> CLOSED");
    ASSERT_TRUE(half2 && closed) << ctl.log();
    numbers("recovered " + fmt("%.3f", recovered_at - *reopened) + " s into the second open interval; half-open " +
            fmt("%.3f", *half2 - *reopened) + " s after reopening, closed " + fmt("%.3f", *closed - *half2) +
            " s later");
    EXPECT_NEAR(*half2 - *reopened, 5.0, 0.3) << ctl.log();
    EXPECT_LE(*closed - *half2, 0.5) << ctl.log();
    EXPECT_EQ(ctl.metric(state), 0);

    // Closed again: all the offered work reaches the server and succeeds.
    expect_served_ok(tb, "after closing");
    load.interrupt();
    const json& l = load.result();
    numbers("load: " + describe(l));
    numbers("controller log:\n" + ctl.log());
    EXPECT_EQ(outcome(l, "timeout"), 0u) << describe(l);  // refused work was answered (RST), never black-holed
}

// Google SRE adaptive throttling: while the server fails, the reject
// probability rises towards 1 and the kernel throttles; after recovery it
// falls back to 0.
TEST(AdaptiveE2eBreaker, SreThrottlingRisesWhileFailingAndReturnsToZero)
{
    Bed bed;
    Testbed& tb = bed.tb;
    const std::string fail = bed.cli.scratch().file("fail");
    bed.service({"--breaker", "sre", "--http", "--reject", "rst"});
    start_capsrv(tb, kPort, kWorkers, kServiceMs, {"--fail-file", fail});
    Controller ctl(bed.cli, "web");
    const std::string p = "sluice_reject_probability{" + kWeb + "}";
    auto answered = [&] { return ctl.metric("sluice_request_outcomes_total{" + kWeb + ",outcome=\"answered\"}"); };

    Load load = http_load(tb.client_ns(), bed.target, int(kCapacity / 2), 30);
    ASSERT_TRUE(await([&] { return answered() >= 300; }, 5s)) << ctl.page();
    ASSERT_EQ(ctl.metric(p), 0) << ctl.log();

    auto t0 = Clock::now();
    std::ofstream(fail).put('\n');
    ASSERT_TRUE(await([&] { return ctl.metric(p) > 0.5; }, 3s)) << ctl.log();
    double rise_s = since(t0);
    std::this_thread::sleep_for(2s);
    double p_failing = ctl.metric(p);
    Counts c1 = counts(bed.cli, "web");
    std::this_thread::sleep_for(1s);
    Counts c2 = counts(bed.cli, "web");
    numbers("p > 0.5 " + fmt("%.2f", rise_s) + " s after the server began to fail; p " + fmt("%.3f", p_failing) +
            " after 2 s of failing; in 1 s: throttled +" + std::to_string(c2.of("throttle") - c1.of("throttle")) +
            ", admitted +" + std::to_string(c2.admitted - c1.admitted));
    EXPECT_GT(p_failing, 0.9);
    EXPECT_GT(c2.of("throttle") - c1.of("throttle"), 5 * (c2.admitted - c1.admitted)) << describe(c2);

    // Recovery starts from the trickle p lets through (about one request per
    // 1 s window) and is a chain reaction that may die out and start again:
    // SreThrottle.AfterATotalOutageTheTrickleRestartsTheServiceWithinSeconds
    // has it at a median of 3.9 s and 11.8 s for 99.9% of 10,000 recoveries,
    // 14 s at most, as does this test (median 3.9 s, 8.5 s at most in 20 runs).
    auto t1 = Clock::now();
    std::filesystem::remove(fail);
    ASSERT_TRUE(await([&] { return ctl.metric(p) == 0; }, 20s)) << ctl.log();
    double fall_s = since(t1);
    numbers("p back to 0 " + fmt("%.2f", fall_s) + " s after the server recovered");
    EXPECT_TRUE(ctl.logged_at("web: throttling starts")) << ctl.log();
    EXPECT_TRUE(ctl.logged_at("web: throttling ends")) << ctl.log();

    expect_served_ok(tb, "after p returned to 0");
    load.interrupt();
    const json& l = load.result();
    numbers("load: " + describe(l));
    numbers("controller log:\n" + ctl.log());
    EXPECT_EQ(outcome(l, "timeout"), 0u) << describe(l);
}

// ---- 3. fail open -----------------------------------------------------------------

// The service has a static rate above the server's capacity and an adaptive
// limit: under 5x overload the learned limit is what sheds. Once the
// controller is gone, only the static rate may apply.
constexpr int kStaticRate = 800;
const std::vector<std::string> kFailOpenService = {"--adaptive", "bbr", "--cpu-threshold", "0", "--http", "--reject",
                                                   "rst", "--rate", std::to_string(kStaticRate) + "/s", "--burst",
                                                   "80"};

// Waits until the limit has been learned (the ramp from nothing is over:
// at least 85% of C; its precision is the capacity test's business) and is
// what sheds: refusals for "inflight" at a good part of the excess.
::testing::AssertionResult adaptive_limit_sheds(const SluiceCli& cli, const Controller& ctl)
{
    if (!await([&] { return ctl.metric(kEstimate) >= 0.85 * kWorkers; }, 5s))
        return ::testing::AssertionFailure() << "no limit learned: " << ctl.metric(kEstimate) << "\n" << ctl.log();
    Counts a = counts(cli, "web"), b;
    bool ok = await(
        [&] {
            std::this_thread::sleep_for(500ms);
            b = counts(cli, "web");
            bool shedding = b.of("inflight") - a.of("inflight") > 300;
            a = b;
            return shedding;
        },
        6s, 0ms);
    if (ok) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "the adaptive limit does not shed: " << describe(b);
}

std::string rates(const Counts& from, const Counts& to)
{
    double s = double(to.taken_ns - from.taken_ns) / 1e9;
    std::string out = "over " + fmt("%.2f", s) + " s: admitted " + fmt("%.0f/s", (to.admitted - from.admitted) / s);
    for (const auto& [r, n] : to.shed)
        if (n - from.of(r)) out += ", " + r + " " + fmt("%.0f/s", (n - from.of(r)) / s);
    return out;
}

TEST(AdaptiveE2eFailOpen, CleanStopLiftsControlAtOnce)
{
    Bed bed;
    Testbed& tb = bed.tb;
    bed.service(kFailOpenService);
    start_capsrv(tb, kPort, kWorkers, kServiceMs);
    Controller ctl(bed.cli, "web");
    Load load = http_load(tb.client_ns(), bed.target, int(5 * kCapacity), 8);
    ASSERT_TRUE(adaptive_limit_sheds(bed.cli, ctl));

    Counts before = counts(bed.cli, "web");
    auto t0 = Clock::now();
    ctl.process().signal(SIGTERM);
    auto status = ctl.process().wait_exit(3s);
    double exit_s = since(t0);
    ASSERT_EQ(status, 0) << ctl.log();
    Counts after = counts(bed.cli, "web");
    std::this_thread::sleep_for(700ms);
    Counts later = counts(bed.cli, "web");
    numbers("SIGTERM: exited after " + fmt("%.3f", exit_s) + " s; from SIGTERM to the exit: " + rates(before, after) +
            "; after exit: " + rates(after, later));
    EXPECT_LE(exit_s, 0.5) << ctl.log();
    EXPECT_NE(ctl.log().find("control lifted"), std::string::npos) << ctl.log();
    // No learned limit any more, at once: only the static rate sheds.
    EXPECT_EQ(later.of("inflight"), after.of("inflight")) << rates(after, later);
    EXPECT_GT(later.of("tenant_limit"), after.of("tenant_limit")) << rates(after, later);
    double admitted_rate = double(later.admitted - after.admitted) / (double(later.taken_ns - after.taken_ns) / 1e9);
    EXPECT_NEAR(admitted_rate, kStaticRate, 0.15 * kStaticRate) << rates(after, later);
    load.interrupt();
    numbers("load: " + describe(load.result()));
}

TEST(AdaptiveE2eFailOpen, SigkilledControllerLeavesOnlyStaticPolicyWithinTheStalenessBound)
{
    Bed bed;
    Testbed& tb = bed.tb;
    bed.service(kFailOpenService);
    start_capsrv(tb, kPort, kWorkers, kServiceMs);
    Controller ctl(bed.cli, "web");
    Counts start = counts(bed.cli, "web");
    Load load = http_load(tb.client_ns(), bed.target, int(5 * kCapacity), 8);
    ASSERT_TRUE(adaptive_limit_sheds(bed.cli, ctl));

    std::vector<Counts> seen = {counts(bed.cli, "web")};
    const uint64_t killed_ns = mono_ns();
    ctl.process().signal(SIGKILL);
    ctl.process().stop();  // reaped: its pid is gone, as after a real crash
    while (seen.back().taken_ns < killed_ns + 3'500'000'000ull) seen.push_back(counts(bed.cli, "web"));
    auto at = [&](const Counts& c) { return double(int64_t(c.taken_ns - killed_ns)) / 1e9; };

    // The last refusal for "inflight" happened between two samples.
    const uint64_t final_inflight = seen.back().of("inflight");
    size_t first_final = 0;
    while (seen[first_final].of("inflight") != final_inflight) first_final++;
    ASSERT_GT(first_final, 0u) << "no refusal for inflight after the kill";
    double last_shed_after = at(seen[first_final - 1]), last_shed_before = at(seen[first_final]);
    numbers("SIGKILL: last refusal for the learned limit between " + fmt("%.3f", last_shed_after) + " and " +
            fmt("%.3f", last_shed_before) + " s after the kill (" + std::to_string(seen.size()) + " samples)");
    // Within the staleness bound (2 s) plus a tick: the heartbeat is at most
    // one tick older than the kill. And not before ~2 s: the limit held until then.
    EXPECT_LE(last_shed_after, 2.1);
    EXPECT_GE(last_shed_before, 1.5);

    // After the bound: static policy alone. The static rate is what is
    // admitted; nothing is refused for inflight, breaker or throttle.
    size_t from = 0;
    while (at(seen[from]) < 2.3) from++;
    const Counts& a = seen[from];
    const Counts& b = seen.back();
    numbers("after the bound (" + fmt("%.2f", at(a)) + " to " + fmt("%.2f", at(b)) + " s): " + rates(a, b) +
            "; data path saw stale control " + std::to_string(b.control_stale - a.control_stale) + " times");
    double admitted_rate = double(b.admitted - a.admitted) / (double(b.taken_ns - a.taken_ns) / 1e9);
    EXPECT_NEAR(admitted_rate, kStaticRate, 0.15 * kStaticRate) << rates(a, b);
    for (const char* reason : {"inflight", "breaker", "throttle"}) EXPECT_EQ(b.of(reason), a.of(reason)) << reason;
    EXPECT_GT(b.of("tenant_limit"), a.of("tenant_limit"));
    EXPECT_GT(b.control_stale, a.control_stale);
    json status = bed.cli.json({"status", "--json"});
    numbers("status: controller " + status.at("controller").dump());
    EXPECT_FALSE(status.at("controller").at("running").get<bool>());
    EXPECT_GT(status.at("controller").at("heartbeat_age_s").get<double>(), 2.0);

    // Nothing black-holed: every refusal was answered with an RST that the
    // client saw, and every admitted connection reached the server.
    const json& l = load.result();
    Counts end = counts(bed.cli, "web");
    json srv = capsrv_stats(tb, kPort);
    numbers("load: " + describe(l));
    numbers("kernel over the run: admitted " + std::to_string(end.admitted - start.admitted) + ", shed " +
            std::to_string(end.shed_total() - start.shed_total()) + ", RSTs sent " +
            std::to_string(end.rst_sent - start.rst_sent) + "; server accepted " +
            std::to_string(srv.at("accepted").get<uint64_t>()) + " connections");
    EXPECT_EQ(outcome(l, "refused"), end.shed_total() - start.shed_total());
    EXPECT_EQ(end.rst_sent - start.rst_sent, end.shed_total() - start.shed_total());
    // The server also counts our /stats connection (over lo, not admitted by sluice).
    EXPECT_EQ(srv.at("accepted").get<uint64_t>() - srv.at("stats_requests").get<uint64_t>(),
              end.admitted - start.admitted);
}

// ---- 4. priority levels -----------------------------------------------------------

// Two tenants, level 0 and level 2, offer the same overload together: the
// level-2 tenant is shed first (its work is admitted only below about 1.1x
// the learned limit, level 0's below 1.3x).
TEST(AdaptiveE2ePriority, LevelTwoIsShedBeforeLevelZero)
{
    Bed bed;
    Testbed& tb = bed.tb;
    const std::string gold = tb.client_ip4(), bronze = tb.ip4(10);
    tb.add_client_address(bronze);
    bed.cli.must({"tenant", "add", "gold", "--prefix", gold + "/32", "--level", "0"});
    bed.cli.must({"tenant", "add", "bronze", "--prefix", bronze + "/32", "--level", "2"});
    bed.service(kAdaptiveService);
    start_capsrv(tb, kPort, kWorkers, kServiceMs);
    Controller ctl(bed.cli, "web");

    const int each = int(2.5 * kCapacity), seconds = 6;  // 5x together
    Load g = http_load(tb.client_ns(), bed.target, each, seconds, {"--bind", gold});
    Load b = http_load(tb.client_ns(), bed.target, each, seconds, {"--bind", bronze});
    std::string trace;  // (s: learned limit / in flight)
    while (g.running() && since(g.started()) < seconds) {
        std::string page = ctl.page();
        trace += fmt(" %.1f:", since(g.started())) + fmt("%.0f/", *sample(page, kEstimate)) +
                 fmt("%.0f", *sample(page, "sluice_inflight{" + kWeb + "}"));
        std::this_thread::sleep_for(200ms);
    }
    numbers("learned limit / in flight:" + trace);
    const json& lg = g.result();
    const json& lb = b.result();
    Counts kg = counts(bed.cli, "web", "gold"), kb = counts(bed.cli, "web", "bronze");
    numbers("level 0: " + describe(lg) + "; kernel " + describe(kg));
    numbers("level 2: " + describe(lb) + "; kernel " + describe(kb));
    double good_g = mean(series(lg, "success"), 2, seconds), good_b = mean(series(lb, "success"), 2, seconds);
    numbers("goodput s2-s6: level 0 " + fmt("%.1f/s", good_g) + ", level 2 " + fmt("%.1f/s", good_b) +
            ", level 2's share " + fmt("%.1f%%", 100 * good_b / (good_g + good_b)));
    EXPECT_LT(good_b, 0.25 * good_g);
    EXPECT_GE(good_g + good_b, 0.9 * kCapacity);
    EXPECT_GT(kb.of("inflight"), kg.of("inflight"));
}

}  // namespace
}  // namespace sluice::test
