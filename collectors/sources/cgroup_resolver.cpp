#include "collectors/sources/cgroup_resolver.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "common/errno_text.h"
#include "common/read_file.h"
#include "common/unique_fd.h"

namespace socket_exporter {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size() && text[i + 1] >= '0' && text[i + 1] <= '3' &&
        text[i + 2] >= '0' && text[i + 2] <= '7' && text[i + 3] >= '0' && text[i + 3] <= '7') {
      out.push_back(static_cast<char>((text[i + 1] - '0') * 64 + (text[i + 2] - '0') * 8 +
                                      (text[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

struct DirCloser {
  void operator()(DIR* dir) const { ::closedir(dir); }
};

}  // namespace

std::optional<std::string> FindCgroup2Mount(std::string_view text) {
  std::optional<std::string> first;
  while (!text.empty()) {
    const std::size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
    // id parent major:minor root mount-point options [optional...] - fstype source super
    std::vector<std::string_view> fields;
    std::size_t pos = 0;
    while (pos < line.size() && fields.size() < 64) {
      while (pos < line.size() && line[pos] == ' ') ++pos;
      if (pos >= line.size()) break;
      const std::size_t end = std::min(line.find(' ', pos), line.size());
      fields.push_back(line.substr(pos, end - pos));
      pos = end;
    }
    std::size_t dash = 6;
    while (dash < fields.size() && fields[dash] != "-") ++dash;
    if (fields.size() < 5 || dash + 1 >= fields.size()) continue;
    if (fields[dash + 1] != "cgroup2") continue;
    std::string mount = Unescape(fields[4]);
    if (fields[3] == "/") return mount;  // the whole hierarchy
    if (!first) first = std::move(mount);
  }
  return first;
}

CgroupResolver::CgroupResolver(Options options) : options_(std::move(options)) {}

CgroupResolver& CgroupResolver::Shared() {
  static CgroupResolver resolver{Options{}};
  return resolver;
}

void CgroupResolver::ResetShared(Options options) {
  CgroupResolver& shared = Shared();
  std::lock_guard lock(shared.mutex_);
  shared.options_ = std::move(options);
  shared.located_ = false;
  shared.hierarchy_.clear();
  shared.error_.clear();
  shared.paths_.clear();
  shared.path_bytes_ = 0;
  shared.truncated_ = false;
  shared.last_scan_.reset();
}

void CgroupResolver::ScanLocked() {
  ++scans_;
  last_scan_ = std::chrono::steady_clock::now();
  if (!located_) {
    located_ = true;
    if (!options_.hierarchy.empty()) {
      hierarchy_ = options_.hierarchy;
    } else if (auto text = ReadRequiredFile(options_.mountinfo_path)) {
      if (auto mount = FindCgroup2Mount(*text)) {
        hierarchy_ = *mount;
      } else {
        error_ = "no cgroup2 hierarchy is mounted (" + options_.mountinfo_path + ")";
      }
    } else {
      error_ = text.error().message;
    }
  }
  if (hierarchy_.empty()) return;

  std::unordered_map<std::uint64_t, std::string> paths;
  std::size_t bytes = 0;
  bool truncated = false;
  std::string walk_error;
  // Depth-first over directories; each entry holds the relative path.
  std::vector<std::string> pending{""};
  while (!pending.empty()) {
    std::string relative = std::move(pending.back());
    pending.pop_back();
    const std::string full = hierarchy_ + relative;
    UniqueFd fd(::open(full.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) {
      // Removed during the walk: not an error. The root failing is one.
      if (relative.empty()) walk_error = "cannot open " + full + ": " + ErrnoText(errno);
      continue;
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) continue;
    if (paths.size() >= options_.max_entries) {
      truncated = true;
      break;
    }
    std::string shown = relative.empty() ? std::string("/") : relative;
    if (shown.size() >= 16) bytes += shown.capacity() + 1;  // beyond the SSO buffer
    paths.emplace(static_cast<std::uint64_t>(st.st_ino), std::move(shown));
    std::unique_ptr<DIR, DirCloser> dir(::fdopendir(fd.get()));
    if (!dir) continue;  // fd still ours: closed by UniqueFd
    fd.Release();        // owned by dir now
    while (const dirent* entry = ::readdir(dir.get())) {
      if (entry->d_type != DT_DIR) continue;  // cgroupfs fills d_type
      const std::string_view name = entry->d_name;
      if (name == "." || name == "..") continue;
      pending.push_back(relative + "/" + std::string(name));
    }
  }
  if (!walk_error.empty() && paths.empty()) {
    error_ = walk_error;
    paths_.clear();
    return;
  }
  error_.clear();
  paths_ = std::move(paths);
  path_bytes_ = bytes;
  truncated_ = truncated;
}

void CgroupResolver::UseHierarchy(const std::string& hierarchy) {
  CgroupResolver& shared = Shared();
  Options options;
  {
    std::lock_guard lock(shared.mutex_);
    if (shared.options_.hierarchy == hierarchy) return;
    options = shared.options_;
  }
  options.hierarchy = hierarchy;
  ResetShared(std::move(options));
}

CgroupResolver::Status CgroupResolver::Resolve(std::uint64_t id, std::string& path) {
  std::lock_guard lock(mutex_);
  auto it = paths_.find(id);
  if (it == paths_.end()) {
    const auto now = std::chrono::steady_clock::now();
    if (!last_scan_ || now - *last_scan_ >= options_.min_rescan_interval) {
      ScanLocked();
      it = paths_.find(id);
    }
  }
  if (it != paths_.end()) {
    path = it->second;
    return Status::kFound;
  }
  // A hierarchy whose root cannot be read resolves nothing: "unresolved".
  return hierarchy_.empty() || paths_.empty() ? Status::kNoHierarchy : Status::kUnknown;
}

CgroupResolver::Stats CgroupResolver::GetStats() {
  std::lock_guard lock(mutex_);
  Stats stats;
  stats.hierarchy = hierarchy_;
  stats.error = error_;
  stats.entries = paths_.size();
  stats.scans = scans_;
  stats.truncated = truncated_;
  // Nodes of libstdc++'s unordered_map: next pointer, key, string (32 B),
  // cached hash; plus one bucket pointer per entry.
  constexpr std::size_t kNodeBytes = 8 + 8 + 32 + 8;
  stats.bytes = path_bytes_ + paths_.size() * (kNodeBytes + 8);
  return stats;
}

}  // namespace socket_exporter
