// Reference parser, from the specification of the parsing stage:
//
//  * Ethernet; up to two VLAN tags (0x8100 / 0x88A8) are skipped, a third is
//    HEADER_LIMIT. Any other EtherType than IPv4/IPv6 is NOT_IP. A header
//    that ends beyond the frame is TRUNCATED.
//  * IPv4: version 4, IHL >= 5, total length >= IHL * 4, else MALFORMED; a
//    total length beyond the frame is TRUNCATED (a longer frame is padding).
//    A fragment offset other than 0 is a non-first fragment.
//  * IPv6: version 6, else MALFORMED; 40 + payload length beyond the frame is
//    TRUNCATED. At most 8 extension headers (0, 43, 60, 44, 51) are walked;
//    each needs 8 readable bytes (TRUNCATED); a header past the payload is
//    MALFORMED; a fragment header with offset != 0 stops the walk as a
//    non-first fragment; a 9th extension header is HEADER_LIMIT.
//  * TCP needs 20 bytes in frame and IP payload (TRUNCATED), data offset >= 5
//    and data offset * 4 <= IP payload (MALFORMED). UDP needs 8 (TRUNCATED).
#include "reference_parser.hpp"

#include <cstdio>

namespace sluice::test {

namespace {

constexpr std::uint16_t kEtherIpv4 = 0x0800;
constexpr std::uint16_t kEtherIpv6 = 0x86DD;
constexpr std::uint16_t kTpidQ = 0x8100;
constexpr std::uint16_t kTpidAd = 0x88A8;

constexpr std::uint8_t kHopByHop = 0;
constexpr std::uint8_t kTcp = 6;
constexpr std::uint8_t kUdp = 17;
constexpr std::uint8_t kRouting = 43;
constexpr std::uint8_t kFragment = 44;
constexpr std::uint8_t kAuth = 51;
constexpr std::uint8_t kDestOpts = 60;

// A bounds-checked view of the frame: every read states how many bytes it
// needs, so nothing is read past the end.
class FrameView {
public:
	explicit FrameView(std::span<const std::uint8_t> b) : b_(b) {}
	std::size_t size() const { return b_.size(); }
	// [off, off + n) lies inside the frame; computed without overflow.
	bool holds(std::size_t off, std::size_t n) const { return off <= b_.size() && n <= b_.size() - off; }
	std::uint8_t u8(std::size_t off) const { return b_[off]; }
	std::uint16_t be16(std::size_t off) const { return static_cast<std::uint16_t>(b_[off] * 256u + b_[off + 1]); }
	std::uint32_t be32(std::size_t off) const { return static_cast<std::uint32_t>(be16(off)) * 65536u + be16(off + 2); }

private:
	std::span<const std::uint8_t> b_;
};

bool is_walked_extension(std::uint8_t proto)
{
	switch (proto) {
	case kHopByHop:
	case kRouting:
	case kDestOpts:
	case kFragment:
	case kAuth:
		return true;
	default:
		return false;
	}
}

Classification failed(ParseResult r)
{
	Classification c;
	c.result = r;
	return c;
}

// Where the IP payload lies, filled by the L3 step for the L4 step.
struct IpPayload {
	std::size_t l4_offset = 0;
	std::size_t end = 0; // one past the last payload byte
};

std::optional<ParseResult> parse_ipv4(const FrameView &f, std::size_t l3, Classification &c, IpPayload &p)
{
	if (!f.holds(l3, 20))
		return ParseResult::Truncated;
	std::uint8_t version = f.u8(l3) >> 4;
	std::size_t header_bytes = (f.u8(l3) & 0x0f) * 4u;
	std::size_t total = f.be16(l3 + 2);
	if (version != 4 || header_bytes < 20 || total < header_bytes)
		return ParseResult::Malformed;
	if (!f.holds(l3, total))
		return ParseResult::Truncated;

	c.family = 4;
	c.fragment = (f.be16(l3 + 6) & 0x1fff) != 0;
	c.l4_protocol = f.u8(l3 + 9);
	c.saddr[10] = c.saddr[11] = 0xff;
	c.daddr[10] = c.daddr[11] = 0xff;
	for (int i = 0; i < 4; i++) {
		c.saddr[12 + i] = f.u8(l3 + 12 + i);
		c.daddr[12 + i] = f.u8(l3 + 16 + i);
	}
	p.l4_offset = l3 + header_bytes;
	p.end = l3 + total;
	return std::nullopt;
}

std::size_t extension_size(std::uint8_t type, std::uint8_t len_byte)
{
	if (type == kFragment)
		return 8;
	if (type == kAuth)
		return (len_byte + 2u) * 4u; // RFC 4302: length in 32-bit words, minus 2
	return (len_byte + 1u) * 8u;         // RFC 8200: length in 8-octet units, minus 1
}

std::optional<ParseResult> parse_ipv6(const FrameView &f, std::size_t l3, Classification &c, IpPayload &p)
{
	if (!f.holds(l3, 40))
		return ParseResult::Truncated;
	if ((f.u8(l3) >> 4) != 6)
		return ParseResult::Malformed;
	std::size_t payload = f.be16(l3 + 4);
	if (!f.holds(l3 + 40, payload))
		return ParseResult::Truncated;

	c.family = 6;
	for (int i = 0; i < 16; i++) {
		c.saddr[i] = f.u8(l3 + 8 + i);
		c.daddr[i] = f.u8(l3 + 24 + i);
	}
	p.end = l3 + 40 + payload;

	std::uint8_t next = f.u8(l3 + 6);
	std::size_t at = l3 + 40;
	int walked = 0;
	while (is_walked_extension(next)) {
		if (walked == kMaxIpv6ExtHeaders)
			return ParseResult::HeaderLimit;
		if (!f.holds(at, 8))
			return ParseResult::Truncated;
		std::size_t size = extension_size(next, f.u8(at + 1));
		if (at + size > p.end)
			return ParseResult::Malformed;
		bool non_first_fragment = next == kFragment && (f.be16(at + 2) >> 3) != 0;
		next = f.u8(at);
		at += size;
		walked++;
		if (non_first_fragment) {
			c.fragment = true;
			break;
		}
	}
	c.l4_protocol = next;
	p.l4_offset = at;
	return std::nullopt;
}

std::optional<ParseResult> parse_l4(const FrameView &f, const IpPayload &p, Classification &c)
{
	std::size_t in_payload = p.end - p.l4_offset;
	if (c.l4_protocol == kTcp) {
		if (!f.holds(p.l4_offset, 20) || in_payload < 20)
			return ParseResult::Truncated;
		std::size_t header_bytes = (f.u8(p.l4_offset + 12) >> 4) * 4u;
		if (header_bytes < 20 || header_bytes > in_payload)
			return ParseResult::Malformed;
		c.sport = f.be16(p.l4_offset);
		c.dport = f.be16(p.l4_offset + 2);
		c.tcp_seq = f.be32(p.l4_offset + 4);
		c.tcp_flags = f.u8(p.l4_offset + 13);
		c.tcp_payload = static_cast<std::uint32_t>(in_payload - header_bytes);
	} else if (c.l4_protocol == kUdp) {
		if (!f.holds(p.l4_offset, 8) || in_payload < 8)
			return ParseResult::Truncated;
		c.sport = f.be16(p.l4_offset);
		c.dport = f.be16(p.l4_offset + 2);
	}
	return std::nullopt;
}

} // namespace

Classification classify(std::span<const std::uint8_t> frame)
{
	FrameView f(frame);
	if (!f.holds(0, 14))
		return failed(ParseResult::Truncated);

	std::uint16_t type = f.be16(12);
	std::size_t l3 = 14;
	for (int tags = 0; type == kTpidQ || type == kTpidAd; tags++) {
		if (tags == kMaxVlanTags)
			return failed(ParseResult::HeaderLimit);
		if (!f.holds(l3, 4))
			return failed(ParseResult::Truncated);
		type = f.be16(l3 + 2); // after the 2-byte TCI
		l3 += 4;
	}

	Classification c;
	IpPayload p;
	std::optional<ParseResult> bad;
	if (type == kEtherIpv4)
		bad = parse_ipv4(f, l3, c, p);
	else if (type == kEtherIpv6)
		bad = parse_ipv6(f, l3, c, p);
	else
		return failed(ParseResult::NotIp);
	if (!bad && !c.fragment)
		bad = parse_l4(f, p, c);
	if (bad)
		return failed(*bad);

	c.result = ParseResult::Ok;
	c.l3_offset = static_cast<std::uint32_t>(l3);
	c.l4_offset = static_cast<std::uint32_t>(p.l4_offset);
	c.l4_length = static_cast<std::uint32_t>(p.end - p.l4_offset);
	return c;
}

std::optional<sl_global_counter> global_counter(ParseResult r)
{
	switch (r) {
	case ParseResult::NotIp:
		return SL_G_NOT_IP;
	case ParseResult::Truncated:
		return SL_G_TRUNCATED;
	case ParseResult::Malformed:
		return SL_G_MALFORMED;
	case ParseResult::HeaderLimit:
		return SL_G_HEADER_LIMIT;
	case ParseResult::Ok:
		break;
	}
	return std::nullopt;
}

const char *to_string(ParseResult r)
{
	switch (r) {
	case ParseResult::Ok:
		return "OK";
	case ParseResult::NotIp:
		return "NOT_IP";
	case ParseResult::Truncated:
		return "TRUNCATED";
	case ParseResult::Malformed:
		return "MALFORMED";
	case ParseResult::HeaderLimit:
		return "HEADER_LIMIT";
	}
	return "?";
}

std::string to_string(const Classification &c)
{
	auto addr = [](const std::array<std::uint8_t, 16> &a) {
		std::string s;
		char buf[4];
		for (std::size_t i = 0; i < a.size(); i += 2) {
			std::snprintf(buf, sizeof(buf), "%02x", a[i]);
			s += buf;
			std::snprintf(buf, sizeof(buf), "%02x", a[i + 1]);
			s += buf;
			if (i + 2 < a.size())
				s += ':';
		}
		return s;
	};
	char buf[256];
	std::snprintf(buf, sizeof(buf),
		      "%s family=%u proto=%u fragment=%d sport=%u dport=%u flags=0x%02x seq=%u payload=%u "
		      "l3=%u l4=%u l4_len=%u",
		      to_string(c.result), c.family, c.l4_protocol, c.fragment ? 1 : 0, c.sport, c.dport, c.tcp_flags,
		      c.tcp_seq, c.tcp_payload, c.l3_offset, c.l4_offset, c.l4_length);
	return std::string(buf) + " src=" + addr(c.saddr) + " dst=" + addr(c.daddr);
}

} // namespace sluice::test
