// Error type shared by every module: errors are returned with context, never
// thrown across module boundaries.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace socket_exporter {

struct Error {
  std::string message;
};

template <typename T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> Fail(std::string message) {
  return std::unexpected<Error>(Error{std::move(message)});
}

}  // namespace socket_exporter
