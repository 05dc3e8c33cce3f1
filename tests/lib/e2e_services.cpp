#include "e2e_services.hpp"

#include <arpa/inet.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace sluice::test {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// ---- small helpers ---------------------------------------------------------

std::string fmt(const char* format, double v)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

bool await(const std::function<bool()>& cond, Millis bound, Millis every)
{
    auto deadline = Clock::now() + bound;
    for (;;) {
        if (cond()) return true;
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(every);
    }
}

std::string list(const std::vector<double>& v)
{
    std::string s;
    for (double x : v) s += (s.empty() ? "" : " ") + fmt("%.0f", x);
    return "[" + s + "]";
}

// ---- HTTP --------------------------------------------------------------------

sockaddr_in v4(const std::string& ip, int port)
{
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, ip.c_str(), &sin.sin_addr) != 1) throw std::invalid_argument("bad IPv4 " + ip);
    return sin;
}

std::string http_get(const std::string& ip, int port, const std::string& path)
{
    sockaddr_in sin = v4(ip, port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    timeval tv{2, 0};  // connect() also honours the send timeout
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    std::string reply;
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0;
    if (ok) {
        std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + ip + "\r\nConnection: close\r\n\r\n";
        ok = send(fd, req.data(), req.size(), MSG_NOSIGNAL) == ssize_t(req.size());
    }
    char buf[16384];
    for (ssize_t n; ok && (n = recv(fd, buf, sizeof buf, 0)) != 0;) {
        if (n < 0) {
            ok = false;
            break;
        }
        reply.append(buf, size_t(n));
    }
    int err = errno;
    close(fd);
    if (!ok) throw std::runtime_error("GET http://" + ip + ":" + std::to_string(port) + path + ": " + std::strerror(err));
    auto head_end = reply.find("\r\n\r\n");
    if (reply.rfind("HTTP/1.", 0) != 0 || reply.substr(9, 3) != "200" || head_end == std::string::npos)
        throw std::runtime_error("GET " + path + " answered: " + reply.substr(0, 200));
    return reply.substr(head_end + 4);
}

std::optional<double> sample(const std::string& page, const std::string& series)
{
    std::string key = "\n" + series + " ";
    auto at = ("\n" + page).find(key);
    if (at == std::string::npos) return std::nullopt;
    return std::stod(page.substr(at + key.size() - 1));
}

// ---- the controller ------------------------------------------------------------

Controller::Controller(const SluiceCli& cli, const std::string& governs)
    : process_(std::make_unique<Process>("", cli.command({"run", "--metrics", "127.0.0.1:0", "--tick", "100"})))
{
    const std::string marker = "metrics on http://127.0.0.1:";
    if (!process_->wait_for_output("/metrics", 10s))
        throw std::runtime_error("sluice run did not start: " + process_->stderr_text());
    std::string log = process_->stderr_text();
    port_ = std::stoi(log.substr(log.find(marker) + marker.size()));
    // The first tick has read the policy and reports on the service.
    if (!await([&] { return find("sluice_inflight{service=\"" + governs + "\"}").has_value(); }, 5s, 10ms)) {
        std::string metrics;
        try {
            metrics = page();
        } catch (const std::exception& e) {
            metrics = e.what();
        }
        throw std::runtime_error("sluice run does not govern " + governs + ": " + this->log() + metrics);
    }
}

std::string Controller::page() const { return http_get("127.0.0.1", port_, "/metrics"); }

std::optional<double> Controller::find(const std::string& series) const { return sample(page(), series); }

double Controller::metric(const std::string& series) const
{
    std::string p = page();
    auto v = sample(p, series);
    if (!v) throw std::runtime_error("no " + series + " in the metrics:\n" + p);
    return *v;
}

std::string Controller::log() const { return process_->stderr_text() + process_->stdout_text(); }

std::optional<double> Controller::logged_at(const std::string& needle, int n) const
{
    std::istringstream in(log());
    for (std::string line; std::getline(in, line);) {
        if (line.find(needle) == std::string::npos || n-- > 0) continue;
        tm t{};
        int ms = 0;
        if (std::sscanf(line.c_str(), "%d-%d-%d %d:%d:%d.%d", &t.tm_year, &t.tm_mon, &t.tm_mday, &t.tm_hour,
                        &t.tm_min, &t.tm_sec, &ms) != 7)
            throw std::runtime_error("log line without a stamp: " + line);
        t.tm_year -= 1900;
        t.tm_mon -= 1;
        t.tm_isdst = -1;
        return double(mktime(&t)) + ms / 1000.0;
    }
    return std::nullopt;
}

bool near_workers(double limit, int workers) { return limit >= 0.85 * workers && limit <= workers + 2; }

// ---- loadgen -------------------------------------------------------------------

Load::Load(const std::string& ns, const std::string& mode, const std::string& target, int rate, double seconds,
           std::vector<std::string> extra)
    : seconds_(seconds)
{
    std::vector<std::string> argv = {"/usr/bin/nice", "-n", "-10", tool_binary("loadgen"), mode, "--target", target,
                                     "--rate", std::to_string(rate), "--duration", fmt("%g", seconds), "--json",
                                     "-q"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    started_ = Clock::now();
    process_ = std::make_unique<Process>(ns, std::move(argv));
}

void Load::interrupt() { process_->signal(SIGINT); }

const json& Load::result()
{
    if (!result_.is_null()) return result_;
    auto status = process_->wait_exit(Millis(int64_t(seconds_ * 1000)) + 20s);
    std::string out = process_->stdout_text(), err = process_->stderr_text();
    process_->stop();
    if (!status || *status != 0)
        throw std::runtime_error("`" + join(process_->argv()) + "` " +
                                 (status ? "exited " + std::to_string(*status) : std::string("did not finish")) +
                                 ": " + err);
    result_ = json::parse(out);
    return result_;
}

json run_load(const std::string& ns, const std::string& mode, const std::string& target, int rate, double seconds,
              std::vector<std::string> extra)
{
    return Load(ns, mode, target, rate, seconds, std::move(extra)).result();
}

uint64_t outcome(const json& load, const std::string& name) { return load.at("outcomes").at(name).get<uint64_t>(); }

std::vector<double> series(const json& load, const std::string& name)
{
    return load.at("series").at(name).get<std::vector<double>>();
}

std::string describe(const json& l)
{
    // UDP has no answers to time: its latencies are all 0.
    const std::string mode = l.at("mode").get<std::string>();
    const bool answered = mode != "udp";
    std::string s = mode + " " + l.at("target").get<std::string>() + " at " + fmt("%.0f", l.at("rate").get<double>()) +
                    "/s: outcomes " + l.at("outcomes").dump();
    if (answered)
        s += ", goodput " + fmt("%.1f", l.at("goodput").get<double>()) + "/s, p99 " +
             fmt("%.1f", l.at("latency_us").at("p99").get<double>() / 1000) + " ms";
    s += ", success/s " + list(series(l, "success"));
    if (answered) {
        auto p99 = series(l, "p99_us");
        for (auto& x : p99) x /= 1000;
        s += ", p99/s (ms) " + list(p99);
    }
    return s + ", elapsed " + fmt("%.3f", l.at("elapsed_s").get<double>()) + " s, send lag p99 " +
           fmt("%.0f", l.at("send_lag_us").at("p99").get<double>()) + " us";
}

// ---- servers -----------------------------------------------------------------

Process& start_capsrv(Testbed& tb, int port, int workers, double service_ms, std::vector<std::string> extra)
{
    std::vector<std::string> argv = {tool_binary("capsrv"), "--listen", tb.server_ip4() + ":" + std::to_string(port),
                                     "--workers", std::to_string(workers), "--service-time", fmt("%g", service_ms),
                                     "--work", "sleep"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    Process& p = tb.spawn(tb.server_ns(), argv);
    if (!p.wait_for_output("listening on", 10s)) throw std::runtime_error("capsrv did not start: " + p.stderr_text());
    return p;
}

json capsrv_stats(Testbed& tb, int port)
{
    std::string body;
    in_netns(tb.server_ns(), [&] { body = http_get(tb.server_ip4(), port, "/stats"); });
    return json::parse(body);
}

namespace {

// On SIGTERM it reads what is still queued and prints {"source": count, ...}.
constexpr const char* kUdpSink = R"PY(
import json, os, select, signal, socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ':' in addr else socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind((addr, port))
s.setblocking(False)
counts, stop = {}, False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
wake_r, wake_w = os.pipe()
os.set_blocking(wake_w, False)
signal.set_wakeup_fd(wake_w)
def drain():
    while True:
        try:
            _, src = s.recvfrom(4096)
        except BlockingIOError:
            return
        counts[src[0]] = counts.get(src[0], 0) + 1
print('ready', flush=True)
while not stop:
    select.select([s, wake_r], [], [])
    drain()
drain()
print(json.dumps(counts), flush=True)
)PY";

}  // namespace

UdpSink::UdpSink(const std::string& ns, const std::string& ip, int port)
    : process_(ns, {"/usr/bin/python3", "-c", kUdpSink, ip, std::to_string(port)})
{
    if (!process_.wait_for_output("ready", 10s))
        throw std::runtime_error("UDP sink did not start: " + process_.stderr_text());
}

std::map<std::string, uint64_t> UdpSink::stop()
{
    process_.signal(SIGTERM);
    auto status = process_.wait_exit(10s);
    std::string out = process_.stdout_text();
    if (!status || *status != 0) throw std::runtime_error("UDP sink failed: " + process_.stderr_text());
    auto last = out.rfind('{');
    if (last == std::string::npos) throw std::runtime_error("UDP sink printed no counts: " + out);
    std::map<std::string, uint64_t> counts;
    json parsed = json::parse(out.substr(last));
    for (const auto& [src, n] : parsed.items()) counts[src] = n.get<uint64_t>();
    return counts;
}

uint64_t UdpSink::total(const std::map<std::string, uint64_t>& counts)
{
    uint64_t n = 0;
    for (const auto& [src, c] : counts) n += c;
    return n;
}

uint64_t UdpSink::from(const std::map<std::string, uint64_t>& counts, const std::string& src)
{
    auto it = counts.find(src);
    return it == counts.end() ? 0 : it->second;
}

// ---- sluice stats ----------------------------------------------------------------

uint64_t Counts::shed_total() const
{
    uint64_t n = 0;
    for (const auto& [_, v] : shed) n += v;
    return n;
}

uint64_t Counts::of(const std::string& reason) const
{
    auto it = shed.find(reason);
    return it == shed.end() ? 0 : it->second;
}

Counts counts(const SluiceCli& cli, const std::string& service, const std::string& tenant)
{
    json s = cli.json({"stats", "--json"});
    Counts c;
    c.taken_ns = s.at("taken_ns").get<uint64_t>();
    c.rst_sent = s.at("global").value("rst_sent", uint64_t{0});
    c.control_stale = s.at("global").value("control_stale", uint64_t{0});
    for (const auto& p : s.at("pairs")) {
        if (p.at("service") != service || (!tenant.empty() && p.at("tenant") != tenant)) continue;
        c.admitted += p.at("admitted").get<uint64_t>();
        for (const auto& [reason, n] : p.at("shed").items()) c.shed[reason] += n.get<uint64_t>();
    }
    return c;
}

std::string describe(const Counts& c)
{
    std::string s = "admitted " + std::to_string(c.admitted) + ", shed";
    for (const auto& [r, n] : c.shed)
        if (n) s += " " + r + " " + std::to_string(n);
    return s;
}

}  // namespace sluice::test
