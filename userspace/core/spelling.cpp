#include "core/spelling.hpp"

namespace sluice {

bool one_typo_apart(const std::string& a, const std::string& b) {
  if (a == b || a.size() + 1 < b.size() || b.size() + 1 < a.size()) return false;
  size_t i = 0;  // the first difference
  while (i < a.size() && i < b.size() && a[i] == b[i]) i++;
  if (a.size() == b.size()) {
    bool wrong_letter = a.compare(i + 1, std::string::npos, b, i + 1) == 0;
    bool swapped = i + 1 < a.size() && a[i] == b[i + 1] && a[i + 1] == b[i] &&
                   a.compare(i + 2, std::string::npos, b, i + 2) == 0;
    return wrong_letter || swapped;
  }
  const std::string& longer = a.size() > b.size() ? a : b;
  const std::string& shorter = a.size() > b.size() ? b : a;
  return longer.compare(i + 1, std::string::npos, shorter, i) == 0;  // one letter extra
}

std::string one_typo_from(const std::string& word, const std::vector<std::string>& names) {
  for (const std::string& name : names)
    if (one_typo_apart(word, name)) return name;
  return "";
}

std::string did_you_mean(const std::string& name) {
  return name.empty() ? "" : "; did you mean '" + name + "'?";
}

}  // namespace sluice
