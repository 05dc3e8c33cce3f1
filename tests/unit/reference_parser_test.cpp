// Tests of the reference classifier (tests/lib/reference_parser.hpp): one
// or more hand-built packets for every rule of the parsing stage, and each
// boundary on both sides.
#include <gtest/gtest.h>

#include "../lib/packet.hpp"
#include "../lib/reference_parser.hpp"

using namespace sluice::test;

namespace {

PacketBuilder tcp4()
{
	PacketBuilder b;
	b.ipv4("198.18.0.1", "198.18.0.2").tcp(40000, 80).flags(tcp_flag::SYN).seq(1000);
	return b;
}

PacketBuilder tcp6()
{
	PacketBuilder b;
	b.ipv6("2001:db8::1", "2001:db8::2").tcp(40000, 80).flags(tcp_flag::SYN).seq(1000);
	return b;
}

Bytes append_zeros(Bytes b, std::size_t n)
{
	b.resize(b.size() + n, 0);
	return b;
}

// The classification of a frame has this result; says what it got instead.
::testing::AssertionResult classifies_as(const Bytes &frame, ParseResult want)
{
	Classification c = classify(frame);
	if (c.result == want)
		return ::testing::AssertionSuccess();
	return ::testing::AssertionFailure() << "want " << to_string(want) << ", got " << to_string(c) << "\n  frame "
					     << hex(frame);
}

} // namespace

// ---- results map onto the global counters -------------------------------------

TEST(ReferenceParser, ResultsAreTheGlobalCounters)
{
	EXPECT_EQ(global_counter(ParseResult::NotIp), SL_G_NOT_IP);
	EXPECT_EQ(global_counter(ParseResult::Truncated), SL_G_TRUNCATED);
	EXPECT_EQ(global_counter(ParseResult::Malformed), SL_G_MALFORMED);
	EXPECT_EQ(global_counter(ParseResult::HeaderLimit), SL_G_HEADER_LIMIT);
	EXPECT_FALSE(global_counter(ParseResult::Ok));
	EXPECT_EQ(static_cast<int>(ParseResult::Malformed), SL_G_MALFORMED);
	EXPECT_STREQ(to_string(ParseResult::HeaderLimit), "HEADER_LIMIT");
}

// ---- fields of an accepted packet ------------------------------------------------

TEST(ReferenceParser, TcpOverIpv4Fields)
{
	Bytes f = tcp4().ip_options(Bytes(4, 1)).seq(0xfedcba98).flags(tcp_flag::SYN | tcp_flag::ECE).payload("hello").build();
	Classification c = classify(f);
	ASSERT_EQ(c.result, ParseResult::Ok) << to_string(c);
	EXPECT_EQ(c.family, 4);
	EXPECT_EQ(c.l4_protocol, ipproto::TCP);
	EXPECT_FALSE(c.fragment);
	EXPECT_EQ(c.saddr, ipv4_mapped(ipv4("198.18.0.1")));
	EXPECT_EQ(c.daddr, ipv4_mapped(ipv4("198.18.0.2")));
	EXPECT_EQ(c.sport, 40000);
	EXPECT_EQ(c.dport, 80);
	EXPECT_EQ(c.tcp_flags, tcp_flag::SYN | tcp_flag::ECE);
	EXPECT_EQ(c.tcp_seq, 0xfedcba98u);
	EXPECT_EQ(c.tcp_payload, 5u);
	EXPECT_EQ(c.l3_offset, 14u);
	EXPECT_EQ(c.l4_offset, 14u + 24);
	EXPECT_EQ(c.l4_length, 25u);
}

TEST(ReferenceParser, UdpOverIpv6Fields)
{
	Bytes f = PacketBuilder()
			  .qinq(10, 20)
			  .ipv6("2001:db8:aa::1", "2001:db8:bb::2")
			  .ext(Ipv6ExtSpec::destination_options(1))
			  .udp(5000, 53)
			  .payload("query")
			  .build();
	Classification c = classify(f);
	ASSERT_EQ(c.result, ParseResult::Ok) << to_string(c);
	EXPECT_EQ(c.family, 6);
	EXPECT_EQ(c.l4_protocol, ipproto::UDP);
	EXPECT_EQ(c.saddr, ipv6("2001:db8:aa::1"));
	EXPECT_EQ(c.daddr, ipv6("2001:db8:bb::2"));
	EXPECT_EQ(c.sport, 5000);
	EXPECT_EQ(c.dport, 53);
	EXPECT_EQ(c.tcp_flags, 0);
	EXPECT_EQ(c.tcp_seq, 0u);
	EXPECT_EQ(c.tcp_payload, 0u);
	EXPECT_EQ(c.l3_offset, 22u);
	EXPECT_EQ(c.l4_offset, 22u + 40 + 16);
	EXPECT_EQ(c.l4_length, 13u);
}

TEST(ReferenceParser, FieldsAreZeroWhenNotOk)
{
	Classification c = classify(tcp4().truncate(40).build());
	ASSERT_EQ(c.result, ParseResult::Truncated);
	Classification zero;
	zero.result = ParseResult::Truncated;
	EXPECT_EQ(c, zero);
}

// ---- Ethernet and VLAN -----------------------------------------------------------

TEST(ReferenceParser, EthernetHeaderShorterThan14IsTruncated)
{
	Bytes f = PacketBuilder().raw_l3(ethertype::ARP, {}).build();
	ASSERT_EQ(f.size(), 14u);
	EXPECT_TRUE(classifies_as(f, ParseResult::NotIp)); // exactly the header: readable
	for (std::size_t n = 0; n < 14; n++)
		EXPECT_TRUE(classifies_as(Bytes(f.begin(), f.begin() + n), ParseResult::Truncated));
}

TEST(ReferenceParser, NonIpEtherTypes)
{
	for (std::uint16_t type : {ethertype::ARP, std::uint16_t{0x88cc}, std::uint16_t{0x0801}, std::uint16_t{0x86dc},
				   std::uint16_t{0x8847}, std::uint16_t{0x0000}}) {
		SCOPED_TRACE(type);
		EXPECT_TRUE(classifies_as(PacketBuilder().raw_l3(type, Bytes(28, 0)).build(), ParseResult::NotIp));
		EXPECT_TRUE(classifies_as(PacketBuilder().vlan(5).raw_l3(type, Bytes(28, 0)).build(), ParseResult::NotIp));
	}
	// An IPv4 packet behind the wrong EtherType is not looked at.
	EXPECT_TRUE(classifies_as(tcp4().ethertype(ethertype::ARP).build(), ParseResult::NotIp));
}

TEST(ReferenceParser, OneAndTwoVlanTagsAreSkipped)
{
	const std::uint16_t tpids[] = {ethertype::VLAN_8021Q, ethertype::VLAN_8021AD};
	for (std::uint16_t outer : tpids) {
		Classification c = classify(tcp4().vlan(1, outer).build());
		EXPECT_EQ(c.result, ParseResult::Ok);
		EXPECT_EQ(c.l3_offset, 18u);
		for (std::uint16_t inner : tpids) {
			c = classify(tcp6().vlan(1, outer).vlan(2, inner).build());
			EXPECT_EQ(c.result, ParseResult::Ok);
			EXPECT_EQ(c.l3_offset, 22u);
			EXPECT_EQ(c.dport, 80);
		}
	}
}

TEST(ReferenceParser, ThirdVlanTagIsHeaderLimit)
{
	EXPECT_TRUE(classifies_as(tcp4().qinq(1, 2).vlan(3).build(), ParseResult::HeaderLimit));
	EXPECT_TRUE(classifies_as(tcp4().vlan(1).vlan(2).vlan(3, ethertype::VLAN_8021AD).build(), ParseResult::HeaderLimit));
	// The third tag is refused before it is read: a frame ending right after
	// the second tag's EtherType says "another tag" and nothing more.
	Bytes f = PacketBuilder().qinq(1, 2).raw_l3(ethertype::VLAN_8021Q, {}).build();
	ASSERT_EQ(f.size(), 22u);
	EXPECT_TRUE(classifies_as(f, ParseResult::HeaderLimit));
}

TEST(ReferenceParser, VlanTagCutShortIsTruncated)
{
	Bytes f = tcp4().qinq(1, 2).build();
	for (std::size_t n = 14; n < 22; n++)
		EXPECT_TRUE(classifies_as(Bytes(f.begin(), f.begin() + n), ParseResult::Truncated));
}

// ---- IPv4 ----------------------------------------------------------------------------

TEST(ReferenceParser, Ipv4TruncatedAtEveryOffset)
{
	struct Case {
		const char *name;
		PacketBuilder b;
	};
	Case cases[] = {
		{"bare SYN", tcp4()},
		{"SYN with data", tcp4().payload("0123456789")},
		{"options and VLAN", tcp4().vlan(9).ip_options(Bytes(40, 1)).tcp_options(Bytes(40, 1)).payload("x")},
		{"UDP", PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").udp(1, 2).payload("abc")},
	};
	for (Case &k : cases) {
		SCOPED_TRACE(k.name);
		Bytes full = k.b.build();
		for (std::size_t n = 0; n < full.size(); n++)
			EXPECT_TRUE(classifies_as(Bytes(full.begin(), full.begin() + n), ParseResult::Truncated)) << " at " << n;
		Classification exact = classify(full);
		EXPECT_EQ(exact.result, ParseResult::Ok);
		// Ethernet padding after the IP packet changes nothing.
		for (std::size_t extra : {1, 2, 46, 1000})
			EXPECT_EQ(classify(append_zeros(full, extra)), exact);
	}
}

TEST(ReferenceParser, Ipv4VersionMustBe4)
{
	for (std::uint8_t v : {0, 1, 5, 6, 15}) {
		SCOPED_TRACE(+v);
		EXPECT_TRUE(classifies_as(tcp4().ip_version(v).build(), ParseResult::Malformed));
	}
}

TEST(ReferenceParser, Ipv4IhlBelow5IsMalformed)
{
	for (std::uint8_t ihl = 0; ihl < 5; ihl++)
		EXPECT_TRUE(classifies_as(tcp4().ihl(ihl).build(), ParseResult::Malformed));
	// IHL 15 claims 40 bytes of options; with 40 bytes after the base
	// header that is legal here, and L4 starts after them.
	Classification c =
		classify(PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").ihl(15).l4_raw(ipproto::ICMP, Bytes(40, 0)).build());
	EXPECT_EQ(c.result, ParseResult::Ok) << to_string(c);
	EXPECT_EQ(c.l4_offset, 14u + 60);
	EXPECT_EQ(c.l4_length, 0u);
}

TEST(ReferenceParser, Ipv4TotalLengthBelowHeaderIsMalformed)
{
	EXPECT_TRUE(classifies_as(tcp4().total_length(19).build(), ParseResult::Malformed));
	EXPECT_TRUE(classifies_as(tcp4().total_length(0).build(), ParseResult::Malformed));
	EXPECT_TRUE(classifies_as(tcp4().ip_options(Bytes(8, 1)).total_length(27).build(), ParseResult::Malformed));
	// Exactly the header: no room for the TCP header in the IP payload.
	EXPECT_TRUE(classifies_as(tcp4().ip_options(Bytes(8, 1)).total_length(28).build(), ParseResult::Truncated));
	Classification c = classify(PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").l4_raw(ipproto::ICMP).build());
	EXPECT_EQ(c.result, ParseResult::Ok);
	EXPECT_EQ(c.l4_length, 0u);
}

TEST(ReferenceParser, Ipv4TotalLengthBeyondFrameIsTruncated)
{
	Bytes f = tcp4().build(); // total length 40
	EXPECT_TRUE(classifies_as(tcp4().total_length(41).build(), ParseResult::Truncated));
	EXPECT_TRUE(classifies_as(tcp4().total_length(0xffff).build(), ParseResult::Truncated));
	// The frame holds 41 bytes of IP now: fine, and the TCP payload is 1.
	Classification c = classify(tcp4().total_length(41).pad_to(f.size() + 1).build());
	ASSERT_EQ(c.result, ParseResult::Ok);
	EXPECT_EQ(c.tcp_payload, 1u);
}

TEST(ReferenceParser, Ipv4MaximumOptions)
{
	Classification c = classify(tcp4().ip_options(Bytes(40, 1)).build());
	ASSERT_EQ(c.result, ParseResult::Ok);
	EXPECT_EQ(c.l4_offset, 14u + 60);
	EXPECT_EQ(c.dport, 80);
}

TEST(ReferenceParser, Ipv4NonFirstFragmentHasNoPorts)
{
	for (std::uint16_t off : {1, 185, 0x1fff}) {
		SCOPED_TRACE(off);
		// Bytes that would be a malformed or truncated TCP header do not matter.
		for (std::size_t n : {0, 1, 19, 20, 100}) {
			Bytes f = PacketBuilder()
					  .ipv4("198.18.0.1", "198.18.0.2")
					  .frag_offset(off)
					  .mf(n == 100)
					  .l4_raw(ipproto::TCP, Bytes(n, 0xff))
					  .build();
			Classification c = classify(f);
			ASSERT_EQ(c.result, ParseResult::Ok) << to_string(c);
			EXPECT_TRUE(c.fragment);
			EXPECT_EQ(c.family, 4);
			EXPECT_EQ(c.sport, 0);
			EXPECT_EQ(c.dport, 0);
			EXPECT_EQ(c.tcp_flags, 0);
			EXPECT_EQ(c.saddr, ipv4_mapped(ipv4("198.18.0.1")));
		}
	}
	// A fragment still needs a sound IPv4 header.
	EXPECT_TRUE(classifies_as(tcp4().frag_offset(1).total_length(19).build(), ParseResult::Malformed));
	EXPECT_TRUE(classifies_as(tcp4().frag_offset(1).total_length(100).build(), ParseResult::Truncated));
}

TEST(ReferenceParser, Ipv4FirstFragmentIsParsedNormally)
{
	Classification c = classify(tcp4().mf().ip_id(7).build());
	ASSERT_EQ(c.result, ParseResult::Ok);
	EXPECT_FALSE(c.fragment);
	EXPECT_EQ(c.dport, 80);
	// ... and so its TCP header must be there.
	EXPECT_TRUE(classifies_as(PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").mf().l4_raw(ipproto::TCP, Bytes(19, 0x50)).build(),
		      ParseResult::Truncated));
	// DF and the reserved flag are not fragment markers.
	PacketBuilder evil = tcp4().df();
	std::get<Ipv4Spec>(evil.spec().l3).reserved_flag = true;
	c = classify(evil.build());
	EXPECT_EQ(c.result, ParseResult::Ok);
	EXPECT_FALSE(c.fragment);
}

// ---- IPv6 ----------------------------------------------------------------------------

TEST(ReferenceParser, Ipv6VersionMustBe6)
{
	for (std::uint8_t v : {0, 4, 7, 15}) {
		SCOPED_TRACE(+v);
		EXPECT_TRUE(classifies_as(tcp6().ip_version(v).build(), ParseResult::Malformed));
	}
}

TEST(ReferenceParser, Ipv6TruncatedAtEveryOffset)
{
	struct Case {
		const char *name;
		PacketBuilder b;
	};
	Case cases[] = {
		{"bare SYN", tcp6()},
		{"extension headers and VLAN",
		 tcp6().vlan(3).ext(Ipv6ExtSpec::hop_by_hop(1)).ext(Ipv6ExtSpec::auth(4)).ext(Ipv6ExtSpec::fragment(0, true)).payload("x")},
		{"UDP", PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").udp(1, 2)},
	};
	for (Case &k : cases) {
		SCOPED_TRACE(k.name);
		Bytes full = k.b.build();
		for (std::size_t n = 0; n < full.size(); n++)
			EXPECT_TRUE(classifies_as(Bytes(full.begin(), full.begin() + n), ParseResult::Truncated)) << " at " << n;
		Classification exact = classify(full);
		EXPECT_EQ(exact.result, ParseResult::Ok);
		EXPECT_EQ(classify(append_zeros(full, 20)), exact);
	}
}

TEST(ReferenceParser, Ipv6PayloadLengthBeyondFrameIsTruncated)
{
	EXPECT_TRUE(classifies_as(tcp6().payload_length(21).build(), ParseResult::Truncated));
	EXPECT_TRUE(classifies_as(tcp6().payload_length(0xffff).build(), ParseResult::Truncated));
	Classification c = classify(tcp6().payload_length(21).pad_to(14 + 40 + 21).build());
	EXPECT_EQ(c.result, ParseResult::Ok);
	EXPECT_EQ(c.tcp_payload, 1u);
}

TEST(ReferenceParser, Ipv6PayloadLengthZero)
{
	// Nothing follows: fine when the next header says so.
	Classification c = classify(PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").l4_raw(ipproto::NONE).build());
	EXPECT_EQ(c.result, ParseResult::Ok);
	EXPECT_EQ(c.l4_length, 0u);
	// A TCP header outside the (empty) payload is not there.
	EXPECT_TRUE(classifies_as(tcp6().payload_length(0).build(), ParseResult::Truncated));
	// A jumbogram (RFC 2675): payload length 0 and a hop-by-hop header with
	// the Jumbo Payload option. The header lies past the stated payload.
	Ipv6ExtSpec jumbo = Ipv6ExtSpec::hop_by_hop(0);
	jumbo.body = {0xc2, 0x04, 0x00, 0x01, 0x00, 0x1c}; // option C2, length 4, 65564
	EXPECT_TRUE(classifies_as(tcp6().ext(jumbo).payload_length(0).build(), ParseResult::Malformed));
}

TEST(ReferenceParser, Ipv6EachExtensionHeaderType)
{
	struct Case {
		Ipv6ExtSpec ext;
		std::size_t size;
	};
	const Case cases[] = {
		{Ipv6ExtSpec::hop_by_hop(0), 8},
		{Ipv6ExtSpec::hop_by_hop(255), 2048},
		{Ipv6ExtSpec::routing(2), 24},
		{Ipv6ExtSpec::routing(255), 2048},
		{Ipv6ExtSpec::destination_options(3), 32},
		{Ipv6ExtSpec::destination_options(255), 2048},
		{Ipv6ExtSpec::fragment(0, false), 8},
		{Ipv6ExtSpec::fragment(0, true), 8},
		{Ipv6ExtSpec::auth(0), 8},
		{Ipv6ExtSpec::auth(4), 24},
		{Ipv6ExtSpec::auth(255), 1028},
	};
	for (const Case &k : cases) {
		SCOPED_TRACE(std::to_string(k.ext.type) + " len " + std::to_string(k.ext.length));
		ASSERT_EQ(k.ext.size(), k.size);
		Classification c = classify(tcp6().ext(k.ext).build());
		ASSERT_EQ(c.result, ParseResult::Ok) << to_string(c);
		EXPECT_EQ(c.l4_offset, 14 + 40 + k.size);
		EXPECT_EQ(c.l4_protocol, ipproto::TCP);
		EXPECT_FALSE(c.fragment);
		EXPECT_EQ(c.dport, 80);
		EXPECT_EQ(c.l4_length, 20u);
	}
}

TEST(ReferenceParser, Ipv6FragmentHeaderLengthByteIsIgnored)
{
	// The fragment header is always 8 bytes, whatever its reserved byte says.
	Ipv6ExtSpec frag = Ipv6ExtSpec::fragment(0, true);
	frag.length = 0xff;
	Classification c = classify(tcp6().ext(frag).build());
	ASSERT_EQ(c.result, ParseResult::Ok);
	EXPECT_EQ(c.l4_offset, 14u + 48);
}

TEST(ReferenceParser, Ipv6ExtensionHeaderNeedsEightReadableBytes)
{
	// Payload length 4: the hop-by-hop header's first 8 bytes are not in a
	// frame that ends with the payload...
	Bytes f = tcp6().ext(Ipv6ExtSpec::hop_by_hop(0)).payload_length(4).truncate(14 + 44).build();
	EXPECT_TRUE(classifies_as(f, ParseResult::Truncated));
	// ...and with them present (as padding) the header runs past the payload.
	for (std::size_t n = 14 + 48; n <= 14 + 68; n += 4)
		EXPECT_TRUE(classifies_as(tcp6().ext(Ipv6ExtSpec::hop_by_hop(0)).payload_length(4).truncate(n).build(),
			      ParseResult::Malformed));
}

TEST(ReferenceParser, Ipv6ExtensionHeaderPastPayloadIsMalformed)
{
	// A 16-byte routing header and a TCP header, in a payload that ends
	// inside the routing header; the frame holds every byte.
	for (std::uint16_t len : {8, 9, 15}) {
		SCOPED_TRACE(len);
		EXPECT_TRUE(classifies_as(tcp6().ext(Ipv6ExtSpec::routing(1)).payload_length(len).build(), ParseResult::Malformed));
	}
	// Exactly the header: fine, and then the TCP header is missing.
	EXPECT_TRUE(classifies_as(tcp6().ext(Ipv6ExtSpec::routing(1)).payload_length(16).build(), ParseResult::Truncated));
	// AH lengths count 4-byte words: len 1 is 12 bytes.
	EXPECT_TRUE(classifies_as(tcp6().ext(Ipv6ExtSpec::auth(1)).payload_length(11).build(), ParseResult::Malformed));
	Classification c = classify(PacketBuilder()
					    .ipv6("2001:db8::1", "2001:db8::2")
					    .ext(Ipv6ExtSpec::auth(1))
					    .l4_raw(ipproto::NONE)
					    .build());
	EXPECT_EQ(c.result, ParseResult::Ok);
	EXPECT_EQ(c.l4_offset, 14u + 52);
	// A second header past the payload, after a good first one.
	EXPECT_TRUE(classifies_as(tcp6().ext(Ipv6ExtSpec::hop_by_hop(0)).ext(Ipv6ExtSpec::destination_options(0)).payload_length(15).build(),
		      ParseResult::Malformed));
}

TEST(ReferenceParser, Ipv6EightExtensionHeadersAreWalkedNinthIsHeaderLimit)
{
	const Ipv6ExtSpec kinds[] = {Ipv6ExtSpec::hop_by_hop(0), Ipv6ExtSpec::routing(0),
				     Ipv6ExtSpec::destination_options(0), Ipv6ExtSpec::fragment(0, true),
				     Ipv6ExtSpec::auth(0)};
	for (std::size_t count = 1; count <= 9; count++) {
		SCOPED_TRACE(count);
		PacketBuilder b = tcp6();
		for (std::size_t i = 0; i < count; i++)
			b.ext(kinds[i % 5]);
		Classification c = classify(b.build());
		if (count <= 8) {
			ASSERT_EQ(c.result, ParseResult::Ok) << to_string(c);
			EXPECT_EQ(c.l4_offset, 14 + 40 + 8 * count);
			EXPECT_EQ(c.dport, 80);
		} else {
			EXPECT_EQ(c.result, ParseResult::HeaderLimit) << to_string(c);
		}
	}
	// Eight maximum-length headers: 8 * 2048 bytes are walked.
	PacketBuilder big = PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").l4_raw(ipproto::NONE);
	for (int i = 0; i < 7; i++)
		big.ext(Ipv6ExtSpec::destination_options(255));
	big.ext(Ipv6ExtSpec::hop_by_hop(0));
	Classification c = classify(big.build());
	EXPECT_EQ(c.result, ParseResult::Ok) << to_string(c);
	EXPECT_EQ(c.l4_offset, 14u + 40 + 7 * 2048 + 8);
}

TEST(ReferenceParser, Ipv6HeaderLimitIsDecidedBeforeReadingTheNinth)
{
	// Eight headers fill the payload exactly; the last names a ninth.
	PacketBuilder b = PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").l4_raw(ipproto::NONE);
	for (int i = 0; i < 8; i++)
		b.ext(Ipv6ExtSpec::destination_options(0));
	b.spec().l4 = RawL4Spec{ipproto::ROUTING, {}};
	EXPECT_TRUE(classifies_as(b.build(), ParseResult::HeaderLimit));
	// The same with the eighth pointing at something else is fine.
	b.spec().l4 = RawL4Spec{ipproto::ICMPV6, {}};
	EXPECT_TRUE(classifies_as(b.build(), ParseResult::Ok));
}

TEST(ReferenceParser, Ipv6NonFirstFragmentEndsTheWalk)
{
	for (std::uint16_t off : {1, 0x1fff}) {
		SCOPED_TRACE(off);
		// After a non-first fragment header, even a "next header" that is an
		// extension header or a broken TCP header is not looked at.
		for (std::uint8_t next : {ipproto::TCP, ipproto::HOPOPTS, ipproto::FRAGMENT}) {
			Bytes f = PacketBuilder()
					  .ipv6("2001:db8::1", "2001:db8::2")
					  .ext(Ipv6ExtSpec::hop_by_hop(0))
					  .ext(Ipv6ExtSpec::fragment(off, true))
					  .l4_raw(next, Bytes(3, 0xff))
					  .build();
			Classification c = classify(f);
			ASSERT_EQ(c.result, ParseResult::Ok) << to_string(c);
			EXPECT_TRUE(c.fragment);
			EXPECT_EQ(c.family, 6);
			EXPECT_EQ(c.sport, 0);
			EXPECT_EQ(c.dport, 0);
			EXPECT_EQ(c.saddr, ipv6("2001:db8::1"));
		}
	}
	// The eighth header being a non-first fragment is not a header limit.
	PacketBuilder b = PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").l4_raw(ipproto::HOPOPTS);
	for (int i = 0; i < 7; i++)
		b.ext(Ipv6ExtSpec::destination_options(0));
	b.ext(Ipv6ExtSpec::fragment(5, false));
	Classification c = classify(b.build());
	EXPECT_EQ(c.result, ParseResult::Ok) << to_string(c);
	EXPECT_TRUE(c.fragment);
	// A non-first fragment header that itself runs past the payload is malformed.
	EXPECT_TRUE(classifies_as(PacketBuilder()
			      .ipv6("2001:db8::1", "2001:db8::2")
			      .ext(Ipv6ExtSpec::fragment(1, false))
			      .l4_raw(ipproto::TCP, Bytes(8, 0))
			      .payload_length(7)
			      .build(),
		      ParseResult::Malformed));
}

TEST(ReferenceParser, Ipv6FirstFragmentIsParsedNormally)
{
	Classification c = classify(tcp6().ext(Ipv6ExtSpec::fragment(0, true, 99)).build());
	ASSERT_EQ(c.result, ParseResult::Ok);
	EXPECT_FALSE(c.fragment);
	EXPECT_EQ(c.sport, 40000);
	EXPECT_EQ(c.l4_offset, 14u + 48);
}

TEST(ReferenceParser, Ipv6OtherHeadersEndTheWalk)
{
	// ESP (50), No Next Header (59), Mobility (135), and ICMPv6 are not walked.
	for (std::uint8_t proto : {ipproto::ESP, ipproto::NONE, std::uint8_t{135}, ipproto::ICMPV6}) {
		SCOPED_TRACE(+proto);
		Classification c = classify(
			PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").ext(Ipv6ExtSpec::hop_by_hop(0)).l4_raw(proto, Bytes(2, 0)).build());
		ASSERT_EQ(c.result, ParseResult::Ok);
		EXPECT_EQ(c.l4_protocol, proto);
		EXPECT_EQ(c.l4_offset, 14u + 48);
		EXPECT_EQ(c.sport, 0);
	}
}

// ---- L4 ----------------------------------------------------------------------------

TEST(ReferenceParser, TcpHeaderMustBeInTheIpPayload)
{
	// The frame holds 20 TCP bytes, but the IPv4 payload only 19.
	Bytes f = tcp4().total_length(39).build();
	ASSERT_EQ(f.size(), 14u + 40);
	EXPECT_TRUE(classifies_as(f, ParseResult::Truncated));
	EXPECT_TRUE(classifies_as(tcp6().payload_length(19).build(), ParseResult::Truncated));
	// 20 bytes in the payload, 0 after the header.
	Classification c = classify(tcp4().build());
	EXPECT_EQ(c.result, ParseResult::Ok);
	EXPECT_EQ(c.tcp_payload, 0u);
}

TEST(ReferenceParser, TcpDataOffset)
{
	for (std::uint8_t doff = 0; doff < 5; doff++)
		EXPECT_TRUE(classifies_as(tcp4().data_offset(doff).payload(Bytes(40, 0)).build(), ParseResult::Malformed));
	// Data offset 15 needs 60 bytes of IP payload: 59 are not enough.
	EXPECT_TRUE(classifies_as(tcp4().data_offset(15).payload(Bytes(39, 0)).build(), ParseResult::Malformed));
	Classification c = classify(tcp4().data_offset(15).payload(Bytes(40, 0)).build());
	ASSERT_EQ(c.result, ParseResult::Ok);
	EXPECT_EQ(c.tcp_payload, 0u);
	c = classify(tcp6().tcp_options(Bytes(40, 1)).payload(Bytes(7, 0)).build());
	ASSERT_EQ(c.result, ParseResult::Ok);
	EXPECT_EQ(c.tcp_payload, 7u);
	// Options beyond the IP payload but within the frame (padding) still count as missing.
	EXPECT_TRUE(classifies_as(tcp4().data_offset(6).pad_to(100).build(), ParseResult::Malformed));
}

TEST(ReferenceParser, UdpNeedsEightBytes)
{
	PacketBuilder udp = PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").udp(1, 2);
	EXPECT_TRUE(classifies_as(udp.build(), ParseResult::Ok));
	EXPECT_TRUE(classifies_as(PacketBuilder(udp).total_length(27).pad_to(100).build(), ParseResult::Truncated));
	EXPECT_TRUE(classifies_as(PacketBuilder(udp).truncate(14 + 20 + 7).build(), ParseResult::Truncated));
	EXPECT_TRUE(classifies_as(PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").l4_raw(ipproto::UDP, Bytes(7, 0)).build(),
		      ParseResult::Truncated));
	// The UDP length field is not the parser's business.
	Classification c = classify(PacketBuilder(udp).udp_length(3).build());
	EXPECT_EQ(c.result, ParseResult::Ok);
	EXPECT_EQ(c.dport, 2);
}

TEST(ReferenceParser, OtherProtocolsNeedNothing)
{
	for (std::uint8_t proto : {ipproto::ICMP, ipproto::GRE, ipproto::ESP, std::uint8_t{132}, std::uint8_t{255}}) {
		SCOPED_TRACE(+proto);
		Classification c = classify(PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").l4_raw(proto).build());
		ASSERT_EQ(c.result, ParseResult::Ok);
		EXPECT_EQ(c.l4_protocol, proto);
		EXPECT_EQ(c.sport, 0);
		EXPECT_EQ(c.dport, 0);
	}
}

// ---- agreement with the decoder on well-formed packets --------------------------

TEST(ReferenceParser, AgreesWithTheDecoderOnWellFormedPackets)
{
	std::vector<Bytes> frames = {
		tcp4().build(),
		tcp4().vlan(1).ip_options(Bytes(12, 1)).payload("abc").build(),
		tcp6().qinq(1, 2).ext(Ipv6ExtSpec::routing(3)).ext(Ipv6ExtSpec::auth(2)).payload("xyz").build(),
		PacketBuilder().ipv6("2001:db8::7", "2001:db8::8").udp(123, 456).payload("p").build(),
		PacketBuilder().ipv4("198.19.255.254", "198.18.0.9").udp(65535, 0).build(),
	};
	for (const Bytes &f : frames) {
		DecodedPacket d = decode(f);
		ASSERT_TRUE(d.ok()) << d.error;
		Classification c = classify(f);
		ASSERT_EQ(c.result, ParseResult::Ok);
		EXPECT_EQ(c.family, d.ipv4 ? 4 : 6);
		EXPECT_EQ(c.saddr, d.ipv4 ? ipv4_mapped(d.ipv4->src) : d.ipv6->src);
		EXPECT_EQ(c.daddr, d.ipv4 ? ipv4_mapped(d.ipv4->dst) : d.ipv6->dst);
		EXPECT_EQ(c.l3_offset, d.l3_offset);
		EXPECT_EQ(c.l4_offset, d.l4_offset);
		EXPECT_EQ(c.l4_length, d.l4_length);
		EXPECT_EQ(c.l4_protocol, d.l4_protocol);
		EXPECT_EQ(c.sport, d.tcp ? d.tcp->sport : d.udp->sport);
		EXPECT_EQ(c.dport, d.tcp ? d.tcp->dport : d.udp->dport);
		if (d.tcp) {
			EXPECT_EQ(c.tcp_seq, d.tcp->seq);
			EXPECT_EQ(c.tcp_flags, d.tcp->flags);
			EXPECT_EQ(c.tcp_payload, d.tcp->payload.size());
		}
	}
}
