// udp mode: datagrams at the scheduled times, batched with sendmmsg so one
// thread reaches well past 100k datagrams/s.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <vector>

#include "engines.hpp"
#include "schedule.hpp"

namespace loadgen {

namespace {

constexpr size_t kMaxBatch = 64;
constexpr size_t kMaxBatchBytes = 1 << 20;

struct Pending {
    int64_t scheduled_ns;
};

class UdpSocket {
public:
    UdpSocket(const Config& config, const SockAddr* source, size_t batch_capacity)
        : target_(config.target), size_(config.datagram_size) {
        fd_ = socket(config.target.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd_ < 0) throw std::runtime_error("udp socket: " + std::string(strerror(errno)));
        int sndbuf = 4 << 20;
        setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        if (source && bind(fd_, source->get(), source->len) != 0)
            throw std::runtime_error("bind " + source->to_string() + ": " + strerror(errno));
        payload_.assign(batch_capacity * size_, 0);
        iov_.resize(batch_capacity);
        msgs_.resize(batch_capacity);
        pending_.reserve(batch_capacity);
        capacity_ = batch_capacity;
    }
    ~UdpSocket() {
        if (fd_ >= 0) close(fd_);
    }
    UdpSocket(const UdpSocket&) = delete;
    UdpSocket& operator=(const UdpSocket&) = delete;

    bool full() const { return pending_.size() == capacity_; }

    void add(uint64_t index, int64_t scheduled_ns) {
        size_t slot = pending_.size();
        char* data = payload_.data() + slot * size_;
        // Sequence number and scheduled time, for a receiver that wants them.
        if (size_ >= 16) {
            memcpy(data, &index, 8);
            memcpy(data + 8, &scheduled_ns, 8);
        }
        iov_[slot] = {data, size_};
        msghdr& h = msgs_[slot].msg_hdr;
        h = {};
        h.msg_name = const_cast<sockaddr*>(target_.get());
        h.msg_namelen = target_.len;
        h.msg_iov = &iov_[slot];
        h.msg_iovlen = 1;
        pending_.push_back({scheduled_ns});
    }

    void flush(Results& results) {
        size_t i = 0, n = pending_.size();
        while (i < n) {
            int sent = sendmmsg(fd_, &msgs_[i], unsigned(n - i), MSG_DONTWAIT);
            int64_t now = monotonic_ns();
            if (sent > 0) {
                for (int k = 0; k < sent; ++k) results.outcome(Outcome::Success, pending_[i + k].scheduled_ns, now);
                results.sent += unsigned(sent);
                i += unsigned(sent);
            } else {
                // The kernel reports the first failing datagram; skip it and go on.
                results.error(errno_name(errno), pending_[i].scheduled_ns, now);
                ++i;
            }
        }
        pending_.clear();
    }

private:
    int fd_ = -1;
    const SockAddr& target_;
    size_t size_;
    size_t capacity_ = 0;
    std::vector<char> payload_;
    std::vector<iovec> iov_;
    std::vector<mmsghdr> msgs_;
    std::vector<Pending> pending_;
};

void sleep_until(int64_t deadline_ns) {
    timespec ts{time_t(deadline_ns / 1'000'000'000), long(deadline_ns % 1'000'000'000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
}

}  // namespace

void run_udp(const Config& config, unsigned thread_index, int64_t start_ns, Results& results) {
    results.set_window(start_ns, start_ns + int64_t(config.duration_s * 1e9));
    results.record_latency = false;
    size_t batch = std::max<size_t>(1, std::min(kMaxBatch, kMaxBatchBytes / std::max<size_t>(1, config.datagram_size)));

    std::vector<std::unique_ptr<UdpSocket>> sockets;
    if (config.sources.empty()) {
        sockets.push_back(std::make_unique<UdpSocket>(config, nullptr, batch));
    } else {
        for (auto& source : config.sources) sockets.push_back(std::make_unique<UdpSocket>(config, &source, batch));
    }

    ArrivalSchedule schedule(config, config.threads, thread_index, start_ns);
    while (!schedule.done() && !stop_requested.load(std::memory_order_relaxed)) {
        int64_t now = monotonic_ns();
        while (!schedule.done() && schedule.time_ns() <= now) {
            int64_t scheduled = schedule.time_ns();
            results.arrival(scheduled);
            if (now > schedule.end_ns() + kLateGraceNs) {
                results.outcome(Outcome::SkippedLate, scheduled, now);
            } else {
                auto& socket = *sockets[schedule.index() % sockets.size()];
                ++results.attempted;
                results.lag(scheduled, now);
                socket.add(schedule.index(), scheduled);
                if (socket.full()) {
                    socket.flush(results);
                    now = monotonic_ns();
                }
            }
            schedule.advance();
        }
        for (auto& socket : sockets) socket->flush(results);
        int64_t now_after = monotonic_ns();
        if (!schedule.done() && schedule.time_ns() > now_after)
            sleep_until(std::clamp(schedule.time_ns(), now_after + kMinSleepNs, now_after + kMaxSleepNs));
    }
}

}  // namespace loadgen
