/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Crafted replies: turn a refused packet into a RST+ACK in place and send
 * it back out of the interface it came in on (XDP_TX). A refused SYN makes
 * the client's connect() fail at once with "connection refused"; a refused
 * request on an established connection resets it ("connection reset").
 *
 * The reply keeps the Ethernet and VLAN headers (addresses swapped), drops
 * IPv4 options and IPv6 extension headers, and carries correct IP and TCP
 * checksums: receivers on veth trust CHECKSUM_PARTIAL, so a wrong checksum
 * would go unnoticed in tests and fail on real NICs.
 */
#ifndef SLUICE_BPF_REPLY_H
#define SLUICE_BPF_REPLY_H

#include "parse.h"

struct rst_v4 {
	struct iphdr ip;
	struct tcphdr tcp;
};

struct rst_v6 {
	struct ipv6hdr ip6;
	struct tcphdr tcp;
};

/* One's complement sum of 16-bit words, in whatever byte order they are. */
static __always_inline __u32 csum_words(const void *buf, int len)
{
	const __u16 *w = buf;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < len / 2; i++)
		sum += w[i];
	return sum;
}

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline void fill_rst_tcp(struct tcphdr *tcp, const struct packet *pkt, __u32 seq, __u32 ack)
{
	__builtin_memset(tcp, 0, sizeof(*tcp));
	tcp->source = bpf_htons(pkt->dport);
	tcp->dest = bpf_htons(pkt->sport);
	tcp->seq = bpf_htonl(seq);
	tcp->ack_seq = bpf_htonl(ack);
	tcp->doff = 5;
	tcp->rst = 1;
	tcp->ack = 1;
}

static __always_inline void swap_macs(struct ethhdr *eth)
{
	__u8 tmp[ETH_ALEN];

	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
}

/* Shrink the frame to the reply's length; returns 0 on success. */
static __always_inline int trim_to(struct xdp_md *ctx, __u32 len)
{
	__u32 have = ctx->data_end - ctx->data;

	if (have < len)
		return -1;
	return bpf_xdp_adjust_tail(ctx, (int)len - (int)have);
}

static __always_inline int build_rst_v4(struct xdp_md *ctx, const struct packet *pkt, __u32 seq, __u32 ack)
{
	struct rst_v4 r;

	__builtin_memset(&r.ip, 0, sizeof(r.ip));
	r.ip.version = 4;
	r.ip.ihl = 5;
	r.ip.tot_len = bpf_htons(sizeof(r));
	r.ip.frag_off = bpf_htons(0x4000); /* DF */
	r.ip.ttl = 64;
	r.ip.protocol = IPPROTO_TCP;
	__builtin_memcpy(&r.ip.saddr, pkt->daddr + 12, 4);
	__builtin_memcpy(&r.ip.daddr, pkt->saddr + 12, 4);
	r.ip.check = csum_fold(csum_words(&r.ip, sizeof(r.ip)));

	fill_rst_tcp(&r.tcp, pkt, seq, ack);
	__u32 sum = csum_words(&r.ip.saddr, 8) + bpf_htons(IPPROTO_TCP) +
		    bpf_htons(sizeof(r.tcp)) + csum_words(&r.tcp, sizeof(r.tcp));
	r.tcp.check = csum_fold(sum);

	__u32 l3_off = pkt->l3_off;
	if (l3_off > sizeof(struct ethhdr) + 4 * SL_MAX_VLAN_TAGS)
		return -1;
	if (trim_to(ctx, l3_off + sizeof(r)))
		return -1;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (data + l3_off + sizeof(r) > data_end)
		return -1;
	swap_macs(data);
	__builtin_memcpy(data + l3_off, &r, sizeof(r));
	return 0;
}

static __always_inline int build_rst_v6(struct xdp_md *ctx, const struct packet *pkt, __u32 seq, __u32 ack)
{
	struct rst_v6 r;

	__builtin_memset(&r.ip6, 0, sizeof(r.ip6));
	r.ip6.version = 6;
	r.ip6.payload_len = bpf_htons(sizeof(r.tcp));
	r.ip6.nexthdr = IPPROTO_TCP;
	r.ip6.hop_limit = 64;
	__builtin_memcpy(&r.ip6.saddr, pkt->daddr, 16);
	__builtin_memcpy(&r.ip6.daddr, pkt->saddr, 16);

	fill_rst_tcp(&r.tcp, pkt, seq, ack);
	__u32 sum = csum_words(&r.ip6.saddr, 32) + bpf_htons(sizeof(r.tcp)) +
		    bpf_htons(IPPROTO_TCP) + csum_words(&r.tcp, sizeof(r.tcp));
	r.tcp.check = csum_fold(sum);

	__u32 l3_off = pkt->l3_off;
	if (l3_off > sizeof(struct ethhdr) + 4 * SL_MAX_VLAN_TAGS)
		return -1;
	if (trim_to(ctx, l3_off + sizeof(r)))
		return -1;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (data + l3_off + sizeof(r) > data_end)
		return -1;
	swap_macs(data);
	__builtin_memcpy(data + l3_off, &r, sizeof(r));
	return 0;
}

/*
 * Rewrite the packet into the RST+ACK answering it; returns 0 on success.
 * A SYN (RFC 793): "If the incoming segment has no ACK field, the reset
 * takes its sequence number zero and the ACK field is set to the sum of the
 * sequence number and segment length". A segment of an established
 * connection: the reset carries exactly the sequence number the client
 * expects next, the one it acknowledged (RFC 5961 accepts nothing else).
 */
static __always_inline int build_rst(struct xdp_md *ctx, const struct packet *pkt)
{
	int syn = pkt->tcp_flags & TCP_FL_SYN;
	__u32 seq = syn ? 0 : pkt->tcp_ack;
	__u32 ack = pkt->tcp_seq + pkt->tcp_payload + (syn ? 1 : 0);

	return pkt->family == 4 ? build_rst_v4(ctx, pkt, seq, ack) : build_rst_v6(ctx, pkt, seq, ack);
}

#endif /* SLUICE_BPF_REPLY_H */
