// SPDX-License-Identifier: GPL-2.0
/*
 * Baseline programs, not part of the data path:
 *  - xdp_pass: put on the peer of a veth so XDP_TX replies are delivered
 *    (veth only forwards XDP_TX frames to a peer that runs XDP) and so the
 *    receiving veth runs NAPI;
 *  - xdp_drop: the cheapest possible program, the yardstick of `make bench`.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
