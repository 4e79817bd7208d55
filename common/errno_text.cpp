#include "common/errno_text.h"

#include <fmt/format.h>

#include <climits>
#include <cstring>

namespace socket_exporter {

std::string ErrnoText(int error_number) {
  // INT_MIN has no magnitude in an int; no errno is that large anyway.
  if (error_number < 0 && error_number != INT_MIN) error_number = -error_number;
  const char* description = strerrordesc_np(error_number);
  const char* name = strerrorname_np(error_number);
  if (description == nullptr) return fmt::format("unknown error {}", error_number);
  if (name == nullptr) return description;
  return fmt::format("{} ({})", description, name);
}

}  // namespace socket_exporter
