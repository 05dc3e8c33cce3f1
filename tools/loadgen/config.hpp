// What one loadgen run does, after the command line has been validated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "net.hpp"

namespace loadgen {

enum class Mode { Udp, Connect, Http };
enum class Arrivals { Constant, Poisson };
enum class ConnectionPolicy { New, KeepAlive };

const char* mode_name(Mode mode);

struct Config {
    Mode mode = Mode::Http;
    SockAddr target;
    std::string target_text;
    std::vector<SockAddr> sources;  // round-robin per connection/datagram; empty: kernel's choice

    double rate = 0;                // arrivals per second, over all threads
    double duration_s = 0;          // arrivals are scheduled in [0, duration)
    uint64_t max_arrivals = 0;      // 0: no cap besides the duration
    Arrivals arrivals = Arrivals::Constant;
    uint64_t seed = 1;

    int64_t timeout_ns = 0;         // connect / http: per attempt
    std::size_t max_sockets = 10000;
    unsigned threads = 1;

    std::size_t datagram_size = 64;  // udp

    std::string path = "/";          // http
    std::string host_header;
    ConnectionPolicy connections = ConnectionPolicy::New;
};

}  // namespace loadgen
