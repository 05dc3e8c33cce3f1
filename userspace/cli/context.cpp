#include "cli/context.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <optional>

#include "cli/output.hpp"
#include "core/error.hpp"
#include "kernel/bpffs.hpp"
#include "policy/policy_file.hpp"

namespace sluice::cli {

void require_root() {
  if (geteuid() != 0)
    throw SystemError("permission denied: sluice manages BPF programs and maps; run it as root");
}

void require_kernel(const GlobalOptions& g) {
  if (g.backend) g.backend->require_kernel();
  require_root();
}

bool maps_exist(const GlobalOptions& g) {
  struct stat st {};
  return stat((g.pin_dir + "/sl_root").c_str(), &st) == 0;
}

namespace {

// The sizes of maps about to be created: `given`, else the saved policy
// file's, else the defaults.
policy::MapSizes sizes_for_new_maps(const GlobalOptions& g, const std::optional<policy::MapSizes>& given) {
  if (given) return *given;
  if (access(g.policy_file.c_str(), R_OK) == 0) {
    try {
      return policy::load_policy_file(g.policy_file).maps;
    } catch (const UsageError&) {
      // A broken file is reported when it is applied; size with defaults.
    }
  }
  return {};
}

std::unique_ptr<kernel::DataPath> open_or_create_maps(const GlobalOptions& g, bool ignore_incompatible_pins,
                                                      const std::optional<policy::MapSizes>& sizes_if_created) {
  require_kernel(g);
  kernel::ensure_pin_dir(g.pin_dir);
  kernel::DataPathOptions options;
  options.pin_dir = g.pin_dir;
  options.load_programs = false;
  options.ignore_incompatible_pins = ignore_incompatible_pins;
  if (!maps_exist(g)) options.sizes = sizes_for_new_maps(g, sizes_if_created);
  std::unique_ptr<kernel::DataPath> dp;
  try {
    dp = std::make_unique<kernel::DataPath>(options);
  } catch (const kernel::IncompatiblePins& e) {
    throw kernel::IncompatiblePins(std::string(e.what()) + "; run 'sluice reset' to remove the old maps (it keeps " +
                                   g.policy_file + ", and the next 'sluice attach' restores that policy)");
  }
  dp->load();
  return dp;
}

}  // namespace

std::unique_ptr<kernel::DataPath> open_maps(const GlobalOptions& g, bool ignore_incompatible_pins) {
  return open_or_create_maps(g, ignore_incompatible_pins, std::nullopt);
}

std::unique_ptr<kernel::DataPath> open_maps_for(const GlobalOptions& g, const policy::Policy& next) {
  return open_or_create_maps(g, false, next.maps);
}

std::unique_ptr<kernel::DataPath> open_maps_if_set_up(const GlobalOptions& g) {
  require_kernel(g);
  return maps_exist(g) ? open_maps(g) : nullptr;
}

kernel::RunningPolicy read_running_policy(const GlobalOptions& g) {
  auto dp = open_maps_if_set_up(g);
  return dp ? kernel::PolicyStore(*dp).read() : kernel::RunningPolicy{};
}

void print_not_set_up(const GlobalOptions& g, bool json) {
  if (json)
    print_json(std::cout, Json{{"set_up", false}, {"pin_dir", g.pin_dir}});
  else
    std::cout << "sluice is not set up: no maps in " << g.pin_dir << "\nstart with: sluice attach DEV\n";
}

namespace {

void restore_file(const std::string& path, const std::optional<std::string>& text) {
  try {
    if (text)
      policy::save_policy_text(path, *text);
    else
      std::filesystem::remove(path);
  } catch (const std::exception& e) {
    std::cerr << "sluice: warning: the policy was not applied and " << path << " could not be restored: " << e.what()
              << "\n";
  }
}

// The policy file is written beside its place first and renamed into it
// just before the kernel switches, so a command killed at any point leaves
// file and kernel both old or both new, but for the instant between the
// rename and the switch (then the file is new: what a reboot restores is
// never older than what ran). If the kernel refuses the policy, nothing
// changed; if the switch fails after the rename, the old file comes back.
uint64_t apply_and_save(const GlobalOptions& g, kernel::DataPath& dp, const policy::Policy& before,
                        const policy::Policy& next) {
  std::optional<std::string> old_file = policy::read_policy_text(g.policy_file);
  std::optional<policy::PendingPolicyFile> pending;
  try {
    pending.emplace(g.policy_file, policy::to_toml(next));
  } catch (const SystemError& e) {
    throw SystemError(std::string(e.what()) + "; nothing was changed");
  }
  kernel::PolicyStore store(dp);
  const uint64_t epoch_before = store.epoch();
  bool saved = false;
  uint64_t epoch;
  try {
    epoch = store.apply(next, [&] {
      pending->commit();
      saved = true;
    });
  } catch (...) {
    bool switched = true;
    try {
      switched = store.epoch() != epoch_before;
    } catch (...) {
    }
    if (saved && !switched) restore_file(g.policy_file, old_file);
    throw;
  }
  if (next.maps != before.maps)
    std::cerr << "sluice: note: map sizes apply when the maps are created; the running maps keep theirs until "
                 "'sluice reset'\n";
  return epoch;
}

}  // namespace

uint64_t change_policy(const GlobalOptions& g, const std::function<void(policy::Policy&)>& change) {
  if (g.backend) return g.backend->change_policy(change);
  auto dp = open_maps(g);
  kernel::PolicyLock lock(*dp);
  policy::Policy before = kernel::PolicyStore(*dp).read().policy;
  policy::Policy next = before;
  change(next);
  policy::validate(next);
  policy::normalize(next);
  return apply_and_save(g, *dp, before, next);
}

uint64_t replace_policy(const GlobalOptions& g, const policy::Policy& next) {
  if (g.backend) return g.backend->replace_policy(next);
  auto dp = open_maps_for(g, next);
  kernel::PolicyLock lock(*dp);
  policy::Policy before = kernel::PolicyStore(*dp).read().policy;
  return apply_and_save(g, *dp, before, next);
}

}  // namespace sluice::cli
