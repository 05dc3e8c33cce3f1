// capsrv: an HTTP/1.1 server with a known capacity (workers / service time)
// and no overload protection of its own, for sluice's tests and benchmarks.
#include <arpa/inet.h>
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "server.hpp"

namespace {

bool parse_listen(const std::string& text, capsrv::ServerConfig& config, std::string& error) {
    std::string host, port_text;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find("]:");
        if (close == std::string::npos) {
            error = "expected [IPv6]:PORT";
            return false;
        }
        host = text.substr(1, close - 1);
        port_text = text.substr(close + 2);
    } else {
        auto colon = text.find(':');
        if (colon == std::string::npos || text.find(':', colon + 1) != std::string::npos) {
            error = "expected IP:PORT or [IPv6]:PORT";
            return false;
        }
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
    }
    char* end = nullptr;
    long port = std::strtol(port_text.c_str(), &end, 10);
    if (port_text.empty() || *end != '\0' || port < 0 || port > 65535) {
        error = "bad port '" + port_text + "'";
        return false;
    }
    config.listen = {};
    auto* sin = reinterpret_cast<sockaddr_in*>(&config.listen);
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&config.listen);
    if (inet_pton(AF_INET, host.c_str(), &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(uint16_t(port));
        config.listen_len = sizeof(sockaddr_in);
        return true;
    }
    config.listen = {};
    if (inet_pton(AF_INET6, host.c_str(), &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(uint16_t(port));
        config.listen_len = sizeof(sockaddr_in6);
        return true;
    }
    error = "bad IP address '" + host + "'";
    return false;
}

// Every queued request holds a connection open, and nothing is shed: allow
// as many as the system lets us.
void raise_fd_limit() {
    rlimit lim{};
    getrlimit(RLIMIT_NOFILE, &lim);
    rlimit wanted{1 << 20, 1 << 20};
    if (lim.rlim_max < wanted.rlim_max && setrlimit(RLIMIT_NOFILE, &wanted) == 0) return;
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "HTTP/1.1 test server with a known capacity: C workers each serve one request at a time\n"
        "for the service time, so capacity = C / service time. Accepted requests wait in an\n"
        "unbounded FIFO and are served even after their client gave up: past capacity the queue\n"
        "and the latency grow without bound. GET /stats answers at once with JSON counters.",
        "capsrv"};
    std::string listen_text;
    capsrv::ServerConfig config;
    std::string work = "sleep";
    app.add_option("--listen", listen_text, "IP:PORT or [IPv6]:PORT; [::] is dual-stack; port 0 picks one")
        ->required();
    app.add_option("--workers", config.workers, "worker threads (requests served at once)")
        ->required()
        ->check(CLI::Range(1u, 4096u));
    app.add_option("--service-time", config.service_ms, "milliseconds each request takes (fractions allowed)")
        ->required()
        ->check(CLI::Range(0.0, 600000.0));
    app.add_option("--service-spread", config.spread,
                   "how much each request's time varies: its coefficient of variation around the mean "
                   "(0: exact; 1: as much as an exponential distribution), drawn from a gamma distribution")
        ->check(CLI::Range(0.0, 4.0))
        ->capture_default_str();
    app.add_option("--work", work,
                   "sleep: nanosleep (capacity independent of CPUs); cpu: burn the thread's CPU time "
                   "(capacity also bounded by the CPUs)")
        ->check(CLI::IsMember({"sleep", "cpu"}))
        ->capture_default_str();
    app.add_option("--backlog", config.backlog, "listen() backlog (the kernel caps it at net.core.somaxconn)")
        ->check(CLI::Range(1, 1 << 20))
        ->capture_default_str();
    app.add_option("--fail-file", config.fail_file, "while this file exists, answer 503 (a failing dependency)");
    app.add_option("--fail-time", config.fail_ms, "milliseconds a failing request takes before its 503")
        ->check(CLI::Range(0.0, 600000.0))
        ->capture_default_str();
    auto* slow_time = app.add_option("--slow-time", config.slow_ms, "milliseconds a request takes while --slow-file exists")
                          ->check(CLI::Range(0.0, 600000.0));
    app.add_option("--slow-file", config.slow_file,
                   "while this file exists, each request takes --slow-time instead (a slower dependency)")
        ->needs(slow_time);
    slow_time->needs("--slow-file");
    app.footer(
        "\nExamples:\n"
        "  capsrv --listen 198.18.0.2:8080 --workers 4 --service-time 10      # 400 req/s\n"
        "  capsrv --listen [::]:8080 --workers 4 --service-time 10 --fail-file /tmp/dependency-down\n"
        "See docs/tools.md.");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;  // --help is a ParseError too
    }

    std::string error;
    if (!parse_listen(listen_text, config, error)) {
        std::fprintf(stderr, "capsrv: --listen %s: %s\n", listen_text.c_str(), error.c_str());
        return 2;
    }
    config.work = work == "cpu" ? capsrv::Work::Cpu : capsrv::Work::Sleep;

    // Handled by the event loop through a signalfd; blocked before any thread
    // starts so every thread inherits the mask.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    try {
        capsrv::Server server(config);
        std::string address = server.open();
        std::printf("listening on %s\n", address.c_str());
        std::fflush(stdout);
        std::fprintf(stderr, "capsrv: %u workers x %g ms (%s): capacity %s req/s\n", config.workers,
                     config.service_ms, work.c_str(),
                     config.service_ms > 0 ? std::to_string(int(config.workers * 1000.0 / config.service_ms)).c_str()
                                           : "unbounded");
        server.run();
        std::fprintf(stderr, "capsrv: stopped: %s\n", server.stats_json().c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "capsrv: %s\n", e.what());
        return 1;
    }
    return 0;
}
