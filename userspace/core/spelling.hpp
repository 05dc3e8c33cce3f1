// Suggestions for mistyped names (commands, policy file fields).
#pragma once

#include <string>
#include <vector>

namespace sluice {

// Whether one typo turns `a` into `b`: a letter wrong, missing or extra, or
// two neighbouring letters swapped. Equal strings are not a typo apart.
bool one_typo_apart(const std::string& a, const std::string& b);

// The first of `names` one typo away from `word`, or "" when none is.
std::string one_typo_from(const std::string& word, const std::vector<std::string>& names);

// "; did you mean 'NAME'?" to end an error with, or "" for no suggestion.
std::string did_you_mean(const std::string& name);

}  // namespace sluice
