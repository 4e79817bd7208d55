#include "collectors/sources/cgroup_path.h"

#include <string>

namespace socket_exporter {
namespace {

constexpr std::size_t kContainerIdLength = 64;

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// The last run of exactly 64 hex digits in text, "" if none.
std::string_view LastContainerId(std::string_view text) {
  std::size_t end = text.size();
  while (end > 0) {
    if (!IsLowerHex(text[end - 1])) {
      --end;
      continue;
    }
    std::size_t begin = end;
    while (begin > 0 && IsLowerHex(text[begin - 1])) --begin;
    if (end - begin == kContainerIdLength) return text.substr(begin, kContainerIdLength);
    end = begin;
  }
  return {};
}

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

bool IsUnit(std::string_view component) {
  return (EndsWith(component, ".service") && component.size() > 8) ||
         (EndsWith(component, ".scope") && component.size() > 6);
}

// The pod UID inside one component, "" if it is not a pod's.
std::string_view PodUidOfComponent(std::string_view component) {
  if (component.starts_with("kubepods-") && EndsWith(component, ".slice")) {
    const std::size_t pod = component.rfind("-pod");
    if (pod == std::string_view::npos) return {};
    const std::size_t begin = pod + 4;
    const std::size_t end = component.size() - 6;  // ".slice"
    return begin < end ? component.substr(begin, end - begin) : std::string_view{};
  }
  if (component.starts_with("pod") && component.size() > 3) return component.substr(3);
  return {};
}

// Calls f(component, end_offset) for each component, shallowest first,
// where end_offset is where the component ends in path. Stops when f returns
// true.
template <typename F>
void ForEachComponent(std::string_view path, F f) {
  std::size_t pos = 0;
  while (pos < path.size()) {
    if (path[pos] == '/') {
      ++pos;
      continue;
    }
    std::size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    if (f(path.substr(pos, end - pos), end)) return;
    pos = end;
  }
}

}  // namespace

std::string_view ContainerIdFromCgroupPath(std::string_view path) {
  while (!path.empty()) {
    const std::size_t slash = path.rfind('/');
    const std::string_view component =
        slash == std::string_view::npos ? path : path.substr(slash + 1);
    if (auto id = LastContainerId(component); !id.empty()) return id;
    if (slash == std::string_view::npos) break;
    path = path.substr(0, slash);
  }
  return {};
}

std::string_view PodUidFromCgroupPath(std::string_view path) {
  std::string_view uid;
  ForEachComponent(path, [&](std::string_view component, std::size_t) {
    uid = PodUidOfComponent(component);
    return !uid.empty();
  });
  return uid;
}

std::string PodUidText(std::string_view path) {
  std::string uid(PodUidFromCgroupPath(path));
  for (char& c : uid) {
    if (c == '_') c = '-';
  }
  return uid;
}

std::string_view UnitFromCgroupPath(std::string_view path) {
  std::string_view unit;
  ForEachComponent(path, [&](std::string_view component, std::size_t) {
    if (IsUnit(component)) unit = component;
    return false;
  });
  return unit;
}

std::string_view WorkloadOfCgroupPath(std::string_view path) {
  std::size_t pod_end = 0;
  std::size_t first_end = 0;
  ForEachComponent(path, [&](std::string_view component, std::size_t end) {
    if (!PodUidOfComponent(component).empty()) {
      pod_end = end;
      return true;
    }
    if (first_end == 0 && (IsUnit(component) || !LastContainerId(component).empty())) {
      first_end = end;
    }
    return false;
  });
  if (pod_end != 0) return path.substr(0, pod_end);
  if (first_end != 0) return path.substr(0, first_end);
  return path;
}

std::string_view CgroupPathAtDepth(std::string_view path, unsigned depth) {
  if (depth == 0) return path;
  std::size_t cut = path.size();
  unsigned seen = 0;
  ForEachComponent(path, [&](std::string_view, std::size_t end) {
    if (++seen == depth) {
      cut = end;
      return true;
    }
    return false;
  });
  return path.substr(0, cut);
}

}  // namespace socket_exporter
