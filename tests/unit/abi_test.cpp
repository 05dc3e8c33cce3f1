// The BPF object and the C++ side agree on every map's key and value: the
// sizes libbpf reads from the compiled object (its BTF and map definitions)
// must equal the sizes of the ABI structs C++ reads and writes.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "kernel/datapath.hpp"
#include "sluice.skel.h"
#include "sluice/abi.h"

namespace {

struct Sizes {
  size_t key, value;
};

}  // namespace

TEST(Abi, EveryMapMatchesTheSharedHeader) {
  sluice::kernel::DataPath dp(sluice::kernel::DataPathOptions{});  // opened, not loaded: no privileges needed
  const std::map<std::string, Sizes> expected = {
      {"sl_root", {4, sizeof(sl_root)}},
      {"attachments", {sizeof(sl_attach_key), sizeof(sl_attachment)}},
      {"ctl_header", {4, sizeof(sl_control_header)}},
      {"ctl_services", {4, sizeof(sl_control)}},
      {"pair_buckets", {4, sizeof(sl_bucket)}},
      {"pair_stats", {4, sizeof(sl_counters)}},
      {"service_stats", {4, sizeof(sl_service_counters)}},
      {"source_buckets", {sizeof(sl_source_key), sizeof(sl_bucket)}},
      {"global_stats", {4, sizeof(sl_global_counters)}},
      {"deny_stats", {4, sizeof(sl_deny_counters)}},
      {"pol_ports", {4, sizeof(sl_port_entry)}},
      {"pol_services", {4, sizeof(sl_service)}},
      {"pol_src4_table", {4, sizeof(uint32_t)}},
  };
  for (const auto& [name, sizes] : expected) {
    bpf_map* map = bpf_object__find_map_by_name(dp.object(), name.c_str());
    ASSERT_NE(map, nullptr) << name;
    EXPECT_EQ(bpf_map__key_size(map), sizes.key) << name;
    EXPECT_EQ(bpf_map__value_size(map), sizes.value) << name;
  }
  const std::map<sluice::kernel::PolicyMap, Sizes> inner = {
      {sluice::kernel::PolicyMap::Info, {4, sizeof(sl_policy_info)}},
      {sluice::kernel::PolicyMap::SvcAddr, {sizeof(sl_addr_key), sizeof(sl_addr_service)}},
      {sluice::kernel::PolicyMap::Tenants, {4, sizeof(sl_tenant)}},
      {sluice::kernel::PolicyMap::Limits, {4, sizeof(sl_rate)}},
      {sluice::kernel::PolicyMap::SrcV4, {sizeof(sl_lpm_v4_key), sizeof(sl_source_class)}},
      {sluice::kernel::PolicyMap::SrcV6, {sizeof(sl_lpm_v6_key), sizeof(sl_source_class)}},
  };
  for (const auto& [which, sizes] : inner) {
    EXPECT_EQ(dp.inner_spec(which).key_size, sizes.key) << static_cast<int>(which);
    EXPECT_EQ(dp.inner_spec(which).value_size, sizes.value) << static_cast<int>(which);
  }
  // The flat policy arrays hold both slots.
  EXPECT_EQ(bpf_map__max_entries(dp.skel()->maps.pol_ports), SL_POLICY_SLOTS * SL_PORT_INDEX_SIZE);
  EXPECT_EQ(bpf_map__max_entries(dp.skel()->maps.pol_services), SL_POLICY_SLOTS * SL_MAX_SERVICES);
  EXPECT_EQ(bpf_map__max_entries(dp.skel()->maps.pol_src4_table), SL_POLICY_SLOTS * SL_SRC4_TABLE_SIZE);
  EXPECT_EQ(dp.inner_spec(sluice::kernel::PolicyMap::Limits).max_entries,
            SL_DEFAULT_MAX_SERVICES * SL_DEFAULT_MAX_TENANTS);  // sized by the geometry, not the template
}

TEST(Abi, PairIndexesAreDenseAndDistinct) {
  EXPECT_EQ(sl_pair_index(0, 0, 256), 0u);
  EXPECT_EQ(sl_pair_index(1, 0, 256), 256u);
  EXPECT_EQ(sl_pair_index(63, 255, 256), 64u * 256 - 1);
}
