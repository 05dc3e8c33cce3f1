// Reference policy steps, from the specification of the data path:
//
//  * A packet the parser cannot read (NOT_IP, TRUNCATED, MALFORMED,
//    HEADER_LIMIT) passes, counted under that name, charged to no one.
//  * The source address, within its own family, picks the deny rule with the
//    longest prefix containing it (any containing deny prefix drops the
//    packet: DENIED, XDP_DROP) and the tenant with the longest prefix
//    containing it, else the default tenant 0. An IPv6 source never matches
//    an IPv4 prefix and vice versa, IPv4-mapped or not.
//  * Deny rules apply to every parsed packet, fragments included. A
//    non-first fragment then passes uncharged (FRAGMENT); a protocol other
//    than TCP and UDP passes (OTHER_L4).
//  * The service is chosen by (protocol, destination port[, destination
//    address]): a service bound to the packet's destination address (same
//    family, same address) wins over the any-address service on that port.
//    No such service: NOT_SERVICE.
//  * TCP: only a new connection is a unit of admission, that is a segment
//    whose flags & (SYN|ACK|RST|FIN) == SYN. Anything else to a TCP service
//    passes uncharged with reason PASSED. UDP: every datagram is a unit.
//  * A unit takes a token from the service's per-source bucket (one per
//    client address, when the service has a per-source rate; refused:
//    SOURCE_LIMIT) and then from the (service, tenant) bucket (the tenant's
//    limit if it has one, else the service's rate; none: unlimited;
//    refused: TENANT_LIMIT). Buckets start full.
//  * Admitted: XDP_PASS. Refused: a dry-run service passes it anyway (the
//    trace still gives the reason); a service that rejects with RST answers
//    a TCP SYN that is not part of any fragment with XDP_TX; everything else
//    refused is dropped.
#include "reference_policy.hpp"

#include <linux/bpf.h>
#include <netinet/in.h>

#include <cstring>
#include <stdexcept>

#include "kernel/counters.hpp"

namespace sluice::test {

namespace {

constexpr std::uint8_t kFlagFin = 0x01;
constexpr std::uint8_t kFlagSyn = 0x02;
constexpr std::uint8_t kFlagRst = 0x04;
constexpr std::uint8_t kFlagAck = 0x10;

const char *action_name(std::uint32_t action)
{
	switch (action) {
	case XDP_ABORTED:
		return "ABORTED";
	case XDP_DROP:
		return "DROP";
	case XDP_PASS:
		return "PASS";
	case XDP_TX:
		return "TX";
	case XDP_REDIRECT:
		return "REDIRECT";
	}
	return "?";
}

std::array<std::uint8_t, 16> bytes_of(const policy::IpAddr &a)
{
	return a.bytes;
}

} // namespace

ReferenceDecision from_trace(const sl_trace &t)
{
	ReferenceDecision d;
	d.global = t.global;
	d.reason = t.reason;
	d.service_id = t.service_id;
	d.tenant_id = t.tenant_id;
	d.deny_id = t.deny_id;
	d.action = t.action;
	return d;
}

std::string fate_name(const ReferenceDecision &d)
{
	if (d.global != 0)
		return kernel::global_counter_name(static_cast<int>(d.global));
	return std::string("service/") + kernel::reason_name(static_cast<int>(d.reason));
}

std::string to_string(const ReferenceDecision &d)
{
	std::string s = fate_name(d);
	s += " service=" + std::to_string(d.service_id) + " tenant=" + std::to_string(d.tenant_id) +
	     " deny=" + std::to_string(d.deny_id) + " action=" + action_name(d.action);
	return s;
}

ReferencePolicy::ReferencePolicy(const policy::Policy &policy, const policy::IdAssignment &ids, Fault fault)
	: policy_(policy), fault_(fault)
{
	std::map<std::string, std::uint16_t> tenant_ids;
	tenant_ids[policy::kDefaultTenant] = 0;
	for (const auto &t : policy_.tenants) {
		if (t.name == policy::kDefaultTenant)
			continue;
		auto it = ids.tenants.find(t.name);
		if (it == ids.tenants.end())
			throw std::invalid_argument("reference policy: no id for tenant " + t.name);
		tenant_ids[t.name] = static_cast<std::uint16_t>(it->second);
		for (const auto &c : t.prefixes)
			tenants_.push_back({static_cast<std::uint8_t>(c.family()), bytes_of(c.addr), c.length,
					    tenant_ids[t.name]});
	}
	for (const auto &c : policy_.deny) {
		auto it = ids.deny.find(c);
		if (it == ids.deny.end())
			throw std::invalid_argument("reference policy: no id for deny rule " + c.to_string());
		deny_.push_back({static_cast<std::uint8_t>(c.family()), bytes_of(c.addr), c.length,
				 static_cast<std::uint16_t>(it->second)});
	}
	for (const auto &s : policy_.services) {
		auto it = ids.services.find(s.name);
		if (it == ids.services.end())
			throw std::invalid_argument("reference policy: no id for service " + s.name);
		const policy::Tuning defaults;
		if (s.http || s.tuning.adaptive != defaults.adaptive || s.tuning.breaker != defaults.breaker ||
		    s.tuning.timeout_ms != defaults.timeout_ms)
			throw std::invalid_argument("reference policy: service " + s.name +
						    " is governed by the controller; only static admission is modelled");
		ServiceEntry e;
		e.id = static_cast<std::uint16_t>(it->second);
		e.protocol = s.proto == policy::Proto::Tcp ? IPPROTO_TCP : IPPROTO_UDP;
		e.port = s.port;
		e.bound = s.addr.has_value();
		if (s.addr) {
			e.family = static_cast<std::uint8_t>(s.addr->family());
			e.addr = bytes_of(*s.addr);
		}
		e.service = &s;
		services_.push_back(e);
	}
	for (const auto &l : policy_.limits) {
		auto s = ids.services.find(l.service);
		auto t = tenant_ids.find(l.tenant);
		if (s == ids.services.end() || t == tenant_ids.end())
			throw std::invalid_argument("reference policy: limit for unknown " + l.service + "/" + l.tenant);
		limits_[{static_cast<std::uint16_t>(s->second), t->second}] =
			Bucket{policy::to_kernel(l.rate, l.burst).interval_ns, l.burst};
	}
}

bool ReferencePolicy::prefix_contains(const Prefix &p, std::uint8_t family, const std::array<std::uint8_t, 16> &addr)
{
	if (p.family != family)
		return false;
	// The family's own address: the last four bytes for IPv4.
	std::size_t first = family == 4 ? 12 : 0;
	int whole = p.length / 8, rest = p.length % 8;
	if (std::memcmp(p.bytes.data() + first, addr.data() + first, static_cast<std::size_t>(whole)) != 0)
		return false;
	if (rest == 0)
		return true;
	auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
	return (p.bytes[first + whole] & mask) == (addr[first + whole] & mask);
}

ReferencePolicy::SourceClass ReferencePolicy::classify_source(std::uint8_t family,
							      const std::array<std::uint8_t, 16> &addr) const
{
	SourceClass out;
	int best_tenant = -1, best_deny = -1;
	for (const auto &p : tenants_) {
		if (!prefix_contains(p, family, addr))
			continue;
		bool better = fault_ == Fault::ShortestTenantWins ? (best_tenant < 0 || p.length < best_tenant)
								   : p.length > best_tenant;
		if (better) {
			best_tenant = p.length;
			out.tenant_id = p.id;
		}
	}
	for (const auto &p : deny_) {
		if (prefix_contains(p, family, addr) && p.length > best_deny) {
			best_deny = p.length;
			out.deny_id = p.id;
		}
	}
	return out;
}

std::uint16_t ReferencePolicy::find_service(const Classification &c) const
{
	const ServiceEntry *any = nullptr, *bound = nullptr;
	for (const auto &s : services_) {
		if (s.protocol != c.l4_protocol || s.port != c.dport)
			continue;
		if (!s.bound)
			any = &s;
		else if (s.family == c.family && s.addr == c.daddr)
			bound = &s;
	}
	if (fault_ == Fault::AnyAddressServiceWins && any)
		return any->id;
	if (bound)
		return bound->id;
	return any ? any->id : 0;
}

algo::TokenBucket &ReferencePolicy::pair_bucket(const ServiceEntry &s, std::uint16_t tenant_id)
{
	auto &slot = pair_buckets_[{s.id, tenant_id}];
	if (!slot) {
		Bucket b{policy::to_kernel(s.service->rate, s.service->burst).interval_ns, s.service->burst};
		if (auto it = limits_.find({s.id, tenant_id}); it != limits_.end())
			b = it->second;
		slot = std::make_unique<algo::TokenBucket>(b.interval_ns, b.burst);
	}
	return *slot;
}

algo::TokenBucket &ReferencePolicy::source_bucket(const ServiceEntry &s, std::uint8_t family,
						  const std::array<std::uint8_t, 16> &addr)
{
	auto &slot = source_buckets_[{s.id, family, addr}];
	if (!slot) {
		const policy::Service &svc = *s.service;
		slot = std::make_unique<algo::TokenBucket>(
			policy::to_kernel(svc.per_source, svc.per_source_burst).interval_ns, svc.per_source_burst);
	}
	return *slot;
}

ReferenceDecision ReferencePolicy::judge(std::span<const std::uint8_t> frame, const Classification &c,
					 std::uint64_t now_ns)
{
	ReferenceDecision d;
	d.action = XDP_PASS;
	if (c.result != ParseResult::Ok) {
		d.global = static_cast<std::uint32_t>(*global_counter(c.result));
		return d;
	}

	SourceClass source = classify_source(c.family, c.saddr);
	if (fault_ == Fault::FragmentBeforeDeny && c.fragment) {
		d.global = SL_G_FRAGMENT;
		return d;
	}
	if (source.deny_id) {
		d.global = SL_G_DENIED;
		d.deny_id = source.deny_id;
		d.action = XDP_DROP;
		return d;
	}
	if (c.fragment) {
		d.global = SL_G_FRAGMENT;
		return d;
	}
	if (c.l4_protocol != IPPROTO_TCP && c.l4_protocol != IPPROTO_UDP) {
		d.global = SL_G_OTHER_L4;
		return d;
	}
	std::uint16_t service_id = find_service(c);
	if (!service_id) {
		d.global = SL_G_NOT_SERVICE;
		return d;
	}
	const ServiceEntry *entry = nullptr;
	for (const auto &s : services_)
		if (s.id == service_id)
			entry = &s;
	const policy::Service &svc = *entry->service;

	d.service_id = service_id;
	d.tenant_id = source.tenant_id;
	if (c.l4_protocol == IPPROTO_TCP) {
		std::uint8_t mask = fault_ == Fault::SynFinIsNewConnection ? (kFlagSyn | kFlagAck | kFlagRst)
									    : (kFlagSyn | kFlagAck | kFlagRst | kFlagFin);
		if ((c.tcp_flags & mask) != kFlagSyn) {
			d.reason = SL_R_PASSED;
			return d;
		}
	}

	d.reason = SL_R_ADMITTED;
	if (svc.per_source.is_set() && fault_ != Fault::PerSourceIgnored &&
	    !source_bucket(*entry, c.family, c.saddr).allow(now_ns))
		d.reason = SL_R_SOURCE_LIMIT;
	if (d.reason == SL_R_ADMITTED) {
		algo::TokenBucket &b = pair_bucket(*entry, source.tenant_id);
		if (b.interval_ns() != algo::TokenBucket::kUnlimited && !b.allow(now_ns))
			d.reason = SL_R_TENANT_LIMIT;
	}
	if (d.reason == SL_R_ADMITTED || svc.dry_run)
		return d;
	bool rst = svc.reject == policy::RejectMode::Rst && c.l4_protocol == IPPROTO_TCP && !is_fragmented(frame, c);
	d.action = rst ? XDP_TX : XDP_DROP;
	return d;
}

bool is_fragmented(std::span<const std::uint8_t> frame, const Classification &c)
{
	if (c.result != ParseResult::Ok)
		return false;
	if (c.fragment)
		return true;
	std::size_t l3 = c.l3_offset;
	if (c.family == 4)
		return ((frame[l3 + 6] << 8 | frame[l3 + 7]) & 0x3fff) != 0; // MF or an offset
	// IPv6: the classification walked these headers already, so every one
	// of them lies inside the frame; look for a fragment header among them.
	std::uint8_t next = frame[l3 + 6];
	std::size_t at = l3 + 40;
	while (at < c.l4_offset) {
		if (next == IPPROTO_FRAGMENT)
			return true;
		std::size_t size = next == IPPROTO_AH ? (frame[at + 1] + 2u) * 4u : (frame[at + 1] + 1u) * 8u;
		next = frame[at];
		at += size;
	}
	return false;
}

} // namespace sluice::test
