// What every command shares: the global options and the ways to reach the
// kernel state and the policy file.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "kernel/datapath.hpp"
#include "kernel/policy_store.hpp"
#include "policy/policy.hpp"

namespace sluice::cli {

class Backend;

struct GlobalOptions {
  std::string netns;        // -n: interfaces live in this network namespace
  std::string pin_dir;      // where the maps are pinned
  std::string policy_file;  // where policy is saved for the next boot
  bool verbose = false;
  Backend* backend = nullptr;  // null: the real kernel and files
};

// Where commands' effects go. The CLI fuzzer and tests put an in-memory
// policy here, so every argument is parsed and checked for real without a
// kernel; commands that need the kernel stop at require_kernel().
class Backend {
 public:
  virtual ~Backend() = default;
  virtual uint64_t change_policy(const std::function<void(policy::Policy&)>& change) = 0;
  virtual uint64_t replace_policy(const policy::Policy& next) = 0;
  [[noreturn]] virtual void require_kernel() = 0;
};

// Refuses to go on without root, in one clear line.
void require_root();
// The kernel is about to be touched: root is needed (and a Backend stops here).
void require_kernel(const GlobalOptions& g);

// The pinned maps (created on first use, sized from the policy file when it
// has a [maps] table), without loading any program. Maps pinned by a sluice
// with another layout are refused, with the way out, unless
// ignore_incompatible_pins (for reset, which removes them).
std::unique_ptr<kernel::DataPath> open_maps(const GlobalOptions& g, bool ignore_incompatible_pins = false);
// As open_maps, for a policy about to replace the running one: maps created
// here take that policy's sizes (its [maps] table), not the saved file's.
std::unique_ptr<kernel::DataPath> open_maps_for(const GlobalOptions& g, const policy::Policy& next);

// Whether the maps exist at all (nothing was ever set up when they don't).
bool maps_exist(const GlobalOptions& g);

// For commands that only read: the pinned maps, or null when sluice is not
// set up. Reading must not create them (76 MiB of kernel memory by default).
std::unique_ptr<kernel::DataPath> open_maps_if_set_up(const GlobalOptions& g);
// The running policy, empty when sluice is not set up; creates nothing.
kernel::RunningPolicy read_running_policy(const GlobalOptions& g);
// What status and stats say when sluice is not set up.
void print_not_set_up(const GlobalOptions& g, bool json);

// Read the running policy, let `change` edit a copy, validate it, apply it
// to the kernel atomically and save it to the policy file. On any error
// nothing changes: the kernel keeps the old policy and the file stays.
// Returns the new epoch.
uint64_t change_policy(const GlobalOptions& g, const std::function<void(policy::Policy&)>& change);

// Applies `next` (already validated) the same way.
uint64_t replace_policy(const GlobalOptions& g, const policy::Policy& next);

}  // namespace sluice::cli
