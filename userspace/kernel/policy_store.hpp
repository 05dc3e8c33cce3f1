// The running policy in the kernel maps: read it back, and replace it
// atomically. A change is written whole into the inactive slot (fresh inner
// maps, and that slot's half of the flat arrays), then sl_root.active_slot
// flips with one store: the data path sees the old policy or the new one,
// never a mix, and a CLI killed half-way leaves the old one in force.
#pragma once

#include <functional>
#include <cstdint>

#include "kernel/datapath.hpp"
#include "kernel/map.hpp"
#include "policy/compile.hpp"
#include "policy/policy.hpp"

namespace sluice::kernel {

// Serializes policy changes between CLI processes: an exclusive flock on
// the pin directory. Private (test) data paths need no lock.
class PolicyLock {
 public:
  explicit PolicyLock(const DataPath& dp);

 private:
  Fd dir_;
};

struct RunningPolicy {
  policy::Policy policy;
  policy::IdAssignment ids;
  policy::SlotContents slot;  // the raw contents, for stats and status
  uint64_t epoch = 0;         // 0: no policy was ever applied
  uint32_t active_slot = 0;
};

class PolicyStore {
 public:
  explicit PolicyStore(const DataPath& dp) : dp_(dp) {}

  RunningPolicy read() const;
  uint64_t epoch() const;  // of the running policy; 0: none yet

  // `next` must be valid. Ids stay with their names; state that belonged to
  // services, tenants or deny rules that are gone is cleared afterwards so a
  // new one reusing an id starts clean. Returns the new epoch.
  // `just_before_switch` runs once the new slot is written, immediately
  // before packets see it (to save the policy file at the same moment).
  uint64_t apply(const policy::Policy& next, const std::function<void()>& just_before_switch = {});

 private:
  policy::SlotContents read_slot(uint32_t slot) const;
  void write_slot(uint32_t slot, const policy::SlotContents& contents);
  void clear_retired_state(const policy::IdAssignment& before, const policy::IdAssignment& after);

  const DataPath& dp_;
};

}  // namespace sluice::kernel
