// Socket addresses and small system helpers for loadgen.
#pragma once

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace loadgen {

struct SockAddr {
    sockaddr_storage storage{};
    socklen_t len = 0;

    int family() const { return storage.ss_family; }
    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
    std::string to_string() const;  // "198.18.0.1:80" or "[2001:db8::1]:80"
};

// Parses "198.18.0.2:80" or "[2001:db8::2]:80". Numeric addresses only: tests
// must not depend on name resolution.
bool parse_endpoint(std::string_view text, SockAddr& out, std::string& error);

// Parses a source address, "198.18.0.1" or "2001:db8::1" (brackets allowed);
// the port is left 0 so the kernel picks one per connection.
bool parse_host(std::string_view text, SockAddr& out, std::string& error);

// "ECONNREFUSED" rather than a localized sentence: stable keys for JSON.
std::string errno_name(int err);

// Raises RLIMIT_NOFILE to at least `want` if allowed; returns the soft limit
// now in force.
rlim_t raise_fd_limit(rlim_t want);

int64_t monotonic_ns();

}  // namespace loadgen
