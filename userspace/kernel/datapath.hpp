// The sluice data path as a C++ object: an RAII owner of the bpftool
// skeleton (bpf/sluice.bpf.c embedded in the binary). Open, configure
// (pin directory, map sizes, fake clock), then either load it directly
// (tests, maps-only use by the CLI) or hand it to libxdp to load and attach.
#pragma once

#include <bpf/libbpf.h>

#include <array>
#include <string>

#include "core/error.hpp"
#include "policy/policy.hpp"

struct sluice_bpf;

namespace sluice::kernel {

struct DataPathOptions {
  std::string pin_dir;        // empty: private, unpinned maps (tests)
  bool fake_clock = false;    // tests: "now" comes from the fake_clock map
  bool trace = false;         // tests: every decision is recorded in the trace map
  policy::MapSizes sizes;     // used when maps are created; pinned maps keep theirs
  bool load_programs = true;  // false: only create or reuse the maps
  // false: maps pinned with another layout are refused (IncompatiblePins);
  // true (reset): they are left alone and this data path makes its own.
  bool ignore_incompatible_pins = false;
};

// A map pinned by a sluice whose layout differs from this one's: it cannot
// be reused, and nothing was changed.
class IncompatiblePins : public SystemError {
 public:
  using SystemError::SystemError;
};

// The parameters of a policy map's inner maps, captured at open time
// (libbpf frees the templates once the outer maps exist).
struct InnerMapSpec {
  bpf_map_type type = BPF_MAP_TYPE_UNSPEC;
  uint32_t key_size = 0, value_size = 0, max_entries = 0, flags = 0;
};

// The policy maps that are arrays of two inner maps (the flat two-slot
// arrays, pol_ports, pol_services and pol_src4_table, are plain skeleton maps).
enum class PolicyMap { Info, SvcAddr, Tenants, Limits, SrcV4, SrcV6, Count };

class DataPath {
 public:
  explicit DataPath(const DataPathOptions& options);
  ~DataPath();
  DataPath(const DataPath&) = delete;
  DataPath& operator=(const DataPath&) = delete;

  // Create or reuse the maps and load the programs (unless load_programs is
  // false). Not for libxdp attachment, which loads the object itself.
  void load();

  // Puts this load's complete judge in the judges slot the quick judge hands
  // packets to (see enum sl_judge). load() does it; after libxdp loaded the
  // object, the caller does.
  void connect_judges() const;

  sluice_bpf* skel() const { return skel_; }
  bpf_object* object() const;
  const std::string& pin_dir() const { return pin_dir_; }
  bool is_private() const { return pin_dir_.empty(); }

  // Valid once loaded (by load() or by libxdp).
  int map_fd(bpf_map* map) const;
  int policy_outer_fd(PolicyMap which) const;
  const InnerMapSpec& inner_spec(PolicyMap which) const { return inner_[static_cast<int>(which)]; }
  bpf_map* policy_outer(PolicyMap which) const;
  int xdp_prog_fd() const;

  // The sizes the maps have (pinned maps keep the sizes they were made with).
  const policy::MapSizes& sizes() const { return sizes_; }

 private:
  void adopt_pinned_sizes();
  void apply_sizes();
  void check_pinned_layouts(bool ignore_incompatible);

  sluice_bpf* skel_ = nullptr;
  std::string pin_dir_;
  bool load_programs_;
  policy::MapSizes sizes_;
  std::array<InnerMapSpec, static_cast<int>(PolicyMap::Count)> inner_{};
};

}  // namespace sluice::kernel
