/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Packet parsing for the data path: Ethernet with up to two VLAN tags, IPv4
 * with options, IPv6 with a bounded walk over extension headers, TCP and
 * UDP. Parsing never guesses: anything it cannot read with certainty is
 * reported as a global counter and the packet is passed uncharged.
 *
 * Headers are read from [data, data_end); lengths are checked against
 * wire_len, the whole packet's length. In XDP the two agree; at TC egress a
 * GSO super-packet's payload may lie outside the linear data.
 */
#ifndef SLUICE_BPF_PARSE_H
#define SLUICE_BPF_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "sluice/abi.h"

#define SL_MAX_VLAN_TAGS 2
#define SL_MAX_IPV6_EXTHDRS 8

/* What parse_packet found. PARSE_OK means every field below is valid. */
enum parse_result {
	PARSE_OK = 0,
	PARSE_NOT_IP = SL_G_NOT_IP,
	PARSE_TRUNCATED = SL_G_TRUNCATED,
	PARSE_MALFORMED = SL_G_MALFORMED,
	PARSE_HEADER_LIMIT = SL_G_HEADER_LIMIT,
};

struct packet {
	__u32 l3_off;       /* offset of the IPv4/IPv6 header */
	__u32 l4_off;       /* offset of the TCP/UDP header (when l4 is TCP/UDP) */
	__u32 l4_len;       /* bytes from l4_off to the end of the IP payload */
	__u8 family;        /* 4 or 6 */
	__u8 l4proto;       /* IPPROTO_*; meaningless when fragment is set */
	__u8 fragment;      /* a non-first fragment: no ports to read */
	__u8 fragmented;    /* any fragment, first included: the L4 payload is incomplete */
	__u8 tcp_flags;     /* byte 13 of the TCP header */
	__u16 sport, dport; /* host byte order */
	__u32 tcp_seq;      /* host byte order */
	__u32 tcp_ack;      /* host byte order */
	__u32 tcp_payload;  /* TCP payload bytes (a SYN may carry data) */
	__u32 payload_off;  /* where the TCP or UDP payload starts */
	__u8 saddr[16];     /* IPv4-mapped for IPv4 */
	__u8 daddr[16];
};

#define TCP_FL_FIN 0x01
#define TCP_FL_SYN 0x02
#define TCP_FL_RST 0x04
#define TCP_FL_PSH 0x08
#define TCP_FL_ACK 0x10

/* ::ffff:a.b.c.d, written in words: byte stores would make the compiler
 * keep (and spill) each byte of both addresses apart. */
static __always_inline void map_v4(__u8 out[16], __be32 addr)
{
	__u64 zeros = 0;
	__be32 ones = bpf_htonl(0xffff);

	__builtin_memcpy(out, &zeros, 8);
	__builtin_memcpy(out + 8, &ones, 4);
	__builtin_memcpy(out + 12, &addr, 4);
}

/* The IPv6 extension headers we walk; anything else ends the walk. */
static __always_inline int is_ipv6_exthdr(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_FRAGMENT ||
	       nexthdr == IPPROTO_AH;
}

struct ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset in 8-byte units << 3 | flags */
	__be32 identification;
};

static __always_inline int parse_ipv4(void *data, void *data_end, __u32 wire_len, __u32 off,
				      struct packet *pkt)
{
	struct iphdr *ip = data + off;

	if ((void *)(ip + 1) > data_end)
		return PARSE_TRUNCATED;
	if (ip->version != 4 || ip->ihl < 5)
		return PARSE_MALFORMED;
	__u32 hdr_len = ip->ihl * 4;
	__u32 tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < hdr_len)
		return PARSE_MALFORMED;
	if (off + tot_len > wire_len)
		return PARSE_TRUNCATED;

	pkt->family = 4;
	pkt->l3_off = off;
	pkt->l4proto = ip->protocol;
	/* Without options the L4 header's offset is a constant: the CPU can
	 * load it on a predicted branch instead of waiting for the IHL. */
	pkt->l4_off = ip->ihl == 5 ? off + sizeof(*ip) : off + hdr_len;
	pkt->l4_len = tot_len - hdr_len;
	pkt->fragment = (bpf_ntohs(ip->frag_off) & 0x1fff) != 0;
	pkt->fragmented = (bpf_ntohs(ip->frag_off) & 0x3fff) != 0; /* MF or an offset */
	map_v4(pkt->saddr, ip->saddr);
	map_v4(pkt->daddr, ip->daddr);
	return PARSE_OK;
}

static __always_inline int parse_ipv6(void *data, void *data_end, __u32 wire_len, __u32 off,
				      struct packet *pkt)
{
	struct ipv6hdr *ip6 = data + off;

	if ((void *)(ip6 + 1) > data_end)
		return PARSE_TRUNCATED;
	if (ip6->version != 6)
		return PARSE_MALFORMED;
	__u32 payload_len = bpf_ntohs(ip6->payload_len);
	if (off + sizeof(*ip6) + payload_len > wire_len)
		return PARSE_TRUNCATED;

	pkt->family = 6;
	pkt->l3_off = off;
	pkt->fragment = 0;
	__builtin_memcpy(pkt->saddr, &ip6->saddr, 16);
	__builtin_memcpy(pkt->daddr, &ip6->daddr, 16);

	__u8 nexthdr = ip6->nexthdr;
	__u32 cur = off + sizeof(*ip6);
	__u32 end = cur + payload_len;

#pragma unroll
	for (int i = 0; i < SL_MAX_IPV6_EXTHDRS; i++) {
		if (!is_ipv6_exthdr(nexthdr))
			break;
		__u8 *hdr = data + cur;
		if ((void *)(hdr + 8) > data_end)
			return PARSE_TRUNCATED;
		__u32 len;
		if (nexthdr == IPPROTO_FRAGMENT) {
			struct ipv6_frag_hdr *frag = (void *)hdr;
			if (bpf_ntohs(frag->frag_off) & ~7)
				pkt->fragment = 1; /* non-first: the L4 header is elsewhere */
			pkt->fragmented = 1;
			len = 8;
		} else if (nexthdr == IPPROTO_AH) {
			len = (hdr[1] + 2) * 4;
		} else {
			len = (hdr[1] + 1) * 8;
		}
		nexthdr = hdr[0];
		cur += len;
		if (cur > end)
			return PARSE_MALFORMED;
		if (pkt->fragment)
			break;
	}
	if (!pkt->fragment && is_ipv6_exthdr(nexthdr))
		return PARSE_HEADER_LIMIT;

	pkt->l4proto = nexthdr;
	pkt->l4_off = cur;
	pkt->l4_len = end - cur;
	return PARSE_OK;
}

static __always_inline int parse_l4(void *data, void *data_end, struct packet *pkt)
{
	if (pkt->fragment)
		return PARSE_OK;
	if (pkt->l4proto == IPPROTO_TCP) {
		struct tcphdr *tcp = data + pkt->l4_off;
		if ((void *)(tcp + 1) > data_end || pkt->l4_len < sizeof(*tcp))
			return PARSE_TRUNCATED;
		if (tcp->doff < 5 || tcp->doff * 4 > pkt->l4_len)
			return PARSE_MALFORMED;
		pkt->sport = bpf_ntohs(tcp->source);
		pkt->dport = bpf_ntohs(tcp->dest);
		pkt->tcp_seq = bpf_ntohl(tcp->seq);
		pkt->tcp_flags = ((__u8 *)tcp)[13];
		pkt->tcp_ack = bpf_ntohl(tcp->ack_seq);
		pkt->tcp_payload = pkt->l4_len - tcp->doff * 4;
		pkt->payload_off = pkt->l4_off + tcp->doff * 4;
	} else if (pkt->l4proto == IPPROTO_UDP) {
		struct udphdr *udp = data + pkt->l4_off;
		if ((void *)(udp + 1) > data_end || pkt->l4_len < sizeof(*udp))
			return PARSE_TRUNCATED;
		pkt->sport = bpf_ntohs(udp->source);
		pkt->dport = bpf_ntohs(udp->dest);
		pkt->payload_off = pkt->l4_off + sizeof(*udp);
	}
	return PARSE_OK;
}

/* Untagged IPv4, nearly every frame: its headers at constant offsets. */
static __always_inline int is_untagged_ipv4(void *data, void *data_end)
{
	struct ethhdr *eth = data;

	return (void *)(eth + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IP);
}

/* parse_packet() of a frame that is_untagged_ipv4(). */
static __always_inline int parse_untagged_ipv4(void *data, void *data_end, __u32 wire_len, struct packet *pkt)
{
	int rc = parse_ipv4(data, data_end, wire_len, sizeof(struct ethhdr), pkt);

	return rc != PARSE_OK ? rc : parse_l4(data, data_end, pkt);
}

/* What the quick judge reads of a plain IPv4 packet: untagged, without IP
 * options, not a fragment, TCP or UDP with a whole header. */
struct plain_ipv4 {
	__u32 saddr;   /* host byte order */
	__u16 dport;   /* host byte order */
	__u8 l4proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 tcp_flags;
};

/* Returns 1 and fills *pkt for a frame that parse_packet() would parse
 * (PARSE_OK) into a plain IPv4 packet with the same fields; 0 for every
 * other frame, valid or not. */
static __always_inline int parse_plain_ipv4(void *data, void *data_end, struct plain_ipv4 *pkt)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	if (*(__u8 *)ip != 0x45 || (ip->frag_off & bpf_htons(0x3fff))) /* version 4, IHL 5; MF or an offset */
		return 0;
	__u32 tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < sizeof(*ip) || sizeof(*eth) + tot_len > (__u64)(data_end - data))
		return 0;
	__u32 l4_len = tot_len - sizeof(*ip);

	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);
		if ((void *)(tcp + 1) > data_end || l4_len < sizeof(*tcp) || tcp->doff < 5 || tcp->doff * 4 > l4_len)
			return 0;
		pkt->dport = bpf_ntohs(tcp->dest);
		pkt->tcp_flags = ((__u8 *)tcp)[13];
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip + 1);
		if ((void *)(udp + 1) > data_end || l4_len < sizeof(*udp))
			return 0;
		pkt->dport = bpf_ntohs(udp->dest);
		pkt->tcp_flags = 0;
	} else {
		return 0;
	}
	pkt->l4proto = ip->protocol;
	pkt->saddr = bpf_ntohl(ip->saddr);
	return 1;
}

/* Parse an Ethernet frame. Returns PARSE_OK or the global counter to bump. */
static __always_inline int parse_packet(void *data, void *data_end, __u32 wire_len, struct packet *pkt)
{
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);

	if (is_untagged_ipv4(data, data_end))
		return parse_untagged_ipv4(data, data_end, wire_len, pkt);
	if ((void *)(eth + 1) > data_end)
		return PARSE_TRUNCATED;
	__u16 proto = bpf_ntohs(eth->h_proto);
#pragma unroll
	for (int i = 0; i < SL_MAX_VLAN_TAGS; i++) {
		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		__be16 *tag = data + off; /* TCI, then the encapsulated EtherType */
		if ((void *)(tag + 2) > data_end)
			return PARSE_TRUNCATED;
		proto = bpf_ntohs(tag[1]);
		off += 4;
	}
	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD)
		return PARSE_HEADER_LIMIT;

	int rc;
	if (proto == ETH_P_IP)
		rc = parse_ipv4(data, data_end, wire_len, off, pkt);
	else if (proto == ETH_P_IPV6)
		rc = parse_ipv6(data, data_end, wire_len, off, pkt);
	else
		return PARSE_NOT_IP;
	if (rc != PARSE_OK)
		return rc;
	return parse_l4(data, data_end, pkt);
}

#endif /* SLUICE_BPF_PARSE_H */
