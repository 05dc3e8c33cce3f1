// connect and http modes: one epoll loop per thread, non-blocking sockets,
// edge-triggered events, one FIFO of deadlines (every attempt has the same
// timeout, so deadlines expire in the order they were set).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <string>
#include <vector>

#include "engines.hpp"
#include "http_response.hpp"
#include "schedule.hpp"

namespace loadgen {

namespace {

enum class Phase : uint8_t {
    Free,
    Connecting,  // SYN sent
    Sending,     // connected, request partly written
    Receiving,   // request written, response incomplete
    Idle,        // keepalive: in the pool, between requests
    Draining,    // response complete, waiting for the server's FIN
};

bool is_active(Phase p) { return p != Phase::Free && p != Phase::Idle; }

struct Connection {
    int fd = -1;
    Phase phase = Phase::Free;
    uint32_t socket_id = 0;   // changes with each socket placed in this slot
    uint32_t operation = 0;   // changes with each timed step; older deadlines are stale
    int64_t scheduled_ns = 0;
    size_t written = 0;
    bool registered = false;       // added to epoll
    bool watching_output = false;  // registered with EPOLLOUT
    HttpResponseParser response;
};

struct Deadline {
    int64_t at_ns;
    uint32_t slot;
    uint32_t operation;
};

constexpr int kEpollBatch = 512;
constexpr int kStartBurst = 64;
constexpr size_t kReadBuffer = 64 * 1024;

class TcpClient {
public:
    TcpClient(const Config& config, unsigned thread_index, int64_t start_ns, Results& results)
        : config_(config),
          results_(results),
          schedule_(config, config.threads, thread_index, start_ns),
          http_(config.mode == Mode::Http),
          keepalive_(http_ && config.connections == ConnectionPolicy::KeepAlive) {
        results_.set_window(start_ns, start_ns + int64_t(config.duration_s * 1e9));
        epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
        if (epoll_fd_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + strerror(errno));
        size_t slots = std::max<size_t>(1, config.max_sockets / config.threads);
        conns_.resize(slots);
        free_slots_.reserve(slots);
        for (size_t i = slots; i-- > 0;) free_slots_.push_back(uint32_t(i));
        read_buffer_.resize(kReadBuffer);
        request_ = "GET " + config.path + " HTTP/1.1\r\nHost: " + config.host_header +
                   "\r\nUser-Agent: sluice-loadgen\r\nAccept: */*\r\nConnection: " +
                   (keepalive_ ? "keep-alive" : "close") + "\r\n\r\n";
    }

    ~TcpClient() {
        for (auto& c : conns_)
            if (c.fd >= 0) close(c.fd);
        close(epoll_fd_);
    }

    void run() {
        epoll_event events[kEpollBatch];
        for (;;) {
            int64_t now = monotonic_ns();
            if (stop_requested.load(std::memory_order_relaxed)) stopped_ = true;
            // A bounded burst, then the events: a generator that has fallen
            // behind must not leave responses unread (and their latency
            // inflated) while it catches up on sends.
            for (int started = 0; started < kStartBurst && scheduling() && schedule_.time_ns() <= now;
                 ++started, schedule_.advance()) {
                start(schedule_.index(), schedule_.time_ns(), now);
                now = monotonic_ns();
            }
            expire(now);
            if (!scheduling() && active_ == 0) break;

            int64_t wake = now + kMaxSleepNs;
            if (scheduling()) wake = std::min(wake, schedule_.time_ns());
            if (!deadlines_.empty()) wake = std::min(wake, deadlines_.front().at_ns);
            int64_t wait_ns = wake <= now ? 0 : std::max(wake - now, kMinSleepNs);
            timespec timeout{time_t(wait_ns / 1'000'000'000), long(wait_ns % 1'000'000'000)};
            int n = epoll_pwait2(epoll_fd_, events, kEpollBatch, &timeout, nullptr);
            if (n < 0) {
                if (errno == EINTR) continue;
                throw std::runtime_error(std::string("epoll_pwait2: ") + strerror(errno));
            }
            now = monotonic_ns();
            for (int i = 0; i < n; ++i) {
                auto slot = uint32_t(events[i].data.u64);
                auto socket_id = uint32_t(events[i].data.u64 >> 32);
                if (conns_[slot].socket_id == socket_id && conns_[slot].phase != Phase::Free)
                    on_event(slot, events[i].events, now);
            }
        }
    }

private:
    bool scheduling() const { return !stopped_ && !schedule_.done(); }

    void start(uint64_t index, int64_t scheduled, int64_t now) {
        results_.arrival(scheduled);
        if (now > schedule_.end_ns() + kLateGraceNs) {
            results_.outcome(Outcome::SkippedLate, scheduled, now);
            return;
        }
        if (keepalive_) {
            while (!idle_.empty()) {
                auto [slot, socket_id] = idle_.back();
                idle_.pop_back();
                Connection& c = conns_[slot];
                if (c.socket_id != socket_id || c.phase != Phase::Idle) continue;
                ++results_.attempted;
                results_.lag(scheduled, now);
                c.scheduled_ns = scheduled;
                ++active_;
                arm_deadline(slot, now);
                begin_request(slot, now);
                return;
            }
        }
        if (free_slots_.empty()) {
            results_.outcome(Outcome::SkippedNoSocket, scheduled, now);
            return;
        }
        open_connection(index, scheduled, now);
    }

    void open_connection(uint64_t index, int64_t scheduled, int64_t now) {
        int fd = socket(config_.target.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                results_.outcome(Outcome::SkippedNoSocket, scheduled, now);
            else
                results_.error(errno_name(errno), scheduled, now);
            return;
        }
        ++results_.attempted;
        results_.lag(scheduled, now);
        if (!config_.sources.empty()) {
            const SockAddr& source = config_.sources[index % config_.sources.size()];
            // Pick the port at connect() time, per destination, instead of at
            // bind() time from the much smaller pool of all unused ports.
            int one = 1;
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
            if (bind(fd, source.get(), source.len) != 0) {
                results_.error("bind:" + errno_name(errno), scheduled, now);
                close(fd);
                return;
            }
        }
        if (connect(fd, config_.target.get(), config_.target.len) != 0 && errno != EINPROGRESS) {
            int err = errno;
            close(fd);
            record_connect_failure(err, scheduled, now);
            return;
        }
        uint32_t slot = free_slots_.back();
        free_slots_.pop_back();
        Connection& c = conns_[slot];
        c.fd = fd;
        c.phase = Phase::Connecting;
        ++c.socket_id;
        c.scheduled_ns = scheduled;
        c.registered = c.watching_output = false;
        ++active_;
        arm_deadline(slot, now);
        if (http_) {
            // Over loopback or a veth the handshake usually completes inside
            // connect(), so write at once and skip a round through epoll. A
            // socket still in SYN_SENT answers EAGAIN; EPOLLOUT follows.
            begin_request(slot, now);
            if (c.phase == Phase::Free) return;  // refused or reset: recorded
        } else {
            ++results_.sent;
        }
        // EPOLLOUT only while something waits for it: otherwise every
        // connection costs one more wakeup for the writability edge.
        bool want_output = c.phase != Phase::Receiving;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (want_output ? uint32_t(EPOLLOUT) : 0u);
        ev.data.u64 = uint64_t(slot) | (uint64_t(c.socket_id) << 32);
        if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
            results_.error("epoll_ctl:" + errno_name(errno), scheduled, now);
            release(slot, true);
            return;
        }
        c.registered = true;
        c.watching_output = want_output;
    }

    // A write blocked on a connection registered without EPOLLOUT: ask for it.
    void watch_output(uint32_t slot) {
        Connection& c = conns_[slot];
        if (!c.registered || c.watching_output) return;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.u64 = uint64_t(slot) | (uint64_t(c.socket_id) << 32);
        if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev) == 0) c.watching_output = true;
    }

    void record_connect_failure(int err, int64_t scheduled, int64_t now) {
        switch (err) {
        case ECONNREFUSED: results_.outcome(Outcome::Refused, scheduled, now); break;
        case ECONNRESET: results_.outcome(Outcome::Reset, scheduled, now); break;
        case ETIMEDOUT: results_.outcome(Outcome::Timeout, scheduled, now); break;
        default: results_.error(errno_name(err), scheduled, now); break;
        }
    }

    void on_event(uint32_t slot, uint32_t events, int64_t now) {
        Connection& c = conns_[slot];
        switch (c.phase) {
        case Phase::Connecting: {
            if (events & (EPOLLERR | EPOLLHUP)) {
                int err = socket_error(c.fd);
                fail_with_errno(slot, err ? err : ECONNRESET, now);
                return;
            }
            if (!(events & EPOLLOUT)) return;
            if (!http_) {
                results_.outcome(Outcome::Success, c.scheduled_ns, now);
                // RST instead of FIN: a client that closes first would hold
                // the port in TIME_WAIT for a minute, and at these rates the
                // ephemeral ports run out within seconds.
                release(slot, true);
                return;
            }
            begin_request(slot, now);
            if (conns_[slot].phase == Phase::Receiving && (events & (EPOLLIN | EPOLLRDHUP))) read_ready(slot, now);
            return;
        }
        case Phase::Sending:
            if (events & EPOLLERR) {
                fail_with_errno(slot, socket_error(c.fd), now);
                return;
            }
            write_request(slot, now);
            if (conns_[slot].phase == Phase::Receiving && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)))
                read_ready(slot, now);
            return;
        case Phase::Receiving:
        case Phase::Idle:
        case Phase::Draining:
            read_ready(slot, now);
            return;
        case Phase::Free:
            return;
        }
    }

    // Called in Connecting (the optimistic write), the phase stays so until
    // the first byte is accepted: a failed handshake is still classified as
    // refused or timed out, not as a failed request.
    void begin_request(uint32_t slot, int64_t now) {
        Connection& c = conns_[slot];
        if (c.phase != Phase::Connecting) c.phase = Phase::Sending;
        c.written = 0;
        c.response.reset();
        write_request(slot, now);
    }

    void write_request(uint32_t slot, int64_t now) {
        Connection& c = conns_[slot];
        while (c.written < request_.size()) {
            ssize_t n = send(c.fd, request_.data() + c.written, request_.size() - c.written, MSG_NOSIGNAL);
            if (n > 0) {
                c.written += size_t(n);
                c.phase = Phase::Sending;
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) {  // an EPOLLOUT edge will follow
                watch_output(slot);
                return;
            }
            fail_with_errno(slot, n < 0 ? errno : ECONNRESET, now);
            return;
        }
        c.phase = Phase::Receiving;
        ++results_.sent;
    }

    // Edge-triggered: read until EAGAIN or the connection is gone.
    void read_ready(uint32_t slot, int64_t now) {
        Connection& c = conns_[slot];
        for (;;) {
            ssize_t n = recv(c.fd, read_buffer_.data(), read_buffer_.size(), 0);
            if (n > 0) {
                if (c.phase == Phase::Draining) continue;
                if (c.phase != Phase::Receiving) {  // bytes nobody asked for
                    release(slot, true);
                    return;
                }
                size_t used = 0;
                auto state = c.response.feed(read_buffer_.data(), size_t(n), &used);
                if (state == HttpResponseParser::State::Invalid) {
                    fail_with_reason(slot, "bad_response", now);
                    return;
                }
                if (state == HttpResponseParser::State::Complete) {
                    if (!complete_response(slot, used < size_t(n), false, now)) return;
                }
                continue;
            }
            if (n == 0) {
                if (c.phase == Phase::Receiving) {
                    if (c.response.finish_at_eof() == HttpResponseParser::State::Complete)
                        complete_response(slot, false, true, now);
                    else
                        fail(slot, Outcome::Reset, now);
                } else {
                    release(slot, false);
                }
                return;
            }
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return;
            if (c.phase == Phase::Receiving)
                fail_with_errno(slot, errno, now);
            else
                release(slot, true);
            return;
        }
    }

    // Records the response; returns whether the connection is still open.
    bool complete_response(uint32_t slot, bool extra_bytes, bool at_eof, int64_t now) {
        Connection& c = conns_[slot];
        int status = c.response.status();
        Outcome outcome = status >= 200 && status < 300   ? Outcome::Success
                          : status >= 300 && status < 400 ? Outcome::Status3xx
                          : status >= 400 && status < 500 ? Outcome::Status4xx
                          : status >= 500 && status < 600 ? Outcome::Status5xx
                                                          : Outcome::StatusOther;
        results_.outcome(outcome, c.scheduled_ns, now);
        if (at_eof) {
            release(slot, false);
            return false;
        }
        if (extra_bytes) {
            release(slot, true);
            return false;
        }
        if (keepalive_ && c.response.keep_alive()) {
            c.phase = Phase::Idle;
            ++c.operation;
            --active_;
            idle_.push_back({slot, c.socket_id});
            return true;
        }
        // Wait for the server to close first, so TIME_WAIT stays on its side.
        c.phase = Phase::Draining;
        arm_deadline(slot, now);
        return true;
    }

    void expire(int64_t now) {
        while (!deadlines_.empty() && deadlines_.front().at_ns <= now) {
            Deadline d = deadlines_.front();
            deadlines_.pop_front();
            Connection& c = conns_[d.slot];
            if (c.operation != d.operation) continue;
            if (c.phase == Phase::Draining)
                release(d.slot, true);
            else if (is_active(c.phase))
                fail(d.slot, Outcome::Timeout, now);
        }
    }

    void arm_deadline(uint32_t slot, int64_t now) {
        Connection& c = conns_[slot];
        ++c.operation;
        deadlines_.push_back({now + config_.timeout_ns, slot, c.operation});
    }

    static int socket_error(int fd) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        return err;
    }

    void fail_with_errno(uint32_t slot, int err, int64_t now) {
        Connection& c = conns_[slot];
        if (err == ECONNRESET || err == EPIPE)
            results_.outcome(Outcome::Reset, c.scheduled_ns, now);
        else if (c.phase == Phase::Connecting)
            record_connect_failure(err, c.scheduled_ns, now);
        else
            results_.error(errno_name(err), c.scheduled_ns, now);
        release(slot, true);
    }

    void fail_with_reason(uint32_t slot, const std::string& reason, int64_t now) {
        results_.error(reason, conns_[slot].scheduled_ns, now);
        release(slot, true);
    }

    void fail(uint32_t slot, Outcome outcome, int64_t now) {
        results_.outcome(outcome, conns_[slot].scheduled_ns, now);
        release(slot, true);
    }

    // `abort`: close with RST (no TIME_WAIT, and the server learns at once).
    void release(uint32_t slot, bool abort) {
        Connection& c = conns_[slot];
        if (abort) {
            linger hard{1, 0};
            setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
        }
        close(c.fd);
        if (is_active(c.phase)) --active_;
        c.fd = -1;
        c.phase = Phase::Free;
        ++c.operation;
        free_slots_.push_back(slot);
    }

    const Config& config_;
    Results& results_;
    ArrivalSchedule schedule_;
    bool http_;
    bool keepalive_;
    int epoll_fd_ = -1;
    std::vector<Connection> conns_;
    std::vector<uint32_t> free_slots_;
    std::vector<std::pair<uint32_t, uint32_t>> idle_;  // (slot, socket_id), most recent last
    std::deque<Deadline> deadlines_;
    bool stopped_ = false;  // interrupted: no new arrivals
    size_t active_ = 0;  // connections with an attempt or a drain in progress
    std::string request_;
    std::vector<char> read_buffer_;
};

}  // namespace

void run_tcp(const Config& config, unsigned thread_index, int64_t start_ns, Results& results) {
    TcpClient client(config, thread_index, start_ns, results);
    client.run();
}

}  // namespace loadgen
