// An independent reference for the parsing stage of sluice's XDP data path:
// from the bytes of a frame, what bpf/parse.h must decide. Written from the
// specification (see reference_parser.cpp), not from the BPF code, so that a
// fuzzer comparing the two finds a bug in either.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "sluice/abi.h"

namespace sluice::test {

// The values are the global counters the data path bumps (bpf/parse.h's
// enum parse_result uses the same numbers).
enum class ParseResult : int {
	Ok = 0,
	NotIp = SL_G_NOT_IP,
	Truncated = SL_G_TRUNCATED,
	Malformed = SL_G_MALFORMED,
	HeaderLimit = SL_G_HEADER_LIMIT,
};

// The counter a result bumps; nothing for Ok.
std::optional<sl_global_counter> global_counter(ParseResult r);
const char *to_string(ParseResult r);

inline constexpr int kMaxVlanTags = 2;
inline constexpr int kMaxIpv6ExtHeaders = 8;

// Every field is zero unless result is Ok. When `fragment` is set (a
// non-first fragment) the L4 fields (ports, TCP fields) are zero and
// l4_protocol / l4_offset / l4_length describe what follows the IP header or
// fragment header, which the data path may treat as undefined.
struct Classification {
	ParseResult result = ParseResult::Ok;
	std::uint8_t family = 0;      // 4 or 6
	std::uint8_t l4_protocol = 0; // IPPROTO_*, after IPv6 extension headers
	bool fragment = false;        // non-first fragment: no ports
	std::array<std::uint8_t, 16> saddr{}; // IPv4-mapped (::ffff:a.b.c.d) for IPv4
	std::array<std::uint8_t, 16> daddr{};
	std::uint16_t sport = 0, dport = 0; // host order; TCP and UDP only
	std::uint8_t tcp_flags = 0;         // byte 13 of the TCP header
	std::uint32_t tcp_seq = 0;
	std::uint32_t tcp_payload = 0; // IP payload after the L4 offset, minus data offset * 4
	std::uint32_t l3_offset = 0;
	std::uint32_t l4_offset = 0;
	std::uint32_t l4_length = 0; // bytes from l4_offset to the end of the IP payload

	bool operator==(const Classification &) const = default;
};

Classification classify(std::span<const std::uint8_t> frame);

// One line, every field, for failure messages.
std::string to_string(const Classification &c);

} // namespace sluice::test
