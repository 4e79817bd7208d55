#include "collectors/ephemeral_ports.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <charconv>

#include "common/read_file.h"

namespace socket_exporter {
namespace {

bool Test(const std::array<std::uint64_t, 1024>& bits, std::uint16_t port) {
  return (bits[port >> 6] >> (port & 63)) & 1U;
}
void Set(std::array<std::uint64_t, 1024>& bits, std::uint16_t port) {
  bits[port >> 6] |= std::uint64_t{1} << (port & 63);
}
// Sets (or clears) the bits of ports first..last, inclusive.
void SetRange(std::array<std::uint64_t, 1024>& bits, std::uint32_t first, std::uint32_t last,
              bool value) {
  while (first <= last) {
    const std::uint32_t word = first >> 6;
    const std::uint32_t low = first & 63;
    const std::uint32_t high = std::min<std::uint32_t>(63, low + (last - first));
    const std::uint64_t mask = (~std::uint64_t{0} >> (63 - high)) & (~std::uint64_t{0} << low);
    if (value) {
      bits[word] |= mask;
    } else {
      bits[word] &= ~mask;
    }
    first += high - low + 1;
  }
}
std::uint32_t Count(const std::array<std::uint64_t, 1024>& bits) {
  std::uint32_t n = 0;
  for (std::uint64_t word : bits) n += static_cast<std::uint32_t>(std::popcount(word));
  return n;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

Result<std::uint16_t> ParsePort(std::string_view text, std::string_view what) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > 65535) {
    return Fail(fmt::format("{}: \"{}\" is not a port number 0-65535", what, text));
  }
  return static_cast<std::uint16_t>(value);
}

}  // namespace

Result<PortInterval> ParseLocalPortRange(std::string_view text) {
  text = Trim(text);
  const auto space = text.find_first_of(" \t");
  if (space == std::string_view::npos) {
    return Fail(fmt::format("ip_local_port_range: expected two ports, got \"{}\"", text));
  }
  auto first = ParsePort(Trim(text.substr(0, space)), "ip_local_port_range");
  if (!first) return std::unexpected(first.error());
  auto last = ParsePort(Trim(text.substr(space)), "ip_local_port_range");
  if (!last) return std::unexpected(last.error());
  if (*first > *last) {
    return Fail(
        fmt::format("ip_local_port_range: first port {} above last port {}", *first, *last));
  }
  return PortInterval{*first, *last};
}

Result<std::vector<PortInterval>> ParseReservedPorts(std::string_view text) {
  std::vector<PortInterval> out;
  text = Trim(text);
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view item = Trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    if (item.empty()) return Fail("ip_local_reserved_ports: empty element in list");
    const auto dash = item.find('-');
    if (dash == std::string_view::npos) {
      auto port = ParsePort(item, "ip_local_reserved_ports");
      if (!port) return std::unexpected(port.error());
      out.push_back({*port, *port});
      continue;
    }
    auto first = ParsePort(Trim(item.substr(0, dash)), "ip_local_reserved_ports");
    if (!first) return std::unexpected(first.error());
    auto last = ParsePort(Trim(item.substr(dash + 1)), "ip_local_reserved_ports");
    if (!last) return std::unexpected(last.error());
    if (*first > *last) {
      return Fail(fmt::format("ip_local_reserved_ports: range \"{}\" runs backwards", item));
    }
    out.push_back({*first, *last});
  }
  return out;
}

Result<void> EphemeralPorts::Load(const std::string& procfs_root) {
  const std::string base = procfs_root + "/sys/net/ipv4/";
  auto range_text = ReadRequiredFile(base + "ip_local_port_range");
  if (!range_text) return std::unexpected(range_text.error());
  auto range = ParseLocalPortRange(*range_text);
  if (!range) return std::unexpected(range.error());
  // Older kernels or restricted procfs may lack the reserved list: none reserved.
  std::vector<PortInterval> reserved;
  if (auto reserved_text = ReadRequiredFile(base + "ip_local_reserved_ports")) {
    auto parsed = ParseReservedPorts(*reserved_text);
    if (!parsed) return std::unexpected(parsed.error());
    reserved = std::move(*parsed);
  }

  range_ = *range;
  usable_.fill(0);
  // Whole words at a time: a port-by-port loop over a wide range was a
  // visible share of a small scrape (BENCHMARKS.md).
  SetRange(usable_, range_.first, range_.last, true);
  const std::uint32_t range_size = Count(usable_);
  for (const PortInterval& interval : reserved) {
    SetRange(usable_, interval.first, interval.last, false);
  }
  usable_count_ = Count(usable_);
  reserved_in_range_ = range_size - usable_count_;
  for (PortBits& bits : bind_locked_) bits.fill(0);
  for (PortBits& bits : used_) bits.fill(0);
  return {};
}

EphemeralUse EphemeralPorts::Observe(const SocketRecord& record, const Classification& cls) {
  const std::uint16_t port = record.local_port;
  if (!Test(usable_, port)) return EphemeralUse::kOutside;
  const auto protocol = static_cast<std::size_t>(record.protocol);
  Set(used_[protocol], port);
  if (cls.is_listener || HasNoPeer(record)) {
    // A listener, or a socket bound to the port without a peer: connect()
    // will not pick this port for anyone.
    Set(bind_locked_[protocol], port);
    return EphemeralUse::kLocks;
  }
  if (Test(bind_locked_[protocol], port)) return EphemeralUse::kShared;
  return EphemeralUse::kHeld;
}

std::uint32_t EphemeralPorts::BindLockedCount(Protocol protocol) const {
  const PortBits& locked = bind_locked_[static_cast<std::size_t>(protocol)];
  std::uint32_t n = 0;
  for (std::size_t i = 0; i < locked.size(); ++i) {
    n += static_cast<std::uint32_t>(std::popcount(locked[i] & usable_[i]));
  }
  return n;
}

std::uint32_t EphemeralPorts::UsedCount(Protocol protocol) const {
  return Count(used_[static_cast<std::size_t>(protocol)]);
}

}  // namespace socket_exporter
