// Settings of the cgroups collector (the `cgroups:` section of the config
// file), with their defaults, and the function that applies one key.
// Header-only and free of dependencies so that config/ can hold a
// CgroupsSettings until the registry-driven settings API takes it over.
#pragma once

#include <array>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace socket_exporter {

struct CgroupsSettings {
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

inline constexpr std::array<std::string_view, 8> kCgroupsSettingKeys = {"top",
                                                                        "group_by",
                                                                        "depth",
                                                                        "top_destinations",
                                                                        "cgroups_per_destination",
                                                                        "max_tracked_cgroups",
                                                                        "max_tracked_pairs",
                                                                        "hierarchy"};

// Applies `key: value` (value as the YAML scalar's text). Returns what was
// expected when the value is bad; nullopt on success. An unknown key is
// the caller's to report (kCgroupsSettingKeys lists the known ones).
inline std::optional<std::string> ApplyCgroupsSetting(CgroupsSettings& settings,
                                                      std::string_view key,
                                                      std::string_view value) {
  auto number = [&](std::uint32_t& out, std::uint32_t low,
                    std::uint32_t high) -> std::optional<std::string> {
    std::uint32_t parsed = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), parsed);
    if (value.empty() || ec != std::errc() || end != value.data() + value.size() || parsed < low ||
        parsed > high) {
      return "an integer from " + std::to_string(low) + " to " + std::to_string(high);
    }
    out = parsed;
    return std::nullopt;
  };
  if (key == "top") return number(settings.top, 0, 1000);
  if (key == "depth") return number(settings.depth, 1, 64);
  if (key == "top_destinations") return number(settings.top_destinations, 0, 100);
  if (key == "cgroups_per_destination") return number(settings.cgroups_per_destination, 1, 100);
  if (key == "max_tracked_cgroups") return number(settings.max_tracked_cgroups, 1, 1'000'000);
  if (key == "max_tracked_pairs") return number(settings.max_tracked_pairs, 1, 10'000'000);
  if (key == "hierarchy") {
    if (value.empty() || value.front() != '/') return "an absolute path";
    settings.hierarchy = std::string(value);
    return std::nullopt;
  }
  if (key == "group_by") {
    if (value == "cgroup") {
      settings.group_by = CgroupsSettings::GroupBy::kCgroup;
    } else if (value == "depth") {
      settings.group_by = CgroupsSettings::GroupBy::kDepth;
    } else if (value == "workload") {
      settings.group_by = CgroupsSettings::GroupBy::kWorkload;
    } else {
      return "'cgroup', 'depth' or 'workload'";
    }
    return std::nullopt;
  }
  return "a known key";
}

}  // namespace socket_exporter
