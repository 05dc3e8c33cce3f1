// Tests of the test-side packet builder and decoder (tests/lib/packet.hpp).
// Checksums are pinned to published or hand-computed values, so the
// checksum code is not only checked against itself.
#include <gtest/gtest.h>

#include <stdexcept>

#include "../lib/packet.hpp"

using namespace sluice::test;

namespace {

Bytes sequence(std::size_t n, std::uint8_t first = 1)
{
	Bytes b(n);
	for (std::size_t i = 0; i < n; i++)
		b[i] = static_cast<std::uint8_t>(first + i);
	return b;
}

Bytes slice(const Bytes &b, std::size_t from, std::size_t n)
{
	return Bytes(b.begin() + from, b.begin() + from + n);
}

} // namespace

// ---- checksum primitives against published values ------------------------------

// RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
TEST(PacketChecksum, Rfc1071Example)
{
	Bytes data = from_hex("0001 f203 f4f5 f6f7");
	EXPECT_EQ(ones_complement_sum(data), 0xddf2);
	EXPECT_EQ(internet_checksum(data), 0x220d);
}

TEST(PacketChecksum, OddLengthPadsWithZeroByte)
{
	EXPECT_EQ(ones_complement_sum(from_hex("ab")), 0xab00);
	// 0001 + f203 + f4f5 + f600 = 2_dcf9 -> dcf9 + 2 = dcfb
	EXPECT_EQ(ones_complement_sum(from_hex("0001 f203 f4f5 f6")), 0xdcfb);
}

TEST(PacketChecksum, CarriesFoldBackIn)
{
	// ffff + ffff + 0002 = 2_0000 -> 0000 + 2 = 0002.
	EXPECT_EQ(ones_complement_sum(from_hex("ffff ffff 0002")), 0x0002);
	// ffff * 3 + 0002 = 2_ffff -> ffff + 2 = 1_0001: the fold itself carries -> 0002.
	EXPECT_EQ(ones_complement_sum(from_hex("ffff ffff ffff 0002")), 0x0002);
	EXPECT_EQ(ones_complement_sum({}, 0x1fffe), 0xffff);
}

// The IPv4 header example widely reproduced (e.g. Wikipedia, "Internet
// checksum"): 192.168.0.1 -> 192.168.0.199, UDP, total length 0x73, DF,
// TTL 64; its checksum is b861.
TEST(PacketChecksum, PublishedIpv4HeaderExample)
{
	Bytes published = from_hex("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7");
	Bytes zeroed = published;
	zeroed[10] = zeroed[11] = 0;
	EXPECT_EQ(internet_checksum(zeroed), 0xb861);
	EXPECT_EQ(ones_complement_sum(published), 0xffff); // a receiver's check

	// The builder writes the very same header: 20 + 8 UDP + 87 payload = 0x73.
	Bytes frame = PacketBuilder().ipv4("192.168.0.1", "192.168.0.199").df().udp(1, 2).payload(Bytes(87, 0)).build();
	EXPECT_EQ(hex(slice(frame, 14, 20)), hex(published));
}

// A SYN written out byte by byte, with both checksums summed by hand:
//   IPv4: 4500+0028+0000+4000+4006+0000+c612+0001+c612+0002 = 2_5155
//         -> 5155+2 = 5157 -> ~ = aea8
//   TCP pseudo-header c612 0001 c612 0002 0006 0014, then the header
//         9c40 0050 0102 0304 0000 0000 5002 ffff 0000 0000 = 3_7cd8
//         -> 7cd8+3 = 7cdb -> ~ = 8324
TEST(PacketChecksum, HandComputedTcpSynOverIpv4)
{
	Bytes expected = from_hex("0200 0000 0002 0200 0000 0001 0800"
				  "4500 0028 0000 4000 4006 aea8 c612 0001 c612 0002"
				  "9c40 0050 0102 0304 0000 0000 5002 ffff 8324 0000");
	Bytes frame = PacketBuilder()
			      .ipv4("198.18.0.1", "198.18.0.2")
			      .df()
			      .tcp(40000, 80)
			      .flags(tcp_flag::SYN)
			      .seq(0x01020304)
			      .build();
	EXPECT_EQ(hex(frame), hex(expected));
	EXPECT_TRUE(decode(expected).verify_checksums().ok());
}

// UDP over IPv6, 2001:db8::1 port 53000 -> 2001:db8::2 port 53, payload "hi":
//   pseudo-header 2001 0db8 0..0 0001 2001 0db8 0..0 0002 0000 000a 0000 0011
//   UDP cf08 0035 000a 0000 6869; sum 1_9340 -> 9341 -> ~ = 6cbe
TEST(PacketChecksum, HandComputedUdpOverIpv6)
{
	Bytes frame = PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").udp(53000, 53).payload("hi").build();
	DecodedPacket d = decode(frame);
	ASSERT_TRUE(d.ok()) << d.error;
	ASSERT_TRUE(d.udp);
	EXPECT_EQ(d.udp->checksum, 0x6cbe);
	EXPECT_EQ(d.udp->length, 10);
	EXPECT_EQ(hex(slice(frame, 14 + 40, 10)), "cf08 0035 000a 6cbe 6869");
}

// A computed UDP checksum of zero goes on the wire as ffff (RFC 768). With
// the payload d527 the sum above becomes 2ad8 + d527 = ffff, so ~sum = 0.
TEST(PacketChecksum, UdpZeroChecksumIsSentAsAllOnes)
{
	Bytes frame = PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").udp(53000, 53).payload(from_hex("d527")).build();
	DecodedPacket d = decode(frame);
	ASSERT_TRUE(d.udp);
	EXPECT_EQ(d.udp->checksum, 0xffff);
	EXPECT_TRUE(d.verify_checksums().ok()) << d.verify_checksums().describe();
}

// ---- decoding a hand-written reply ------------------------------------------------

// The RST+ACK that answers the SYN of HandComputedTcpSynOverIpv4, written by
// hand (checksums summed as there), decoded field by field.
TEST(PacketDecode, HandWrittenRstAck)
{
	Bytes rst = from_hex("0200 0000 0001 0200 0000 0002 0800"
			     "4500 0028 0000 4000 4006 aea8 c612 0002 c612 0001"
			     "0050 9c40 0000 0000 0102 0305 5014 0000 8311 0000");
	DecodedPacket d = decode(rst);
	ASSERT_TRUE(d.ok()) << d.error;
	EXPECT_EQ(to_string(d.dst), "02:00:00:00:00:01");
	EXPECT_EQ(to_string(d.src), "02:00:00:00:00:02");
	ASSERT_TRUE(d.ipv4);
	EXPECT_EQ(to_string(d.ipv4->src), "198.18.0.2");
	EXPECT_EQ(to_string(d.ipv4->dst), "198.18.0.1");
	EXPECT_EQ(d.ipv4->ttl, 64);
	EXPECT_TRUE(d.ipv4->df);
	ASSERT_TRUE(d.tcp);
	EXPECT_EQ(d.tcp->sport, 80);
	EXPECT_EQ(d.tcp->dport, 40000);
	EXPECT_EQ(d.tcp->seq, 0u);
	EXPECT_EQ(d.tcp->ack, 0x01020305u);
	EXPECT_EQ(d.tcp->flags, tcp_flag::RST | tcp_flag::ACK);
	EXPECT_EQ(d.tcp->data_offset, 5);
	EXPECT_TRUE(d.tcp->payload.empty());
	ChecksumReport r = d.verify_checksums();
	EXPECT_TRUE(r.ok()) << r.describe();
	EXPECT_TRUE(r.ipv4.checked);
	EXPECT_TRUE(r.l4.checked);
	EXPECT_EQ(r.l4.expected, 0x8311);

	// Each checksum is checked on its own: break one, only that one is reported.
	Bytes bad_ip = rst;
	bad_ip[14 + 10] ^= 0x01;
	r = decode(bad_ip).verify_checksums();
	EXPECT_FALSE(r.ipv4.ok());
	EXPECT_TRUE(r.l4.ok());
	EXPECT_EQ(r.ipv4.found, 0xafa8);
	EXPECT_EQ(r.ipv4.expected, 0xaea8);
	EXPECT_NE(r.describe().find("IPv4 header checksum 0xafa8, expected 0xaea8"), std::string::npos) << r.describe();

	Bytes bad_ack = rst; // the ACK number is covered by the TCP checksum only
	bad_ack[14 + 20 + 11] ^= 0x80;
	r = decode(bad_ack).verify_checksums();
	EXPECT_TRUE(r.ipv4.ok());
	EXPECT_FALSE(r.l4.ok());

	Bytes bad_dst = rst; // the addresses are in both the header and the pseudo-header
	bad_dst[14 + 19] ^= 0x01;
	r = decode(bad_dst).verify_checksums();
	EXPECT_FALSE(r.ipv4.ok());
	EXPECT_FALSE(r.l4.ok());
}

// The IPv6 RST+ACK answering a SYN with seq 1000 from 2001:db8::1 port 40000,
// as sluice should send it from a VLAN 7 port; TCP checksum summed as above.
TEST(PacketDecode, HandWrittenIpv6RstBehindVlan)
{
	Bytes rst = from_hex("0200 0000 0001 0200 0000 0002 8100 0007 86dd"
			     "6000 0000 0014 0640 2001 0db8 0000 0000 0000 0000 0000 0002"
			     "2001 0db8 0000 0000 0000 0000 0000 0001"
			     "0050 9c40 0000 0000 0000 03e9 5014 0000 b3e2 0000");
	DecodedPacket d = decode(rst);
	ASSERT_TRUE(d.ok()) << d.error;
	ASSERT_EQ(d.vlans.size(), 1u);
	EXPECT_EQ(d.vlans[0].vid(), 7);
	ASSERT_TRUE(d.ipv6);
	EXPECT_EQ(to_string(d.ipv6->src), "2001:db8::2");
	EXPECT_EQ(d.ipv6->hop_limit, 64);
	EXPECT_EQ(d.l3_offset, 18u);
	ASSERT_TRUE(d.tcp);
	EXPECT_EQ(d.tcp->ack, 1001u);
	ChecksumReport r = d.verify_checksums();
	EXPECT_TRUE(r.ok()) << r.describe();
	EXPECT_FALSE(r.ipv4.checked); // IPv6 has no header checksum
	EXPECT_TRUE(r.l4.checked);

	// Matches what the builder makes of the same description.
	Bytes built = PacketBuilder()
			      .src_mac("02:00:00:00:00:02")
			      .dst_mac("02:00:00:00:00:01")
			      .vlan(7)
			      .ipv6("2001:db8::2", "2001:db8::1")
			      .tcp(80, 40000)
			      .flags(tcp_flag::RST | tcp_flag::ACK)
			      .ack_seq(1001)
			      .window(0)
			      .build();
	EXPECT_EQ(hex(built), hex(rst));
}

// ---- round trips: build, decode, compare every field ------------------------------

TEST(PacketRoundTrip, EthernetWithoutVlan)
{
	Bytes f = PacketBuilder()
			  .src_mac("00:11:22:33:44:55")
			  .dst_mac("aa:bb:cc:dd:ee:ff")
			  .ipv4("198.18.0.1", "198.18.0.2")
			  .udp(1, 2)
			  .build();
	DecodedPacket d = decode(f);
	ASSERT_TRUE(d.ok()) << d.error;
	EXPECT_EQ(to_string(d.src), "00:11:22:33:44:55");
	EXPECT_EQ(to_string(d.dst), "aa:bb:cc:dd:ee:ff");
	EXPECT_TRUE(d.vlans.empty());
	EXPECT_EQ(d.ethertype, ethertype::IPV4);
	EXPECT_EQ(d.l3_offset, 14u);
}

TEST(PacketRoundTrip, VlanTagsOneAndTwo)
{
	struct Case {
		const char *name;
		std::vector<VlanTag> tags;
	};
	const Case cases[] = {
		{"802.1Q", {{ethertype::VLAN_8021Q, 0xa064}}},                                  // PCP 5, VID 100
		{"802.1ad", {{ethertype::VLAN_8021AD, 0x0fff}}},
		{"QinQ", {{ethertype::VLAN_8021AD, 200}, {ethertype::VLAN_8021Q, 100}}},
		{"two 802.1Q", {{ethertype::VLAN_8021Q, 1}, {ethertype::VLAN_8021Q, 0x1002}}}, // DEI set
		{"three tags", {{ethertype::VLAN_8021AD, 1}, {ethertype::VLAN_8021Q, 2}, {ethertype::VLAN_8021Q, 3}}},
	};
	for (const Case &c : cases) {
		SCOPED_TRACE(c.name);
		PacketBuilder b;
		b.ipv6("2001:db8::1", "2001:db8::2").tcp(1, 2);
		b.spec().eth.vlans = c.tags;
		DecodedPacket d = decode(b.build());
		ASSERT_TRUE(d.ok()) << d.error;
		EXPECT_EQ(d.vlans, c.tags);
		EXPECT_EQ(d.ethertype, ethertype::IPV6);
		EXPECT_EQ(d.l3_offset, 14 + 4 * c.tags.size());
		EXPECT_TRUE(d.tcp);
	}
}

TEST(PacketRoundTrip, VlanHelpers)
{
	Bytes f = PacketBuilder().qinq(300, 40).ipv4("198.18.0.1", "198.18.0.2").tcp(1, 2).build();
	EXPECT_EQ(hex(slice(f, 12, 10)), "88a8 012c 8100 0028 0800");
	f = PacketBuilder().vlan(5, ethertype::VLAN_8021Q, 7).ipv4("198.18.0.1", "198.18.0.2").tcp(1, 2).build();
	EXPECT_EQ(hex(slice(f, 12, 6)), "8100 e005 0800");
	EXPECT_THROW(PacketBuilder().vlan(4096), std::invalid_argument);
}

TEST(PacketRoundTrip, Ipv4EveryField)
{
	Bytes f = PacketBuilder()
			  .ipv4("198.18.7.9", "203.0.113.200")
			  .tos(0xb8)
			  .ip_id(0xbeef)
			  .df()
			  .mf()
			  .frag_offset(0)
			  .ttl(3)
			  .tcp(1, 2)
			  .build();
	DecodedPacket d = decode(f);
	ASSERT_TRUE(d.ok()) << d.error;
	ASSERT_TRUE(d.ipv4);
	const DecodedIpv4 &ip = *d.ipv4;
	EXPECT_EQ(ip.version, 4);
	EXPECT_EQ(ip.ihl, 5);
	EXPECT_EQ(ip.tos, 0xb8);
	EXPECT_EQ(ip.total_length, 40);
	EXPECT_EQ(ip.id, 0xbeef);
	EXPECT_FALSE(ip.reserved_flag);
	EXPECT_TRUE(ip.df);
	EXPECT_TRUE(ip.mf);
	EXPECT_EQ(ip.frag_offset, 0);
	EXPECT_EQ(ip.ttl, 3);
	EXPECT_EQ(ip.protocol, ipproto::TCP);
	EXPECT_EQ(to_string(ip.src), "198.18.7.9");
	EXPECT_EQ(to_string(ip.dst), "203.0.113.200");
	EXPECT_FALSE(d.non_first_fragment);
	EXPECT_TRUE(d.tcp); // a first fragment still carries the TCP header
	EXPECT_EQ(hex(slice(f, 14 + 6, 2)), "6000"); // DF | MF, offset 0
}

TEST(PacketRoundTrip, Ipv4FragmentOffsetAndEvilBit)
{
	PacketBuilder b;
	b.ipv4("198.18.0.1", "198.18.0.2").frag_offset(0x1fff).l4_raw(ipproto::TCP, sequence(16));
	std::get<Ipv4Spec>(b.spec().l3).reserved_flag = true;
	Bytes f = b.build();
	EXPECT_EQ(hex(slice(f, 14 + 6, 2)), "9fff");
	DecodedPacket d = decode(f);
	ASSERT_TRUE(d.ok()) << d.error;
	EXPECT_TRUE(d.ipv4->reserved_flag);
	EXPECT_EQ(d.ipv4->frag_offset, 0x1fff);
	EXPECT_TRUE(d.non_first_fragment);
	EXPECT_FALSE(d.tcp); // no TCP header in a non-first fragment
	EXPECT_EQ(d.l4_bytes, sequence(16));
	EXPECT_THROW(PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").frag_offset(0x2000).build(), std::invalid_argument);
}

TEST(PacketRoundTrip, Ipv4OptionsOfEveryLength)
{
	for (std::size_t n = 0; n <= 40; n++) {
		SCOPED_TRACE(n);
		Bytes opts = sequence(n, 0x80);
		Bytes f = PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").ip_options(opts).tcp(7, 8).payload("x").build();
		DecodedPacket d = decode(f);
		ASSERT_TRUE(d.ok()) << d.error;
		std::size_t padded = (n + 3) / 4 * 4;
		EXPECT_EQ(d.ipv4->ihl, 5 + padded / 4);
		EXPECT_EQ(d.ipv4->total_length, 20 + padded + 21);
		Bytes expect = opts;
		expect.resize(padded, 0); // padded with End of Option List
		EXPECT_EQ(d.ipv4->options, expect);
		EXPECT_EQ(d.l4_offset, 14 + 20 + padded);
		ASSERT_TRUE(d.tcp);
		EXPECT_EQ(d.tcp->sport, 7);
		EXPECT_TRUE(d.verify_checksums().ok()) << d.verify_checksums().describe();
	}
	EXPECT_THROW(PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").ip_options(Bytes(41, 1)).build(),
		     std::invalid_argument);
}

TEST(PacketRoundTrip, Ipv4Overrides)
{
	Bytes f = PacketBuilder()
			  .ipv4("198.18.0.1", "198.18.0.2")
			  .ip_version(5)
			  .ihl(4)
			  .total_length(1000)
			  .ip_protocol(200)
			  .ip_checksum(0x1234)
			  .udp(1, 2)
			  .build();
	EXPECT_EQ(f.size(), 14u + 20 + 8); // overrides change fields, not the bytes emitted
	EXPECT_EQ(hex(slice(f, 14, 12)), "5400 03e8 0000 0000 40c8 1234");
	DecodedPacket d = decode(f);
	EXPECT_FALSE(d.ok()); // a version 5, IHL 4 header is reported
	EXPECT_EQ(d.ipv4->version, 5);
	EXPECT_EQ(d.ipv4->ihl, 4);
	EXPECT_EQ(d.ipv4->total_length, 1000);
	EXPECT_EQ(d.ipv4->protocol, 200);
	EXPECT_EQ(d.ipv4->checksum, 0x1234);
}

TEST(PacketRoundTrip, Ipv4CorruptChecksums)
{
	PacketBuilder b;
	b.ipv4("198.18.0.1", "198.18.0.2").tcp(1, 2).payload("abc");
	Bytes good = b.build();
	Bytes bad_ip = PacketBuilder(b).corrupt_ip_checksum().build();
	Bytes bad_tcp = PacketBuilder(b).corrupt_l4_checksum().build();

	ChecksumReport r = decode(good).verify_checksums();
	EXPECT_TRUE(r.ok()) << r.describe();
	EXPECT_TRUE(r.ipv4.checked);
	EXPECT_TRUE(r.l4.checked);

	r = decode(bad_ip).verify_checksums();
	EXPECT_FALSE(r.ipv4.ok());
	EXPECT_TRUE(r.l4.ok());
	EXPECT_EQ(r.ipv4.expected, decode(good).ipv4->checksum);

	r = decode(bad_tcp).verify_checksums();
	EXPECT_TRUE(r.ipv4.ok());
	EXPECT_FALSE(r.l4.ok());
	EXPECT_EQ(r.l4.expected, decode(good).tcp->checksum);
	EXPECT_NE(r.describe().find("TCP/UDP checksum"), std::string::npos);
}

TEST(PacketRoundTrip, Ipv6EveryField)
{
	Bytes f = PacketBuilder()
			  .ipv6("2001:db8:1::5", "2001:db8:ffff::abcd")
			  .traffic_class(0xb8)
			  .flow_label(0xfedcb)
			  .ttl(7)
			  .udp(5353, 5353)
			  .payload("mdns")
			  .build();
	DecodedPacket d = decode(f);
	ASSERT_TRUE(d.ok()) << d.error;
	ASSERT_TRUE(d.ipv6);
	const DecodedIpv6 &ip = *d.ipv6;
	EXPECT_EQ(ip.version, 6);
	EXPECT_EQ(ip.traffic_class, 0xb8);
	EXPECT_EQ(ip.flow_label, 0xfedcbu);
	EXPECT_EQ(ip.payload_length, 12);
	EXPECT_EQ(ip.next_header, ipproto::UDP);
	EXPECT_EQ(ip.hop_limit, 7);
	EXPECT_EQ(to_string(ip.src), "2001:db8:1::5");
	EXPECT_EQ(to_string(ip.dst), "2001:db8:ffff::abcd");
	EXPECT_TRUE(ip.ext.empty());
	ASSERT_TRUE(d.udp);
	EXPECT_EQ(d.udp->payload, Bytes({'m', 'd', 'n', 's'}));
	EXPECT_EQ(hex(slice(f, 14, 4)), "6b8f edcb");
}

TEST(PacketRoundTrip, Ipv6ExtensionHeaderChain)
{
	Ipv6ExtSpec hbh = Ipv6ExtSpec::hop_by_hop(1);
	hbh.body = {0x01, 0x0c}; // a PadN option, then zeros (Pad1)
	Bytes f = PacketBuilder()
			  .ipv6("2001:db8::1", "2001:db8::2")
			  .ext(hbh)
			  .ext(Ipv6ExtSpec::routing(2))
			  .ext(Ipv6ExtSpec::destination_options(0))
			  .ext(Ipv6ExtSpec::auth(4))
			  .ext(Ipv6ExtSpec::fragment(0, true, 0xdeadbeef))
			  .tcp(1234, 443)
			  .flags(tcp_flag::SYN)
			  .build();
	DecodedPacket d = decode(f);
	ASSERT_TRUE(d.ok()) << d.error;
	const auto &ext = d.ipv6->ext;
	ASSERT_EQ(ext.size(), 5u);
	EXPECT_EQ(d.ipv6->next_header, ipproto::HOPOPTS);
	const std::uint8_t types[] = {ipproto::HOPOPTS, ipproto::ROUTING, ipproto::DSTOPTS, ipproto::AH,
				      ipproto::FRAGMENT};
	const std::uint8_t nexts[] = {ipproto::ROUTING, ipproto::DSTOPTS, ipproto::AH, ipproto::FRAGMENT,
				      ipproto::TCP};
	const std::size_t sizes[] = {16, 24, 8, 24, 8};
	std::size_t total = 0;
	for (std::size_t i = 0; i < 5; i++) {
		SCOPED_TRACE(i);
		EXPECT_EQ(ext[i].type, types[i]);
		EXPECT_EQ(ext[i].next_header, nexts[i]);
		EXPECT_EQ(ext[i].size, sizes[i]);
		EXPECT_EQ(ext[i].body.size(), sizes[i] - 2);
		total += sizes[i];
	}
	EXPECT_EQ(ext[0].body[0], 0x01);
	EXPECT_EQ(ext[0].body[1], 0x0c);
	EXPECT_EQ(ext[4].frag_offset, 0);
	EXPECT_TRUE(ext[4].more_fragments);
	EXPECT_EQ(ext[4].identification, 0xdeadbeefu);
	EXPECT_EQ(d.ipv6->payload_length, total + 20);
	EXPECT_EQ(d.l4_offset, 14 + 40 + total);
	EXPECT_EQ(d.l4_protocol, ipproto::TCP);
	ASSERT_TRUE(d.tcp);
	EXPECT_EQ(d.tcp->dport, 443);
	// A first fragment: the TCP checksum covers the whole datagram, so it is
	// not checked against this fragment alone.
	ChecksumReport r = d.verify_checksums();
	EXPECT_TRUE(r.ok());
	EXPECT_FALSE(r.l4.checked);
}

TEST(PacketRoundTrip, Ipv6ExtensionHeadersOfMaximumLength)
{
	Bytes f = PacketBuilder()
			  .ipv6("2001:db8::1", "2001:db8::2")
			  .ext(Ipv6ExtSpec::hop_by_hop(255))
			  .ext(Ipv6ExtSpec::auth(255))
			  .udp(1, 2)
			  .build();
	DecodedPacket d = decode(f);
	ASSERT_TRUE(d.ok()) << d.error;
	ASSERT_EQ(d.ipv6->ext.size(), 2u);
	EXPECT_EQ(d.ipv6->ext[0].size, 2048u);
	EXPECT_EQ(d.ipv6->ext[1].size, 1028u);
	EXPECT_EQ(d.l4_offset, 14u + 40 + 2048 + 1028);
	EXPECT_TRUE(d.verify_checksums().ok()) << d.verify_checksums().describe();
}

TEST(PacketRoundTrip, Ipv6NonFirstFragment)
{
	Bytes f = PacketBuilder()
			  .ipv6("2001:db8::1", "2001:db8::2")
			  .ext(Ipv6ExtSpec::fragment(0x1fff, false, 7))
			  .l4_raw(ipproto::TCP, sequence(24))
			  .build();
	EXPECT_EQ(hex(slice(f, 14 + 40, 8)), "0600 fff8 0000 0007");
	DecodedPacket d = decode(f);
	ASSERT_TRUE(d.ok()) << d.error;
	EXPECT_TRUE(d.non_first_fragment);
	EXPECT_FALSE(d.tcp);
	EXPECT_EQ(d.l4_bytes, sequence(24));
}

TEST(PacketRoundTrip, Ipv6Overrides)
{
	Ipv6ExtSpec odd = Ipv6ExtSpec::destination_options(0);
	odd.next_header = 253; // experimental: ends the chain early
	Bytes f = PacketBuilder()
			  .ipv6("2001:db8::1", "2001:db8::2")
			  .ip_version(4)
			  .payload_length(3)
			  .ext(odd)
			  .udp(1, 2)
			  .build();
	EXPECT_EQ(hex(slice(f, 14, 8)), "4000 0000 0003 3c40");
	EXPECT_EQ(f[14 + 40], 253);
	DecodedPacket d = decode(f);
	EXPECT_EQ(d.ipv6->version, 4);
	EXPECT_EQ(d.ipv6->payload_length, 3);

	f = PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").ip_protocol(ipproto::NONE).tcp(1, 2).build();
	EXPECT_EQ(f[14 + 6], ipproto::NONE);
	d = decode(f);
	EXPECT_FALSE(d.tcp);
	EXPECT_EQ(d.l4_length, 20u);
}

TEST(PacketRoundTrip, Ipv6CorruptAndZeroChecksums)
{
	PacketBuilder b;
	b.ipv6("2001:db8::1", "2001:db8::2").udp(1, 2).payload("xyz");
	EXPECT_TRUE(decode(b.build()).verify_checksums().ok());
	EXPECT_FALSE(decode(PacketBuilder(b).corrupt_l4_checksum().build()).verify_checksums().l4.ok());
	// Zero means "no checksum" over IPv4 only; RFC 8200 forbids it over IPv6.
	EXPECT_FALSE(decode(PacketBuilder(b).l4_checksum(0).build()).verify_checksums().ok());
	ChecksumReport r4 =
		decode(PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").udp(1, 2).l4_checksum(0).build()).verify_checksums();
	EXPECT_TRUE(r4.ok());
	EXPECT_FALSE(r4.l4.checked);
}

TEST(PacketRoundTrip, TcpEveryField)
{
	Bytes opts = from_hex("0204 05b4 0103 0307 0402"); // MSS 1460, NOP, WS 7, SACK-permitted
	Bytes f = PacketBuilder()
			  .ipv4("198.18.0.1", "198.18.0.2")
			  .tcp(65535, 1)
			  .seq(0xfffffffe)
			  .ack_seq(0x80000001)
			  .flags(0xff)
			  .window(1234)
			  .urgent(77)
			  .tcp_options(opts)
			  .payload("GET / HTTP/1.1\r\n\r\n")
			  .build();
	DecodedPacket d = decode(f);
	ASSERT_TRUE(d.ok()) << d.error;
	ASSERT_TRUE(d.tcp);
	const DecodedTcp &t = *d.tcp;
	EXPECT_EQ(t.sport, 65535);
	EXPECT_EQ(t.dport, 1);
	EXPECT_EQ(t.seq, 0xfffffffeu);
	EXPECT_EQ(t.ack, 0x80000001u);
	EXPECT_EQ(t.flags, 0xff);
	EXPECT_EQ(t.window, 1234);
	EXPECT_EQ(t.urgent, 77);
	EXPECT_EQ(t.data_offset, 8); // 20 + 10 options padded to 12
	Bytes padded = opts;
	padded.resize(12, 0);
	EXPECT_EQ(t.options, padded);
	EXPECT_EQ(std::string(t.payload.begin(), t.payload.end()), "GET / HTTP/1.1\r\n\r\n");
	EXPECT_TRUE(d.verify_checksums().ok()) << d.verify_checksums().describe();
}

TEST(PacketRoundTrip, TcpOptionsOfEveryLength)
{
	for (std::size_t n = 0; n <= 40; n++) {
		SCOPED_TRACE(n);
		Bytes f = PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").tcp(1, 2).tcp_options(Bytes(n, 1)).build();
		DecodedPacket d = decode(f);
		ASSERT_TRUE(d.ok()) << d.error;
		EXPECT_EQ(d.tcp->data_offset, 5 + (n + 3) / 4);
		EXPECT_EQ(d.tcp->options.size(), (n + 3) / 4 * 4);
		EXPECT_TRUE(d.verify_checksums().ok());
	}
	EXPECT_THROW(PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").tcp(1, 2).tcp_options(Bytes(41, 1)).build(),
		     std::invalid_argument);
}

TEST(PacketRoundTrip, TcpDataOffsetOverride)
{
	Bytes f = PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").tcp(1, 2).data_offset(15).payload(sequence(8)).build();
	EXPECT_EQ(f[14 + 20 + 12], 0xf0);
	DecodedPacket d = decode(f);
	EXPECT_EQ(d.tcp->data_offset, 15);
	EXPECT_FALSE(d.ok()); // 60 header bytes claimed, 28 present

	f = PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").tcp(1, 2).data_offset(6).payload(sequence(8)).build();
	d = decode(f);
	ASSERT_TRUE(d.ok()) << d.error;
	EXPECT_EQ(d.tcp->options, sequence(4));
	EXPECT_EQ(d.tcp->payload, sequence(4, 5));
}

TEST(PacketRoundTrip, UdpEveryFieldAndLengthOverride)
{
	Bytes f = PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").udp(9, 10).payload(sequence(5)).build();
	DecodedPacket d = decode(f);
	ASSERT_TRUE(d.ok()) << d.error;
	ASSERT_TRUE(d.udp);
	EXPECT_EQ(d.udp->sport, 9);
	EXPECT_EQ(d.udp->dport, 10);
	EXPECT_EQ(d.udp->length, 13);
	EXPECT_EQ(d.udp->payload, sequence(5));
	EXPECT_EQ(d.ipv4->protocol, ipproto::UDP);

	d = decode(PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").udp(9, 10).udp_length(4).build());
	EXPECT_EQ(d.udp->length, 4);
	EXPECT_EQ(d.ipv4->total_length, 28); // the IP length still counts the real bytes
}

TEST(PacketRoundTrip, OtherL4Protocols)
{
	for (std::uint8_t proto : {ipproto::ICMP, ipproto::GRE, ipproto::ESP, ipproto::ICMPV6, std::uint8_t{255}}) {
		SCOPED_TRACE(+proto);
		Bytes f = PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").l4_raw(proto, sequence(6)).build();
		DecodedPacket d = decode(f);
		ASSERT_TRUE(d.ok()) << d.error;
		EXPECT_EQ(d.ipv4->protocol, proto);
		EXPECT_EQ(d.l4_bytes, sequence(6));
		EXPECT_FALSE(d.tcp || d.udp);
		ChecksumReport r = d.verify_checksums();
		EXPECT_FALSE(r.l4.checked);

		f = PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").ext(Ipv6ExtSpec::hop_by_hop()).l4_raw(proto).build();
		d = decode(f);
		ASSERT_TRUE(d.ok()) << d.error;
		EXPECT_EQ(d.l4_protocol, proto);
		EXPECT_EQ(d.ipv6->ext[0].next_header, proto);
	}
}

TEST(PacketRoundTrip, NonIpFrame)
{
	Bytes arp = sequence(28);
	Bytes f = PacketBuilder().raw_l3(ethertype::ARP, arp).build();
	EXPECT_EQ(f.size(), 14u + 28);
	DecodedPacket d = decode(f);
	EXPECT_TRUE(d.ok());
	EXPECT_EQ(d.ethertype, ethertype::ARP);
	EXPECT_FALSE(d.ipv4 || d.ipv6);
	EXPECT_THROW(PacketBuilder().raw_l3(ethertype::ARP, {}).tcp(1, 2).build(), std::invalid_argument);
	EXPECT_THROW(PacketBuilder().build(), std::invalid_argument);
}

TEST(PacketRoundTrip, EthertypeOverride)
{
	Bytes f = PacketBuilder().ethertype(0x0801).ipv4("198.18.0.1", "198.18.0.2").tcp(1, 2).build();
	EXPECT_EQ(hex(slice(f, 12, 2)), "0801");
	EXPECT_FALSE(decode(f).ipv4);
}

TEST(PacketRoundTrip, PaddingIsIgnoredByTheIpLayer)
{
	Bytes f = PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").tcp(1, 2).flags(tcp_flag::SYN).pad_to(60).build();
	ASSERT_EQ(f.size(), 60u);
	DecodedPacket d = decode(f);
	ASSERT_TRUE(d.ok()) << d.error;
	EXPECT_TRUE(d.tcp->payload.empty());
	EXPECT_EQ(d.l4_length, 20u);
	EXPECT_TRUE(d.verify_checksums().ok()) << d.verify_checksums().describe();
}

TEST(PacketRoundTrip, TruncationCutsTheFinishedFrame)
{
	PacketBuilder b;
	b.ipv4("198.18.0.1", "198.18.0.2").tcp(1, 2).payload(sequence(10));
	Bytes full = b.build();
	for (std::size_t n = 0; n < full.size(); n++) {
		SCOPED_TRACE(n);
		Bytes cut = PacketBuilder(b).truncate(n).build();
		ASSERT_EQ(cut.size(), n);
		EXPECT_TRUE(std::equal(cut.begin(), cut.end(), full.begin())); // same bytes, checksums included
		DecodedPacket d = decode(cut);
		EXPECT_FALSE(d.ok());
		EXPECT_FALSE(d.verify_checksums().ok());
	}
	EXPECT_EQ(PacketBuilder(b).truncate(full.size() + 5).build(), full);
}

TEST(PacketRoundTrip, BuilderRejectsSettersForTheWrongLayer)
{
	EXPECT_THROW(PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").df(), std::logic_error);
	EXPECT_THROW(PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").ext(Ipv6ExtSpec::hop_by_hop()), std::logic_error);
	EXPECT_THROW(PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").udp(1, 2).flags(tcp_flag::SYN), std::logic_error);
	EXPECT_THROW(PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").tcp(1, 2).udp_length(3), std::logic_error);
	EXPECT_THROW(PacketBuilder().payload("x"), std::logic_error);
	Ipv6ExtSpec too_long = Ipv6ExtSpec::hop_by_hop(0);
	too_long.body = Bytes(7, 0);
	EXPECT_THROW(PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").ext(too_long).build(), std::invalid_argument);
}

// ---- helpers ------------------------------------------------------------------------

TEST(PacketAddress, ParseAndFormat)
{
	EXPECT_EQ(ipv4("198.18.0.1"), (Ipv4Addr{198, 18, 0, 1}));
	EXPECT_EQ(to_string(ipv6("2001:DB8:0:0::1")), "2001:db8::1");
	EXPECT_EQ(to_string(ipv4_mapped(ipv4("198.51.100.7"))), "::ffff:198.51.100.7");
	EXPECT_EQ(to_string(mac("0A:1b:2C:3d:4E:5f")), "0a:1b:2c:3d:4e:5f");
	EXPECT_THROW(ipv4("198.18.0"), std::invalid_argument);
	EXPECT_THROW(ipv4("2001:db8::1"), std::invalid_argument);
	EXPECT_THROW(ipv6("198.18.0.1"), std::invalid_argument);
	EXPECT_THROW(ipv6("2001:db8:::1"), std::invalid_argument);
	EXPECT_THROW(mac("00:11:22:33:44"), std::invalid_argument);
	EXPECT_THROW(mac("00:11:22:33:44:55:66"), std::invalid_argument);
	EXPECT_THROW(mac("00-11-22-33-44-55"), std::invalid_argument);
}

TEST(PacketHex, RoundTrip)
{
	EXPECT_EQ(hex(from_hex("de ad\nBE EF 01")), "dead beef 01");
	EXPECT_THROW(from_hex("abc"), std::invalid_argument);
	EXPECT_THROW(from_hex("zz"), std::invalid_argument);
}

TEST(PacketDecode, ShortFramesReportWhatIsMissing)
{
	EXPECT_EQ(decode(Bytes(13, 0)).error, "Ethernet header truncated");
	EXPECT_EQ(decode(from_hex("0200 0000 0002 0200 0000 0001 8100 0001")).error, "VLAN tag truncated");
	EXPECT_EQ(decode(from_hex("0200 0000 0002 0200 0000 0001 0800 4500")).error, "IPv4 header truncated");
	EXPECT_EQ(decode(from_hex("0200 0000 0002 0200 0000 0001 86dd 6000")).error, "IPv6 header truncated");
}
