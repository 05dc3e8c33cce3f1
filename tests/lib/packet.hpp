// Test-side packet tools: build Ethernet frames (VLAN, IPv4, IPv6 with
// extension headers, TCP, UDP, anything else) including deliberately broken
// ones, and decode frames back into fields with independent checksum checks.
//
//   Bytes syn = PacketBuilder()
//                   .vlan(100)
//                   .ipv6("2001:db8::1", "2001:db8::2")
//                   .tcp(40000, 80).flags(tcp_flag::SYN).seq(1000)
//                   .build();
//   DecodedPacket d = decode(syn);
//   EXPECT_TRUE(d.verify_checksums().ok());
//
// Every field is written explicitly in network byte order; nothing here
// relies on kernel header struct layouts.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sluice::test {

using Bytes = std::vector<std::uint8_t>;
using MacAddr = std::array<std::uint8_t, 6>;
using Ipv4Addr = std::array<std::uint8_t, 4>;
using Ipv6Addr = std::array<std::uint8_t, 16>;

// ---- addresses ----------------------------------------------------------

// Parsers throw std::invalid_argument on bad text.
MacAddr mac(std::string_view text);      // "02:00:00:00:00:01"
Ipv4Addr ipv4(std::string_view text);    // "198.18.0.1"
Ipv6Addr ipv6(std::string_view text);    // "2001:db8::1"
Ipv6Addr ipv4_mapped(const Ipv4Addr &a); // ::ffff:a.b.c.d
std::string to_string(const MacAddr &a);
std::string to_string(const Ipv4Addr &a);
std::string to_string(const Ipv6Addr &a);

// ---- constants ------------------------------------------------------------

namespace ethertype {
inline constexpr std::uint16_t IPV4 = 0x0800;
inline constexpr std::uint16_t ARP = 0x0806;
inline constexpr std::uint16_t VLAN_8021Q = 0x8100;
inline constexpr std::uint16_t VLAN_8021AD = 0x88A8;
inline constexpr std::uint16_t IPV6 = 0x86DD;
} // namespace ethertype

namespace ipproto {
inline constexpr std::uint8_t HOPOPTS = 0;
inline constexpr std::uint8_t ICMP = 1;
inline constexpr std::uint8_t TCP = 6;
inline constexpr std::uint8_t UDP = 17;
inline constexpr std::uint8_t ROUTING = 43;
inline constexpr std::uint8_t FRAGMENT = 44;
inline constexpr std::uint8_t GRE = 47;
inline constexpr std::uint8_t ESP = 50;
inline constexpr std::uint8_t AH = 51;
inline constexpr std::uint8_t ICMPV6 = 58;
inline constexpr std::uint8_t NONE = 59;
inline constexpr std::uint8_t DSTOPTS = 60;
} // namespace ipproto

namespace tcp_flag {
inline constexpr std::uint8_t FIN = 0x01;
inline constexpr std::uint8_t SYN = 0x02;
inline constexpr std::uint8_t RST = 0x04;
inline constexpr std::uint8_t PSH = 0x08;
inline constexpr std::uint8_t ACK = 0x10;
inline constexpr std::uint8_t URG = 0x20;
inline constexpr std::uint8_t ECE = 0x40;
inline constexpr std::uint8_t CWR = 0x80;
} // namespace tcp_flag

// ---- what to build ----------------------------------------------------------

struct VlanTag {
	std::uint16_t tpid = ethertype::VLAN_8021Q;
	std::uint16_t tci = 0; // PCP (3 bits) | DEI (1) | VID (12)

	std::uint16_t vid() const { return tci & 0x0fff; }
	std::uint8_t pcp() const { return tci >> 13; }
	bool operator==(const VlanTag &) const = default;
};

struct EthernetSpec {
	MacAddr dst{0x02, 0, 0, 0, 0, 0x02};
	MacAddr src{0x02, 0, 0, 0, 0, 0x01};
	std::vector<VlanTag> vlans;              // outermost first
	std::optional<std::uint16_t> ethertype;  // default: from the L3 header
};

struct Ipv4Spec {
	Ipv4Addr src{198, 18, 0, 1};
	Ipv4Addr dst{198, 18, 0, 2};
	std::uint8_t tos = 0;
	std::uint16_t id = 0;
	bool reserved_flag = false; // the "evil bit"
	bool df = false;
	bool mf = false;
	std::uint16_t frag_offset = 0; // in 8-byte units, 13 bits
	std::uint8_t ttl = 64;
	Bytes options; // up to 40 bytes; zero-padded to a multiple of 4 (EOL)
	// Overrides for crafting malformed headers; default: the correct value.
	std::optional<std::uint8_t> version;
	std::optional<std::uint8_t> ihl;
	std::optional<std::uint16_t> total_length;
	std::optional<std::uint8_t> protocol;
	std::optional<std::uint16_t> checksum;
	bool corrupt_checksum = false;
};

// One IPv6 extension header. `length` is the raw Hdr Ext Len byte, so the
// header is (length + 1) * 8 bytes, or (length + 2) * 4 for AH, or always 8
// for a fragment header. The body after the two leading bytes is `body`
// zero-padded to that size (zeros are Pad1 options, routing type 0 with no
// segments left, or an all-zero AH: all well formed).
struct Ipv6ExtSpec {
	std::uint8_t type = ipproto::HOPOPTS;
	std::uint8_t length = 0;
	std::uint16_t frag_offset = 0; // fragment header: in 8-byte units, 13 bits
	bool more_fragments = false;   // fragment header: the M flag
	std::uint32_t identification = 0;
	Bytes body;
	std::optional<std::uint8_t> next_header; // default: the chain continues

	std::size_t size() const; // bytes on the wire

	static Ipv6ExtSpec hop_by_hop(std::uint8_t length = 0);
	static Ipv6ExtSpec routing(std::uint8_t length = 0);
	static Ipv6ExtSpec destination_options(std::uint8_t length = 0);
	static Ipv6ExtSpec fragment(std::uint16_t offset, bool more, std::uint32_t id = 0);
	static Ipv6ExtSpec auth(std::uint8_t length = 4); // 4: 24 bytes, a 96-bit ICV
};

struct Ipv6Spec {
	Ipv6Addr src{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}; // 2001:db8::1
	Ipv6Addr dst{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}; // 2001:db8::2
	std::uint8_t traffic_class = 0;
	std::uint32_t flow_label = 0;
	std::uint8_t hop_limit = 64;
	std::vector<Ipv6ExtSpec> ext; // in wire order
	std::optional<std::uint8_t> version;
	std::optional<std::uint16_t> payload_length;
	std::optional<std::uint8_t> next_header;
};

struct TcpSpec {
	std::uint16_t sport = 40000;
	std::uint16_t dport = 80;
	std::uint32_t seq = 0;
	std::uint32_t ack = 0;
	std::uint8_t flags = 0;
	std::uint8_t reserved = 0; // the 4 bits between data offset and flags
	std::uint16_t window = 65535;
	std::uint16_t urgent = 0;
	Bytes options; // up to 40 bytes; zero-padded to a multiple of 4 (EOL)
	Bytes payload;
	std::optional<std::uint8_t> data_offset; // in 32-bit words
	std::optional<std::uint16_t> checksum;
	bool corrupt_checksum = false;
};

struct UdpSpec {
	std::uint16_t sport = 40000;
	std::uint16_t dport = 53;
	Bytes payload;
	std::optional<std::uint16_t> length;
	std::optional<std::uint16_t> checksum;
	bool corrupt_checksum = false;
};

// Any other L4 protocol: its number and raw bytes.
struct RawL4Spec {
	std::uint8_t protocol = ipproto::NONE;
	Bytes payload;
};

// Bytes after the Ethernet header of a non-IP frame (ARP, LLDP, ...).
struct RawL3Spec {
	std::uint16_t ethertype = ethertype::ARP;
	Bytes payload;
};

struct PacketSpec {
	EthernetSpec eth;
	std::variant<std::monostate, Ipv4Spec, Ipv6Spec, RawL3Spec> l3;
	std::variant<std::monostate, TcpSpec, UdpSpec, RawL4Spec> l4;
	std::size_t pad_to = 0;                 // append zeros up to this frame length
	std::optional<std::size_t> truncate_to; // cut the finished frame (after checksums)
};

// Serialize a spec. Checksums and lengths are computed over the full,
// untruncated packet; overrides then replace them. Throws
// std::invalid_argument for specs that cannot be encoded (e.g. 41 bytes of
// IPv4 options).
Bytes build(const PacketSpec &spec);

// Fluent front end over PacketSpec. Setters for one layer apply to that
// layer and throw std::logic_error when it was not chosen (e.g. df() before
// ipv4()). Order otherwise does not matter.
class PacketBuilder {
public:
	// Ethernet
	PacketBuilder &src_mac(std::string_view m);
	PacketBuilder &dst_mac(std::string_view m);
	PacketBuilder &vlan(std::uint16_t vid, std::uint16_t tpid = ethertype::VLAN_8021Q,
			    std::uint8_t pcp = 0);
	PacketBuilder &qinq(std::uint16_t outer_vid, std::uint16_t inner_vid); // 802.1ad + 802.1Q
	PacketBuilder &ethertype(std::uint16_t type);
	PacketBuilder &raw_l3(std::uint16_t type, Bytes payload); // a non-IP frame

	// IPv4
	PacketBuilder &ipv4(std::string_view src, std::string_view dst);
	PacketBuilder &df(bool on = true);
	PacketBuilder &mf(bool on = true);
	PacketBuilder &frag_offset(std::uint16_t units_of_8);
	PacketBuilder &ip_id(std::uint16_t id);
	PacketBuilder &tos(std::uint8_t tos);
	PacketBuilder &ip_options(Bytes options);
	PacketBuilder &ihl(std::uint8_t words);
	PacketBuilder &total_length(std::uint16_t bytes);
	PacketBuilder &ip_checksum(std::uint16_t value);
	PacketBuilder &corrupt_ip_checksum();

	// IPv6
	PacketBuilder &ipv6(std::string_view src, std::string_view dst);
	PacketBuilder &ext(Ipv6ExtSpec header);
	PacketBuilder &payload_length(std::uint16_t bytes);
	PacketBuilder &flow_label(std::uint32_t label);
	PacketBuilder &traffic_class(std::uint8_t tc);

	// Either IP family
	PacketBuilder &ttl(std::uint8_t ttl); // IPv4 TTL or IPv6 hop limit
	PacketBuilder &ip_version(std::uint8_t v);
	PacketBuilder &ip_protocol(std::uint8_t proto); // IPv4 protocol / IPv6 next header override

	// TCP
	PacketBuilder &tcp(std::uint16_t sport, std::uint16_t dport);
	PacketBuilder &flags(std::uint8_t f);
	PacketBuilder &seq(std::uint32_t s);
	PacketBuilder &ack_seq(std::uint32_t a);
	PacketBuilder &window(std::uint16_t w);
	PacketBuilder &urgent(std::uint16_t u);
	PacketBuilder &tcp_options(Bytes options);
	PacketBuilder &data_offset(std::uint8_t words);

	// UDP
	PacketBuilder &udp(std::uint16_t sport, std::uint16_t dport);
	PacketBuilder &udp_length(std::uint16_t bytes);

	// TCP or UDP
	PacketBuilder &l4_checksum(std::uint16_t value);
	PacketBuilder &corrupt_l4_checksum();

	// Any other protocol: number and bytes.
	PacketBuilder &l4_raw(std::uint8_t protocol, Bytes bytes = {});

	// Payload of the chosen L4 (TCP, UDP or raw).
	PacketBuilder &payload(Bytes bytes);
	PacketBuilder &payload(std::string_view text);

	// Whole frame
	PacketBuilder &pad_to(std::size_t frame_len);
	PacketBuilder &truncate(std::size_t frame_len);

	PacketSpec &spec() { return spec_; }
	const PacketSpec &spec() const { return spec_; }
	Bytes build() const { return sluice::test::build(spec_); }

private:
	Ipv4Spec &v4(const char *what);
	Ipv6Spec &v6(const char *what);
	TcpSpec &tcp_(const char *what);
	UdpSpec &udp_(const char *what);

	PacketSpec spec_;
};

// ---- what was decoded ---------------------------------------------------------

struct DecodedIpv4 {
	std::uint8_t version = 0, ihl = 0, tos = 0;
	std::uint16_t total_length = 0, id = 0;
	bool reserved_flag = false, df = false, mf = false;
	std::uint16_t frag_offset = 0; // in 8-byte units
	std::uint8_t ttl = 0, protocol = 0;
	std::uint16_t checksum = 0;
	Ipv4Addr src{}, dst{};
	Bytes options;
};

struct DecodedIpv6Ext {
	std::uint8_t type = 0;
	std::uint8_t next_header = 0;
	std::uint8_t length = 0; // raw Hdr Ext Len byte (reserved byte for fragment)
	std::size_t size = 0;    // bytes on the wire
	std::uint16_t frag_offset = 0;
	bool more_fragments = false;
	std::uint32_t identification = 0;
	Bytes body; // everything after the first two bytes
};

struct DecodedIpv6 {
	std::uint8_t version = 0, traffic_class = 0;
	std::uint32_t flow_label = 0;
	std::uint16_t payload_length = 0;
	std::uint8_t next_header = 0, hop_limit = 0;
	Ipv6Addr src{}, dst{};
	std::vector<DecodedIpv6Ext> ext;
};

struct DecodedTcp {
	std::uint16_t sport = 0, dport = 0;
	std::uint32_t seq = 0, ack = 0;
	std::uint8_t data_offset = 0, reserved = 0, flags = 0;
	std::uint16_t window = 0, checksum = 0, urgent = 0;
	Bytes options, payload;
};

struct DecodedUdp {
	std::uint16_t sport = 0, dport = 0, length = 0, checksum = 0;
	Bytes payload;
};

// One checksum: what the packet carries and what it should carry.
struct ChecksumCheck {
	bool checked = false; // false: no such checksum, or UDP/IPv4 "none" (0)
	std::uint16_t found = 0;
	std::uint16_t expected = 0;
	bool ok() const { return !checked || found == expected; }
};

struct ChecksumReport {
	ChecksumCheck ipv4; // IPv4 header checksum
	ChecksumCheck l4;   // TCP or UDP checksum
	std::string error;  // set when the frame is not IP or did not decode cleanly
	bool ok() const { return error.empty() && ipv4.ok() && l4.ok(); }
	std::string describe() const; // "ipv4 header checksum 0x1234, expected 0x4321; ..."
};

struct DecodedPacket {
	Bytes frame;
	MacAddr dst{}, src{};
	std::vector<VlanTag> vlans; // outermost first
	std::uint16_t ethertype = 0; // after the VLAN tags
	std::optional<DecodedIpv4> ipv4;
	std::optional<DecodedIpv6> ipv6;
	std::optional<DecodedTcp> tcp;
	std::optional<DecodedUdp> udp;
	std::uint8_t l4_protocol = 0; // after IPv6 extension headers
	bool non_first_fragment = false;
	std::size_t l3_offset = 0;
	std::size_t l4_offset = 0;
	std::size_t l4_length = 0;  // bytes from l4_offset to the end of the IP payload
	Bytes l4_bytes;             // those bytes (whatever the protocol)
	std::string error;          // first thing that could not be decoded; empty if none

	bool ok() const { return error.empty(); }
	// Recompute the IPv4 header checksum (when its header is complete) and
	// the TCP/UDP checksum (when the packet decoded cleanly and is not a
	// fragment), from the bytes of the frame. Frames that are not IP or did
	// not decode are reported through ChecksumReport::error, so ok() is
	// never true for them. The IPv6 pseudo-header uses the destination in
	// the IPv6 header (routing headers are not followed).
	ChecksumReport verify_checksums() const;
};

// Decode as much of a frame as it holds; never throws for bad input. VLAN
// tags (0x8100, 0x88A8) are unwrapped however many there are. The IP
// payload is delimited by the IP length fields; bytes after it (Ethernet
// padding) are ignored.
DecodedPacket decode(std::span<const std::uint8_t> frame);

// ---- checksum primitives ---------------------------------------------------------

// RFC 1071 one's complement sum of `data` (odd length padded with a zero
// byte) added to `initial`, folded to 16 bits. Not complemented.
std::uint16_t ones_complement_sum(std::span<const std::uint8_t> data, std::uint32_t initial = 0);
// The Internet checksum of `data`: the complement of its one's complement sum.
std::uint16_t internet_checksum(std::span<const std::uint8_t> data);

// Lowercase hex, bytes separated by spaces every 2 bytes, for failure messages.
std::string hex(std::span<const std::uint8_t> bytes);
// Parse hex text, ignoring whitespace; throws std::invalid_argument.
Bytes from_hex(std::string_view text);

} // namespace sluice::test
