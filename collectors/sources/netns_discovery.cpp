#include "collectors/sources/netns_discovery.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fnmatch.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>
#include <memory>

#include "collectors/sources/cgroup_path.h"
#include "common/read_file.h"

namespace socket_exporter {
namespace {

constexpr std::string_view kHostLabel = "host";
constexpr std::string_view kInodePrefix = "ino:";

struct DirCloser {
  void operator()(DIR* dir) const { ::closedir(dir); }
};

bool IsAllDigits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Reads a small procfs file whole.
Result<std::string> ReadSmall(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Fail(fmt::format("{}: {}", path, std::strerror(errno)));
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(fmt::format("{}: {}", path, std::strerror(errno)));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > (1U << 20)) break;  // a cgroup file is never this long
  }
  return text;
}

std::string TrimNewline(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

void AddCandidatePid(std::vector<int>& pids, int pid) {
  const auto at = std::lower_bound(pids.begin(), pids.end(), pid);
  if (at != pids.end() && *at == pid) return;
  if (pids.size() >= kMaxCandidatePids && at == pids.end()) return;
  pids.insert(at, pid);
  if (pids.size() > kMaxCandidatePids) pids.pop_back();
}

// Fills pid, comm and container_id from the first candidate whose comm can
// be read (the lower ones may have exited since the scan).
void Identify(NetnsEntry& entry, const std::string& procfs_root) {
  for (int pid : entry.pids) {
    const std::string base = fmt::format("{}/{}/", procfs_root, pid);
    auto comm = ReadSmall(base + "comm");
    if (!comm) continue;
    entry.pid = pid;
    entry.comm = TrimNewline(std::move(*comm));
    if (auto cgroup = ReadSmall(base + "cgroup"))
      entry.container_id = ContainerIdFromCgroup(*cgroup);
    return;
  }
}

struct OwnNamespace {
  dev_t dev;
  std::uint64_t inode;
};

Result<OwnNamespace> StatOwn(const NetnsDiscoveryOptions& options) {
  struct stat info {};
  if (::stat(options.self_ns_path.c_str(), &info) != 0) {
    return Fail(fmt::format("cannot identify the exporter's own network namespace ({}): {}",
                            options.self_ns_path, std::strerror(errno)));
  }
  return OwnNamespace{info.st_dev, static_cast<std::uint64_t>(info.st_ino)};
}

}  // namespace

std::string ContainerIdFromCgroup(std::string_view cgroup_text) {
  std::string_view first_found;
  while (!cgroup_text.empty()) {
    const std::size_t newline = cgroup_text.find('\n');
    std::string_view line = cgroup_text.substr(0, newline);
    cgroup_text =
        newline == std::string_view::npos ? std::string_view{} : cgroup_text.substr(newline + 1);
    // hierarchy-ID:controller-list:cgroup-path; the path may contain ':'.
    const std::size_t first_colon = line.find(':');
    if (first_colon == std::string_view::npos) continue;
    const std::size_t second_colon = line.find(':', first_colon + 1);
    if (second_colon == std::string_view::npos) continue;
    const std::string_view hierarchy = line.substr(0, first_colon);
    const std::string_view controllers =
        line.substr(first_colon + 1, second_colon - first_colon - 1);
    const std::string_view id = ContainerIdFromCgroupPath(line.substr(second_colon + 1));
    if (id.empty()) continue;
    if (hierarchy == "0" && controllers.empty()) return std::string(id);  // cgroup v2
    if (first_found.empty()) first_found = id;
  }
  return std::string(first_found);
}

void AssignNetnsLabels(std::vector<NetnsEntry>& entries) {
  for (NetnsEntry& entry : entries) {
    if (entry.is_own) {
      entry.label = kHostLabel;
    } else if (!entry.names.empty() && entry.names.front() != kHostLabel &&
               !entry.names.front().starts_with(kInodePrefix)) {
      entry.label = entry.names.front();
    } else {
      entry.label = fmt::format("{}{}", kInodePrefix, entry.inode);
    }
  }
}

void SortNetnsEntries(std::vector<NetnsEntry>& entries) {
  std::sort(entries.begin(), entries.end(), [](const NetnsEntry& a, const NetnsEntry& b) {
    if (a.is_own != b.is_own) return a.is_own;
    if (a.names.empty() != b.names.empty()) return !a.names.empty();
    if (!a.names.empty() && a.names.front() != b.names.front()) {
      return a.names.front() < b.names.front();
    }
    return a.inode < b.inode;
  });
}

Result<std::vector<NetnsEntry>> DiscoverNamespaces(const NetnsDiscoveryOptions& options) {
  TRY_ASSIGN(auto own, StatOwn(options));
  std::map<std::uint64_t, NetnsEntry> by_inode;
  by_inode[own.inode].is_own = true;

  // Named namespaces. A file there that is not an nsfs bind mount (left
  // behind by a failed `ip netns add`) has another device: skipped.
  if (std::unique_ptr<DIR, DirCloser> dir(::opendir(options.netns_dir.c_str())); dir) {
    while (const dirent* entry = ::readdir(dir.get())) {
      const std::string_view name = entry->d_name;
      if (name == "." || name == "..") continue;
      struct stat info {};
      const std::string path = options.netns_dir + "/" + std::string(name);
      if (::stat(path.c_str(), &info) != 0 || info.st_dev != own.dev) continue;
      by_inode[static_cast<std::uint64_t>(info.st_ino)].names.emplace_back(name);
    }
  }

  std::unique_ptr<DIR, DirCloser> proc(::opendir(options.procfs_root.c_str()));
  if (!proc) {
    return Fail(fmt::format("cannot list {}: {}", options.procfs_root, std::strerror(errno)));
  }
  while (const dirent* entry = ::readdir(proc.get())) {
    const std::string_view name = entry->d_name;
    if (!IsAllDigits(name)) continue;
    int pid = 0;
    if (std::from_chars(name.data(), name.data() + name.size(), pid).ec != std::errc()) continue;
    struct stat info {};
    const std::string path = fmt::format("{}/{}/ns/net", options.procfs_root, name);
    // ENOENT/ESRCH: exited during the scan; EACCES: not ours to see.
    if (::stat(path.c_str(), &info) != 0 || info.st_dev != own.dev) continue;
    AddCandidatePid(by_inode[static_cast<std::uint64_t>(info.st_ino)].pids, pid);
  }

  std::vector<NetnsEntry> entries;
  entries.reserve(by_inode.size());
  for (auto& [inode, entry] : by_inode) {
    entry.inode = inode;
    std::sort(entry.names.begin(), entry.names.end());
    Identify(entry, options.procfs_root);
    entries.push_back(std::move(entry));
  }
  AssignNetnsLabels(entries);
  SortNetnsEntries(entries);
  return entries;
}

Result<NetnsEntry> DescribeOwnNamespace(const NetnsDiscoveryOptions& options) {
  TRY_ASSIGN(auto own, StatOwn(options));
  std::vector<NetnsEntry> entries(1);
  entries[0].inode = own.inode;
  entries[0].is_own = true;
  entries[0].pids.push_back(static_cast<int>(::getpid()));
  Identify(entries[0], "/proc");
  AssignNetnsLabels(entries);
  return std::move(entries[0]);
}

bool NetnsMatchesAny(const NetnsEntry& entry, const std::vector<std::string>& patterns) {
  const auto matches = [&](const std::string& text) {
    if (text.empty()) return false;
    return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& pattern) {
      return ::fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
    });
  };
  if (matches(entry.label) || matches(entry.container_id)) return true;
  return std::any_of(entry.names.begin(), entry.names.end(), matches);
}

NetnsSelection SelectNamespaces(const std::vector<NetnsEntry>& entries, const NetnsConfig& config) {
  NetnsSelection selection;
  for (const NetnsEntry& entry : entries) {
    const bool included = config.include.empty() || NetnsMatchesAny(entry, config.include);
    if (!included || NetnsMatchesAny(entry, config.exclude)) {
      ++selection.filtered;
      continue;
    }
    if (selection.selected.size() >= config.max_namespaces) {
      ++selection.over_limit;
      continue;
    }
    selection.selected.push_back(&entry);
  }
  return selection;
}

namespace {

// True when the process is gone or exiting (a zombie, or dead): the kernel
// then refuses its ns/net link with EACCES, which is not a permission problem.
bool ProcessExiting(const std::string& procfs_root, int pid) {
  std::string stat;
  auto found = ReadWholeFile(fmt::format("{}/{}/stat", procfs_root, pid), stat);
  if (!found || !*found) return true;
  // "PID (COMM) STATE ...": COMM may hold anything, so read after the last ')'.
  const std::size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return true;
  const char state = stat[paren + 2];
  return state == 'Z' || state == 'X' || state == 'x';
}

}  // namespace

Result<UniqueFd> OpenNamespace(const NetnsEntry& entry, const NetnsDiscoveryOptions& options) {
  struct Candidate {
    std::string path;
    int pid = 0;  // 0: not a /proc/PID path
  };
  std::vector<Candidate> candidates;
  if (entry.is_own) candidates.push_back({options.self_ns_path});
  for (const std::string& name : entry.names)
    candidates.push_back({options.netns_dir + "/" + name});
  for (int pid : entry.pids) {
    candidates.push_back({fmt::format("{}/{}/ns/net", options.procfs_root, pid), pid});
  }
  std::string denied;
  for (const Candidate& candidate : candidates) {
    const std::string& path = candidate.path;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      const int error = errno;
      const bool exited = error == ENOENT || error == ESRCH ||
                          (error == EACCES && candidate.pid != 0 &&
                           ProcessExiting(options.procfs_root, candidate.pid));
      if (!exited && denied.empty()) denied = fmt::format("{}: {}", path, std::strerror(error));
      continue;
    }
    struct stat info {};
    if (::fstat(fd.get(), &info) != 0) continue;
    // A name re-bound, or a pid reused, since discovery: not this namespace.
    if (static_cast<std::uint64_t>(info.st_ino) != entry.inode) continue;
    return fd;
  }
  if (!denied.empty()) return Fail("cannot open the namespace: " + denied);
  return UniqueFd();
}

bool HasCapSysAdmin() {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  return (data[CAP_SYS_ADMIN / 32].effective & (1U << (CAP_SYS_ADMIN % 32))) != 0;
}

}  // namespace socket_exporter
