// Parsing and validation of the YAML configuration.
//
// The parser walks the yaml-cpp node tree by hand instead of using
// node.as<T>() so that every problem can be reported with its position, and
// so that all problems are collected in one pass: an operator fixing a config
// file should see the whole list at once, not one error per restart.
#include "config/config.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <compare>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <string_view>
#include <system_error>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/yaml_reader.h"

namespace socket_exporter {
namespace {

using yaml::ChildPath;
using yaml::ClosestMatch;
using yaml::Describe;
using yaml::Diagnostics;
using yaml::Field;
using yaml::IsStringTagged;
using yaml::ItemField;
using yaml::ItemPath;
using yaml::Join;
using yaml::MarkPosition;
using yaml::ParseDecimal;
using yaml::Position;
using yaml::PositionPrefix;
using yaml::Quote;
using yaml::Sanitize;

// Config files are a few KiB; the cap keeps a wrong path (a log file, a disk
// image) from making the exporter allocate gigabytes of YAML nodes.
constexpr std::size_t kMaxConfigBytes = std::size_t{4} << 20;
// The schema needs 3 levels of flow nesting at most. yaml-cpp guards its own
// recursion (DeepRecursion), but checking first is cheap and gives a clearer
// message.
constexpr int kMaxFlowDepth = 64;
constexpr std::size_t kMaxNameLength = 64;
constexpr std::uint32_t kMaxPort = 65535;
// service_of_port stores 1 + service index in 16 bits.
constexpr std::size_t kMaxServices = 65535;
// socket_connections publishes 56 series per port range whatever the
// sockets (service_name="other" for 14 states x 2 families x 2 directions),
// even beyond limits.max_series. 64 ranges keep those under the default cap of
// 5000; 65536 one-port ranges would make every scrape 3.7 million series.
constexpr std::size_t kMaxPortRanges = 64;
// Gaps listed in one "not in any port range" message.
constexpr std::size_t kMaxGapsListed = 10;

constexpr std::string_view kOther = "other";

// The built-in top-level keys; messages list the schema's sections between
// the first three and the last two.
constexpr std::array<std::string_view, 3> kLeadingTopLevelKeys = {"port_ranges", "services",
                                                                  "collectors"};
constexpr std::array<std::string_view, 2> kTrailingTopLevelKeys = {"netns", "limits"};
constexpr std::array<std::string_view, 2> kPortRangeKeys = {"name", "ports"};
constexpr std::array<std::string_view, 3> kServiceKeys = {"name", "ports", "protocols"};
constexpr std::array<std::string_view, 1> kLimitsKeys = {"max_series"};
constexpr std::array<std::string_view, 5> kNetnsKeys = {"cache_seconds", "max_namespaces",
                                                        "include", "exclude", "source"};
// Longer than any namespace name (NAME_MAX) or container ID.
constexpr std::size_t kMaxNetnsPatternLength = 256;

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  const auto lower_or_underscore = [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; };
  if (!lower_or_underscore(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return lower_or_underscore(c) || (c >= '0' && c <= '9'); });
}

// "port 53" or "ports 80-90".
std::string PortsPhrase(PortInterval ports) {
  return fmt::format("{} {}", ports.first == ports.last ? "port" : "ports",
                     FormatPortInterval(ports));
}

std::vector<PortRangeConfig> BuiltInPortRanges() {
  return {{"well_known", {0, 1023}}, {"registered", {1024, 49151}}, {"dynamic", {49152, 65535}}};
}

// Walks the document into a Config, reporting every problem to Diagnostics.
class Parser : public yaml::FieldReader {
 public:
  Parser(Config& config, Diagnostics& diagnostics, const ConfigSchema& schema)
      : FieldReader(diagnostics), config_(config), schema_(schema) {}

  void ParseDocument(const YAML::Node& root) {
    bool saw_port_ranges = false;
    if (!root.IsNull()) {
      const Field document{root, "", Position{}};
      if (!root.IsMap()) {
        Error(document, "expected a map of settings at the top level, got " + Describe(root));
        return;
      }
      ForEachEntry(document, [&](const std::string& key, Position key_pos, const Field& value) {
        if (key == "port_ranges") {
          saw_port_ranges = true;
          ParsePortRanges(value);
        } else if (key == "services") {
          ParseServices(value);
        } else if (key == "collectors") {
          ParseCollectors(value);
        } else if (const SectionSchema* section = FindSection(key)) {
          auto settings = section->parse(*this, &value);
          if (settings) config_.sections[key] = std::move(settings);
          parsed_sections_.insert(key);
        } else if (key == "netns") {
          ParseNetns(value);
        } else if (key == "limits") {
          ParseLimits(value);
        } else {
          UnknownKey(document, key, key_pos, TopLevelKeys());
        }
      });
    }
    if (!saw_port_ranges) config_.port_ranges = BuiltInPortRanges();
    for (const SectionSchema& section : schema_.sections) {
      if (!parsed_sections_.contains(section.key)) {
        config_.sections[std::string(section.key)] = section.parse(*this, nullptr);
      }
    }
  }

 private:
  const SectionSchema* FindSection(std::string_view key) const {
    for (const SectionSchema& section : schema_.sections) {
      if (section.key == key) return &section;
    }
    return nullptr;
  }

  std::vector<std::string_view> TopLevelKeys() const {
    std::vector<std::string_view> keys(kLeadingTopLevelKeys.begin(), kLeadingTopLevelKeys.end());
    for (const SectionSchema& section : schema_.sections) keys.push_back(section.key);
    keys.insert(keys.end(), kTrailingTopLevelKeys.begin(), kTrailingTopLevelKeys.end());
    return keys;
  }

  // Returns the name as written (for messages) and whether it is valid.
  std::optional<std::string> ParseName(const Field& field, bool* valid) {
    *valid = false;
    if (!field.node.IsScalar()) {
      Expected(field, "a string");
      return std::nullopt;
    }
    const std::string& name = field.node.Scalar();
    if (!IsValidName(name)) {
      Error(field, fmt::format("{} is not a valid name: use lowercase letters, digits and '_', "
                               "not starting with a digit, at most {} characters",
                               Quote(name), kMaxNameLength));
    } else if (name == kOther) {
      Error(field, "the name 'other' is reserved for ports that no service or range names");
    } else {
      *valid = true;
    }
    return name;
  }

  // A port ("80") or an inclusive range ("1024-49151").
  std::optional<PortInterval> ParsePortSpec(const Field& field) {
    static constexpr std::string_view kWhat = "a port (0-65535) or a port range 'A-B'";
    if (!field.node.IsScalar()) {
      Expected(field, kWhat);
      return std::nullopt;
    }
    const std::string_view text = TrimBlanks(field.node.Scalar());
    const std::size_t dash = text.find('-');
    const std::string_view first_text = TrimBlanks(text.substr(0, dash));
    const std::string_view last_text =
        dash == std::string_view::npos ? first_text : TrimBlanks(text.substr(dash + 1));
    const auto first = ParseDecimal(first_text);
    const auto last = ParseDecimal(last_text);
    if (!first || !last) {
      Expected(field, kWhat);
      return std::nullopt;
    }
    for (const auto& [value, value_text] : {std::pair{*first, first_text}, {*last, last_text}}) {
      if (value > kMaxPort) {
        // A hostile number can be megabytes of digits.
        const std::string shown =
            value_text.size() <= 20 ? std::string(value_text) : Quote(value_text);
        Error(field, fmt::format("port {} is out of range 0-65535", shown));
        return std::nullopt;
      }
    }
    if (*first > *last) {
      Error(field, fmt::format("port range '{}-{}' is reversed: {} is greater than {}", *first,
                               *last, *first, *last));
      return std::nullopt;
    }
    return PortInterval{static_cast<std::uint16_t>(*first), static_cast<std::uint16_t>(*last)};
  }

  void RequireKey(const Field& map, bool present, std::string_view key) {
    if (!present) Error(map, fmt::format("missing required key '{}'", key));
  }

  // Reports a name seen before in the same list.
  void CheckDuplicateName(std::unordered_map<std::string, Position>& seen, const std::string& name,
                          const Field& field, std::string_view kind) {
    const auto [previous, inserted] = seen.emplace(name, field.pos());
    if (!inserted) {
      Error(field, fmt::format("duplicate {} name '{}' (first defined at line {})", kind, name,
                               previous->second.line));
    }
  }

  void ParsePortRanges(const Field& field) {
    if (!field.node.IsSequence()) {
      Expected(field, "a list of port ranges");
      return;
    }
    if (field.node.size() == 0) {
      Error(field, "expected at least one port range; port ranges must cover 0-65535");
      return;
    }
    if (field.node.size() > kMaxPortRanges) {
      Error(field, fmt::format("too many port ranges ({}); at most {} are supported, each adds "
                               "56 series to socket_connections",
                               field.node.size(), kMaxPortRanges));
    }
    struct Entry {
      std::string name;  // as written and quoted, for messages
      std::string raw_name;
      bool name_valid = false;
      std::optional<PortInterval> ports;
      Position ports_pos;
      std::string ports_path;
    };
    std::vector<Entry> entries;
    std::unordered_map<std::string, Position> names;
    bool all_ports_known = true;
    std::size_t index = 0;
    for (const YAML::Node& node : field.node) {
      const Field item = ItemField(field, node, index++);
      Entry entry{item.path, "", false, std::nullopt, item.pos(), item.path};
      bool has_name = false;
      bool has_ports = false;
      const bool is_map =
          ForEachEntry(item, [&](const std::string& key, Position key_pos, const Field& value) {
            if (key == "name") {
              has_name = true;
              if (auto name = ParseName(value, &entry.name_valid)) {
                entry.name = Quote(*name);
                entry.raw_name = *name;
                if (entry.name_valid) CheckDuplicateName(names, *name, value, "port range");
              }
            } else if (key == "ports") {
              has_ports = true;
              entry.ports = ParsePortSpec(value);
              entry.ports_pos = value.pos();
              entry.ports_path = value.path;
            } else {
              UnknownKey(item, key, key_pos, kPortRangeKeys);
            }
          });
      if (is_map) {
        RequireKey(item, has_name, "name");
        RequireKey(item, has_ports, "ports");
      }
      if (!entry.ports) all_ports_known = false;
      // Only used when there are no errors, and then every entry is complete.
      if (entry.name_valid && entry.ports) {
        config_.port_ranges.push_back({entry.raw_name, *entry.ports});
      }
      entries.push_back(std::move(entry));
    }
    CheckCoverage(field, entries, all_ports_known);
  }

  // Sweeps the ranges sorted by first port: an overlap is a range starting at
  // or before the furthest end seen so far, a gap is one starting after it.
  // O(n log n), whatever the sizes of the ranges.
  template <typename Entry>
  void CheckCoverage(const Field& field, const std::vector<Entry>& entries, bool all_ports_known) {
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].ports) order.push_back(i);
    }
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return entries[a].ports->first < entries[b].ports->first;
    });
    std::vector<PortInterval> gaps;
    std::int64_t covered_to = -1;  // last port covered by the ranges so far
    std::size_t furthest = 0;      // the entry that reaches covered_to
    for (std::size_t i : order) {
      const PortInterval ports = *entries[i].ports;
      if (ports.first <= covered_to) {
        const auto overlap_last = std::min<std::int64_t>(ports.last, covered_to);
        const PortInterval overlap{ports.first, static_cast<std::uint16_t>(overlap_last)};
        // Reported on whichever of the two comes later in the file.
        const std::size_t earlier = std::min(i, furthest);
        const std::size_t later = std::max(i, furthest);
        Error(entries[later].ports_pos, entries[later].ports_path,
              fmt::format("{} of port range {} {} also in port range {}", PortsPhrase(overlap),
                          entries[later].name, overlap.first == overlap.last ? "is" : "are",
                          entries[earlier].name));
      } else if (ports.first > covered_to + 1) {
        gaps.push_back({static_cast<std::uint16_t>(covered_to + 1),
                        static_cast<std::uint16_t>(ports.first - 1)});
      }
      if (ports.last > covered_to) {
        covered_to = ports.last;
        furthest = i;
      }
    }
    if (covered_to < kMaxPort) {
      gaps.push_back(
          {static_cast<std::uint16_t>(covered_to + 1), static_cast<std::uint16_t>(kMaxPort)});
    }
    // With a broken entry the gaps are probably its ports: do not guess.
    if (!all_ports_known || gaps.empty()) return;
    std::string listed;
    for (std::size_t i = 0; i < gaps.size() && i < kMaxGapsListed; ++i) {
      if (i > 0) listed += (i + 1 == gaps.size()) ? " and " : ", ";
      listed += FormatPortInterval(gaps[i]);
    }
    if (gaps.size() > kMaxGapsListed) {
      listed += fmt::format(" and {} more gaps", gaps.size() - kMaxGapsListed);
    }
    const bool single = gaps.size() == 1 && gaps[0].first == gaps[0].last;
    Error(field, fmt::format("{} {} {} not in any port range; port ranges must cover 0-65535",
                             single ? "port" : "ports", listed, single ? "is" : "are"));
  }

  // One service's interval, for the per-protocol overlap sweep.
  struct Claim {
    PortInterval ports;
    std::size_t service;  // index into the service list
    std::size_t seq;      // file order
    Position pos;
    std::size_t path;  // index into the list of claim paths
  };

  void ParseServices(const Field& field) {
    if (!field.node.IsSequence()) {
      Expected(field, "a list of services");
      return;
    }
    if (field.node.size() > kMaxServices) {
      Error(field, fmt::format("too many services ({}); at most {} are supported",
                               field.node.size(), kMaxServices));
    }
    std::array<std::vector<Claim>, 2> claims;  // [0]=tcp [1]=udp
    std::vector<std::string> service_names;    // quoted as written, for messages
    std::vector<std::string> claim_paths;
    std::unordered_map<std::string, Position> names;
    std::size_t index = 0;
    std::size_t seq = 0;
    for (const YAML::Node& node : field.node) {
      const std::size_t service_index = index;
      const Field item = ItemField(field, node, index++);
      ServiceConfig service;
      service_names.push_back(item.path);
      std::vector<Claim> service_claims;
      bool has_name = false;
      bool has_ports = false;
      bool protocols_known = true;
      const auto add_port = [&](const Field& value) {
        if (auto ports = ParsePortSpec(value)) {
          service.ports.push_back(*ports);
          claim_paths.push_back(value.path);
          service_claims.push_back(
              Claim{*ports, service_index, seq++, value.pos(), claim_paths.size() - 1});
        }
      };
      const bool is_map =
          ForEachEntry(item, [&](const std::string& key, Position key_pos, const Field& value) {
            if (key == "name") {
              has_name = true;
              bool valid = false;
              if (auto name = ParseName(value, &valid)) {
                service_names.back() = Quote(*name);
                service.name = *name;
              }
              if (valid) CheckDuplicateName(names, service.name, value, "service");
            } else if (key == "ports") {
              has_ports = true;
              if (value.node.IsSequence()) {
                if (value.node.size() == 0) Error(value, "expected at least one port");
                std::size_t port_index = 0;
                for (const YAML::Node& port : value.node) {
                  add_port(ItemField(value, port, port_index++));
                }
              } else if (value.node.IsScalar()) {
                add_port(value);
              } else {
                Expected(value, "a list of ports (numbers or 'A-B' ranges)");
              }
            } else if (key == "protocols") {
              protocols_known = ParseProtocols(value, &service);
            } else {
              UnknownKey(item, key, key_pos, kServiceKeys);
            }
          });
      if (is_map) {
        RequireKey(item, has_name, "name");
        RequireKey(item, has_ports, "ports");
      }
      // A service whose protocols are unreadable would only add guesses.
      if (protocols_known) {
        for (const Claim& claim : service_claims) {
          if (service.tcp) claims[0].push_back(claim);
          if (service.udp) claims[1].push_back(claim);
        }
      }
      config_.services.push_back(std::move(service));
    }
    CheckServiceOverlaps(claims, service_names, claim_paths);
  }

  bool ParseProtocols(const Field& field, ServiceConfig* service) {
    std::vector<Field> items;
    if (field.node.IsSequence()) {
      if (field.node.size() == 0) {
        Error(field, "expected at least one protocol ('tcp' or 'udp')");
        return false;
      }
      std::size_t index = 0;
      for (const YAML::Node& node : field.node) items.push_back(ItemField(field, node, index++));
    } else if (field.node.IsScalar()) {
      items.push_back(field);
    } else {
      Expected(field, "a list of protocols ('tcp', 'udp')");
      return false;
    }
    bool ok = true;
    service->tcp = false;
    service->udp = false;
    for (const Field& item : items) {
      const std::string text = item.node.IsScalar() ? item.node.Scalar() : std::string();
      if (item.node.IsScalar() && text == "tcp") {
        service->tcp = true;
      } else if (item.node.IsScalar() && text == "udp") {
        service->udp = true;
      } else {
        Expected(item, "'tcp' or 'udp'");
        ok = false;
      }
    }
    return ok;
  }

  // Same sweep as CheckCoverage, per protocol. An overlap between the same
  // two intervals on both protocols is reported once, "for tcp and udp".
  void CheckServiceOverlaps(std::array<std::vector<Claim>, 2>& claims,
                            const std::vector<std::string>& service_names,
                            const std::vector<std::string>& claim_paths) {
    struct Conflict {
      const Claim* later;
      const Claim* earlier;
      PortInterval overlap;
      unsigned protocols;  // bit 0 tcp, bit 1 udp
    };
    // Keyed by (later claim, earlier service, overlap) to merge protocols.
    std::map<std::tuple<std::size_t, std::size_t, std::uint16_t, std::uint16_t>, Conflict> found;
    for (std::size_t protocol = 0; protocol < claims.size(); ++protocol) {
      std::vector<Claim>& list = claims[protocol];
      std::sort(list.begin(), list.end(), [](const Claim& a, const Claim& b) {
        return std::tie(a.ports.first, a.seq) < std::tie(b.ports.first, b.seq);
      });
      const Claim* furthest = nullptr;
      for (const Claim& claim : list) {
        if (furthest != nullptr && claim.ports.first <= furthest->ports.last) {
          if (claim.service != furthest->service) {
            const bool claim_later = claim.seq > furthest->seq;
            const Claim* later = claim_later ? &claim : furthest;
            const Claim* earlier = claim_later ? furthest : &claim;
            const PortInterval overlap{claim.ports.first,
                                       std::min(claim.ports.last, furthest->ports.last)};
            auto [it, inserted] = found.try_emplace(
                std::tuple{later->seq, earlier->service, overlap.first, overlap.last},
                Conflict{later, earlier, overlap, 0u});
            it->second.protocols |= 1u << protocol;
          }
          if (claim.ports.last > furthest->ports.last) furthest = &claim;
        } else if (furthest == nullptr || claim.ports.last > furthest->ports.last) {
          furthest = &claim;
        }
      }
    }
    for (const auto& [key, conflict] : found) {
      const char* protocols = conflict.protocols == 3u   ? "tcp and udp"
                              : conflict.protocols == 1u ? "tcp"
                                                         : "udp";
      const bool single = conflict.overlap.first == conflict.overlap.last;
      Error(
          conflict.later->pos, claim_paths[conflict.later->path],
          fmt::format("{} of service {} {} already assigned to service {} for {}",
                      PortsPhrase(conflict.overlap), service_names[conflict.later->service],
                      single ? "is" : "are", service_names[conflict.earlier->service], protocols));
    }
  }

  void ParseCollectors(const Field& field) {
    ForEachEntry(field, [&](const std::string& key, Position key_pos, const Field& value) {
      const auto& known_collectors = schema_.switches;
      const bool known = std::find(known_collectors.begin(), known_collectors.end(), key) !=
                         known_collectors.end();
      if (!known) {
        const auto suggestion = ClosestMatch(key, known_collectors);
        Error(key_pos, field.path,
              fmt::format("unknown collector {}{} (known collectors: {})", Quote(key),
                          suggestion ? fmt::format(", did you mean '{}'?", *suggestion) : "",
                          Join(known_collectors)));
        return;
      }
      if (auto enabled = ParseBool(value)) config_.collectors[key] = *enabled;
    });
  }

  void ParseNetns(const Field& field) {
    NetnsConfig& netns = config_.netns;
    ForEachEntry(field, [&](const std::string& key, Position key_pos, const Field& value) {
      if (key == "cache_seconds") {
        if (auto v = ParseUint(value, 0, 3600)) netns.cache_seconds = *v;
      } else if (key == "max_namespaces") {
        if (auto v = ParseUint(value, 1, 10'000)) netns.max_namespaces = *v;
      } else if (key == "include") {
        netns.include = ParseGlobList(value);
      } else if (key == "exclude") {
        netns.exclude = ParseGlobList(value);
      } else if (key == "source") {
        const std::string text = value.node.IsScalar() ? value.node.Scalar() : std::string();
        if (value.node.IsScalar() && text == "auto") {
          netns.source = NetnsSource::kAuto;
        } else if (value.node.IsScalar() && text == "netlink") {
          netns.source = NetnsSource::kNetlink;
        } else if (value.node.IsScalar() && text == "bpf") {
          netns.source = NetnsSource::kBpf;
        } else {
          Expected(value, "'auto', 'netlink' or 'bpf'");
        }
      } else {
        UnknownKey(field, key, key_pos, kNetnsKeys);
      }
    });
  }

  // A list of fnmatch(3) patterns. Each must be a non-empty string whose
  // bracket expressions are closed: fnmatch would silently take an unclosed
  // '[' literally, which is never what was meant.
  std::vector<std::string> ParseGlobList(const Field& field) {
    std::vector<std::string> patterns;
    if (!field.node.IsSequence()) {
      Expected(field, "a list of patterns (shell globs such as 'cni-*')");
      return patterns;
    }
    std::size_t index = 0;
    for (const YAML::Node& node : field.node) {
      const Field item = ItemField(field, node, index++);
      if (!item.node.IsScalar()) {
        Expected(item, "a pattern (a string)");
        continue;
      }
      const std::string& text = item.node.Scalar();
      if (text.empty()) {
        Error(item, "expected a pattern, got an empty string");
      } else if (text.size() > kMaxNetnsPatternLength) {
        Error(item, fmt::format("pattern {} is longer than {} characters", Quote(text),
                                kMaxNetnsPatternLength));
      } else if (std::any_of(text.begin(), text.end(), [](char c) {
                   return static_cast<unsigned char>(c) < 0x20 || c == 0x7F;
                 })) {
        Error(item, fmt::format("pattern {} contains a control character", Quote(text)));
      } else if (text.find('/') != std::string::npos) {
        Error(item, fmt::format("pattern {} contains '/', which no namespace name or container "
                                "ID can contain",
                                Quote(text)));
      } else if (auto problem = GlobProblem(text)) {
        Error(item, fmt::format("pattern {}: {}", Quote(text), *problem));
      } else if (std::find(patterns.begin(), patterns.end(), text) != patterns.end()) {
        Error(item, fmt::format("duplicate pattern {}", Quote(text)));
      } else {
        patterns.push_back(text);
      }
    }
    return patterns;
  }

  // fnmatch syntax: a backslash escapes the next character; '[' opens a bracket
  // expression closed by a ']' that is not its first member.
  static std::optional<std::string> GlobProblem(std::string_view pattern) {
    for (std::size_t i = 0; i < pattern.size(); ++i) {
      if (pattern[i] == '\\') {
        if (i + 1 == pattern.size()) return "ends with an unescaped '\\'";
        ++i;
        continue;
      }
      if (pattern[i] != '[') continue;
      std::size_t j = i + 1;
      if (j < pattern.size() && (pattern[j] == '!' || pattern[j] == '^')) ++j;
      if (j < pattern.size() && pattern[j] == ']') ++j;  // a literal ']' as first member
      while (j < pattern.size() && pattern[j] != ']') ++j;
      if (j == pattern.size()) {
        return fmt::format("'[' at position {} is never closed by ']'", i + 1);
      }
      i = j;
    }
    return std::nullopt;
  }

  void ParseLimits(const Field& field) {
    ForEachEntry(field, [&](const std::string& key, Position key_pos, const Field& value) {
      if (key == "max_series") {
        if (auto v = ParseUint(value, 10, 1'000'000)) config_.limits.max_series = *v;
      } else {
        UnknownKey(field, key, key_pos, kLimitsKeys);
      }
    });
  }

  Config& config_;
  const ConfigSchema& schema_;
  std::set<std::string, std::less<>> parsed_sections_;
};

std::string TooLargeMessage(const std::string& source, std::string_view size) {
  return PositionPrefix(source, Position{}) +
         fmt::format("config is too large ({} bytes); the limit is {} bytes (4 MiB)", size,
                     kMaxConfigBytes);
}

Result<std::shared_ptr<const Config>> ParseConfigUnchecked(const std::string& yaml_text,
                                                           const std::string& source_name,
                                                           const ConfigSchema& schema) {
  if (yaml_text.size() > kMaxConfigBytes) {
    return Fail(TooLargeMessage(source_name, fmt::format("{}", yaml_text.size())));
  }
  TRY_ASSIGN(const YAML::Node root, yaml::LoadDocument(yaml_text, source_name, kMaxFlowDepth));

  // make_shared: Config holds ~400 KiB of lookup tables, too big for a stack.
  auto config = std::make_shared<Config>();
  config->source = source_name;
  Diagnostics diagnostics;
  Parser parser(*config, diagnostics, schema);
  parser.ParseDocument(root);
  if (!diagnostics.empty()) return Fail(diagnostics.Format(source_name));

  std::sort(config->port_ranges.begin(), config->port_ranges.end(),
            [](const PortRangeConfig& a, const PortRangeConfig& b) {
              return a.ports.first < b.ports.first;
            });
  config->BuildLookups();
  return std::shared_ptr<const Config>(std::move(config));
}

}  // namespace

void Config::BuildLookups() {
  range_of_port.fill(0);
  for (std::size_t i = 0; i < port_ranges.size() && i <= kMaxPort; ++i) {
    const PortInterval ports = port_ranges[i].ports;
    for (std::uint32_t port = ports.first; port <= ports.last; ++port) {
      range_of_port[port] = static_cast<std::uint16_t>(i);
    }
  }
  for (auto& table : service_of_port) table.fill(0);
  for (std::size_t i = 0; i < services.size() && i < kMaxServices; ++i) {
    const ServiceConfig& service = services[i];
    const auto value = static_cast<std::uint16_t>(i + 1);
    for (const PortInterval& ports : service.ports) {
      for (std::uint32_t port = ports.first; port <= ports.last; ++port) {
        if (service.tcp) service_of_port[0][port] = value;
        if (service.udp) service_of_port[1][port] = value;
      }
    }
  }
}

const std::string& Config::ServiceName(std::uint16_t service_index) const {
  static const std::string kOtherName(kOther);
  if (service_index == 0 || service_index > services.size()) return kOtherName;
  return services[service_index - 1].name;
}

Result<std::shared_ptr<const Config>> ParseConfig(const std::string& yaml_text,
                                                  const std::string& source_name,
                                                  const ConfigSchema& schema) {
  // Nothing may escape: yaml-cpp throws for more than parse errors, and
  // allocation can fail on hostile input.
  try {
    return ParseConfigUnchecked(yaml_text, source_name, schema);
  } catch (const std::exception& e) {
    return Fail(PositionPrefix(source_name, Position{}) +
                "cannot read the configuration: " + Sanitize(e.what()));
  } catch (...) {
    return Fail(PositionPrefix(source_name, Position{}) +
                "cannot read the configuration: unknown error");
  }
}

Result<std::shared_ptr<const Config>> LoadConfigFile(const std::string& path,
                                                     const ConfigSchema& schema) {
  TRY_ASSIGN(const yaml::CappedFile file,
             yaml::ReadCappedFile(path, kMaxConfigBytes, "config file"));
  if (file.too_large) {
    return Fail(TooLargeMessage(path, file.size > kMaxConfigBytes
                                          ? fmt::format("{}", file.size)
                                          : fmt::format("more than {}", kMaxConfigBytes)));
  }
  return ParseConfig(file.text, path, schema);
}

std::shared_ptr<const Config> ParseDefaultConfig(const ConfigSchema& schema) {
  auto parsed = ParseConfig(kEmbeddedDefaultConfig, "<embedded default>", schema);
  if (parsed) return *parsed;
  // Only a broken build gets here (config_test parses the default); keep
  // the exporter running with the built-in port ranges rather than crash.
  std::fprintf(stderr, "socket_exporter: embedded default config is invalid:\n%s\n",
               parsed.error().message.c_str());
  auto fallback = std::make_shared<Config>();
  fallback->source = "<built-in fallback>";
  fallback->port_ranges = BuiltInPortRanges();
  Diagnostics ignored;
  yaml::FieldReader reader(ignored);
  for (const SectionSchema& section : schema.sections) {
    fallback->sections[std::string(section.key)] = section.parse(reader, nullptr);
  }
  fallback->BuildLookups();
  return std::shared_ptr<const Config>(std::move(fallback));
}

}  // namespace socket_exporter
