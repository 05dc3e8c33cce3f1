#include "cli/output.hpp"

#include <algorithm>
#include <cstdio>

namespace sluice::cli {

Table::Table(std::vector<std::string> headers) {
  for (auto& h : headers) {
    bool right = !h.empty() && h[0] == '>';
    right_.push_back(right);
    headers_.push_back(right ? h.substr(1) : h);
  }
}

void Table::add(std::vector<std::string> row) {
  row.resize(headers_.size());
  rows_.push_back(std::move(row));
}

void Table::print(std::ostream& out) const {
  std::vector<size_t> width(headers_.size());
  for (size_t c = 0; c < headers_.size(); c++) {
    width[c] = headers_[c].size();
    for (const auto& r : rows_) width[c] = std::max(width[c], r[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t c = 0; c < cells.size(); c++) {
      std::string pad(width[c] - cells[c].size(), ' ');
      s += right_[c] ? pad + cells[c] : cells[c] + (c + 1 < cells.size() ? pad : "");
      if (c + 1 < cells.size()) s += "  ";
    }
    out << s << "\n";
  };
  line(headers_);
  for (const auto& r : rows_) line(r);
}

std::string count(uint64_t n) { return std::to_string(n); }

std::string per_second(double r) {
  char buf[32];
  snprintf(buf, sizeof(buf), r < 100 ? "%.1f" : "%.0f", r);
  return buf;
}

void print_json(std::ostream& out, const Json& j) { out << j.dump(2) << "\n"; }

}  // namespace sluice::cli
