// The policy file (TOML). Loading validates the whole file before anything
// is applied; every error names the file, the line and the field. Saving is
// atomic: a temporary file, fsync, rename, fsync of the directory.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "policy/policy.hpp"

namespace sluice::policy {

inline constexpr const char* kDefaultPolicyFile = "/etc/sluice/policy.toml";

// Parses and validates; throws UsageError "NAME:LINE: what is wrong".
Policy parse_policy(std::string_view toml_text, const std::string& source_name);
Policy load_policy_file(const std::string& path);
// The file's text; nullopt if there is no such file.
std::optional<std::string> read_policy_text(const std::string& path);

// Canonical TOML: fields at their defaults are left out.
std::string to_toml(const Policy& policy);
// Writes atomically with mode 0600; creates the directory (0700, and 0755
// above it) if needed, and removes temporaries of saves that were killed.
void save_policy_file(const std::string& path, const Policy& policy);
void save_policy_text(const std::string& path, const std::string& text);

// A save in two steps, so the rename can be timed with something else (the
// kernel's switch): the text is written and synced beside `path` at
// construction; commit() renames it into place. Never committed, the
// temporary is removed.
class PendingPolicyFile {
 public:
  PendingPolicyFile(std::string path, const std::string& text);
  ~PendingPolicyFile();
  PendingPolicyFile(const PendingPolicyFile&) = delete;
  PendingPolicyFile& operator=(const PendingPolicyFile&) = delete;
  void commit();

 private:
  std::string path_, dir_, tmp_;
  bool committed_ = false;
};

}  // namespace sluice::policy
