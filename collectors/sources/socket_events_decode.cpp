#include "collectors/sources/socket_events_decode.h"

#include <fmt/format.h>

#include <cstring>
#include <limits>

namespace socket_exporter {
namespace {

constexpr std::uint8_t kAfInet = 2;
constexpr std::uint8_t kAfInet6 = 10;

template <typename T>
T Load(const std::uint8_t* at) {
  T value;
  std::memcpy(&value, at, sizeof(T));
  return value;
}

Result<Family> FamilyOf(std::uint8_t raw) {
  if (raw == kAfInet) return Family::kIpv4;
  if (raw == kAfInet6) return Family::kIpv6;
  return Fail(fmt::format("unknown address family {}", raw));
}

IpAddress AddressOf(Family family, const std::uint8_t* at) {
  IpAddress address;
  address.family = family;
  std::memcpy(address.bytes.data(), at, family == Family::kIpv6 ? 16 : 4);
  return address;
}

// Calls on_entry(key, summed count) for each entry; fails on bad sizes.
template <typename OnEntry>
Result<void> ForEachEntry(const MapDump& dump, std::size_t key_size, const char* name,
                          OnEntry on_entry) {
  if (dump.bytes.empty()) return {};
  if (dump.key_size != key_size) {
    return Fail(
        fmt::format("map {}: key size {} (this build expects {})", name, dump.key_size, key_size));
  }
  if (dump.cpus == 0 || dump.cpus > 65536) {
    return Fail(fmt::format("map {}: {} CPUs", name, dump.cpus));
  }
  const std::size_t entry_size = key_size + dump.cpus * sizeof(std::uint64_t);
  if (dump.bytes.size() % entry_size != 0) {
    return Fail(fmt::format("map {}: {} bytes are not whole entries of {}", name, dump.bytes.size(),
                            entry_size));
  }
  for (std::size_t offset = 0; offset < dump.bytes.size(); offset += entry_size) {
    const std::uint8_t* key = dump.bytes.data() + offset;
    std::uint64_t sum = 0;
    for (std::size_t cpu = 0; cpu < dump.cpus; ++cpu) {
      const auto value = Load<std::uint64_t>(key + key_size + cpu * sizeof(std::uint64_t));
      // Saturate rather than wrap: a counter must not go down.
      sum = value > std::numeric_limits<std::uint64_t>::max() - sum
                ? std::numeric_limits<std::uint64_t>::max()
                : sum + value;
    }
    if (auto ok = on_entry(key, sum); !ok) return ok;
  }
  return {};
}

Result<ConnectCount> ConnectOf(const std::uint8_t* key, std::uint64_t count) {
  ConnectCount c;
  c.netns = Load<std::uint32_t>(key);
  c.remote_port = Load<std::uint16_t>(key + 4);
  auto family = FamilyOf(key[6]);
  if (!family) return std::unexpected(family.error());
  c.family = *family;
  if (key[7] > 2) return Fail(fmt::format("unknown connect outcome {}", key[7]));
  c.outcome = static_cast<ConnectOutcome>(key[7]);
  c.error = Load<std::int32_t>(key + 8);
  if (c.error < 0 || (c.error != 0 && c.outcome != ConnectOutcome::kClosed)) {
    return Fail(fmt::format("error {} with outcome {}", c.error, key[7]));
  }
  c.count = count;
  return c;
}

}  // namespace

const char* EventMapName(EventMap map) {
  switch (map) {
    case EventMap::kConnects:
      return "connects";
    case EventMap::kDestinations:
      return "destinations";
    case EventMap::kBinds:
      return "binds";
    case EventMap::kTcpEvents:
      return "tcp_events";
    case EventMap::kBindArgs:
      return "bind_args";
  }
  return "unknown";
}

void AppendEntry(MapDump& dump, const std::vector<std::uint8_t>& key,
                 const std::vector<std::uint64_t>& per_cpu) {
  dump.bytes.insert(dump.bytes.end(), key.begin(), key.end());
  for (std::uint64_t value : per_cpu) {
    std::uint8_t raw[sizeof(value)];
    std::memcpy(raw, &value, sizeof(value));
    dump.bytes.insert(dump.bytes.end(), raw, raw + sizeof(value));
  }
}

Result<DecodedEvents> DecodeEvents(const EventsDump& dump) {
  DecodedEvents out;
  out.overflow = dump.overflow;
  auto ok = ForEachEntry(dump.connects, kConnectKeySize, "connects",
                         [&](const std::uint8_t* key, std::uint64_t count) -> Result<void> {
                           auto c = ConnectOf(key, count);
                           if (!c) return std::unexpected(c.error());
                           out.connects.push_back(*c);
                           return {};
                         });
  if (!ok) return std::unexpected(ok.error());
  ok = ForEachEntry(dump.destinations, kDestinationKeySize, "destinations",
                    [&](const std::uint8_t* key, std::uint64_t count) -> Result<void> {
                      auto c = ConnectOf(key, count);
                      if (!c) return std::unexpected(c.error());
                      if (c->outcome == ConnectOutcome::kEstablished)
                        return Fail("an established connect per destination");
                      DestinationCount d;
                      d.connect = *c;
                      d.local = AddressOf(c->family, key + 12);
                      d.remote = AddressOf(c->family, key + 28);
                      out.destinations.push_back(d);
                      return {};
                    });
  if (!ok) return std::unexpected(ok.error());
  ok = ForEachEntry(dump.binds, kBindKeySize, "binds",
                    [&](const std::uint8_t* key, std::uint64_t count) -> Result<void> {
                      BindCount b;
                      b.netns = Load<std::uint32_t>(key);
                      b.port = Load<std::uint16_t>(key + 4);
                      b.protocol = key[6];
                      auto family = FamilyOf(key[7]);
                      if (!family) return std::unexpected(family.error());
                      b.family = *family;
                      b.error = Load<std::int32_t>(key + 8);
                      if (b.error <= 0) return Fail(fmt::format("bind error {}", b.error));
                      b.count = count;
                      out.binds.push_back(b);
                      return {};
                    });
  if (!ok) return std::unexpected(ok.error());
  ok = ForEachEntry(dump.tcp_events, kTcpEventKeySize, "tcp_events",
                    [&](const std::uint8_t* key, std::uint64_t count) -> Result<void> {
                      TcpEventCount t;
                      t.netns = Load<std::uint32_t>(key);
                      t.service_port = Load<std::uint16_t>(key + 4);
                      auto family = FamilyOf(key[6]);
                      if (!family) return std::unexpected(family.error());
                      t.family = *family;
                      if (key[7] > 2) return Fail(fmt::format("unknown TCP event kind {}", key[7]));
                      t.kind = static_cast<TcpEventKind>(key[7]);
                      if (key[8] > 1) return Fail(fmt::format("inbound flag {}", key[8]));
                      t.inbound = key[8] == 1;
                      t.count = count;
                      out.tcp_events.push_back(t);
                      return {};
                    });
  if (!ok) return std::unexpected(ok.error());
  return out;
}

}  // namespace socket_exporter
