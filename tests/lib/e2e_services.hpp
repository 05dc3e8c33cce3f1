// The real programs the end-to-end suites run around sluice, and what they
// read from them: loadgen runs in the background (the clients), capsrv and
// a counting UDP sink (the servers), `sluice run` on a private installation
// (the controller) with the HTTP questions put to its metrics page, and the
// figures of loadgen's JSON and `sluice stats --json`.
//
//   Testbed tb;
//   SluiceCli cli;                                    // attached, service "web" added
//   start_capsrv(tb, 8080, 8, 20);                    // 8 workers x 20 ms: 400 req/s
//   Controller ctl(cli, "web");                       // returns once it governs "web"
//   Load load(tb.client_ns(), "http", tb.server_ip4() + ":8080", 2000, 8, {"--timeout", "1000"});
//   double limit = ctl.metric("sluice_limit_estimate{service=\"web\"}");
//   const nlohmann::json& l = load.result();          // waits for loadgen's JSON
//   std::vector<double> ok = series(l, "success");    // successes per second
//   Counts k = counts(cli, "web");                    // k.admitted, k.of("inflight")
//   std::printf("%s; kernel %s\n", describe(l).c_str(), describe(k).c_str());
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "netns.hpp"
#include "process.hpp"
#include "sluice_cli.hpp"

namespace sluice::test {

// ---- small helpers ---------------------------------------------------------

// One number printed with a printf format: fmt("%.0f/s", 399.6) == "400/s".
std::string fmt(const char* format, double v);
// Seconds since t on the steady clock.
double since(std::chrono::steady_clock::time_point t);
// Polls cond every `every` until it holds (true) or `bound` passes (false).
bool await(const std::function<bool()>& cond, Millis bound, Millis every = Millis(50));
// "[1 2 3]": the values rounded to integers, for printing a series.
std::string list(const std::vector<double>& v);

// ---- HTTP --------------------------------------------------------------------

// An IPv4 address and port; throws std::invalid_argument for a bad address.
sockaddr_in v4(const std::string& ip, int port);
// GET over a fresh IPv4 connection in the caller's namespace (2 s timeouts);
// the body of a 200 answer. Throws std::runtime_error on anything else.
std::string http_get(const std::string& ip, int port, const std::string& path);
// The value of one sample of a Prometheus page, by its exact name and labels
// (`sluice_inflight{service="web"}`); nullopt if the page has no such line.
std::optional<double> sample(const std::string& page, const std::string& series);

// ---- the controller ------------------------------------------------------------

// `sluice run` (tick 100 ms) in the host namespace on cli's installation,
// metrics on a free loopback port. The constructor returns once its metrics
// report on service `governs` (the first tick has read the policy); it
// throws std::runtime_error if that does not happen within 5 s. Stopped
// (SIGTERM, then SIGKILL) when it goes.
class Controller {
public:
    Controller(const SluiceCli& cli, const std::string& governs);

    std::string page() const;  // the /metrics page
    // One sample of the page; throws std::runtime_error (with the page) if absent.
    double metric(const std::string& series) const;
    std::optional<double> find(const std::string& series) const;
    std::string log() const;  // what it printed so far
    Process& process() { return *process_; }

    // The wall-clock stamp (s, CLOCK_REALTIME) of the n-th (0-based) log line
    // containing needle; nullopt if there is none (yet).
    std::optional<double> logged_at(const std::string& needle, int n = 0) const;

private:
    std::unique_ptr<Process> process_;
    int port_ = 0;
};

// Whether a limit the controller learned for `workers` busy workers is near
// them: from 15% below to two above. Two above, not 15%: maxPass is the
// largest 100 ms count of answers (kratos's rule), and answers that come
// unevenly push it above their mean. Traced on the VM of 2026-12-07 for
// capsrv's 8 workers x 20 ms (40 answers in 100 ms on average): the fullest
// bucket held 43-45, so the limit was 9; it reached 10 in 2 of 6 `make test`
// runs there (once in each of two tests). In the model (ServerSim, 5x),
// answers varying by 30% reached 10 in 5-8 seeds of 30, never 11.
bool near_workers(double limit, int workers);

// ---- loadgen -------------------------------------------------------------------

// `loadgen MODE --target TARGET --rate RATE --duration SECONDS --json -q
// EXTRA...` in namespace ns, in the background. Raised priority (nice -10):
// on a busy machine the generator must still send on schedule (loadgen
// counts latency from the schedule).
class Load {
public:
    Load(const std::string& ns, const std::string& mode, const std::string& target, int rate, double seconds,
         std::vector<std::string> extra = {});

    std::chrono::steady_clock::time_point started() const { return started_; }
    bool running() { return process_->running(); }
    // Ends the schedule early (SIGINT); the attempts in flight finish and count.
    void interrupt();
    // Waits for the run (its duration + 20 s at most) and returns its JSON;
    // throws std::runtime_error if loadgen fails or hangs.
    const nlohmann::json& result();

private:
    double seconds_;
    std::chrono::steady_clock::time_point started_;
    std::unique_ptr<Process> process_;
    nlohmann::json result_;
};

// Load(...).result(): a run waited for.
nlohmann::json run_load(const std::string& ns, const std::string& mode, const std::string& target, int rate,
                        double seconds, std::vector<std::string> extra = {});

// Figures of a loadgen result: one outcome's count ("2xx", "refused", ...),
// one per-second series ("success", "p99_us", ...), and a line for messages.
uint64_t outcome(const nlohmann::json& load, const std::string& name);
std::vector<double> series(const nlohmann::json& load, const std::string& name);
std::string describe(const nlohmann::json& load);

// ---- servers -----------------------------------------------------------------

// capsrv in the server namespace on the server address: `workers` workers of
// `service_ms` ms each (sleep), so workers * 1000 / service_ms requests per
// second; extra arguments appended (e.g. {"--fail-file", path}). Returns once
// it listens; stopped with the testbed.
Process& start_capsrv(Testbed& tb, int port, int workers, double service_ms, std::vector<std::string> extra = {});
// capsrv's own counters (/stats), asked from inside the server namespace
// (over lo, so the question is not itself admitted or shed by sluice).
nlohmann::json capsrv_stats(Testbed& tb, int port);

// Counts the datagrams that really reach a UDP socket (IPv4 or IPv6), per
// source address. On stop() it reads what is still queued.
class UdpSink {
public:
    UdpSink(const std::string& ns, const std::string& ip, int port);

    // Stops the sink; datagrams received per source address.
    std::map<std::string, uint64_t> stop();

    static uint64_t total(const std::map<std::string, uint64_t>& counts);
    static uint64_t from(const std::map<std::string, uint64_t>& counts, const std::string& src);

private:
    Process process_;
};

// ---- sluice stats ----------------------------------------------------------------

// What the kernel counted for one service (optionally one tenant), summed
// over its (service, tenant) pairs.
struct Counts {
    uint64_t taken_ns = 0;  // CLOCK_MONOTONIC when the stats were read
    uint64_t admitted = 0;
    std::map<std::string, uint64_t> shed;  // by reason
    uint64_t rst_sent = 0;                 // global
    uint64_t control_stale = 0;            // global

    uint64_t shed_total() const;
    uint64_t of(const std::string& reason) const;  // shed for reason
};

Counts counts(const SluiceCli& cli, const std::string& service, const std::string& tenant = "");
// "admitted N, shed REASON N ...", the reasons with a count.
std::string describe(const Counts& c);

}  // namespace sluice::test
