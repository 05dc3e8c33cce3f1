#include "packet.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace sluice::test {

namespace {

void put8(Bytes &b, std::size_t off, std::uint8_t v) { b.at(off) = v; }
void put16(Bytes &b, std::size_t off, std::uint16_t v)
{
	b.at(off) = static_cast<std::uint8_t>(v >> 8);
	b.at(off + 1) = static_cast<std::uint8_t>(v);
}
void put32(Bytes &b, std::size_t off, std::uint32_t v)
{
	put16(b, off, static_cast<std::uint16_t>(v >> 16));
	put16(b, off + 2, static_cast<std::uint16_t>(v));
}
void append(Bytes &to, std::span<const std::uint8_t> from) { to.insert(to.end(), from.begin(), from.end()); }

std::uint16_t get16(std::span<const std::uint8_t> b, std::size_t off)
{
	return static_cast<std::uint16_t>(b[off] << 8 | b[off + 1]);
}
std::uint32_t get32(std::span<const std::uint8_t> b, std::size_t off)
{
	return static_cast<std::uint32_t>(get16(b, off)) << 16 | get16(b, off + 2);
}

// Options are padded with zeros (End of Option List) to whole 32-bit words.
Bytes padded_options(const Bytes &options, const char *what)
{
	if (options.size() > 40)
		throw std::invalid_argument(std::string(what) + " options longer than 40 bytes");
	Bytes out = options;
	out.resize((out.size() + 3) / 4 * 4, 0);
	return out;
}

std::uint8_t l4_protocol_of(const PacketSpec &spec)
{
	if (std::holds_alternative<TcpSpec>(spec.l4))
		return ipproto::TCP;
	if (std::holds_alternative<UdpSpec>(spec.l4))
		return ipproto::UDP;
	if (auto *raw = std::get_if<RawL4Spec>(&spec.l4))
		return raw->protocol;
	return ipproto::NONE;
}

// The L4 bytes with a zero checksum field; `checksum_at` is where the
// checksum goes, or nothing for protocols we do not checksum.
Bytes l4_bytes_of(const PacketSpec &spec, std::optional<std::size_t> &checksum_at)
{
	Bytes out;
	if (auto *tcp = std::get_if<TcpSpec>(&spec.l4)) {
		Bytes opts = padded_options(tcp->options, "TCP");
		out.assign(20, 0);
		put16(out, 0, tcp->sport);
		put16(out, 2, tcp->dport);
		put32(out, 4, tcp->seq);
		put32(out, 8, tcp->ack);
		std::uint8_t doff = tcp->data_offset.value_or(static_cast<std::uint8_t>((20 + opts.size()) / 4));
		put8(out, 12, static_cast<std::uint8_t>(doff << 4 | (tcp->reserved & 0x0f)));
		put8(out, 13, tcp->flags);
		put16(out, 14, tcp->window);
		put16(out, 18, tcp->urgent);
		append(out, opts);
		append(out, tcp->payload);
		checksum_at = 16;
	} else if (auto *udp = std::get_if<UdpSpec>(&spec.l4)) {
		out.assign(8, 0);
		put16(out, 0, udp->sport);
		put16(out, 2, udp->dport);
		put16(out, 4, udp->length.value_or(static_cast<std::uint16_t>(8 + udp->payload.size())));
		append(out, udp->payload);
		checksum_at = 6;
	} else if (auto *raw = std::get_if<RawL4Spec>(&spec.l4)) {
		out = raw->payload;
	}
	return out;
}

// Fill in the TCP/UDP checksum given the pseudo-header's one's complement sum.
void finish_l4_checksum(const PacketSpec &spec, Bytes &l4, std::size_t checksum_at, std::uint32_t pseudo_sum)
{
	std::uint16_t sum = static_cast<std::uint16_t>(~ones_complement_sum(l4, pseudo_sum));
	std::optional<std::uint16_t> override_value;
	bool corrupt = false;
	if (auto *tcp = std::get_if<TcpSpec>(&spec.l4)) {
		override_value = tcp->checksum;
		corrupt = tcp->corrupt_checksum;
	} else if (auto *udp = std::get_if<UdpSpec>(&spec.l4)) {
		override_value = udp->checksum;
		corrupt = udp->corrupt_checksum;
		if (sum == 0)
			sum = 0xffff; // RFC 768: a computed zero is sent as all ones
	}
	if (corrupt)
		sum ^= 0x0101;
	put16(l4, checksum_at, override_value.value_or(sum));
}

std::uint32_t sum_of_words(std::span<const std::uint8_t> bytes)
{
	std::uint32_t s = 0;
	for (std::size_t i = 0; i + 1 < bytes.size(); i += 2)
		s += get16(bytes, i);
	return s;
}

Bytes build_ipv4(const PacketSpec &spec, const Ipv4Spec &ip)
{
	std::optional<std::size_t> checksum_at;
	Bytes l4 = l4_bytes_of(spec, checksum_at);
	std::uint8_t proto = static_cast<std::uint8_t>(l4_protocol_of(spec));
	if (checksum_at) {
		std::uint32_t pseudo = sum_of_words(ip.src) + sum_of_words(ip.dst) + proto +
				       static_cast<std::uint32_t>(l4.size());
		finish_l4_checksum(spec, l4, *checksum_at, pseudo);
	}

	Bytes opts = padded_options(ip.options, "IPv4");
	std::size_t hdr_len = 20 + opts.size();
	Bytes out(20, 0);
	std::uint8_t ihl = ip.ihl.value_or(static_cast<std::uint8_t>(hdr_len / 4));
	put8(out, 0, static_cast<std::uint8_t>(ip.version.value_or(4) << 4 | (ihl & 0x0f)));
	put8(out, 1, ip.tos);
	std::size_t total = hdr_len + l4.size();
	if (!ip.total_length && total > 0xffff)
		throw std::invalid_argument("IPv4 packet longer than 65535 bytes");
	put16(out, 2, ip.total_length.value_or(static_cast<std::uint16_t>(total)));
	put16(out, 4, ip.id);
	if (ip.frag_offset > 0x1fff)
		throw std::invalid_argument("IPv4 fragment offset does not fit 13 bits");
	std::uint16_t frag = static_cast<std::uint16_t>((ip.reserved_flag ? 0x8000 : 0) | (ip.df ? 0x4000 : 0) |
							(ip.mf ? 0x2000 : 0) | ip.frag_offset);
	put16(out, 6, frag);
	put8(out, 8, ip.ttl);
	put8(out, 9, ip.protocol.value_or(proto));
	std::copy(ip.src.begin(), ip.src.end(), out.begin() + 12);
	std::copy(ip.dst.begin(), ip.dst.end(), out.begin() + 16);
	append(out, opts);
	std::uint16_t check = internet_checksum(out);
	if (ip.corrupt_checksum)
		check ^= 0x0101;
	put16(out, 10, ip.checksum.value_or(check));
	append(out, l4);
	return out;
}

Bytes build_ipv6(const PacketSpec &spec, const Ipv6Spec &ip)
{
	std::optional<std::size_t> checksum_at;
	Bytes l4 = l4_bytes_of(spec, checksum_at);
	std::uint8_t proto = static_cast<std::uint8_t>(l4_protocol_of(spec));
	if (checksum_at) {
		std::uint32_t len = static_cast<std::uint32_t>(l4.size());
		std::uint32_t pseudo = sum_of_words(ip.src) + sum_of_words(ip.dst) + (len >> 16) + (len & 0xffff) + proto;
		finish_l4_checksum(spec, l4, *checksum_at, pseudo);
	}

	Bytes exts;
	for (std::size_t i = 0; i < ip.ext.size(); i++) {
		const Ipv6ExtSpec &e = ip.ext[i];
		std::uint8_t next = i + 1 < ip.ext.size() ? ip.ext[i + 1].type : proto;
		Bytes h(e.size(), 0);
		put8(h, 0, e.next_header.value_or(next));
		put8(h, 1, e.length);
		if (e.type == ipproto::FRAGMENT) {
			if (e.frag_offset > 0x1fff)
				throw std::invalid_argument("IPv6 fragment offset does not fit 13 bits");
			put16(h, 2, static_cast<std::uint16_t>(e.frag_offset << 3 | (e.more_fragments ? 1 : 0)));
			put32(h, 4, e.identification);
		} else {
			if (e.body.size() > h.size() - 2)
				throw std::invalid_argument("IPv6 extension header body longer than its length");
			std::copy(e.body.begin(), e.body.end(), h.begin() + 2);
		}
		append(exts, h);
	}

	Bytes out(40, 0);
	std::uint32_t first = static_cast<std::uint32_t>(ip.version.value_or(6)) << 28 |
			      static_cast<std::uint32_t>(ip.traffic_class) << 20 | (ip.flow_label & 0xfffff);
	put32(out, 0, first);
	std::size_t payload = exts.size() + l4.size();
	if (!ip.payload_length && payload > 0xffff)
		throw std::invalid_argument("IPv6 payload longer than 65535 bytes");
	put16(out, 4, ip.payload_length.value_or(static_cast<std::uint16_t>(payload)));
	put8(out, 6, ip.next_header.value_or(ip.ext.empty() ? proto : ip.ext.front().type));
	put8(out, 7, ip.hop_limit);
	std::copy(ip.src.begin(), ip.src.end(), out.begin() + 8);
	std::copy(ip.dst.begin(), ip.dst.end(), out.begin() + 24);
	append(out, exts);
	append(out, l4);
	return out;
}

int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

} // namespace

// ---- addresses ----------------------------------------------------------------

MacAddr mac(std::string_view text)
{
	MacAddr out{};
	std::size_t pos = 0;
	for (std::size_t i = 0; i < out.size(); i++) {
		if (i > 0) {
			if (pos >= text.size() || text[pos] != ':')
				throw std::invalid_argument("bad MAC address: " + std::string(text));
			pos++;
		}
		if (pos + 2 > text.size() || hex_digit(text[pos]) < 0 || hex_digit(text[pos + 1]) < 0)
			throw std::invalid_argument("bad MAC address: " + std::string(text));
		out[i] = static_cast<std::uint8_t>(hex_digit(text[pos]) << 4 | hex_digit(text[pos + 1]));
		pos += 2;
	}
	if (pos != text.size())
		throw std::invalid_argument("bad MAC address: " + std::string(text));
	return out;
}

Ipv4Addr ipv4(std::string_view text)
{
	Ipv4Addr out{};
	if (inet_pton(AF_INET, std::string(text).c_str(), out.data()) != 1)
		throw std::invalid_argument("bad IPv4 address: " + std::string(text));
	return out;
}

Ipv6Addr ipv6(std::string_view text)
{
	Ipv6Addr out{};
	if (inet_pton(AF_INET6, std::string(text).c_str(), out.data()) != 1)
		throw std::invalid_argument("bad IPv6 address: " + std::string(text));
	return out;
}

Ipv6Addr ipv4_mapped(const Ipv4Addr &a)
{
	Ipv6Addr out{};
	out[10] = 0xff;
	out[11] = 0xff;
	std::copy(a.begin(), a.end(), out.begin() + 12);
	return out;
}

std::string to_string(const MacAddr &a)
{
	char buf[18];
	std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3], a[4], a[5]);
	return buf;
}

std::string to_string(const Ipv4Addr &a)
{
	char buf[INET_ADDRSTRLEN];
	return inet_ntop(AF_INET, a.data(), buf, sizeof(buf));
}

std::string to_string(const Ipv6Addr &a)
{
	char buf[INET6_ADDRSTRLEN];
	return inet_ntop(AF_INET6, a.data(), buf, sizeof(buf));
}

// ---- checksums ------------------------------------------------------------------

std::uint16_t ones_complement_sum(std::span<const std::uint8_t> data, std::uint32_t initial)
{
	std::uint64_t sum = initial;
	std::size_t i = 0;
	for (; i + 1 < data.size(); i += 2)
		sum += static_cast<std::uint32_t>(data[i]) << 8 | data[i + 1];
	if (i < data.size())
		sum += static_cast<std::uint32_t>(data[i]) << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return static_cast<std::uint16_t>(sum);
}

std::uint16_t internet_checksum(std::span<const std::uint8_t> data)
{
	return static_cast<std::uint16_t>(~ones_complement_sum(data));
}

std::string hex(std::span<const std::uint8_t> bytes)
{
	std::string out;
	char buf[3];
	for (std::size_t i = 0; i < bytes.size(); i++) {
		if (i > 0 && i % 2 == 0)
			out += ' ';
		std::snprintf(buf, sizeof(buf), "%02x", bytes[i]);
		out += buf;
	}
	return out;
}

Bytes from_hex(std::string_view text)
{
	Bytes out;
	int high = -1;
	for (char c : text) {
		if (c == ' ' || c == '\n' || c == '\t' || c == '\r')
			continue;
		int d = hex_digit(c);
		if (d < 0)
			throw std::invalid_argument(std::string("bad hex digit '") + c + "'");
		if (high < 0) {
			high = d;
		} else {
			out.push_back(static_cast<std::uint8_t>(high << 4 | d));
			high = -1;
		}
	}
	if (high >= 0)
		throw std::invalid_argument("odd number of hex digits");
	return out;
}

// ---- building ----------------------------------------------------------------------

std::size_t Ipv6ExtSpec::size() const
{
	if (type == ipproto::FRAGMENT)
		return 8;
	if (type == ipproto::AH)
		return (static_cast<std::size_t>(length) + 2) * 4;
	return (static_cast<std::size_t>(length) + 1) * 8;
}

namespace {
Ipv6ExtSpec extension(std::uint8_t type, std::uint8_t length)
{
	Ipv6ExtSpec e;
	e.type = type;
	e.length = length;
	return e;
}
} // namespace

Ipv6ExtSpec Ipv6ExtSpec::hop_by_hop(std::uint8_t length) { return extension(ipproto::HOPOPTS, length); }
Ipv6ExtSpec Ipv6ExtSpec::routing(std::uint8_t length) { return extension(ipproto::ROUTING, length); }
Ipv6ExtSpec Ipv6ExtSpec::destination_options(std::uint8_t length) { return extension(ipproto::DSTOPTS, length); }
Ipv6ExtSpec Ipv6ExtSpec::auth(std::uint8_t length) { return extension(ipproto::AH, length); }
Ipv6ExtSpec Ipv6ExtSpec::fragment(std::uint16_t offset, bool more, std::uint32_t id)
{
	Ipv6ExtSpec e = extension(ipproto::FRAGMENT, 0);
	e.frag_offset = offset;
	e.more_fragments = more;
	e.identification = id;
	return e;
}

Bytes build(const PacketSpec &spec)
{
	Bytes l3;
	std::uint16_t type;
	if (auto *v4 = std::get_if<Ipv4Spec>(&spec.l3)) {
		l3 = build_ipv4(spec, *v4);
		type = ethertype::IPV4;
	} else if (auto *v6 = std::get_if<Ipv6Spec>(&spec.l3)) {
		l3 = build_ipv6(spec, *v6);
		type = ethertype::IPV6;
	} else if (auto *raw = std::get_if<RawL3Spec>(&spec.l3)) {
		if (!std::holds_alternative<std::monostate>(spec.l4))
			throw std::invalid_argument("an L4 header needs ipv4() or ipv6(), not raw_l3()");
		l3 = raw->payload;
		type = raw->ethertype;
	} else {
		throw std::invalid_argument("no L3: choose ipv4(), ipv6() or raw_l3()");
	}

	Bytes frame(12, 0);
	std::copy(spec.eth.dst.begin(), spec.eth.dst.end(), frame.begin());
	std::copy(spec.eth.src.begin(), spec.eth.src.end(), frame.begin() + 6);
	for (const VlanTag &tag : spec.eth.vlans) {
		std::size_t at = frame.size();
		frame.resize(at + 4);
		put16(frame, at, tag.tpid);
		put16(frame, at + 2, tag.tci);
	}
	std::size_t at = frame.size();
	frame.resize(at + 2);
	put16(frame, at, spec.eth.ethertype.value_or(type));
	append(frame, l3);

	if (frame.size() < spec.pad_to)
		frame.resize(spec.pad_to, 0);
	if (spec.truncate_to && *spec.truncate_to < frame.size())
		frame.resize(*spec.truncate_to);
	return frame;
}

// ---- fluent builder ----------------------------------------------------------------

Ipv4Spec &PacketBuilder::v4(const char *what)
{
	if (auto *p = std::get_if<Ipv4Spec>(&spec_.l3))
		return *p;
	throw std::logic_error(std::string(what) + "() needs ipv4() first");
}
Ipv6Spec &PacketBuilder::v6(const char *what)
{
	if (auto *p = std::get_if<Ipv6Spec>(&spec_.l3))
		return *p;
	throw std::logic_error(std::string(what) + "() needs ipv6() first");
}
TcpSpec &PacketBuilder::tcp_(const char *what)
{
	if (auto *p = std::get_if<TcpSpec>(&spec_.l4))
		return *p;
	throw std::logic_error(std::string(what) + "() needs tcp() first");
}
UdpSpec &PacketBuilder::udp_(const char *what)
{
	if (auto *p = std::get_if<UdpSpec>(&spec_.l4))
		return *p;
	throw std::logic_error(std::string(what) + "() needs udp() first");
}

PacketBuilder &PacketBuilder::src_mac(std::string_view m)
{
	spec_.eth.src = mac(m);
	return *this;
}
PacketBuilder &PacketBuilder::dst_mac(std::string_view m)
{
	spec_.eth.dst = mac(m);
	return *this;
}
PacketBuilder &PacketBuilder::vlan(std::uint16_t vid, std::uint16_t tpid, std::uint8_t pcp)
{
	if (vid > 0x0fff || pcp > 7)
		throw std::invalid_argument("VLAN id must fit 12 bits, PCP 3 bits");
	spec_.eth.vlans.push_back({tpid, static_cast<std::uint16_t>(pcp << 13 | vid)});
	return *this;
}
PacketBuilder &PacketBuilder::qinq(std::uint16_t outer_vid, std::uint16_t inner_vid)
{
	vlan(outer_vid, ethertype::VLAN_8021AD);
	return vlan(inner_vid, ethertype::VLAN_8021Q);
}
PacketBuilder &PacketBuilder::ethertype(std::uint16_t type)
{
	spec_.eth.ethertype = type;
	return *this;
}
PacketBuilder &PacketBuilder::raw_l3(std::uint16_t type, Bytes payload)
{
	spec_.l3 = RawL3Spec{type, std::move(payload)};
	return *this;
}

PacketBuilder &PacketBuilder::ipv4(std::string_view src, std::string_view dst)
{
	Ipv4Spec ip;
	ip.src = sluice::test::ipv4(src);
	ip.dst = sluice::test::ipv4(dst);
	spec_.l3 = ip;
	return *this;
}
PacketBuilder &PacketBuilder::df(bool on)
{
	v4("df").df = on;
	return *this;
}
PacketBuilder &PacketBuilder::mf(bool on)
{
	v4("mf").mf = on;
	return *this;
}
PacketBuilder &PacketBuilder::frag_offset(std::uint16_t units_of_8)
{
	v4("frag_offset").frag_offset = units_of_8;
	return *this;
}
PacketBuilder &PacketBuilder::ip_id(std::uint16_t id)
{
	v4("ip_id").id = id;
	return *this;
}
PacketBuilder &PacketBuilder::tos(std::uint8_t tos)
{
	v4("tos").tos = tos;
	return *this;
}
PacketBuilder &PacketBuilder::ip_options(Bytes options)
{
	v4("ip_options").options = std::move(options);
	return *this;
}
PacketBuilder &PacketBuilder::ihl(std::uint8_t words)
{
	v4("ihl").ihl = words;
	return *this;
}
PacketBuilder &PacketBuilder::total_length(std::uint16_t bytes)
{
	v4("total_length").total_length = bytes;
	return *this;
}
PacketBuilder &PacketBuilder::ip_checksum(std::uint16_t value)
{
	v4("ip_checksum").checksum = value;
	return *this;
}
PacketBuilder &PacketBuilder::corrupt_ip_checksum()
{
	v4("corrupt_ip_checksum").corrupt_checksum = true;
	return *this;
}

PacketBuilder &PacketBuilder::ipv6(std::string_view src, std::string_view dst)
{
	Ipv6Spec ip;
	ip.src = sluice::test::ipv6(src);
	ip.dst = sluice::test::ipv6(dst);
	spec_.l3 = ip;
	return *this;
}
PacketBuilder &PacketBuilder::ext(Ipv6ExtSpec header)
{
	v6("ext").ext.push_back(std::move(header));
	return *this;
}
PacketBuilder &PacketBuilder::payload_length(std::uint16_t bytes)
{
	v6("payload_length").payload_length = bytes;
	return *this;
}
PacketBuilder &PacketBuilder::flow_label(std::uint32_t label)
{
	v6("flow_label").flow_label = label;
	return *this;
}
PacketBuilder &PacketBuilder::traffic_class(std::uint8_t tc)
{
	v6("traffic_class").traffic_class = tc;
	return *this;
}

PacketBuilder &PacketBuilder::ttl(std::uint8_t ttl)
{
	if (auto *p = std::get_if<Ipv6Spec>(&spec_.l3))
		p->hop_limit = ttl;
	else
		v4("ttl").ttl = ttl;
	return *this;
}
PacketBuilder &PacketBuilder::ip_version(std::uint8_t v)
{
	if (auto *p = std::get_if<Ipv6Spec>(&spec_.l3))
		p->version = v;
	else
		v4("ip_version").version = v;
	return *this;
}
PacketBuilder &PacketBuilder::ip_protocol(std::uint8_t proto)
{
	if (auto *p = std::get_if<Ipv6Spec>(&spec_.l3))
		p->next_header = proto;
	else
		v4("ip_protocol").protocol = proto;
	return *this;
}

PacketBuilder &PacketBuilder::tcp(std::uint16_t sport, std::uint16_t dport)
{
	TcpSpec t;
	t.sport = sport;
	t.dport = dport;
	spec_.l4 = t;
	return *this;
}
PacketBuilder &PacketBuilder::flags(std::uint8_t f)
{
	tcp_("flags").flags = f;
	return *this;
}
PacketBuilder &PacketBuilder::seq(std::uint32_t s)
{
	tcp_("seq").seq = s;
	return *this;
}
PacketBuilder &PacketBuilder::ack_seq(std::uint32_t a)
{
	tcp_("ack_seq").ack = a;
	return *this;
}
PacketBuilder &PacketBuilder::window(std::uint16_t w)
{
	tcp_("window").window = w;
	return *this;
}
PacketBuilder &PacketBuilder::urgent(std::uint16_t u)
{
	tcp_("urgent").urgent = u;
	return *this;
}
PacketBuilder &PacketBuilder::tcp_options(Bytes options)
{
	tcp_("tcp_options").options = std::move(options);
	return *this;
}
PacketBuilder &PacketBuilder::data_offset(std::uint8_t words)
{
	tcp_("data_offset").data_offset = words;
	return *this;
}

PacketBuilder &PacketBuilder::udp(std::uint16_t sport, std::uint16_t dport)
{
	UdpSpec u;
	u.sport = sport;
	u.dport = dport;
	spec_.l4 = u;
	return *this;
}
PacketBuilder &PacketBuilder::udp_length(std::uint16_t bytes)
{
	udp_("udp_length").length = bytes;
	return *this;
}

PacketBuilder &PacketBuilder::l4_checksum(std::uint16_t value)
{
	if (auto *u = std::get_if<UdpSpec>(&spec_.l4))
		u->checksum = value;
	else
		tcp_("l4_checksum").checksum = value;
	return *this;
}
PacketBuilder &PacketBuilder::corrupt_l4_checksum()
{
	if (auto *u = std::get_if<UdpSpec>(&spec_.l4))
		u->corrupt_checksum = true;
	else
		tcp_("corrupt_l4_checksum").corrupt_checksum = true;
	return *this;
}

PacketBuilder &PacketBuilder::l4_raw(std::uint8_t protocol, Bytes bytes)
{
	spec_.l4 = RawL4Spec{protocol, std::move(bytes)};
	return *this;
}

PacketBuilder &PacketBuilder::payload(Bytes bytes)
{
	if (auto *t = std::get_if<TcpSpec>(&spec_.l4))
		t->payload = std::move(bytes);
	else if (auto *u = std::get_if<UdpSpec>(&spec_.l4))
		u->payload = std::move(bytes);
	else if (auto *r = std::get_if<RawL4Spec>(&spec_.l4))
		r->payload = std::move(bytes);
	else
		throw std::logic_error("payload() needs tcp(), udp() or l4_raw() first");
	return *this;
}
PacketBuilder &PacketBuilder::payload(std::string_view text)
{
	return payload(Bytes(text.begin(), text.end()));
}

PacketBuilder &PacketBuilder::pad_to(std::size_t frame_len)
{
	spec_.pad_to = frame_len;
	return *this;
}
PacketBuilder &PacketBuilder::truncate(std::size_t frame_len)
{
	spec_.truncate_to = frame_len;
	return *this;
}

// ---- decoding ----------------------------------------------------------------------

namespace {

bool is_vlan_tpid(std::uint16_t t) { return t == ethertype::VLAN_8021Q || t == ethertype::VLAN_8021AD; }

bool is_ipv6_ext(std::uint8_t t)
{
	return t == ipproto::HOPOPTS || t == ipproto::ROUTING || t == ipproto::DSTOPTS || t == ipproto::FRAGMENT ||
	       t == ipproto::AH;
}

void fail(DecodedPacket &d, const std::string &why)
{
	if (d.error.empty())
		d.error = why;
}

// Decodes the IPv4 header; returns the end of the IP payload within the frame.
std::size_t decode_ipv4(DecodedPacket &d, std::span<const std::uint8_t> f, std::size_t off)
{
	if (f.size() < off + 20) {
		fail(d, "IPv4 header truncated");
		return off;
	}
	DecodedIpv4 ip;
	ip.version = f[off] >> 4;
	ip.ihl = f[off] & 0x0f;
	ip.tos = f[off + 1];
	ip.total_length = get16(f, off + 2);
	ip.id = get16(f, off + 4);
	std::uint16_t frag = get16(f, off + 6);
	ip.reserved_flag = frag & 0x8000;
	ip.df = frag & 0x4000;
	ip.mf = frag & 0x2000;
	ip.frag_offset = frag & 0x1fff;
	ip.ttl = f[off + 8];
	ip.protocol = f[off + 9];
	ip.checksum = get16(f, off + 10);
	std::copy_n(f.begin() + off + 12, 4, ip.src.begin());
	std::copy_n(f.begin() + off + 16, 4, ip.dst.begin());

	std::size_t hdr_len = ip.ihl * 4u;
	if (ip.version != 4)
		fail(d, "IPv4 version field is " + std::to_string(ip.version));
	if (ip.ihl < 5) {
		fail(d, "IPv4 IHL " + std::to_string(ip.ihl) + " < 5");
		hdr_len = 20;
	}
	if (f.size() < off + hdr_len) {
		fail(d, "IPv4 options truncated");
		hdr_len = f.size() - off;
	}
	ip.options.assign(f.begin() + off + 20, f.begin() + off + hdr_len);
	std::size_t end = off + ip.total_length;
	if (ip.total_length < hdr_len) {
		fail(d, "IPv4 total length " + std::to_string(ip.total_length) + " < header length");
		end = off + hdr_len;
	}
	if (end > f.size()) {
		fail(d, "IPv4 total length " + std::to_string(ip.total_length) + " runs past the frame");
		end = f.size();
	}
	d.l4_protocol = ip.protocol;
	d.l4_offset = off + hdr_len;
	d.non_first_fragment = ip.frag_offset != 0;
	d.ipv4 = std::move(ip);
	return end;
}

std::size_t decode_ipv6(DecodedPacket &d, std::span<const std::uint8_t> f, std::size_t off)
{
	if (f.size() < off + 40) {
		fail(d, "IPv6 header truncated");
		return off;
	}
	DecodedIpv6 ip;
	std::uint32_t first = get32(f, off);
	ip.version = static_cast<std::uint8_t>(first >> 28);
	ip.traffic_class = static_cast<std::uint8_t>(first >> 20);
	ip.flow_label = first & 0xfffff;
	ip.payload_length = get16(f, off + 4);
	ip.next_header = f[off + 6];
	ip.hop_limit = f[off + 7];
	std::copy_n(f.begin() + off + 8, 16, ip.src.begin());
	std::copy_n(f.begin() + off + 24, 16, ip.dst.begin());
	if (ip.version != 6)
		fail(d, "IPv6 version field is " + std::to_string(ip.version));

	std::size_t end = off + 40 + ip.payload_length;
	if (end > f.size()) {
		fail(d, "IPv6 payload length " + std::to_string(ip.payload_length) + " runs past the frame");
		end = f.size();
	}
	std::size_t cur = off + 40;
	std::uint8_t next = ip.next_header;
	while (is_ipv6_ext(next)) {
		if (cur + 8 > end) {
			fail(d, "IPv6 extension header " + std::to_string(next) + " truncated");
			break;
		}
		DecodedIpv6Ext e;
		e.type = next;
		e.next_header = f[cur];
		e.length = f[cur + 1];
		if (next == ipproto::FRAGMENT) {
			e.size = 8;
			std::uint16_t fo = get16(f, cur + 2);
			e.frag_offset = fo >> 3;
			e.more_fragments = fo & 1;
			e.identification = get32(f, cur + 4);
		} else if (next == ipproto::AH) {
			e.size = (e.length + 2u) * 4;
		} else {
			e.size = (e.length + 1u) * 8;
		}
		if (cur + e.size > end) {
			fail(d, "IPv6 extension header " + std::to_string(next) + " runs past the payload");
			break;
		}
		e.body.assign(f.begin() + cur + 2, f.begin() + cur + e.size);
		cur += e.size;
		next = e.next_header;
		bool non_first = e.type == ipproto::FRAGMENT && e.frag_offset != 0;
		ip.ext.push_back(std::move(e));
		if (non_first) {
			d.non_first_fragment = true;
			break;
		}
	}
	d.l4_protocol = next;
	d.l4_offset = cur;
	d.ipv6 = std::move(ip);
	return end;
}

void decode_l4(DecodedPacket &d, std::span<const std::uint8_t> f, std::size_t end)
{
	if (d.l4_offset > end)
		d.l4_offset = end;
	d.l4_length = end - d.l4_offset;
	d.l4_bytes.assign(f.begin() + d.l4_offset, f.begin() + end);
	if (d.non_first_fragment)
		return;
	std::span<const std::uint8_t> l4 = d.l4_bytes;
	if (d.l4_protocol == ipproto::TCP) {
		if (l4.size() < 20) {
			fail(d, "TCP header truncated");
			return;
		}
		DecodedTcp t;
		t.sport = get16(l4, 0);
		t.dport = get16(l4, 2);
		t.seq = get32(l4, 4);
		t.ack = get32(l4, 8);
		t.data_offset = l4[12] >> 4;
		t.reserved = l4[12] & 0x0f;
		t.flags = l4[13];
		t.window = get16(l4, 14);
		t.checksum = get16(l4, 16);
		t.urgent = get16(l4, 18);
		std::size_t hdr = t.data_offset * 4u;
		if (t.data_offset < 5) {
			fail(d, "TCP data offset " + std::to_string(t.data_offset) + " < 5");
			hdr = 20;
		}
		if (hdr > l4.size()) {
			fail(d, "TCP options run past the IP payload");
			hdr = l4.size();
		}
		t.options.assign(l4.begin() + 20, l4.begin() + hdr);
		t.payload.assign(l4.begin() + hdr, l4.end());
		d.tcp = std::move(t);
	} else if (d.l4_protocol == ipproto::UDP) {
		if (l4.size() < 8) {
			fail(d, "UDP header truncated");
			return;
		}
		DecodedUdp u;
		u.sport = get16(l4, 0);
		u.dport = get16(l4, 2);
		u.length = get16(l4, 4);
		u.checksum = get16(l4, 6);
		u.payload.assign(l4.begin() + 8, l4.end());
		d.udp = std::move(u);
	}
}

} // namespace

DecodedPacket decode(std::span<const std::uint8_t> frame)
{
	DecodedPacket d;
	d.frame.assign(frame.begin(), frame.end());
	std::span<const std::uint8_t> f = d.frame;
	if (f.size() < 14) {
		fail(d, "Ethernet header truncated");
		return d;
	}
	std::copy_n(f.begin(), 6, d.dst.begin());
	std::copy_n(f.begin() + 6, 6, d.src.begin());
	std::uint16_t type = get16(f, 12);
	std::size_t off = 14;
	while (is_vlan_tpid(type)) {
		if (f.size() < off + 4) {
			fail(d, "VLAN tag truncated");
			return d;
		}
		d.vlans.push_back({type, get16(f, off)});
		type = get16(f, off + 2);
		off += 4;
	}
	d.ethertype = type;
	d.l3_offset = off;

	std::size_t end;
	if (type == ethertype::IPV4)
		end = decode_ipv4(d, f, off);
	else if (type == ethertype::IPV6)
		end = decode_ipv6(d, f, off);
	else
		return d;
	if (!d.ipv4 && !d.ipv6)
		return d;
	decode_l4(d, f, end);
	return d;
}

// ---- checksum verification -----------------------------------------------------

std::string ChecksumReport::describe() const
{
	std::string out = error;
	auto one = [&out](const char *name, const ChecksumCheck &c) {
		if (c.ok())
			return;
		char buf[96];
		std::snprintf(buf, sizeof(buf), "%s checksum 0x%04x, expected 0x%04x", name, c.found, c.expected);
		if (!out.empty())
			out += "; ";
		out += buf;
	};
	one("IPv4 header", ipv4);
	one("TCP/UDP", l4);
	return out.empty() ? "checksums ok" : out;
}

ChecksumReport DecodedPacket::verify_checksums() const
{
	ChecksumReport r;
	if (ipv4) {
		std::size_t hdr_len = ipv4->ihl * 4u;
		if (ipv4->ihl < 5 || l3_offset + hdr_len > frame.size()) {
			r.error = "IPv4 header incomplete: cannot verify its checksum";
			return r;
		}
		Bytes hdr(frame.begin() + l3_offset, frame.begin() + l3_offset + hdr_len);
		hdr[10] = hdr[11] = 0;
		r.ipv4 = {true, ipv4->checksum, internet_checksum(hdr)};
	}
	if (!ipv4 && !ipv6) {
		r.error = error.empty() ? "not an IP packet: no checksum to verify" : error;
		return r;
	}
	if (!error.empty()) {
		r.error = "packet did not decode: " + error;
		return r;
	}
	if (!tcp && !udp)
		return r;

	bool fragmented = (ipv4 && ipv4->mf) ||
			  (ipv6 && std::any_of(ipv6->ext.begin(), ipv6->ext.end(),
					       [](const DecodedIpv6Ext &e) { return e.type == ipproto::FRAGMENT; }));
	if (fragmented)
		return r; // the checksum covers the reassembled datagram, not this fragment

	// RFC 793 / RFC 768 pseudo-header (IPv4) or RFC 8200 section 8.1 (IPv6),
	// then the segment with its checksum field zeroed.
	Bytes sum_over;
	std::uint8_t proto = tcp ? ipproto::TCP : ipproto::UDP;
	std::uint32_t len = static_cast<std::uint32_t>(l4_bytes.size());
	if (ipv4) {
		append(sum_over, ipv4->src);
		append(sum_over, ipv4->dst);
		sum_over.insert(sum_over.end(), {0, proto, static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len)});
	} else {
		append(sum_over, ipv6->src);
		append(sum_over, ipv6->dst);
		sum_over.insert(sum_over.end(), {static_cast<std::uint8_t>(len >> 24), static_cast<std::uint8_t>(len >> 16),
						 static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len), 0, 0, 0,
						 proto});
	}
	std::size_t checksum_at = sum_over.size() + (tcp ? 16 : 6);
	append(sum_over, l4_bytes);
	std::uint16_t found = tcp ? tcp->checksum : udp->checksum;
	sum_over[checksum_at] = sum_over[checksum_at + 1] = 0;
	std::uint16_t expected = internet_checksum(sum_over);
	if (udp) {
		if (expected == 0)
			expected = 0xffff; // RFC 768: zero is sent as all ones
		if (ipv4 && found == 0)
			return r; // RFC 768: no checksum was computed (not allowed over IPv6)
	}
	r.l4 = {true, found, expected};
	return r;
}

} // namespace sluice::test
