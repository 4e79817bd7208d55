#pragma once
// Untrusted text (file contents, kernel-supplied strings) made safe to put in
// a log line or an error message.
#include <fmt/format.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace socket_exporter {

// Control bytes, non-ASCII bytes, '"' and '\' become \xNN; text longer than
// max_length bytes is cut there and "..." appended. No quotes are added.
inline std::string EscapeForLog(std::string_view text, std::size_t max_length) {
  std::string out;
  out.reserve(text.size() < max_length ? text.size() : max_length);
  for (std::size_t i = 0; i < text.size() && i < max_length; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > max_length) out += "...";
  return out;
}

}  // namespace socket_exporter
