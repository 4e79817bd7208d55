// Resolves cgroup v2 IDs (SocketRecord::cgroup_id) to cgroup paths.
//
// A cgroup's ID is the inode number of its directory in the cgroup2
// hierarchy, so the resolver walks the hierarchy once, keeps an ID -> path
// table, and walks it again when asked for an ID it does not know, at most
// once per `min_rescan_interval` (cgroups come and go; a busy host must not
// make every scrape walk thousands of directories). An ID still unknown
// after the walk belongs to a cgroup removed since its socket was created
// (a socket keeps its cgroup's ID; the kernel keeps the cgroup alive but
// its directory is gone) or created after the last walk.
//
// The hierarchy is found in the mountinfo file (fstype cgroup2): a host with
// the hybrid layout mounts it at /sys/fs/cgroup/unified, a pure v2 host at
// /sys/fs/cgroup; a mount of the whole hierarchy (root "/") is preferred.
// Paths are relative to that mount, as `ss --cgroup` prints them ("/" is the
// root cgroup).
//
// Memory: at most max_entries IDs (the walk stops there and says so); see
// README "cgroups" for the measured size per entry.
//
// Thread safety: all methods lock; the netns passes may call from several
// threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/result.h"

namespace socket_exporter {

// Where a cgroup2 hierarchy is mounted, from mountinfo text; nullopt if none.
// Mount points are unescaped (\040 -> space).
std::optional<std::string> FindCgroup2Mount(std::string_view mountinfo_text);

class CgroupResolver {
 public:
  struct Options {
    // Where to find the hierarchy; ignored if `hierarchy` is set.
    std::string mountinfo_path = "/proc/self/mountinfo";
    // The hierarchy's mount point; "" = found in mountinfo_path.
    std::string hierarchy;
    std::chrono::steady_clock::duration min_rescan_interval = std::chrono::seconds(1);
    std::size_t max_entries = 65536;
  };

  enum class Status : std::uint8_t {
    kFound,        // path set
    kUnknown,      // not in the hierarchy at the last walk (removed since)
    kNoHierarchy,  // no cgroup2 hierarchy to look in (none mounted, or unreadable)
  };

  explicit CgroupResolver(Options options);
  CgroupResolver(const CgroupResolver&) = delete;
  CgroupResolver& operator=(const CgroupResolver&) = delete;

  // The process-wide resolver, built on first use with default options.
  static CgroupResolver& Shared();
  // Starts the shared resolver afresh with other options (tests, and a
  // configured hierarchy): forgets every path and the located mount.
  static void ResetShared(Options options);
  // Makes the shared resolver use `hierarchy` ("" = mountinfo); resets it
  // only if that changes.
  static void UseHierarchy(const std::string& hierarchy);

  // Looks `id` up, walking the hierarchy again if it is unknown and the last
  // walk is older than min_rescan_interval. `path` is assigned only on kFound.
  Status Resolve(std::uint64_t id, std::string& path);

  struct Stats {
    std::string hierarchy;    // "" if none was found
    std::string error;        // why there is none, or why the last walk failed
    std::size_t entries = 0;  // IDs known
    std::uint64_t scans = 0;  // walks made
    bool truncated = false;   // the last walk stopped at max_entries
    std::size_t bytes = 0;    // estimated heap held by the table
  };
  Stats GetStats();

 private:
  void ScanLocked();

  Options options_;
  std::mutex mutex_;
  bool located_ = false;
  std::string hierarchy_;
  std::string error_;
  std::unordered_map<std::uint64_t, std::string> paths_;
  std::size_t path_bytes_ = 0;
  std::uint64_t scans_ = 0;
  bool truncated_ = false;
  std::optional<std::chrono::steady_clock::time_point> last_scan_;
};

}  // namespace socket_exporter
