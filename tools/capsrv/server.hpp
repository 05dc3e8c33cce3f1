// capsrv's server: one event-loop thread accepts connections and reads
// requests into an unbounded FIFO; C workers serve them one at a time for the
// service time. Nothing is ever shed, so past capacity the queue (and the
// latency) grows without bound: the collapse sluice exists to prevent.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace capsrv {

enum class Work { Sleep, Cpu };

struct ServerConfig {
    sockaddr_storage listen{};
    socklen_t listen_len = 0;
    unsigned workers = 1;
    double service_ms = 0;
    Work work = Work::Sleep;
    int backlog = 4096;
    std::string fail_file;  // while this file exists, answer 503
    double fail_ms = 0;     // service time of a failing request
    std::string slow_file;  // while this file exists, take slow_ms per request
    double slow_ms = 0;
    // Each request's time varies around its mean with this coefficient of
    // variation (a gamma distribution; 0: every request takes exactly it).
    double spread = 0;
};

struct Client;

struct Job {
    Client* client;
    bool keep_alive;
    bool head_only;
    int64_t enqueued_ns;
};

class Server {
public:
    explicit Server(ServerConfig config);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds and listens; returns the bound address ("198.18.0.2:8080").
    std::string open();
    // Serves until SIGTERM or SIGINT (which the caller has blocked).
    void run();
    std::string stats_json() const;

private:
    void event_loop();
    void accept_all();
    void on_readable(Client* client);
    void process_buffer(Client* client, bool peer_closed);
    void enqueue(Job job);
    bool answer_inline(Client* client, int status, const std::string& body, bool keep_alive);
    void worker_main(unsigned index);
    void serve(const Job& job, int64_t& last_end_ns, std::mt19937_64& rng);
    void resume(Client* client);  // a worker is done with a kept-alive client
    void rearm(Client* client);
    void drop(Client* client);
    bool failing() const;
    bool slowed() const;

    ServerConfig config_;
    int listen_fd_ = -1;
    int epoll_fd_ = -1;
    int signal_fd_ = -1;
    int wake_fd_ = -1;  // eventfd: clients handed back with buffered requests
    bool listening_paused_ = false;
    int64_t start_ns_ = 0;

    std::mutex queue_mutex_;
    std::condition_variable queue_ready_;
    std::deque<Job> queue_;
    bool stopping_ = false;
    std::vector<std::thread> workers_;

    std::mutex handback_mutex_;
    std::vector<Client*> handback_;

    // Counters for /stats and the exit summary.
    std::atomic<uint64_t> accepted_{0};
    std::atomic<uint64_t> open_connections_{0};
    std::atomic<uint64_t> served_ok_{0};
    std::atomic<uint64_t> served_failed_{0};
    std::atomic<uint64_t> client_gone_{0};
    std::atomic<uint64_t> bad_requests_{0};
    std::atomic<uint64_t> stats_requests_{0};
    std::atomic<uint64_t> busy_workers_{0};
    std::atomic<uint64_t> queue_length_{0};
    std::atomic<uint64_t> queue_max_{0};
    std::atomic<uint64_t> queue_wait_total_ns_{0};
    std::atomic<uint64_t> queue_wait_last_ns_{0};
    std::atomic<uint64_t> abandoned_{0};  // still queued at shutdown
};

}  // namespace capsrv
