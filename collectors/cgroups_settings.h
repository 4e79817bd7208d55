// Settings of the cgroups collector (the `cgroups:` section of the config
// file), with their defaults. --list reads `hierarchy` too.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"

namespace socket_exporter {

inline constexpr std::string_view kCgroupsCollectorName = "cgroups";

struct CgroupsSettings : SectionSettings {
  enum class GroupBy : std::uint8_t {
    kCgroup,    // every cgroup on its own (its full path)
    kDepth,     // the path cut after `depth` components
    kWorkload,  // a pod, a container or a systemd unit as one (cgroup_path.h)
  };
  // Groups (after group_by) with their own series, by sockets; the rest are
  // summed into cgroup="other".
  std::uint32_t top = 20;
  GroupBy group_by = GroupBy::kCgroup;
  std::uint32_t depth = 2;  // with group_by: depth
  // Ephemeral destinations broken down by cgroup, and cgroups listed per
  // destination; 0 turns the breakdown off.
  std::uint32_t top_destinations = 5;
  std::uint32_t cgroups_per_destination = 3;
  // Per-scrape table caps: distinct cgroup IDs, and (destination, cgroup)
  // pairs. Beyond them sockets are counted in cgroup="other" / untracked.
  std::uint32_t max_tracked_cgroups = 4096;
  std::uint32_t max_tracked_pairs = 65536;
  // Where the cgroup2 hierarchy is mounted; "" = found in /proc/self/mountinfo.
  // For a container that sees the host's hierarchy at another path.
  std::string hierarchy;
};

// The `cgroups:` section; a null section gives the defaults.
std::shared_ptr<const SectionSettings> ParseCgroupsSettings(yaml::FieldReader& reader,
                                                            const yaml::Field* section);

}  // namespace socket_exporter
