#include "net.hpp"

#include <arpa/inet.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>

namespace loadgen {

std::string SockAddr::to_string() const {
    char buf[INET6_ADDRSTRLEN] = "?";
    if (family() == AF_INET) {
        auto* sin = reinterpret_cast<const sockaddr_in*>(&storage);
        inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
        return std::string(buf) + ":" + std::to_string(ntohs(sin->sin_port));
    }
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(sin6->sin6_port));
}

static bool fill_address(const std::string& ip, uint16_t port, SockAddr& out) {
    out = SockAddr{};
    auto* sin = reinterpret_cast<sockaddr_in*>(&out.storage);
    if (inet_pton(AF_INET, ip.c_str(), &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        out.len = sizeof(sockaddr_in);
        return true;
    }
    out = SockAddr{};
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    if (inet_pton(AF_INET6, ip.c_str(), &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        out.len = sizeof(sockaddr_in6);
        return true;
    }
    return false;
}

bool parse_endpoint(std::string_view text, SockAddr& out, std::string& error) {
    std::string_view host, port_text;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            error = "expected [IPv6]:PORT, got '" + std::string(text) + "'";
            return false;
        }
        host = text.substr(1, close - 1);
        port_text = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) {
            error = "expected IP:PORT or [IPv6]:PORT, got '" + std::string(text) + "'";
            return false;
        }
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
    }
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
        error = "bad port '" + std::string(port_text) + "' in '" + std::string(text) + "'";
        return false;
    }
    if (!fill_address(std::string(host), static_cast<uint16_t>(port), out)) {
        error = "bad IP address '" + std::string(host) + "' in '" + std::string(text) + "'";
        return false;
    }
    return true;
}

bool parse_host(std::string_view text, SockAddr& out, std::string& error) {
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
    if (!fill_address(std::string(text), 0, out)) {
        error = "bad source address '" + std::string(text) + "'";
        return false;
    }
    return true;
}

std::string errno_name(int err) {
    const char* name = strerrorname_np(err);
    return name ? name : "E" + std::to_string(err);
}

rlim_t raise_fd_limit(rlim_t want) {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
    if (lim.rlim_cur >= want) return lim.rlim_cur;
    if (lim.rlim_max < want) {
        // Only a privileged process may raise the hard limit; try, then settle.
        rlimit raised{want, want};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) return want;
    }
    lim.rlim_cur = std::min(want, lim.rlim_max);
    setrlimit(RLIMIT_NOFILE, &lim);
    getrlimit(RLIMIT_NOFILE, &lim);
    return lim.rlim_cur;
}

int64_t monotonic_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace loadgen
