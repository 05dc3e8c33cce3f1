#include "server.hpp"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "http_request.hpp"

namespace capsrv {

struct Client {
    int fd = -1;
    std::string in;  // received bytes not yet consumed by a request
    bool peer_closed = false;
};

namespace {

// Markers in epoll data for the server's own descriptors; clients use their
// pointer, which is never this small.
constexpr uint64_t kListenTag = 1;
constexpr uint64_t kSignalTag = 2;
constexpr uint64_t kWakeTag = 3;

constexpr size_t kMaxBuffered = kMaxRequestHead + (1u << 20) + 4096;
constexpr int kAcceptBurst = 256;
constexpr int kSendTimeoutMs = 1000;
constexpr int64_t kAcceptPauseNs = 100'000'000;

int64_t monotonic_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::runtime_error system_error(const std::string& what) {
    return std::runtime_error(what + ": " + strerror(errno));
}

std::string address_text(const sockaddr_storage& ss) {
    char buf[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET) {
        auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
        return std::string(buf) + ":" + std::to_string(ntohs(sin->sin_port));
    }
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(sin6->sin6_port));
}

const char* reason_phrase(int status) {
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

std::string response_text(int status, const std::string& content_type, const std::string& body, bool keep_alive,
                           bool head_only) {
    std::string r = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) +
                    "\r\nServer: capsrv\r\nContent-Type: " + content_type +
                    "\r\nContent-Length: " + std::to_string(body.size()) +
                    (keep_alive ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n");
    if (!head_only) r += body;
    return r;
}

// The socket is non-blocking (the event loop shares it); wait a bounded time
// for room, so a client that stopped reading cannot hold a worker forever.
bool send_all(int fd, const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += size_t(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            pollfd p{fd, POLLOUT, 0};
            if (poll(&p, 1, kSendTimeoutMs) <= 0) return false;
            continue;
        }
        return false;
    }
    return true;
}

void sleep_until_ns(int64_t until) {
    timespec ts{time_t(until / 1'000'000'000), long(until % 1'000'000'000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
}

int64_t thread_cpu_ns() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Burns `ns` of this thread's CPU time: time spent preempted does not count,
// so a request costs the same CPU however loaded the machine is.
void spin_for_cpu_ns(int64_t ns) {
    int64_t until = thread_cpu_ns() + ns;
    volatile uint64_t sink = 0;
    while (thread_cpu_ns() < until) {
        for (int i = 0; i < 2000; ++i) sink = sink * 6364136223846793005ULL + 1442695040888963407ULL;
    }
}

}  // namespace

Server::Server(ServerConfig config) : config_(std::move(config)) {}

Server::~Server() {
    for (int fd : {listen_fd_, epoll_fd_, signal_fd_, wake_fd_})
        if (fd >= 0) close(fd);
}

std::string Server::open() {
    int family = config_.listen.ss_family;
    listen_fd_ = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw system_error("socket");
    int one = 1, zero = 0;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // [::] serves IPv4 too (dual stack), whatever the system default says.
    if (family == AF_INET6) setsockopt(listen_fd_, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(listen_fd_, reinterpret_cast<const sockaddr*>(&config_.listen), config_.listen_len) != 0)
        throw system_error("bind " + address_text(config_.listen));
    if (listen(listen_fd_, config_.backlog) != 0) throw system_error("listen");
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);

    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) throw system_error("epoll_create1");
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    signal_fd_ = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd_ < 0) throw system_error("signalfd");
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw system_error("eventfd");
    for (auto [fd, tag] : {std::pair{listen_fd_, kListenTag}, {signal_fd_, kSignalTag}, {wake_fd_, kWakeTag}}) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = tag;
        if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) throw system_error("epoll_ctl");
    }
    return address_text(bound);
}

void Server::run() {
    start_ns_ = monotonic_ns();
    for (unsigned i = 0; i < config_.workers; ++i) workers_.emplace_back(&Server::worker_main, this, i);
    event_loop();

    {
        std::lock_guard lock(queue_mutex_);
        stopping_ = true;
    }
    queue_ready_.notify_all();
    for (auto& t : workers_) t.join();
    // Requests still queued are abandoned; their clients see the connection close.
    abandoned_ = queue_.size();
    for (auto& job : queue_) drop(job.client);
    queue_.clear();
    queue_length_ = 0;
}

void Server::event_loop() {
    epoll_event events[256];
    int64_t resume_accept_ns = 0;
    for (;;) {
        int timeout_ms = listening_paused_ ? 10 : -1;
        int n = epoll_wait(epoll_fd_, events, 256, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw system_error("epoll_wait");
        }
        int64_t now = monotonic_ns();
        if (listening_paused_ && now >= resume_accept_ns) {
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u64 = kListenTag;
            epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
            listening_paused_ = false;
        }
        for (int i = 0; i < n; ++i) {
            uint64_t tag = events[i].data.u64;
            if (tag == kSignalTag) return;
            if (tag == kListenTag) {
                accept_all();
                if (listening_paused_) resume_accept_ns = now + kAcceptPauseNs;
            } else if (tag == kWakeTag) {
                uint64_t ignored;
                [[maybe_unused]] auto r = read(wake_fd_, &ignored, sizeof ignored);
                std::vector<Client*> ready;
                {
                    std::lock_guard lock(handback_mutex_);
                    ready.swap(handback_);
                }
                for (Client* c : ready) process_buffer(c, c->peer_closed);
            } else {
                on_readable(static_cast<Client*>(events[i].data.ptr));
            }
        }
    }
}

void Server::accept_all() {
    for (int i = 0; i < kAcceptBurst; ++i) {
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // Out of descriptors: stop accepting for a moment instead of
                // spinning on a listen socket that stays readable.
                static bool warned = false;
                if (!warned) fprintf(stderr, "capsrv: accept: %s; pausing accepts\n", strerror(errno));
                warned = true;
                epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
                listening_paused_ = true;
            }
            return;
        }
        ++accepted_;
        ++open_connections_;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto* client = new Client;
        client->fd = fd;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
        ev.data.ptr = client;
        if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) drop(client);
    }
}

void Server::on_readable(Client* client) {
    char buf[16 * 1024];
    for (;;) {
        ssize_t n = recv(client->fd, buf, sizeof buf, 0);
        if (n > 0) {
            client->in.append(buf, size_t(n));
            if (client->in.size() > kMaxBuffered) break;
            continue;
        }
        if (n == 0) {
            client->peer_closed = true;
            break;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        drop(client);  // reset by the peer before we had a request
        return;
    }
    process_buffer(client, client->peer_closed);
}

void Server::process_buffer(Client* client, bool peer_closed) {
    for (;;) {
        Request request = parse_request(client->in);
        if (request.state == Request::State::Bad) {
            ++bad_requests_;
            answer_inline(client, 400, request.error + "\n", false);
            drop(client);
            return;
        }
        if (request.state == Request::State::Incomplete) {
            if (peer_closed || client->in.size() > kMaxBuffered)
                drop(client);
            else
                rearm(client);
            return;
        }
        bool keep_alive = request.keep_alive && !peer_closed;
        client->in.erase(0, request.length);
        if (request.path == "/stats" || request.path.rfind("/stats?", 0) == 0) {
            // Served here, ahead of the queue: observing the server must not
            // wait behind the backlog it is observing.
            ++stats_requests_;
            if (!answer_inline(client, 200, stats_json() + "\n", keep_alive) || !keep_alive) {
                drop(client);
                return;
            }
            continue;
        }
        enqueue({client, keep_alive, request.method == "HEAD", monotonic_ns()});
        return;
    }
}

bool Server::answer_inline(Client* client, int status, const std::string& body, bool keep_alive) {
    const char* type = status == 200 ? "application/json" : "text/plain";
    return send_all(client->fd, response_text(status, type, body, keep_alive, false));
}

void Server::enqueue(Job job) {
    {
        std::lock_guard lock(queue_mutex_);
        queue_.push_back(job);
        uint64_t length = queue_.size();
        queue_length_.store(length, std::memory_order_relaxed);
        if (length > queue_max_.load(std::memory_order_relaxed)) queue_max_.store(length, std::memory_order_relaxed);
    }
    queue_ready_.notify_one();
}

void Server::worker_main(unsigned index) {
    prctl(PR_SET_TIMERSLACK, 1000UL);  // sleep mode: keep service times exact
    int64_t last_end_ns = 0;
    std::mt19937_64 rng(0x5eed0000u + index);  // --service-spread: the same draws every run
    for (;;) {
        Job job;
        {
            std::unique_lock lock(queue_mutex_);
            queue_ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            job = queue_.front();
            queue_.pop_front();
            queue_length_.store(queue_.size(), std::memory_order_relaxed);
            ++busy_workers_;
        }
        serve(job, last_end_ns, rng);
        --busy_workers_;
    }
}

void Server::serve(const Job& job, int64_t& last_end_ns, std::mt19937_64& rng) {
    int64_t now = monotonic_ns();
    uint64_t waited = uint64_t(now - job.enqueued_ns);
    queue_wait_total_ns_ += waited;
    queue_wait_last_ns_.store(waited, std::memory_order_relaxed);

    // The client may have given up long ago; the work is done all the same.
    bool fail = failing();
    double ms = fail ? config_.fail_ms : slowed() ? config_.slow_ms : config_.service_ms;
    if (config_.spread > 0 && ms > 0) {
        double shape = 1 / (config_.spread * config_.spread);
        ms = std::gamma_distribution<double>(shape, ms / shape)(rng);
    }
    auto ns = int64_t(ms * 1e6);
    if (ns > 0 && config_.work == Work::Cpu) {
        spin_for_cpu_ns(ns);
    } else if (ns > 0) {
        // The request's service starts when this worker could first have
        // taken it (its arrival, or the end of the previous one), not when
        // the thread got to run: wakeup delays on a busy machine would
        // otherwise shave the capacity below workers / service time.
        int64_t start = std::min(now, std::max(job.enqueued_ns, last_end_ns));
        last_end_ns = start + ns;
        sleep_until_ns(last_end_ns);
    }

    int status = fail ? 503 : 200;
    std::string body = fail ? "unavailable\n" : "ok\n";
    bool delivered =
        send_all(job.client->fd, response_text(status, "text/plain", body, job.keep_alive, job.head_only));
    ++(fail ? served_failed_ : served_ok_);
    if (!delivered) ++client_gone_;
    if (delivered && job.keep_alive)
        resume(job.client);
    else
        drop(job.client);
}

void Server::resume(Client* client) {
    if (client->in.empty()) {
        rearm(client);
        return;
    }
    // A pipelined request is already buffered: no epoll event will announce it.
    {
        std::lock_guard lock(handback_mutex_);
        handback_.push_back(client);
    }
    uint64_t one = 1;
    [[maybe_unused]] auto r = write(wake_fd_, &one, sizeof one);
}

void Server::rearm(Client* client) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    ev.data.ptr = client;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, client->fd, &ev) != 0) drop(client);
}

void Server::drop(Client* client) {
    close(client->fd);
    delete client;
    --open_connections_;
}

bool Server::failing() const {
    return !config_.fail_file.empty() && access(config_.fail_file.c_str(), F_OK) == 0;
}

bool Server::slowed() const {
    return !config_.slow_file.empty() && access(config_.slow_file.c_str(), F_OK) == 0;
}

std::string Server::stats_json() const {
    uint64_t ok = served_ok_.load(), failed = served_failed_.load();
    nlohmann::ordered_json j;
    j["served"] = ok + failed;
    j["ok"] = ok;
    j["failed"] = failed;
    j["client_gone"] = client_gone_.load();
    j["queue_length"] = queue_length_.load();
    j["queue_max"] = queue_max_.load();
    j["busy_workers"] = busy_workers_.load();
    j["workers"] = config_.workers;
    j["service_time_ms"] = config_.service_ms;
    j["service_spread"] = config_.spread;
    j["work"] = config_.work == Work::Cpu ? "cpu" : "sleep";
    if (config_.service_ms > 0)
        j["capacity_rps"] = config_.workers * 1000.0 / config_.service_ms;
    else
        j["capacity_rps"] = nullptr;
    j["failing"] = failing();
    j["slowed"] = slowed();
    j["accepted"] = accepted_.load();
    j["open_connections"] = open_connections_.load();
    j["bad_requests"] = bad_requests_.load();
    j["stats_requests"] = stats_requests_.load();
    j["queue_wait_ms_avg"] = ok + failed ? double(queue_wait_total_ns_.load()) / double(ok + failed) / 1e6 : 0.0;
    j["queue_wait_ms_last"] = double(queue_wait_last_ns_.load()) / 1e6;
    j["abandoned"] = abandoned_.load();
    j["uptime_s"] = double(monotonic_ns() - start_ns_) / 1e9;
    return j.dump();
}

}  // namespace capsrv
