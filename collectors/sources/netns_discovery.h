// Finding the network namespaces of the host, for the `netns` collector
// (docs/netns.md).
//
// A namespace is known by its nsfs inode. Discovery collects:
//   - the inode of /proc/<pid>/ns/net for every process under procfs_root
//     (thread group leaders only: a namespace held only by a non-leader
//     thread, an open descriptor or an unnamed bind mount is not found);
//   - the names under the netns directory (/var/run/netns, what `ip netns`
//     and CNI plugins create), each a bind mount of a namespace file;
//   - for each namespace, its lowest process ID with the command name and the
//     container ID found in that process's cgroup path.
// A process that exits during the scan is skipped silently (its files are
// gone: ENOENT/ESRCH), as is any other process whose files cannot be read.
//
// Each namespace gets a label value: "host" for the exporter's own
// namespace, else its first name (sorted) unless that name is "host" or
// starts with "ino:", else "ino:<inode>".
//
// Thread safety: free functions without shared state; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "config/config.h"

namespace socket_exporter {

struct NetnsEntry {
  std::uint64_t inode = 0;
  std::vector<std::string> names;  // under the netns directory, sorted
  bool is_own = false;             // the exporter's own namespace
  // Processes in the namespace, ascending, at most kMaxCandidatePids: the
  // ones tried, in order, to open the namespace when it has no name.
  std::vector<int> pids;
  int pid = 0;  // the process that identifies it (comm, container ID); 0 = none
  std::string comm;
  std::string container_id;  // 64 hex digits from pid's cgroup; "" = none
  std::string label;         // value of the netns label
};

struct NetnsDiscoveryOptions {
  std::string procfs_root = "/proc";
  std::string netns_dir = "/var/run/netns";
  // The exporter's own namespace file (always the exporter's own /proc).
  std::string self_ns_path = "/proc/self/ns/net";
};

inline constexpr std::size_t kMaxCandidatePids = 4;

// The container ID in the text of /proc/<pid>/cgroup: the last run of
// exactly 64 lower-case hex digits in the deepest path component that has
// one (docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope,
// libpod-<id>.scope, /docker/<id>, /kubepods/.../pod<uid>/<id>), from the
// cgroup v2 line ("0::") if it has one, else from the first line that does.
// "" when there is none (a process on the host).
std::string ContainerIdFromCgroup(std::string_view cgroup_text);

// Sets `label` on every entry (rules above).
void AssignNetnsLabels(std::vector<NetnsEntry>& entries);

// Sorts in selection order: the own namespace, then named ones by first
// name, then the rest by inode.
void SortNetnsEntries(std::vector<NetnsEntry>& entries);

// Scans procfs_root and netns_dir. Fails only if the own namespace cannot be
// identified or procfs_root cannot be listed. Labels are assigned and the
// result sorted.
Result<std::vector<NetnsEntry>> DiscoverNamespaces(const NetnsDiscoveryOptions& options);

// The own namespace alone (what an exporter without CAP_SYS_ADMIN reports):
// no other process's files are read.
Result<NetnsEntry> DescribeOwnNamespace(const NetnsDiscoveryOptions& options);

// True if a pattern (fnmatch(3) glob) matches the entry's label, one of its
// names or its container ID.
bool NetnsMatchesAny(const NetnsEntry& entry, const std::vector<std::string>& patterns);

struct NetnsSelection {
  std::vector<const NetnsEntry*> selected;  // in the entries' order
  std::size_t filtered = 0;                 // dropped by include/exclude
  std::size_t over_limit = 0;               // dropped by max_namespaces
};
// include (empty = all), then exclude, then the first max_namespaces.
NetnsSelection SelectNamespaces(const std::vector<NetnsEntry>& entries, const NetnsConfig& config);

// Opens the namespace for setns(): by name first, then through its
// candidate processes, checking the inode (a reused pid may point to another
// namespace). An invalid fd without error means the namespace is gone (every
// way to it vanished since discovery); an error means it is there but could
// not be opened (permissions).
Result<UniqueFd> OpenNamespace(const NetnsEntry& entry, const NetnsDiscoveryOptions& options);

// Whether the process has CAP_SYS_ADMIN in its effective set (needed for
// setns into another network namespace).
bool HasCapSysAdmin();

}  // namespace socket_exporter
