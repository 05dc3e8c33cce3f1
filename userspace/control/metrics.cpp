#include "control/metrics.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <sstream>

#include "core/error.hpp"
#include "kernel/counters.hpp"
#include "kernel/policy_store.hpp"
#include "policy/address.hpp"

namespace sluice::control {

namespace {

std::string label(const std::string& s) {
  std::string out;
  for (char c : s) out += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  return out;
}

void help(std::ostringstream& o, const char* name, const char* type, const char* text) {
  o << "# HELP " << name << " " << text << "\n# TYPE " << name << " " << type << "\n";
}

}  // namespace

std::string render_metrics(const kernel::DataPath& dp, const std::vector<ServiceReport>& governed) {
  kernel::RunningPolicy running = kernel::PolicyStore(dp).read();
  kernel::CounterSnapshot snap = kernel::read_counters(dp, running.ids);
  std::map<uint32_t, std::string> service, tenant;
  for (const auto& [name, id] : running.ids.services) service[id] = name;
  for (const auto& [name, id] : running.ids.tenants) tenant[id] = name;
  std::ostringstream o;

  help(o, "sluice_admitted_total", "counter", "Units of admission (new connections, datagrams) let in.");
  for (const auto& pc : snap.pairs)
    o << "sluice_admitted_total{service=\"" << label(service[pc.service_id]) << "\",tenant=\""
      << label(tenant[pc.tenant_id]) << "\"} " << pc.counters.verdict[SL_R_ADMITTED] << "\n";
  help(o, "sluice_requests_total", "counter", "Requests begun on established connections of observed services.");
  for (const auto& pc : snap.pairs)
    o << "sluice_requests_total{service=\"" << label(service[pc.service_id]) << "\",tenant=\""
      << label(tenant[pc.tenant_id]) << "\"} " << pc.counters.verdict[SL_R_REQUEST] << "\n";
  help(o, "sluice_shed_total", "counter", "New work refused, by reason.");
  for (const auto& pc : snap.pairs)
    for (int r = SL_R_TENANT_LIMIT; r < SL_R__COUNT; r++)
      o << "sluice_shed_total{service=\"" << label(service[pc.service_id]) << "\",tenant=\""
        << label(tenant[pc.tenant_id]) << "\",reason=\"" << kernel::reason_name(r) << "\"} " << pc.counters.verdict[r]
        << "\n";
  help(o, "sluice_packets_total", "counter", "Packets seen by the data path, by what became of those outside services.");
  for (int c = 0; c < SL_G__COUNT; c++)
    o << "sluice_packets_total{outcome=\"" << kernel::global_counter_name(c) << "\"} " << snap.global.c[c] << "\n";

  help(o, "sluice_inflight", "gauge", "Requests of a governed service begun and not yet answered.");
  for (const auto& g : governed) o << "sluice_inflight{service=\"" << label(g.name) << "\"} " << g.view.inflight << "\n";
  help(o, "sluice_inflight_leaked", "gauge",
       "In-flight slots no flow holds (evicted while pending, reservations never claimed), "
       "left out of sluice_inflight.");
  for (const auto& g : governed)
    o << "sluice_inflight_leaked{service=\"" << label(g.name) << "\"} " << g.control.inflight_bias << "\n";
  help(o, "sluice_limit_estimate", "gauge", "The learned in-flight limit (0: none yet).");
  for (const auto& g : governed)
    o << "sluice_limit_estimate{service=\"" << label(g.name) << "\"} " << g.view.estimate << "\n";
  help(o, "sluice_limit", "gauge", "In-flight work the kernel admits, per priority level (0: unlimited).");
  for (const auto& g : governed)
    for (int l = 0; l < SL_LEVELS; l++)
      o << "sluice_limit{service=\"" << label(g.name) << "\",level=\"" << l << "\"} " << g.control.max_inflight[l]
        << "\n";
  help(o, "sluice_breaker_state", "gauge", "0 closed, 1 open, 2 half-open.");
  for (const auto& g : governed)
    o << "sluice_breaker_state{service=\"" << label(g.name) << "\"} " << int(g.control.breaker_state) << "\n";
  help(o, "sluice_reject_probability", "gauge", "Probability the kernel refuses new work (adaptive throttling).");
  for (const auto& g : governed)
    o << "sluice_reject_probability{service=\"" << label(g.name) << "\"} " << g.view.reject_p << "\n";

  help(o, "sluice_request_duration_seconds", "histogram", "Time to the first response byte, seen in the kernel.");
  help(o, "sluice_request_outcomes_total", "counter", "Ends of requests of governed services.");
  for (const auto& g : governed) {
    kernel::Observation obs = kernel::read_observation(dp, g.service_id);
    const sl_obs_counters& c = obs.counters;
    std::string svc = "service=\"" + label(g.name) + "\"";
    uint64_t cumulative = 0;
    // One bucket boundary per power of two of microseconds keeps it readable.
    for (uint32_t b = 0; b < SL_HIST_BUCKETS; b++) {
      cumulative += c.hist[b];
      bool boundary = b + 1 < SL_HIST_BUCKETS && b + 1 >= 16 && (b + 1 - 16) % 8 == 0;
      if (boundary)
        o << "sluice_request_duration_seconds_bucket{" << svc << ",le=\"" << sl_hist_lower_us(b + 1) / 1e6 << "\"} "
          << cumulative << "\n";
    }
    o << "sluice_request_duration_seconds_bucket{" << svc << ",le=\"+Inf\"} " << c.responses << "\n";
    o << "sluice_request_duration_seconds_sum{" << svc << "} " << c.latency_sum_ns / 1e9 << "\n";
    o << "sluice_request_duration_seconds_count{" << svc << "} " << c.responses << "\n";
    for (auto [name, value] : {std::pair{"started", c.started}, {"answered", c.responses}, {"error", c.errors},
                               {"timeout", c.timeouts}, {"server_abort", c.server_aborts},
                               {"client_abort", c.client_aborts}})
      o << "sluice_request_outcomes_total{" << svc << ",outcome=\"" << name << "\"} " << value << "\n";
  }
  return o.str();
}

MetricsServer::MetricsServer(const std::string& address, std::function<std::string()> render)
    : render_(std::move(render)) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) throw UsageError("--metrics '" + address + "': expected IP:PORT, e.g. 127.0.0.1:9464");
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  try {
    port = std::stoi(address.substr(colon + 1));
  } catch (...) {
    port = -1;
  }
  auto ip = policy::IpAddr::parse(host);
  if (!ip || port < 0 || port > 65535)
    throw UsageError("--metrics '" + address + "': expected IP:PORT, e.g. 127.0.0.1:9464");

  sockaddr_storage ss{};
  socklen_t len;
  if (ip->is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
    std::memcpy(&sin->sin_addr, ip->v4_bytes(), 4);
    len = sizeof(*sin);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<uint16_t>(port));
    std::memcpy(&sin6->sin6_addr, ip->bytes.data(), 16);
    len = sizeof(*sin6);
  }
  fd_ = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd_, 16) != 0) {
    int err = errno;
    if (fd_ >= 0) close(fd_);
    throw SystemError("cannot serve metrics on " + address, err);
  }
  thread_ = std::thread([this] { serve(); });
}

MetricsServer::~MetricsServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  close(fd_);
}

std::string MetricsServer::address() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
  char host[INET6_ADDRSTRLEN] = {};
  uint16_t port;
  if (ss.ss_family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
    port = ntohs(sin->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
  inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
  port = ntohs(sin6->sin6_port);
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

// One request per connection, answered whatever the path: scrapers ask for
// /metrics, and anything else gets the same page.
void MetricsServer::serve() {
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    timeval tv{1, 0};
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char request[1024];
    ssize_t got = recv(client, request, sizeof(request), 0);
    std::string body, status = "200 OK";
    try {
      body = got > 0 ? render_() : "";
    } catch (const std::exception& e) {
      status = "500 Internal Server Error";
      body = std::string(e.what()) + "\n";
    }
    std::string reply = "HTTP/1.1 " + status + "\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    for (size_t sent = 0; sent < reply.size();) {
      ssize_t n = send(client, reply.data() + sent, reply.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    close(client);
  }
}

}  // namespace sluice::control
