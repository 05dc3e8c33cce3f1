// The policy file (TOML). Loading validates the whole file before anything
// is applied; every error names the file, the line and the field. Saving is
// atomic: a temporary file, fsync, rename, fsync of the directory.
#pragma once

#include <string>
#include <string_view>

#include "policy/policy.hpp"

namespace sluice::policy {

inline constexpr const char* kDefaultPolicyFile = "/etc/sluice/policy.toml";

// Parses and validates; throws UsageError "NAME:LINE: what is wrong".
Policy parse_policy(std::string_view toml_text, const std::string& source_name);
Policy load_policy_file(const std::string& path);

// Canonical TOML: fields at their defaults are left out.
std::string to_toml(const Policy& policy);
// Writes atomically with mode 0600; creates the directory (0700) if needed.
void save_policy_file(const std::string& path, const Policy& policy);

}  // namespace sluice::policy
