#include "common/ports.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace socket_exporter {

Result<std::uint16_t> ParsePort(std::string_view text) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  const bool digits_only = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return c >= '0' && c <= '9';
  });
  if (!digits_only || ec != std::errc() || end != text.data() + text.size() || value > 65535) {
    return Fail(fmt::format("\"{}\" is not a port number 0-65535", text));
  }
  return static_cast<std::uint16_t>(value);
}

Result<PortInterval> ParsePortInterval(std::string_view text) {
  const auto dash = text.find('-');
  if (dash == std::string_view::npos) {
    TRY_ASSIGN(const std::uint16_t port, ParsePort(text));
    return PortInterval{port, port};
  }
  TRY_ASSIGN(const std::uint16_t first, ParsePort(text.substr(0, dash)));
  TRY_ASSIGN(const std::uint16_t last, ParsePort(text.substr(dash + 1)));
  if (first > last) return Fail(fmt::format("\"{}\" runs backwards", text));
  return PortInterval{first, last};
}

std::string FormatPortInterval(PortInterval ports) {
  if (ports.first == ports.last) return fmt::format("{}", ports.first);
  return fmt::format("{}-{}", ports.first, ports.last);
}

std::string_view TrimBlanks(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

void PortSet::Assign(PortInterval ports, bool value) {
  std::uint32_t first = ports.first;
  const std::uint32_t last = ports.last;
  while (first <= last) {
    const std::uint32_t word = first >> 6;
    const std::uint32_t low = first & 63;
    const std::uint32_t high = std::min<std::uint32_t>(63, low + (last - first));
    const std::uint64_t mask = (~std::uint64_t{0} >> (63 - high)) & (~std::uint64_t{0} << low);
    if (value) {
      words_[word] |= mask;
    } else {
      words_[word] &= ~mask;
    }
    first += high - low + 1;
  }
}

}  // namespace socket_exporter
