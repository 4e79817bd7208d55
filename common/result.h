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

#define SOCKET_EXPORTER_CONCAT_INNER(a, b) a##b
#define SOCKET_EXPORTER_CONCAT(a, b) SOCKET_EXPORTER_CONCAT_INNER(a, b)

// TRY(expr): if the Result expr failed, return its error from the enclosing
// function (which returns some Result<U>).
#define TRY(expr)                                                                           \
  do {                                                                                      \
    if (auto&& try_result_ = (expr); !try_result_) {                                        \
      return ::std::unexpected<::socket_exporter::Error>(::std::move(try_result_).error()); \
    }                                                                                       \
  } while (false)

// TRY_ASSIGN(declaration or lvalue, expr): takes the value of the Result
// expr, or returns its error from the enclosing function.
#define TRY_ASSIGN(lhs, expr) \
  TRY_ASSIGN_IMPL(lhs, expr, SOCKET_EXPORTER_CONCAT(try_assign_result_, __LINE__))
#define TRY_ASSIGN_IMPL(lhs, expr, result)                                                      \
  auto&& result = (expr);                                                                       \
  if (!result) return ::std::unexpected<::socket_exporter::Error>(::std::move(result).error()); \
  lhs = ::std::move(*result)
