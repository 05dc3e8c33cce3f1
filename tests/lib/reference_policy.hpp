// An independent reference for the policy-level steps of sluice's XDP data
// path: given a packet the reference parser classified, what the program
// must decide — which global counter tells its fate, or which service and
// tenant it is charged to and why, which deny rule dropped it, and the XDP
// action. Written from the specification (see reference_policy.cpp), not
// from the BPF code or the policy compiler: prefixes are matched by a linear
// scan over the policy as the operator wrote it, and buckets are
// algo::TokenBucket (x/time/rate semantics), not the data path's GCRA.
//
//   ReferencePolicy ref(policy, tester.running().ids);
//   Classification c = classify(frame);
//   ReferenceDecision want = ref.judge(frame, c, now_ns);
//   // compare with XdpTester::last_decision()
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "algo/token_bucket.hpp"
#include "policy/compile.hpp"
#include "policy/policy.hpp"
#include "reference_parser.hpp"
#include "sluice/abi.h"

namespace sluice::test {

// The fields of struct sl_trace, as the reference decides them.
struct ReferenceDecision {
	std::uint32_t global = 0; // enum sl_global_counter; 0 when it reached a service
	std::uint32_t reason = 0; // enum sl_reason, when it reached a service
	std::uint16_t service_id = 0;
	std::uint16_t tenant_id = 0;
	std::uint16_t deny_id = 0;
	std::uint32_t action = 0; // XDP_PASS, XDP_DROP, XDP_TX

	bool reached_service() const { return global == 0; }
	bool operator==(const ReferenceDecision &) const = default;
};

ReferenceDecision from_trace(const sl_trace &t);
// "DENIED deny=3 action=DROP", "service 2 tenant 5 ADMITTED action=PASS", ...
std::string to_string(const ReferenceDecision &d);
// A short name of the fate, for tallies: the global counter's name, or
// "service/<reason>".
std::string fate_name(const ReferenceDecision &d);

class ReferencePolicy {
public:
	// Deliberately wrong variants of the reference, used only to show that
	// a comparison against the data path notices a wrong rule.
	enum class Fault {
		None,
		SynFinIsNewConnection,   // a SYN with FIN counts as a new connection
		ShortestTenantWins,      // the shortest matching tenant prefix wins
		AnyAddressServiceWins,   // the any-address service beats the bound one
		FragmentBeforeDeny,      // non-first fragments pass before deny rules apply
		PerSourceIgnored,        // no per-source buckets
	};

	// `policy` must be valid; `ids` are the ids the data path runs it with
	// (XdpTester::running().ids).
	ReferencePolicy(const policy::Policy &policy, const policy::IdAssignment &ids, Fault fault = Fault::None);

	// Judge one frame (its classification by the reference parser) at the
	// data path's "now". Charged units take tokens from the bucket models,
	// so call it once per packet, in order, with a clock that never goes
	// backwards.
	ReferenceDecision judge(std::span<const std::uint8_t> frame, const Classification &c, std::uint64_t now_ns);

	// The classification steps on their own.
	struct SourceClass {
		std::uint16_t tenant_id = 0; // longest matching tenant prefix, else 0
		std::uint16_t deny_id = 0;   // longest matching deny prefix, else 0
	};
	SourceClass classify_source(std::uint8_t family, const std::array<std::uint8_t, 16> &addr) const;
	// The service id for a TCP/UDP packet, or 0.
	std::uint16_t find_service(const Classification &c) const;

private:
	struct Prefix {
		std::uint8_t family = 0;
		std::array<std::uint8_t, 16> bytes{}; // IPv4 in the last four bytes
		int length = 0;                       // bits of the family's own address
		std::uint16_t id = 0;
	};
	struct ServiceEntry {
		std::uint16_t id = 0;
		std::uint8_t protocol = 0; // IPPROTO_TCP or IPPROTO_UDP
		std::uint16_t port = 0;
		bool bound = false;
		std::uint8_t family = 0;
		std::array<std::uint8_t, 16> addr{};
		const policy::Service *service = nullptr;
	};
	struct Bucket {
		std::uint64_t interval_ns = 0;
		std::uint32_t burst = 0;
	};

	static bool prefix_contains(const Prefix &p, std::uint8_t family, const std::array<std::uint8_t, 16> &addr);
	algo::TokenBucket &pair_bucket(const ServiceEntry &s, std::uint16_t tenant_id);
	algo::TokenBucket &source_bucket(const ServiceEntry &s, std::uint8_t family,
					 const std::array<std::uint8_t, 16> &addr);

	policy::Policy policy_;
	Fault fault_;
	std::vector<Prefix> tenants_, deny_;
	std::vector<ServiceEntry> services_;
	std::map<std::pair<std::uint16_t, std::uint16_t>, Bucket> limits_; // (service id, tenant id)
	std::map<std::pair<std::uint16_t, std::uint16_t>, std::unique_ptr<algo::TokenBucket>> pair_buckets_;
	std::map<std::tuple<std::uint16_t, std::uint8_t, std::array<std::uint8_t, 16>>,
		 std::unique_ptr<algo::TokenBucket>>
		source_buckets_;
};

// Whether a frame that classified Ok is any fragment, the first one
// included (IPv4 MF or offset; an IPv6 fragment header before the L4
// header): its TCP segment length is unknown, so a refused SYN in it is
// dropped rather than answered with a RST.
bool is_fragmented(std::span<const std::uint8_t> frame, const Classification &c);

} // namespace sluice::test
