// loadgen: open-loop load generator for sluice's tests and benchmarks.
//
// Arrivals follow a fixed schedule whatever the server does, and latency is
// measured from the scheduled time, so a slow server shows up as latency and
// failures instead of quietly lowering the offered load.
#include <sys/prctl.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <exception>
#include <iostream>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "config.hpp"
#include "engines.hpp"
#include "results.hpp"

using namespace loadgen;

std::atomic<bool> loadgen::stop_requested{false};

namespace {

void request_stop(int) { stop_requested.store(true); }

struct Options {
    std::string target;
    std::vector<std::string> bind;
    double rate = 0;
    double duration = 0;
    uint64_t max = 0;
    std::string arrivals = "constant";
    uint64_t seed = 1;
    double timeout_ms = -1;
    size_t max_sockets = 10000;
    unsigned threads = 1;
    size_t size = 64;
    std::string path = "/";
    std::string host;
    std::string connections = "new";
    bool json = false;
    bool quiet = false;
};

constexpr double kMaxDuration = 600;
constexpr double kMaxRate = 10'000'000;

void add_common(CLI::App* sub, Options& o, bool tcp) {
    sub->add_option("--target", o.target, "destination, IP:PORT or [IPv6]:PORT")->required();
    sub->add_option("--rate", o.rate, "arrivals per second (over all threads)")
        ->required()
        ->check(CLI::Range(0.001, kMaxRate));
    sub->add_option("--duration", o.duration, "seconds during which arrivals are scheduled (at most 600)")
        ->required()
        ->check(CLI::Range(0.001, kMaxDuration));
    sub->add_option("--max", o.max, "stop after this many arrivals (0: only the duration bounds the run)");
    sub->add_option("--bind", o.bind, "source addresses, comma separated; used round-robin per "
                                      "connection/datagram (one namespace can act as several tenants)")
        ->delimiter(',');
    sub->add_option("--arrivals", o.arrivals, "arrival process")
        ->check(CLI::IsMember({"constant", "poisson"}))
        ->capture_default_str();
    sub->add_option("--seed", o.seed, "random seed for poisson arrivals")->capture_default_str();
    sub->add_option("--threads", o.threads, "threads, each with its own share of the schedule")
        ->check(CLI::Range(1u, 64u))
        ->capture_default_str();
    if (tcp) {
        sub->add_option("--max-sockets", o.max_sockets,
                        "open sockets at most; arrivals beyond are counted as skipped_no_socket")
            ->check(CLI::Range(size_t(1), size_t(1'000'000)))
            ->capture_default_str();
    }
    sub->add_flag("--json", o.json, "write the results as one JSON object to stdout");
    sub->add_flag("-q,--quiet", o.quiet, "no summary on stderr");
}

[[noreturn]] void die(const std::string& message) {
    std::fprintf(stderr, "loadgen: %s\n", message.c_str());
    std::exit(2);
}

Config make_config(Mode mode, const Options& o) {
    Config c;
    c.mode = mode;
    std::string error;
    if (!parse_endpoint(o.target, c.target, error)) die("--target: " + error);
    c.target_text = o.target;
    for (auto& text : o.bind) {
        SockAddr source;
        if (!parse_host(text, source, error)) die("--bind: " + error);
        if (source.family() != c.target.family())
            die("--bind: " + text + " is not of the target's address family");
        c.sources.push_back(source);
    }
    c.rate = o.rate;
    c.duration_s = o.duration;
    c.max_arrivals = o.max;
    c.arrivals = o.arrivals == "poisson" ? Arrivals::Poisson : Arrivals::Constant;
    c.seed = o.seed;
    c.threads = o.threads;
    c.max_sockets = o.max_sockets;
    if (c.max_sockets < c.threads) die("--max-sockets must be at least --threads");
    double timeout_ms = o.timeout_ms >= 0 ? o.timeout_ms : (mode == Mode::Connect ? 200 : 1000);
    if (timeout_ms <= 0 || timeout_ms > 600'000) die("--timeout must be in (0, 600000] ms");
    c.timeout_ns = int64_t(timeout_ms * 1e6);
    c.datagram_size = o.size;
    c.path = o.path;
    if (c.path.empty() || c.path.front() != '/' || c.path.find_first_of(" \r\n") != std::string::npos)
        die("--path must start with '/' and contain no spaces or line breaks");
    c.host_header = o.host.empty() ? c.target.to_string() : o.host;
    if (c.host_header.find_first_of("\r\n") != std::string::npos) die("--host must not contain line breaks");
    c.connections = o.connections == "keepalive" ? ConnectionPolicy::KeepAlive : ConnectionPolicy::New;
    return c;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "Open-loop load generator: arrivals on a fixed schedule (constant or Poisson) that a slow\n"
        "server cannot slow down; latency is measured from the scheduled time. Every run is\n"
        "bounded by --duration (and --max), and in-flight work by --max-sockets.",
        "loadgen"};
    app.require_subcommand(1);
    Options o;

    auto* udp = app.add_subcommand("udp", "send datagrams; counts what the kernel accepted");
    add_common(udp, o, false);
    udp->add_option("--size", o.size, "datagram payload bytes (the first 16 carry sequence and send time)")
        ->check(CLI::Range(size_t(1), size_t(65000)))
        ->capture_default_str();

    auto* connect = app.add_subcommand(
        "connect", "open TCP connections; classify each as connected, refused, timeout or error, then close it");
    add_common(connect, o, true);
    connect->add_option("--timeout", o.timeout_ms,
                        "ms to wait for the handshake (default 200: below the kernel's 1 s SYN retransmit)");

    auto* http = app.add_subcommand("http", "HTTP/1.1 GET requests; classify 2xx/3xx/4xx/5xx/refused/timeout/reset");
    add_common(http, o, true);
    http->add_option("--timeout", o.timeout_ms, "ms from connect (or send, on a reused connection) to a "
                                                "complete response (default 1000)");
    http->add_option("--path", o.path, "request path")->capture_default_str();
    http->add_option("--host", o.host, "Host header (default: the target)");
    http->add_option("--connections", o.connections,
                     "new: a connection per request (Connection: close); keepalive: reuse an idle "
                     "connection or open another, never wait for a busy one")
        ->check(CLI::IsMember({"new", "keepalive"}))
        ->capture_default_str();

    app.footer(
        "\nExamples:\n"
        "  loadgen http --target 198.18.0.2:8080 --rate 2000 --duration 10 --timeout 1000 --json\n"
        "  loadgen connect --target [2001:db8::2]:80 --rate 20000 --duration 5 --bind 2001:db8:1::1,2001:db8:1::2\n"
        "  loadgen udp --target 198.18.0.2:5353 --rate 100000 --duration 10 --size 128\n"
        "See docs/tools.md for the outcomes and the JSON output.");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;  // --help is a ParseError too
    }

    Mode mode = app.got_subcommand(udp) ? Mode::Udp : app.got_subcommand(connect) ? Mode::Connect : Mode::Http;
    Config config = make_config(mode, o);

    if (mode != Mode::Udp) {
        rlim_t want = config.max_sockets + 64 * config.threads + 64;
        rlim_t got = raise_fd_limit(want);
        if (got < want) {
            size_t usable = got > 64 * config.threads + 64 ? size_t(got - 64 * config.threads - 64) : config.threads;
            std::fprintf(stderr, "loadgen: open-file limit %lu; --max-sockets lowered to %zu\n", (unsigned long)got,
                         usable);
            config.max_sockets = std::max<size_t>(usable, config.threads);
        }
    }
    // Sleep with microsecond precision, not the default 50 us timer slack.
    prctl(PR_SET_TIMERSLACK, 1000UL);
    // Interrupted runs still report what they measured.
    struct sigaction on_stop {};
    on_stop.sa_handler = request_stop;
    sigemptyset(&on_stop.sa_mask);
    sigaction(SIGINT, &on_stop, nullptr);
    sigaction(SIGTERM, &on_stop, nullptr);

    std::vector<Results> results(config.threads);
    std::vector<std::exception_ptr> errors(config.threads);
    int64_t start_ns = monotonic_ns() + 5'000'000;  // time for every thread to get ready
    auto work = [&](unsigned index) {
        try {
            prctl(PR_SET_TIMERSLACK, 1000UL);
            if (mode == Mode::Udp)
                run_udp(config, index, start_ns, results[index]);
            else
                run_tcp(config, index, start_ns, results[index]);
        } catch (...) {
            errors[index] = std::current_exception();
        }
    };
    std::vector<std::thread> threads;
    for (unsigned i = 1; i < config.threads; ++i) threads.emplace_back(work, i);
    work(0);
    for (auto& t : threads) t.join();
    double elapsed_s = double(monotonic_ns() - start_ns) / 1e9;

    for (auto& e : errors) {
        if (!e) continue;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            die(ex.what());
        }
    }
    Results total;
    total.set_window(start_ns, start_ns + int64_t(config.duration_s * 1e9));
    for (auto& r : results) total.merge(r);

    bool interrupted = stop_requested.load();
    if (!o.quiet) {
        std::fputs(results_summary(config, total, elapsed_s).c_str(), stderr);
        if (interrupted) std::fputs("  (interrupted: the schedule was cut short)\n", stderr);
    }
    if (o.json) {
        auto j = results_json(config, total, elapsed_s);
        j["interrupted"] = interrupted;
        std::cout << j.dump() << std::endl;
    }
    return 0;
}
