// libFuzzer target: policy files.
//
// The input is a TOML policy file. Every input must end one of two ways:
//   * it parses: then the policy validates, is already in normal form, and
//     survives the round trip through the file format:
//     parse_policy(to_toml(p)) == p, and to_toml of that is the same text;
//   * it is refused with sluice::UsageError whose message starts with
//     "fuzz.toml:<line>:" (the file and line an operator must look at); only
//     a refusal of the file as a whole, which has no line to point at, says
//     "fuzz.toml: " instead, and only for such a file: an empty one, or one
//     cut short (the start of sluice's "# sluice policy" header, or a file
//     that begins with it, as the files sluice writes do, but lacks the
//     closing line).
// Any other exception, a crash, a hang or a sanitizer report is a bug, and
// the target aborts with the input and what went wrong.
//
//   build-fuzz/fuzz/policy_fuzz -dict=tests/fuzz/policy_fuzz.dict tests/fuzz/corpus/policy_fuzz
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "policy/policy.hpp"
#include "policy/policy_file.hpp"

namespace {

constexpr const char* kSource = "fuzz.toml";
constexpr std::string_view kHeader = "# sluice policy";  // the first line of every file sluice writes

[[noreturn]] void bug(const std::string& what, std::string_view input, const std::string& detail = "") {
  std::fprintf(stderr, "\npolicy_fuzz: BUG: %s\n", what.c_str());
  if (!detail.empty()) std::fprintf(stderr, "%s\n", detail.c_str());
  std::fprintf(stderr, "---- input (%zu bytes) ----\n%.*s\n---- end of input ----\n", input.size(),
               static_cast<int>(input.size()), input.data());
  std::abort();
}

// "<source>:<digits>:" at the start of the message.
bool located(const std::string& message, const std::string& source) {
  if (message.compare(0, source.size() + 1, source + ":") != 0) return false;
  size_t at = source.size() + 1, digits = 0;
  while (at < message.size() && message[at] >= '0' && message[at] <= '9') at++, digits++;
  return digits > 0 && at < message.size() && message[at] == ':';
}

// A file that can only be refused as a whole: nothing but blanks, or cut
// inside or after sluice's header line.
bool whole_file_case(std::string_view text) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return true;
  if (text.size() < kHeader.size() && kHeader.substr(0, text.size()) == text) return true;
  return text.substr(0, kHeader.size()) == kHeader;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  sluice::policy::Policy p;
  try {
    p = sluice::policy::parse_policy(text, kSource);
  } catch (const sluice::UsageError& e) {
    std::string message = e.what();
    std::string unlocated = std::string(kSource) + ": ";
    bool whole_file = whole_file_case(text) && message.compare(0, unlocated.size(), unlocated) == 0;
    if (!located(message, kSource) && !whole_file)
      bug("a refusal that does not name the file and line", text, "message: " + message);
    return 0;
  } catch (const std::exception& e) {
    bug("parse_policy threw something other than UsageError", text, std::string("what(): ") + e.what());
  } catch (...) {
    bug("parse_policy threw a non-standard exception", text);
  }

  // Accepted: it must be valid and already normal.
  try {
    sluice::policy::validate(p);
  } catch (const std::exception& e) {
    bug("an accepted policy does not validate", text, e.what());
  }
  sluice::policy::Policy normal = p;
  sluice::policy::normalize(normal);
  if (!(normal == p)) bug("parse_policy returned a policy that is not in normal form", text);

  // The file format keeps everything: what sluice saves, it reads back.
  std::string saved = sluice::policy::to_toml(p);
  sluice::policy::Policy back;
  try {
    back = sluice::policy::parse_policy(saved, "saved.toml");
  } catch (const std::exception& e) {
    bug("to_toml wrote a file parse_policy refuses", text, std::string(e.what()) + "\n---- to_toml ----\n" + saved);
  }
  if (!(back == p)) {
    bug("the policy changed on the way through to_toml and parse_policy", text,
        "---- to_toml ----\n" + saved + "---- to_toml of what was read back ----\n" + sluice::policy::to_toml(back));
  }
  if (sluice::policy::to_toml(back) != saved) bug("to_toml is not stable", text, saved);
  return 0;
}
