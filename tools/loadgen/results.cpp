#include "results.hpp"

#include <cstdio>
#include <sstream>

namespace loadgen {

const char* mode_name(Mode mode) {
    switch (mode) {
    case Mode::Udp: return "udp";
    case Mode::Connect: return "connect";
    case Mode::Http: return "http";
    }
    return "?";
}

SecondStats& Results::second_at(int64_t ns) {
    auto second = size_t(std::max<int64_t>(0, ns - start_ns_) / 1'000'000'000);
    if (second >= series.size()) series.resize(second + 1);
    return series[second];
}

void Results::arrival(int64_t scheduled_ns) {
    ++scheduled;
    ++second_at(scheduled_ns).offered;
}

void Results::outcome(Outcome what, int64_t scheduled_ns, int64_t now_ns) {
    ++outcomes[size_t(what)];
    last_event_ns = std::max(last_event_ns, now_ns);
    auto& second = second_at(now_ns);
    uint64_t elapsed = uint64_t(std::max<int64_t>(0, now_ns - scheduled_ns));
    switch (what) {
    case Outcome::Success:
        ++second.success;
        if (now_ns < end_ns_) ++success_in_window;
        if (record_latency) {
            latency.record(elapsed);
            second.latency.record(elapsed);
        }
        return;
    case Outcome::Status3xx:
    case Outcome::Status4xx:
    case Outcome::Status5xx:
    case Outcome::StatusOther:
    case Outcome::Refused:
    case Outcome::Reset:
        failure_latency.record(elapsed);
        break;
    default:
        break;
    }
    ++second.failed;
}

void Results::error(const std::string& reason, int64_t scheduled_ns, int64_t now_ns) {
    ++errors[reason];
    outcome(Outcome::Error, scheduled_ns, now_ns);
}

void Results::merge(const Results& other) {
    scheduled += other.scheduled;
    attempted += other.attempted;
    sent += other.sent;
    success_in_window += other.success_in_window;
    for (size_t i = 0; i < outcomes.size(); ++i) outcomes[i] += other.outcomes[i];
    for (auto& [reason, n] : other.errors) errors[reason] += n;
    latency.merge(other.latency);
    failure_latency.merge(other.failure_latency);
    send_lag.merge(other.send_lag);
    if (other.series.size() > series.size()) series.resize(other.series.size());
    for (size_t i = 0; i < other.series.size(); ++i) {
        series[i].offered += other.series[i].offered;
        series[i].success += other.series[i].success;
        series[i].failed += other.series[i].failed;
        series[i].latency.merge(other.series[i].latency);
    }
    last_event_ns = std::max(last_event_ns, other.last_event_ns);
}

uint64_t count(const Results& r, Outcome what) { return r.outcomes[size_t(what)]; }

uint64_t failures(const Results& r) {
    uint64_t total = 0;
    for (size_t i = 0; i < r.outcomes.size(); ++i)
        if (Outcome(i) != Outcome::Success) total += r.outcomes[i];
    return total;
}

namespace {

// Outcome keys as they appear in the JSON and the summary, per mode.
std::vector<std::pair<const char*, Outcome>> outcome_names(Mode mode) {
    switch (mode) {
    case Mode::Udp:
        return {{"sent", Outcome::Success}, {"error", Outcome::Error}, {"skipped_late", Outcome::SkippedLate}};
    case Mode::Connect:
        return {{"connected", Outcome::Success}, {"refused", Outcome::Refused},
                {"timeout", Outcome::Timeout},   {"reset", Outcome::Reset},
                {"error", Outcome::Error},       {"skipped_no_socket", Outcome::SkippedNoSocket},
                {"skipped_late", Outcome::SkippedLate}};
    case Mode::Http:
        return {{"2xx", Outcome::Success},      {"3xx", Outcome::Status3xx},
                {"4xx", Outcome::Status4xx},    {"5xx", Outcome::Status5xx},
                {"other_status", Outcome::StatusOther}, {"refused", Outcome::Refused},
                {"timeout", Outcome::Timeout},  {"reset", Outcome::Reset},
                {"error", Outcome::Error},      {"skipped_no_socket", Outcome::SkippedNoSocket},
                {"skipped_late", Outcome::SkippedLate}};
    }
    return {};
}

uint64_t us(uint64_t ns) { return (ns + 500) / 1000; }

template <int B>
nlohmann::ordered_json latency_json(const LogHistogram<B>& h) {
    nlohmann::ordered_json j;
    j["count"] = h.count();
    j["mean"] = us(uint64_t(h.mean()));
    j["p50"] = us(h.percentile(50));
    j["p90"] = us(h.percentile(90));
    j["p99"] = us(h.percentile(99));
    j["p999"] = us(h.percentile(99.9));
    j["max"] = us(h.max());
    return j;
}

}  // namespace

nlohmann::ordered_json results_json(const Config& config, const Results& r, double elapsed_s) {
    nlohmann::ordered_json j;
    j["mode"] = mode_name(config.mode);
    j["target"] = config.target.to_string();
    auto sources = nlohmann::ordered_json::array();
    for (auto& s : config.sources) {
        auto text = s.to_string();
        text = text.substr(0, text.rfind(':'));  // drop the ":0"
        if (text.front() == '[') text = text.substr(1, text.size() - 2);
        sources.push_back(text);
    }
    j["sources"] = sources;
    j["rate"] = config.rate;
    j["arrivals"] = config.arrivals == Arrivals::Constant ? "constant" : "poisson";
    j["duration_s"] = config.duration_s;
    j["elapsed_s"] = elapsed_s;
    j["threads"] = config.threads;
    if (config.mode == Mode::Udp) {
        j["datagram_size"] = config.datagram_size;
    } else {
        j["timeout_ms"] = double(config.timeout_ns) / 1e6;
        j["max_sockets"] = config.max_sockets;
    }
    if (config.mode == Mode::Http) {
        j["path"] = config.path;
        j["connections"] = config.connections == ConnectionPolicy::New ? "new" : "keepalive";
    }

    j["scheduled"] = r.scheduled;
    j["attempted"] = r.attempted;
    j["sent"] = r.sent;
    nlohmann::ordered_json outcomes;
    for (auto& [name, what] : outcome_names(config.mode)) outcomes[name] = count(r, what);
    j["outcomes"] = outcomes;
    j["success"] = count(r, Outcome::Success);
    j["failed"] = failures(r);
    j["errors"] = nlohmann::ordered_json(r.errors);
    j["offered_rate"] = double(r.attempted) / config.duration_s;
    j["goodput"] = double(r.success_in_window) / config.duration_s;
    j["latency_us"] = latency_json(r.latency);
    j["failure_latency_us"] = latency_json(r.failure_latency);
    j["send_lag_us"] = latency_json(r.send_lag);

    nlohmann::ordered_json series;
    series["interval_s"] = 1;
    auto offered = nlohmann::ordered_json::array(), success = offered, failed = offered, p50 = offered,
         p99 = offered;
    for (auto& s : r.series) {
        offered.push_back(s.offered);
        success.push_back(s.success);
        failed.push_back(s.failed);
        p50.push_back(us(s.latency.percentile(50)));
        p99.push_back(us(s.latency.percentile(99)));
    }
    series["offered"] = offered;
    series["success"] = success;
    series["failed"] = failed;
    series["p50_us"] = p50;
    series["p99_us"] = p99;
    j["series"] = series;
    return j;
}

std::string results_summary(const Config& config, const Results& r, double elapsed_s) {
    std::ostringstream out;
    char line[512];
    snprintf(line, sizeof line, "loadgen %s %s: %.6g/s %s for %.6gs (%u thread%s), finished in %.2fs\n",
             mode_name(config.mode), config.target.to_string().c_str(), config.rate,
             config.arrivals == Arrivals::Constant ? "constant" : "poisson", config.duration_s, config.threads,
             config.threads == 1 ? "" : "s", elapsed_s);
    out << line;
    snprintf(line, sizeof line, "  scheduled %lu  attempted %lu (%.1f/s)  sent %lu\n", r.scheduled, r.attempted,
             double(r.attempted) / config.duration_s, r.sent);
    out << line << " ";
    for (auto& [name, what] : outcome_names(config.mode)) out << " " << name << " " << count(r, what);
    out << "\n";
    if (!r.errors.empty()) {
        out << "  errors:";
        for (auto& [reason, n] : r.errors) out << " " << reason << " " << n;
        out << "\n";
    }
    snprintf(line, sizeof line, "  goodput %.1f/s (successes completed within the %.6gs window)\n",
             double(r.success_in_window) / config.duration_s, config.duration_s);
    out << line;
    auto show = [&](const char* what, const auto& h) {
        if (h.count() == 0) return;
        snprintf(line, sizeof line, "  %s us: p50 %lu  p90 %lu  p99 %lu  p99.9 %lu  max %lu  (n=%lu)\n", what,
                 us(h.percentile(50)), us(h.percentile(90)), us(h.percentile(99)), us(h.percentile(99.9)),
                 us(h.max()), h.count());
        out << line;
    };
    if (config.mode != Mode::Udp) show("latency", r.latency);
    show("failure latency", r.failure_latency);
    show("send lag", r.send_lag);
    return out.str();
}

}  // namespace loadgen
