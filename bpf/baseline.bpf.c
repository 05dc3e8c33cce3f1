// SPDX-License-Identifier: GPL-2.0
/*
 * Baseline programs, not part of the data path:
 *  - xdp_pass: put on the peer of a veth so XDP_TX replies are delivered
 *    (veth only forwards XDP_TX frames to a peer that runs XDP) and so the
 *    receiving veth runs NAPI;
 *  - xdp_drop: the cheapest possible program, the yardstick of `make bench`;
 *  - tc_pass: another user's egress filter, for tests of what sluice does
 *    when the egress hook is not its alone.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
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

SEC("tc")
int tc_pass(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
