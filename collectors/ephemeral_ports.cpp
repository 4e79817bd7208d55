#include "collectors/ephemeral_ports.h"

#include <fmt/format.h>

#include "common/read_file.h"

namespace socket_exporter {
namespace {

// ParsePort, its error prefixed with the sysctl it came from.
Result<std::uint16_t> ParseSysctlPort(std::string_view text, std::string_view sysctl) {
  auto port = ParsePort(text);
  if (!port) return Fail(fmt::format("{}: {}", sysctl, port.error().message));
  return port;
}

}  // namespace

Result<PortInterval> ParseLocalPortRange(std::string_view text) {
  text = TrimBlanks(text);
  const auto space = text.find_first_of(" \t");
  if (space == std::string_view::npos) {
    return Fail(fmt::format("ip_local_port_range: expected two ports, got \"{}\"", text));
  }
  constexpr std::string_view kSysctl = "ip_local_port_range";
  TRY_ASSIGN(const std::uint16_t first,
             ParseSysctlPort(TrimBlanks(text.substr(0, space)), kSysctl));
  TRY_ASSIGN(const std::uint16_t last, ParseSysctlPort(TrimBlanks(text.substr(space)), kSysctl));
  if (first > last) {
    return Fail(fmt::format("ip_local_port_range: first port {} above last port {}", first, last));
  }
  return PortInterval{first, last};
}

// The kernel writes the list as "40000-40001,50000".
Result<std::vector<PortInterval>> ParseReservedPorts(std::string_view text) {
  std::vector<PortInterval> out;
  text = TrimBlanks(text);
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view item = TrimBlanks(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    if (item.empty()) return Fail("ip_local_reserved_ports: empty element in list");
    auto interval = ParsePortInterval(item);
    if (!interval) return Fail("ip_local_reserved_ports: " + interval.error().message);
    out.push_back(*interval);
  }
  return out;
}

Result<void> EphemeralPorts::Load(const std::string& procfs_root) {
  const std::string base = procfs_root + "/sys/net/ipv4/";
  TRY_ASSIGN(auto range_text, ReadRequiredFile(base + "ip_local_port_range"));
  TRY_ASSIGN(range_, ParseLocalPortRange(range_text));
  // Older kernels or restricted procfs may lack the reserved list: none reserved.
  std::vector<PortInterval> reserved;
  if (auto reserved_text = ReadRequiredFile(base + "ip_local_reserved_ports")) {
    TRY_ASSIGN(reserved, ParseReservedPorts(*reserved_text));
  }

  usable_.Clear();
  // PortSet::Assign sets whole words at a time: a port-by-port loop over a
  // wide range was a visible share of a small scrape (BENCHMARKS.md).
  usable_.Assign(range_, true);
  const std::uint32_t range_size = usable_.Count();
  for (const PortInterval& interval : reserved) usable_.Assign(interval, false);
  usable_count_ = usable_.Count();
  reserved_in_range_ = range_size - usable_count_;
  for (PortSet& ports : bind_locked_) ports.Clear();
  for (PortSet& ports : used_) ports.Clear();
  return {};
}

EphemeralUse EphemeralPorts::Observe(const SocketRecord& record, const Classification& cls) {
  const std::uint16_t port = record.local_port;
  if (!usable_.Contains(port)) return EphemeralUse::kOutside;
  const auto protocol = static_cast<std::size_t>(record.protocol);
  used_[protocol].Insert(port);
  if (cls.is_listener || HasNoPeer(record)) {
    // A listener, or a socket bound to the port without a peer: connect()
    // will not pick this port for anyone.
    bind_locked_[protocol].Insert(port);
    return EphemeralUse::kLocks;
  }
  // e.g. accepted on a listener inside R
  if (bind_locked_[protocol].Contains(port)) return EphemeralUse::kShared;
  return EphemeralUse::kHeld;
}

std::uint32_t EphemeralPorts::BindLockedCount(Protocol protocol) const {
  return bind_locked_[static_cast<std::size_t>(protocol)].CountCommon(usable_);
}

std::uint32_t EphemeralPorts::UsedCount(Protocol protocol) const {
  return used_[static_cast<std::size_t>(protocol)].Count();
}

}  // namespace socket_exporter
