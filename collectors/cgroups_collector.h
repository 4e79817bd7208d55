// Who holds the sockets: counts and ephemeral ports per cgroup (systemd
// unit, container, pod), from the same single socket pass (README
// "cgroups").
//
// Per socket: one lookup of its cgroup ID in a small open-addressing table
// (IDs seen this scrape -> counters), the ephemeral port rules shared with
// the ephemeral collector (ephemeral_ports.h) and, for a socket holding a
// port towards a destination, one count per (destination, cgroup). No
// allocation per socket: the tables grow only when a new cgroup or pair
// appears, and keep their capacity across scrapes.
//
// In Finish, each cgroup ID seen is resolved to its path (cgroup_resolver.h),
// grouped (cgroups.group_by), ranked by sockets; the cgroups.top first keep
// their own series, the rest are summed into cgroup="other".
//
// Values of the cgroup label that are not paths (no leading '/'):
//   unowned     no cgroup reported: TIME_WAIT and request sockets, and every
//               socket of the /proc/net source
//   removed     an ID not in the hierarchy (the cgroup was removed since)
//   unresolved  no cgroup2 hierarchy is mounted to resolve IDs in
//   other       the cgroups beyond cgroups.top, summed
//
// Thread safety: see collector.h (one scrape at a time).
#pragma once

#include <array>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "collectors/cgroups_settings.h"
#include "collectors/collector.h"
#include "collectors/ephemeral_ports.h"

namespace socket_exporter {

inline constexpr std::string_view kCgroupUnowned = "unowned";
inline constexpr std::string_view kCgroupRemoved = "removed";
inline constexpr std::string_view kCgroupUnresolved = "unresolved";
inline constexpr std::string_view kCgroupOther = "other";

// The cgroup label value of a cgroup ID, ungrouped: its path, or one of the
// values above. `storage` holds the path; the result may point into it.
std::string_view CgroupName(std::uint64_t id, std::string& storage);

// Its table in --summary: sockets by cgroup.
void WriteCgroupTables(const std::vector<prometheus::MetricFamily>& families, const Config& config,
                       std::ostream& out);

class CgroupsCollector : public Collector {
 public:
  Result<void> Begin(const ScrapeContext& context) override;
  void Observe(const SocketRecord& record, const Classification& cls) override;
  Result<void> Finish(std::vector<prometheus::MetricFamily>& out) override;

 private:
  struct Slot {
    std::uint64_t id = 0;
    std::array<std::array<std::uint32_t, kTcpMaxStates>, 2> states{};
    std::array<std::uint32_t, 2> ephemeral{};  // sockets holding a usable ephemeral port
  };
  struct Pair {
    IpAddress local;
    IpAddress remote;
    std::uint16_t remote_port = 0;
    Protocol protocol = Protocol::kTcp;
    std::uint32_t slot = 0;
    bool operator==(const Pair&) const = default;
  };
  struct PairHash {
    std::size_t operator()(const Pair& p) const;
  };

  std::uint32_t SlotOf(std::uint64_t id);
  void Rehash(std::size_t buckets);

  std::shared_ptr<const Config> config_;
  const CgroupsSettings* settings_ = nullptr;  // held by config_
  EphemeralPorts ports_;
  std::vector<Slot> slots_;           // slots_[0]: cgroups beyond max_tracked_cgroups
  std::vector<std::uint32_t> table_;  // open addressing: slot index, 0 = empty
  std::uint64_t last_id_ = 0;
  std::uint32_t last_slot_ = 0;
  bool last_valid_ = false;
  std::unordered_map<Pair, std::uint32_t, PairHash> pairs_;
  std::uint64_t untracked_cgroup_sockets_ = 0;
  std::uint64_t untracked_pair_sockets_ = 0;
  std::uint64_t full_sockets_ = 0;   // sockets the kernel reports a cgroup for when it can
  std::uint64_t owned_sockets_ = 0;  // of which with a cgroup ID
  bool warned_no_ids_ = false;
};

}  // namespace socket_exporter
