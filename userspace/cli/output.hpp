// Output for humans (aligned tables) and for programs (--json).
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

namespace sluice::cli {

using Json = nlohmann::ordered_json;

// Columns are left-aligned, or right-aligned when the header starts with '>'
// (for numbers); the '>' is not printed.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void add(std::vector<std::string> row);
  bool empty() const { return rows_.empty(); }
  void print(std::ostream& out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

// 1234567 -> "1234567"; kept as a function so every number prints alike.
std::string count(uint64_t n);
// A rate per second with one decimal below 100, none above.
std::string per_second(double r);

void print_json(std::ostream& out, const Json& j);

}  // namespace sluice::cli
