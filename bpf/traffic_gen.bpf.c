// SPDX-License-Identifier: GPL-2.0
/*
 * Traffic generator of `make bench`, not part of the data path.
 *
 * It hands frames to a veth the way a NIC driver hands frames to its stack:
 * as xdp_frames, so the receiving veth's NAPI takes them in with no socket,
 * no skb and no copy on its core. Two ways, the first where the kernel
 * allows it:
 *
 * - Live frames: user space runs `gen` with BPF_PROG_TEST_RUN and
 *   BPF_F_TEST_XDP_LIVE_FRAMES on a template frame (Ethernet + IPv4 + UDP or
 *   TCP SYN): the kernel runs the program on each frame and performs its
 *   verdict for real, so the bpf_redirect() below sends every frame into the
 *   veth.
 * - The pump, for kernels that refuse live frames (some locked-down ones
 *   answer EPERM): `pump` runs in native XDP on one end of a second veth
 *   pair, the loop. User space seeds the loop with a few frames from a packet
 *   socket; from then on each frame that reaches `pump` is broadcast through
 *   pump_ports to the loop's other end, which brings it back, and to the
 *   target veth. The kernel clones the frame for the loop (a page and a copy,
 *   on the pump's core), so the frames keep coming until user space lowers
 *   pump_limit. The target's core frees one page per frame, where live
 *   frames go back to their page pool.
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

/* Frames generated so far (one generator thread, or the pump's one NAPI
 * thread: no atomics needed). */
__u64 frames = 0;

static __always_inline __u16 fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Writes frame n's source (and, for SYNs, its port and sequence number) and
 * the checksums. Returns 0, or -1 for a frame that is not the template's
 * shape. */
static __always_inline int rewrite_frame(struct xdp_md *ctx, __u64 n)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);

	if (rewrite == 0)
		return 0;
	if ((void *)(ip + 1) > data_end || ip->ihl != 5)
		return -1;

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
			return -1;
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
	return 0;
}

SEC("xdp")
int gen(struct xdp_md *ctx)
{
	if (rewrite_frame(ctx, frames++))
		return XDP_ABORTED;
	return bpf_redirect(redirect_ifindex, 0);
}

/* The pump's ports (ifindexes, set by user space): key 0 the loop's other
 * end, whose peer is the device `pump` runs on; key 1 the veth the frames
 * are for. A broadcast clones the frame for every port but the last, so the
 * target gets the frame and the loop its clone. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} pump_ports SEC(".maps");

/* The pump runs while frames < pump_limit: user space raises the limit to
 * start a run of a bounded number of frames, and sets it to 0 to stop. */
__u64 pump_limit = 0;

SEC("xdp")
int pump(struct xdp_md *ctx)
{
	if (frames >= pump_limit)
		return XDP_DROP; /* stopped: the loop empties */
	if (rewrite_frame(ctx, frames++))
		return XDP_ABORTED;
	return bpf_redirect_map(&pump_ports, 0, BPF_F_BROADCAST);
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
