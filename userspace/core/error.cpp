#include "core/error.hpp"

#include <cstring>

namespace sluice {

SystemError::SystemError(const std::string& what, int err)
    : std::runtime_error(what + ": " + std::strerror(err)), err_(err) {}

}  // namespace sluice
