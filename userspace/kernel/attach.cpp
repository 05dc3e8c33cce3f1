#include "kernel/attach.hpp"

#include <bpf/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <xdp/libxdp.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "core/error.hpp"
#include "kernel/log.hpp"
#include "kernel/map.hpp"
#include "sluice.skel.h"

namespace sluice::kernel {

namespace {

// The quick judge of bpf/sluice.bpf.c: the program sluice puts on the hook.
constexpr const char* kProgName = "sluice_xdp";

// What libxdp reports attached to an interface; closed on scope exit.
class AttachedPrograms {
 public:
  explicit AttachedPrograms(int ifindex) {
    xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
    if (!libxdp_get_error(mp)) mp_ = mp;
  }
  ~AttachedPrograms() {
    if (mp_) xdp_multiprog__close(mp_);
  }
  AttachedPrograms(const AttachedPrograms&) = delete;
  AttachedPrograms& operator=(const AttachedPrograms&) = delete;

  bool any() const { return mp_ != nullptr && (legacy() ? xdp_multiprog__main_prog(mp_) != nullptr : true); }
  bool legacy() const { return mp_ && xdp_multiprog__is_legacy(mp_); }
  xdp_attach_mode mode() const { return mp_ ? xdp_multiprog__attach_mode(mp_) : XDP_MODE_UNSPEC; }
  xdp_multiprog* get() const { return mp_; }

  // sluice's program, alone on the hook or behind the dispatcher.
  xdp_program* sluice() const {
    if (!mp_) return nullptr;
    if (legacy()) {
      xdp_program* p = xdp_multiprog__main_prog(mp_);
      return p && std::strcmp(xdp_program__name(p), kProgName) == 0 ? p : nullptr;
    }
    for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp_); p; p = xdp_multiprog__next_prog(p, mp_))
      if (std::strcmp(xdp_program__name(p), kProgName) == 0) return p;
    return nullptr;
  }

 private:
  xdp_multiprog* mp_ = nullptr;
};

sl_attach_key attach_key(const std::string& netns, const std::string& ifname) {
  sl_attach_key key{};
  std::strncpy(key.netns, netns.c_str(), sizeof(key.netns) - 1);
  std::strncpy(key.ifname, ifname.c_str(), sizeof(key.ifname) - 1);
  return key;
}

int ifindex_of(const std::string& netns, const std::string& ifname) {
  int ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (ifindex == 0)
    throw UsageError("no interface '" + ifname + "'" + (netns.empty() ? "" : " in network namespace '" + netns + "'") +
                     " (see: ip" + (netns.empty() ? "" : " -n " + netns) + " link)");
  return ifindex;
}

uint32_t flags_for(xdp_attach_mode mode) {
  return mode == XDP_MODE_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
}

// sluice's egress filter: one fixed handle and priority on the clsact egress
// hook, so an upgrade replaces it in place and detach finds it.
constexpr uint32_t kTcHandle = 0x51ce;
constexpr uint32_t kTcPriority = 0x51;

// Attaches (or replaces) the egress program; returns its program id.
uint32_t attach_egress(const DataPath& dp, int ifindex, const std::string& ifname) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_EGRESS);
  int err = bpf_tc_hook_create(&hook);
  if (err && err != -EEXIST) throw SystemError("cannot create the clsact qdisc on " + ifname + library_detail(), -err);
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = bpf_program__fd(dp.skel()->progs.sluice_tc_egress),
              .flags = BPF_TC_F_REPLACE, .handle = kTcHandle, .priority = kTcPriority);
  err = bpf_tc_attach(&hook, &opts);
  if (err) throw SystemError("cannot attach the egress program to " + ifname + library_detail(), -err);
  return opts.prog_id;
}

// Removes sluice's egress filter; the clsact qdisc stays for other users.
void detach_egress(int ifindex) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_EGRESS);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
  bpf_tc_detach(&hook, &opts);  // absent already: nothing to do
}

// Takes sluice's XDP program off the hook; returns libxdp's error, or 0.
int detach_xdp(const AttachedPrograms& attached, int ifindex) {
  clear_library_message();
  return attached.legacy() ? xdp_multiprog__detach(attached.get())
                           : xdp_program__detach(attached.sluice(), ifindex, attached.mode(), 0);
}

// The program libxdp puts on the hook: the quick judge, which hands packets
// to the complete one (see enum sl_judge). libxdp loads the object.
xdp_program* quick_judge(const DataPath& dp) {
  DECLARE_LIBXDP_OPTS(xdp_program_opts, opts, .obj = dp.object(), .prog_name = kProgName);
  xdp_program* prog = xdp_program__create(&opts);
  if (long err = libxdp_get_error(prog)) throw SystemError("cannot prepare the XDP program" + library_detail(), -err);
  return prog;
}

// Replace sluice's program in place with the new build.
void upgrade(DataPath& dp, const AttachedPrograms& attached, int ifindex, const std::string& ifname) {
  xdp_program* old = attached.sluice();
  if (attached.legacy()) {
    // Alone on the hook: one atomic netlink replace, no gap, no overlap.
    dp.load();
    LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = xdp_program__fd(old));
    clear_library_message();
    int err = bpf_xdp_attach(ifindex, dp.xdp_prog_fd(), XDP_FLAGS_REPLACE | flags_for(attached.mode()), &opts);
    if (err) throw SystemError("cannot replace sluice on " + ifname + library_detail(), -err);
    return;
  }
  // Behind the dispatcher libxdp has no replace: add the new program, then
  // remove the old one. For the moment both run, a new connection may be
  // charged twice.
  xdp_program* prog = quick_judge(dp);
  int err = xdp_program__attach(prog, ifindex, attached.mode(), 0);
  xdp_program__close(prog);
  if (err) throw SystemError("cannot attach the new sluice to " + ifname + library_detail(), -err);
  dp.connect_judges();
  err = xdp_program__detach(old, ifindex, attached.mode(), 0);
  if (err) throw SystemError("attached the new sluice to " + ifname + " but cannot remove the old" + library_detail(), -err);
}

}  // namespace

const char* mode_name(uint8_t xdp_mode) {
  return xdp_mode == SL_XDP_NATIVE ? "native" : xdp_mode == SL_XDP_GENERIC ? "generic" : "unknown";
}

std::optional<uint32_t> sluice_prog_id(int ifindex) {
  AttachedPrograms attached(ifindex);
  if (xdp_program* p = attached.sluice()) return xdp_program__id(p);
  return std::nullopt;
}

AttachOutcome attach(DataPath& dp, const std::string& netns, const std::string& ifname, XdpModeRequest request) {
  int ifindex = ifindex_of(netns, ifname);
  AttachOutcome out;
  bool fresh = false;  // the XDP program was not there before
  bool egress = false;  // this call put the egress filter on
  {
    AttachedPrograms attached(ifindex);
    if (attached.sluice()) {
      upgrade(dp, attached, ifindex, ifname);
      out.upgraded = true;
    } else if (attached.legacy() && attached.any()) {
      // Another program holds the hook alone, outside libxdp's dispatcher:
      // taking its place would silently switch off whatever it does.
      xdp_program* other = xdp_multiprog__main_prog(attached.get());
      throw SystemError(ifname + " already runs the XDP program '" + xdp_program__name(other) + "' (id " +
                            std::to_string(xdp_program__id(other)) +
                            ") outside libxdp's dispatcher, and sluice will not replace it; unload it first "
                            "('xdp-loader unload " + ifname + " --all' or 'ip link set " + ifname +
                            " xdp off'), or load it with xdp-loader where the kernel allows the dispatcher",
                        EBUSY);
    } else {
      xdp_program* prog = quick_judge(dp);
      auto attach_in = [&](xdp_attach_mode mode) {
        clear_library_message();
        return xdp_program__attach(prog, ifindex, mode, 0);
      };
      int err;
      if (request == XdpModeRequest::Generic) {
        err = attach_in(XDP_MODE_SKB);
      } else {
        err = attach_in(XDP_MODE_NATIVE);
        if (err && request == XdpModeRequest::Auto) {
          out.note = "native XDP is not available on " + ifname + library_detail() +
                     "; attached in generic mode, which runs later in the stack and costs more per packet";
          err = attach_in(XDP_MODE_SKB);
        }
      }
      xdp_program__close(prog);
      if (err) {
        if (request == XdpModeRequest::Native && (err == -EOPNOTSUPP || err == -EINVAL))
          throw UsageError("native XDP is not available on " + ifname + library_detail() +
                           "; use --mode generic or --mode auto");
        throw SystemError("cannot attach to " + ifname + library_detail(), -err);
      }
      fresh = true;
    }
  }

  try {
    // Until now packets for the complete judge passed unjudged (fail open).
    if (fresh) dp.connect_judges();
    AttachedPrograms now(ifindex);
    xdp_program* mine = now.sluice();
    if (!mine) throw SystemError("attached to " + ifname + " but cannot find the program there", ENOENT);
    out.attachment.netns = netns;
    out.attachment.ifname = ifname;
    sl_attachment& info = out.attachment.info;
    info.ifindex = static_cast<uint32_t>(ifindex);
    info.xdp_prog_id = xdp_program__id(mine);
    info.xdp_mode = now.mode() == XDP_MODE_SKB ? SL_XDP_GENERIC : SL_XDP_NATIVE;
    info.multiprog = now.legacy() ? 0 : 1;
    info.attached_at = static_cast<uint64_t>(time(nullptr));
    info.tc_prog_id = attach_egress(dp, ifindex, ifname);
    egress = true;
    map_update(dp.map_fd(dp.skel()->maps.attachments), attach_key(netns, ifname), info, "attachments");
  } catch (...) {
    // A first attach that fails half-way takes its programs off again: the
    // device is as it was, not judged by a program nobody recorded.
    if (fresh) {
      AttachedPrograms now(ifindex);
      if (now.sluice()) detach_xdp(now, ifindex);
      if (egress) detach_egress(ifindex);
    }
    throw;
  }
  return out;
}

void detach(const DataPath* dp, const std::string& netns, const std::string& ifname) {
  int ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (ifindex == 0) {
    for (const auto& a : dp ? list_attachments(*dp) : std::vector<Attachment>{})
      if (a.ifname == ifname && a.netns != netns && !a.netns.empty())
        throw UsageError("no interface '" + ifname + "' here; sluice is attached to " + ifname +
                         " in network namespace '" + a.netns + "': sluice -n " + a.netns + " detach " + ifname);
    if (dp) forget_attachment(*dp, netns, ifname);
    ifindex_of(netns, ifname);  // throws the "no interface" error
  }
  AttachedPrograms attached(ifindex);
  xdp_program* mine = attached.sluice();
  if (!mine) {
    if (dp) forget_attachment(*dp, netns, ifname);
    throw UsageError("sluice is not attached to " + ifname +
                     (netns.empty() ? "" : " in network namespace '" + netns + "'") + " (see: sluice status)");
  }
  if (int err = detach_xdp(attached, ifindex))
    throw SystemError("cannot detach from " + ifname + library_detail(), -err);
  detach_egress(ifindex);
  if (dp) forget_attachment(*dp, netns, ifname);
}

std::vector<Attachment> list_attachments(const DataPath& dp) {
  std::vector<Attachment> out;
  for (const auto& [key, info] : map_entries<sl_attach_key, sl_attachment>(dp.map_fd(dp.skel()->maps.attachments)))
    out.push_back(Attachment{std::string(key.netns, strnlen(key.netns, sizeof(key.netns))),
                             std::string(key.ifname, strnlen(key.ifname, sizeof(key.ifname))), info});
  return out;
}

void forget_attachment(const DataPath& dp, const std::string& netns, const std::string& ifname) {
  sl_attach_key key = attach_key(netns, ifname);
  bpf_map_delete_elem(dp.map_fd(dp.skel()->maps.attachments), &key);
}

}  // namespace sluice::kernel
