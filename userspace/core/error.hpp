// Errors, split by who can fix them.
#pragma once

#include <stdexcept>
#include <string>

namespace sluice {

// Something the operator can fix (a bad argument, a bad policy file). The CLI
// prints it as one line, exits 2 and has changed nothing.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The system refused (a syscall, the kernel, the file system). Exit 1.
class SystemError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  // "what: strerror(err)"; err is a positive errno value.
  SystemError(const std::string& what, int err);
  int error_code() const { return err_; }

 private:
  int err_ = 0;
};

}  // namespace sluice
