// Ports: intervals, their text form ("80", "1024-49151") as the config file,
// sysctls and the command line write them, and a set of ports as a bitmap.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace socket_exporter {

struct PortInterval {
  std::uint16_t first = 0;
  std::uint16_t last = 0;  // inclusive
  bool operator==(const PortInterval&) const = default;
};

// A decimal port number, 0-65535, digits only (no sign, no spaces). The
// error says "\"TEXT\" is not a port number 0-65535".
Result<std::uint16_t> ParsePort(std::string_view text);

// "N" or "N-M" with N <= M, nothing else (no spaces). The error names the
// text and says what is wrong with it.
Result<PortInterval> ParsePortInterval(std::string_view text);

// "80" or "80-90".
std::string FormatPortInterval(PortInterval ports);

// Spaces, tabs and line ends removed from both ends.
std::string_view TrimBlanks(std::string_view text);

// One bit per port, 8 KiB, no allocation: cheap to clear and test per socket.
class PortSet {
 public:
  bool Contains(std::uint16_t port) const { return (words_[port >> 6] >> (port & 63)) & 1U; }
  void Insert(std::uint16_t port) { words_[port >> 6] |= std::uint64_t{1} << (port & 63); }
  // Adds (or, with value false, removes) every port of the interval.
  void Assign(PortInterval ports, bool value);
  std::uint32_t Count() const {
    std::uint32_t n = 0;
    for (std::uint64_t word : words_) n += static_cast<std::uint32_t>(std::popcount(word));
    return n;
  }
  // Ports in both sets.
  std::uint32_t CountCommon(const PortSet& other) const {
    std::uint32_t n = 0;
    for (std::size_t i = 0; i < words_.size(); ++i) {
      n += static_cast<std::uint32_t>(std::popcount(words_[i] & other.words_[i]));
    }
    return n;
  }
  void Clear() { words_.fill(0); }

 private:
  std::array<std::uint64_t, 1024> words_{};
};

}  // namespace socket_exporter
