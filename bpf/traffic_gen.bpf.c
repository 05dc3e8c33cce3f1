// SPDX-License-Identifier: GPL-2.0
/*
 * Traffic generator of `make bench`, not part of the data path.
 *
 * User space runs `gen` with BPF_PROG_TEST_RUN and BPF_F_TEST_XDP_LIVE_FRAMES
 * on a template frame (Ethernet + IPv4 + UDP or TCP SYN): the kernel runs the
 * program on each frame and performs its verdict for real, so the
 * bpf_redirect() below sends every frame into a veth the way a NIC driver
 * would hand frames to its stack: no socket, no skb, no copy on the way in.
 *
 * Per frame the program writes a fresh source address (src_base + i mod
 * src_count, a spoofed flood from a range) and, for SYNs, a fresh source port
 * and sequence number, and recomputes the checksums so the receiver's stack
 * sees valid packets (a bad checksum would be dropped early and cheaply, and
 * mislead). UDP frames carry checksum 0 (none, legal in IPv4).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Set by user space between runs (skeleton .data). */
__u32 redirect_ifindex = 0;
__u32 src_base = 0;   /* host order */
__u32 src_count = 1;  /* sources cycled through; at least 1 */
__u32 rewrite = 0;    /* 0: frame as is, 1: IPv4 source (UDP), 2: IPv4 source + TCP SYN port/seq */

/* Frames generated so far (one generator thread, so no atomics needed). */
__u64 frames = 0;

static __always_inline __u16 fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("xdp")
int gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);

	if (rewrite == 0)
		return bpf_redirect(redirect_ifindex, 0);
	if ((void *)(ip + 1) > data_end || ip->ihl != 5)
		return XDP_ABORTED;

	__u64 n = frames++;
	__u32 count = src_count ? src_count : 1;
	__u32 src = src_base + (__u32)(n % count);
	ip->saddr = bpf_htonl(src);

	/* IPv4 header checksum over the 10 words of a 20-byte header. */
	__u16 *w = (__u16 *)ip;
	__u32 sum = 0;
	ip->check = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	ip->check = fold(sum);

	if (rewrite == 2) {
		struct tcphdr *tcp = (void *)(ip + 1);
		/* A 20-byte header plus one 4-byte option (MSS), as built by user space. */
		if ((void *)tcp + 24 > data_end || tcp->doff != 6)
			return XDP_ABORTED;
		/* A new flow per frame: the source port moves on each time the
		 * sources wrap around. */
		tcp->source = bpf_htons(1024 + (__u16)((n / count) % 64000));
		tcp->seq = bpf_htonl((__u32)n * 2654435761u);
		tcp->check = 0;
		__u16 *t = (__u16 *)tcp;
		__u32 tsum = 0;
		/* Pseudo header: addresses, protocol, TCP length (24). */
		tsum += ip->saddr & 0xffff;
		tsum += ip->saddr >> 16;
		tsum += ip->daddr & 0xffff;
		tsum += ip->daddr >> 16;
		tsum += bpf_htons(IPPROTO_TCP);
		tsum += bpf_htons(24);
#pragma unroll
		for (int i = 0; i < 12; i++)
			tsum += t[i];
		tcp->check = fold(tsum);
	}
	return bpf_redirect(redirect_ifindex, 0);
}

/*
 * A reference for the receiving side: reads the Ethernet, IPv4 and L4
 * headers (touching the packet's first cache line, as every real filter
 * must), then drops. Between xdp_drop (touches nothing) and a real data path.
 */
SEC("xdp")
int read_drop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct udphdr *l4 = (void *)(ip + 1);

	if ((void *)(l4 + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5)
		return XDP_PASS;
	/* Never true for generated traffic; keeps the reads. */
	if (ip->saddr == ip->daddr && l4->dest == l4->source)
		return XDP_PASS;
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
