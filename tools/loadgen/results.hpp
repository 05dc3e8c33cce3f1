// Counters, latency histograms and the per-second series of one run. Each
// thread fills its own Results; they are merged once at the end.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config.hpp"
#include "histogram.hpp"

namespace loadgen {

enum class Outcome : uint8_t {
    Success,          // udp: accepted by the kernel; connect: connected; http: 2xx
    Status3xx,
    Status4xx,
    Status5xx,
    StatusOther,      // 1xx that ended the exchange, or a code outside 100-599
    Refused,          // RST answered the SYN (ECONNREFUSED)
    Timeout,          // no outcome within --timeout
    Reset,            // RST or close before a complete response
    Error,            // anything else; see errors{} for the reasons
    SkippedNoSocket,  // not attempted: --max-sockets reached or out of descriptors
    SkippedLate,      // not attempted: the generator fell behind past the end
    kCount
};

struct SecondStats {
    uint64_t offered = 0;   // arrivals scheduled in this second
    uint64_t success = 0;   // successes completed in this second
    uint64_t failed = 0;    // failures (and skips) completed in this second
    LogHistogram<4> latency;
};

class Results {
public:
    using Latency = LogHistogram<7>;

    // The schedule window [start, end): the series counts from its start,
    // goodput counts the successes completed inside it.
    void set_window(int64_t start_ns, int64_t end_ns) {
        start_ns_ = start_ns;
        end_ns_ = end_ns;
    }
    // udp has no responses: its "success" carries no latency.
    bool record_latency = true;

    void arrival(int64_t scheduled_ns);
    void lag(int64_t scheduled_ns, int64_t now_ns) { send_lag.record(uint64_t(std::max<int64_t>(0, now_ns - scheduled_ns))); }
    void outcome(Outcome what, int64_t scheduled_ns, int64_t now_ns);
    void error(const std::string& reason, int64_t scheduled_ns, int64_t now_ns);

    void merge(const Results& other);

    uint64_t scheduled = 0;   // arrivals the schedule produced
    uint64_t attempted = 0;   // arrivals actually started
    uint64_t sent = 0;        // udp: datagrams accepted; http: requests fully written; connect: SYNs sent
    std::array<uint64_t, size_t(Outcome::kCount)> outcomes{};
    std::map<std::string, uint64_t> errors;
    Latency latency;          // successes, from scheduled time
    Latency failure_latency;  // refused / reset / non-2xx: how fast failure came
    Latency send_lag;         // actual start minus scheduled time
    uint64_t success_in_window = 0;
    std::vector<SecondStats> series;
    int64_t last_event_ns = 0;

private:
    SecondStats& second_at(int64_t ns);
    int64_t start_ns_ = 0;
    int64_t end_ns_ = 0;
};

uint64_t count(const Results& r, Outcome what);
uint64_t failures(const Results& r);

nlohmann::ordered_json results_json(const Config& config, const Results& results, double elapsed_s);
std::string results_summary(const Config& config, const Results& results, double elapsed_s);

}  // namespace loadgen
