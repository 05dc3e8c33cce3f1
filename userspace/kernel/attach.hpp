// Attaching the data path to interfaces, through libxdp so sluice shares
// the XDP hook with other programs (the libxdp dispatcher). Where the
// kernel cannot run the dispatcher, libxdp falls back to owning the hook
// alone; sluice reports which happened.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "kernel/datapath.hpp"
#include "sluice/abi.h"

namespace sluice::kernel {

enum class XdpModeRequest { Auto, Native, Generic };

struct Attachment {
  std::string netns;  // empty: the namespace the CLI runs in
  std::string ifname;
  sl_attachment info{};
};

struct AttachOutcome {
  Attachment attachment;
  bool upgraded = false;  // replaced an older sluice program in place
  std::string note;       // e.g. why native mode fell back to generic
};

// Attaches `dp` (opened, not yet loaded) to `ifname` in the current network
// namespace. When sluice is attached there already, the new program replaces
// it atomically (an upgrade: the maps, and so policy, buckets and counters,
// carry over). Records the attachment in the attachments map.
AttachOutcome attach(DataPath& dp, const std::string& netns, const std::string& ifname, XdpModeRequest mode);

// Removes sluice's XDP program from `ifname`, leaving any other program
// alone, and forgets the attachment. Throws UsageError when sluice is not
// attached there. `dp` is null when sluice is not set up (no pinned maps):
// a program left on the hook is still removed, and nothing is created.
void detach(const DataPath* dp, const std::string& netns, const std::string& ifname);

// The sluice XDP program on an interface of the current namespace, if any.
std::optional<uint32_t> sluice_prog_id(int ifindex);

std::vector<Attachment> list_attachments(const DataPath& dp);
void forget_attachment(const DataPath& dp, const std::string& netns, const std::string& ifname);

const char* mode_name(uint8_t xdp_mode);

}  // namespace sluice::kernel
