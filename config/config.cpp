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
#include <span>
#include <sstream>
#include <string_view>
#include <system_error>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace socket_exporter {
namespace {

// Config files are a few KiB; the cap keeps a wrong path (a log file, a disk
// image) from making the exporter allocate gigabytes of YAML nodes.
constexpr std::size_t kMaxConfigBytes = std::size_t{4} << 20;
// The schema needs 3 levels of flow nesting at most. yaml-cpp guards its own
// recursion (DeepRecursion), but checking first is cheap and gives a clearer
// message.
constexpr int kMaxFlowDepth = 64;
// Beyond this, more lines help nobody and a hostile file could make the
// message itself huge.
constexpr std::size_t kMaxReportedErrors = 100;
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
// Long enough to show any valid name whole.
constexpr std::size_t kMaxQuotedLength = 64;

constexpr std::string_view kOther = "other";

constexpr std::array<std::string_view, 8> kTopLevelKeys = {"port_ranges", "services",  "collectors",
                                                           "ephemeral",   "listeners", "netns",
                                                           "limits",      "cgroups"};
constexpr std::array<std::string_view, 2> kPortRangeKeys = {"name", "ports"};
constexpr std::array<std::string_view, 3> kServiceKeys = {"name", "ports", "protocols"};
constexpr std::array<std::string_view, 3> kEphemeralKeys = {
    "top_destinations", "max_tracked_destinations", "utilization_thresholds"};
constexpr std::array<std::string_view, 1> kListenersKeys = {"top_other_ports"};
constexpr std::array<std::string_view, 1> kLimitsKeys = {"max_series"};
constexpr std::array<std::string_view, 5> kNetnsKeys = {"cache_seconds", "max_namespaces",
                                                        "include", "exclude", "source"};
// Longer than any namespace name (NAME_MAX) or container ID.
constexpr std::size_t kMaxNetnsPatternLength = 256;
constexpr std::array<std::string_view, 5> kKnownCollectors = {"connections", "ephemeral",
                                                              "listeners", "netns", "cgroups"};

// 1-based, as editors show them.
struct Position {
  int line = 1;
  int column = 1;
  friend auto operator<=>(const Position&, const Position&) = default;
};

std::optional<Position> MarkPosition(const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0 || mark.column < 0) return std::nullopt;
  return Position{mark.line + 1, mark.column + 1};
}

// Collects errors and formats them sorted by position. Keeps only the
// kMaxReportedErrors earliest ones so that a hostile file cannot make the
// error list itself exhaust memory.
class Diagnostics {
 public:
  void Add(Position pos, std::string message) {
    entries_.push_back(Entry{pos, next_seq_++, std::move(message)});
    if (entries_.size() >= 2 * kMaxReportedErrors) Trim();
  }
  bool empty() const { return next_seq_ == 0; }

  std::string Format(const std::string& source) {
    Trim();
    std::string out;
    for (const Entry& e : entries_) {
      if (!out.empty()) out += '\n';
      out += fmt::format("{}:{}:{}: {}", source, e.pos.line, e.pos.column, e.message);
    }
    if (dropped_ > 0) {
      out += fmt::format("\n{}:{}:{}: too many errors; {} more not shown", source,
                         first_dropped_.line, first_dropped_.column, dropped_);
    }
    return out;
  }

 private:
  struct Entry {
    Position pos;
    std::size_t seq;  // keeps errors at the same position in discovery order
    std::string message;
  };

  // Keeps the earliest kMaxReportedErrors entries. Every entry dropped was
  // after all the kept ones when it was dropped, so the kept set is always the
  // earliest overall and the "more not shown" line sorts last.
  void Trim() {
    std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
      return std::tie(a.pos, a.seq) < std::tie(b.pos, b.seq);
    });
    if (entries_.size() <= kMaxReportedErrors) return;
    const Position first = entries_[kMaxReportedErrors].pos;
    if (dropped_ == 0 || first < first_dropped_) first_dropped_ = first;
    dropped_ += entries_.size() - kMaxReportedErrors;
    entries_.resize(kMaxReportedErrors);
  }

  std::vector<Entry> entries_;
  std::size_t next_seq_ = 0;
  std::size_t dropped_ = 0;
  Position first_dropped_;
};

// A value in the document together with where it came from, for messages.
struct Field {
  YAML::Node node;
  std::string path;  // "services[2].ports", "" for the document itself
  // Where the key of this value is. An empty value has no useful mark of its
  // own (yaml-cpp gives the position of the next token), so errors about it
  // point at its key.
  Position key_pos;

  Position pos() const {
    if (node.IsNull()) return key_pos;
    return MarkPosition(node.Mark()).value_or(key_pos);
  }
};

std::string ChildPath(const std::string& path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return fmt::format("{}.{}", path, key);
}

std::string ItemPath(const std::string& path, std::size_t index) {
  return fmt::format("{}[{}]", path, index);
}

Field ItemField(const Field& list, const YAML::Node& item, std::size_t index) {
  // An empty list item has no mark of its own; fall back to the list's.
  Position pos = list.pos();
  if (!item.IsNull()) pos = MarkPosition(item.Mark()).value_or(pos);
  return Field{item, ItemPath(list.path, index), pos};
}

// Makes text from the file safe to print: control bytes and bytes that are
// not valid UTF-8 become \xNN, so binary garbage cannot mangle the terminal
// or the log line.
std::string Sanitize(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;  // of a valid UTF-8 sequence starting here, 0 if invalid
    if (c >= 0x20 && c < 0x7F) {
      length = 1;
    } else if (c >= 0xC2 && c <= 0xF4) {
      const std::size_t wanted = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      std::size_t j = 1;
      while (j < wanted && i + j < text.size() &&
             (static_cast<unsigned char>(text[i + j]) & 0xC0) == 0x80) {
        ++j;
      }
      if (j == wanted) length = wanted;
    }
    if (length == 0) {
      out += fmt::format("\\x{:02x}", c);
      ++i;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
  }
  return out;
}

// Quotes a value from the file for a message, shortened and sanitized.
std::string Quote(std::string_view text) {
  bool truncated = false;
  if (text.size() > kMaxQuotedLength) {
    std::size_t length = kMaxQuotedLength;
    // Do not cut a UTF-8 sequence in half.
    while (length > 0 && (static_cast<unsigned char>(text[length]) & 0xC0) == 0x80) --length;
    text = text.substr(0, length);
    truncated = true;
  }
  return fmt::format("'{}{}'", Sanitize(text), truncated ? "..." : "");
}

// A scalar the author marked as a string ('80', "true", !!str 5): YAML says
// it is not a number or boolean, so neither do we.
bool IsStringTagged(const YAML::Node& node) {
  const std::string& tag = node.Tag();
  return tag == "!" || tag == "tag:yaml.org,2002:str";
}

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "an empty value";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Scalar:
      if (IsStringTagged(node)) return "the string " + Quote(node.Scalar());
      return Quote(node.Scalar());
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

std::string Join(std::span<const std::string_view> items) {
  std::string out;
  for (std::string_view item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

// Levenshtein distance, only called on short strings (see ClosestMatch).
std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0u : 1u)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The known word within edit distance 2 of `word`, if any.
std::optional<std::string_view> ClosestMatch(std::string_view word,
                                             std::span<const std::string_view> known) {
  constexpr std::size_t kMaxDistance = 2;
  std::optional<std::string_view> best;
  std::size_t best_distance = kMaxDistance + 1;
  for (std::string_view candidate : known) {
    // Cheap reject first: keeps a 4 MiB key from costing a 4 MiB x N table.
    const std::size_t length_difference = word.size() > candidate.size()
                                              ? word.size() - candidate.size()
                                              : candidate.size() - word.size();
    if (length_difference > kMaxDistance) continue;
    const std::size_t distance = EditDistance(word, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  const auto lower_or_underscore = [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; };
  if (!lower_or_underscore(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return lower_or_underscore(c) || (c >= '0' && c <= '9'); });
}

// Strict decimal: digits only. Saturates instead of overflowing so that a
// 30-digit number is simply "out of range".
std::optional<std::uint64_t> ParseDecimal(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    if (value > std::numeric_limits<std::uint32_t>::max()) continue;  // saturated
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}

std::string_view Trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

std::string FormatPorts(PortInterval ports) {
  if (ports.first == ports.last) return fmt::format("{}", ports.first);
  return fmt::format("{}-{}", ports.first, ports.last);
}

// "port 53" or "ports 80-90".
std::string PortsPhrase(PortInterval ports) {
  return fmt::format("{} {}", ports.first == ports.last ? "port" : "ports", FormatPorts(ports));
}

// Finds the first flow bracket nested deeper than kMaxFlowDepth, skipping
// quoted strings and comments. A heuristic (block scalars are not
// understood), but only ever a few more brackets than real YAML nesting, and
// the schema needs 3.
std::optional<Position> FindExcessiveNesting(std::string_view text) {
  enum class State { kPlain, kSingleQuoted, kDoubleQuoted, kComment };
  State state = State::kPlain;
  int depth = 0;
  Position pos;
  char previous = '\n';
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const Position here = pos;
    if (c == '\n') {
      ++pos.line;
      pos.column = 1;
    } else {
      ++pos.column;
    }
    switch (state) {
      case State::kPlain: {
        const bool token_start = previous == '\n' || previous == ' ' || previous == '\t' ||
                                 previous == '[' || previous == '{' || previous == ',' ||
                                 previous == ':';
        if (c == '#' && (previous == '\n' || previous == ' ' || previous == '\t')) {
          state = State::kComment;
        } else if (c == '\'' && token_start) {
          state = State::kSingleQuoted;
        } else if (c == '"' && token_start) {
          state = State::kDoubleQuoted;
        } else if (c == '[' || c == '{') {
          if (++depth > kMaxFlowDepth) return here;
        } else if ((c == ']' || c == '}') && depth > 0) {
          --depth;
        }
        break;
      }
      case State::kSingleQuoted:
        if (c == '\'') {
          if (i + 1 < text.size() && text[i + 1] == '\'') {
            ++i;  // '' is an escaped quote
            ++pos.column;
          } else {
            state = State::kPlain;
          }
        }
        break;
      case State::kDoubleQuoted:
        if (c == '\\' && i + 1 < text.size() && text[i + 1] != '\n') {
          ++i;
          ++pos.column;
        } else if (c == '"') {
          state = State::kPlain;
        }
        break;
      case State::kComment:
        if (c == '\n') state = State::kPlain;
        break;
    }
    previous = c;
  }
  return std::nullopt;
}

std::vector<PortRangeConfig> BuiltInPortRanges() {
  return {{"well_known", {0, 1023}}, {"registered", {1024, 49151}}, {"dynamic", {49152, 65535}}};
}

// Walks the document into a Config, reporting every problem to Diagnostics.
class Parser {
 public:
  Parser(Config& config, Diagnostics& diagnostics) : config_(config), diag_(diagnostics) {}

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
        } else if (key == "ephemeral") {
          ParseEphemeral(value);
        } else if (key == "listeners") {
          ParseListeners(value);
        } else if (key == "netns") {
          ParseNetns(value);
        } else if (key == "limits") {
          ParseLimits(value);
        } else if (key == "cgroups") {
          ParseCgroups(value);
        } else {
          UnknownKey(document, key, key_pos, kTopLevelKeys);
        }
      });
    }
    if (!saw_port_ranges) config_.port_ranges = BuiltInPortRanges();
  }

 private:
  void Error(Position pos, const std::string& path, std::string_view message) {
    if (path.empty()) {
      diag_.Add(pos, std::string(message));
    } else {
      diag_.Add(pos, fmt::format("{}: {}", path, message));
    }
  }
  void Error(const Field& field, std::string_view message) {
    Error(field.pos(), field.path, message);
  }
  void Expected(const Field& field, std::string_view what) {
    Error(field, fmt::format("expected {}, got {}", what, Describe(field.node)));
  }

  void UnknownKey(const Field& map, const std::string& key, Position key_pos,
                  std::span<const std::string_view> known) {
    if (const auto suggestion = ClosestMatch(key, known)) {
      Error(key_pos, map.path,
            fmt::format("unknown key {}, did you mean '{}'?", Quote(key), *suggestion));
    } else {
      Error(key_pos, map.path,
            fmt::format("unknown key {}; expected one of: {}", Quote(key), Join(known)));
    }
  }

  // Calls visit(key, key_pos, value) for each entry of a map, in file order.
  // Reports a value that is not a map, keys that are not strings and repeated
  // keys (yaml-cpp keeps both entries; only the first one is used).
  template <typename Visit>
  bool ForEachEntry(const Field& map, Visit&& visit) {
    if (!map.node.IsMap()) {
      Expected(map, "a map");
      return false;
    }
    std::unordered_map<std::string, Position> seen;
    // Dereferencing a yaml-cpp map iterator makes a temporary pair; the
    // range-for keeps it alive for the body (it->first would dangle).
    for (const auto& entry : map.node) {
      const YAML::Node& key = entry.first;
      const Position key_pos = MarkPosition(key.Mark()).value_or(map.pos());
      if (!key.IsScalar()) {
        Error(key_pos, map.path, "expected a string as key, got " + Describe(key));
        continue;
      }
      const std::string& name = key.Scalar();
      const auto [previous, inserted] = seen.emplace(name, key_pos);
      if (!inserted) {
        Error(
            key_pos, map.path,
            fmt::format("duplicate key {} (first at line {})", Quote(name), previous->second.line));
        continue;
      }
      visit(name, key_pos, Field{entry.second, ChildPath(map.path, name), key_pos});
    }
    return true;
  }

  std::optional<std::uint32_t> ParseUint(const Field& field, std::uint32_t min, std::uint32_t max) {
    std::optional<std::uint64_t> value;
    if (field.node.IsScalar() && !IsStringTagged(field.node)) {
      value = ParseDecimal(field.node.Scalar());
    }
    if (!value || *value < min || *value > max) {
      Expected(field, fmt::format("an integer between {} and {}", min, max));
      return std::nullopt;
    }
    return static_cast<std::uint32_t>(*value);
  }

  // YAML 1.2 core-schema booleans only: "yes"/"on" are YAML 1.1 and are
  // usually accidents.
  std::optional<bool> ParseBool(const Field& field) {
    if (field.node.IsScalar() && !IsStringTagged(field.node)) {
      const std::string& text = field.node.Scalar();
      if (text == "true" || text == "True" || text == "TRUE") return true;
      if (text == "false" || text == "False" || text == "FALSE") return false;
    }
    Expected(field, "a boolean (true or false)");
    return std::nullopt;
  }

  std::optional<double> ParseRatio(const Field& field) {
    if (field.node.IsScalar() && !IsStringTagged(field.node)) {
      const std::string& text = field.node.Scalar();
      double value = 0;
      const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
      // The comparison is written so that NaN fails it.
      if (error == std::errc() && end == text.data() + text.size() && value > 0.0 && value <= 1.0) {
        return value;
      }
    }
    Expected(field, "a number greater than 0 and at most 1");
    return std::nullopt;
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
    const std::string_view text = Trim(field.node.Scalar());
    const std::size_t dash = text.find('-');
    const std::string_view first_text = Trim(text.substr(0, dash));
    const std::string_view last_text =
        dash == std::string_view::npos ? first_text : Trim(text.substr(dash + 1));
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
      listed += FormatPorts(gaps[i]);
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
      const bool known = std::find(kKnownCollectors.begin(), kKnownCollectors.end(), key) !=
                         kKnownCollectors.end();
      if (!known) {
        const auto suggestion = ClosestMatch(key, kKnownCollectors);
        Error(key_pos, field.path,
              fmt::format("unknown collector {}{} (known collectors: {})", Quote(key),
                          suggestion ? fmt::format(", did you mean '{}'?", *suggestion) : "",
                          Join(kKnownCollectors)));
        return;
      }
      if (auto enabled = ParseBool(value)) config_.collectors[key] = *enabled;
    });
  }

  void ParseEphemeral(const Field& field) {
    EphemeralConfig& ephemeral = config_.ephemeral;
    ForEachEntry(field, [&](const std::string& key, Position key_pos, const Field& value) {
      if (key == "top_destinations") {
        if (auto v = ParseUint(value, 0, 1000)) ephemeral.top_destinations = *v;
      } else if (key == "max_tracked_destinations") {
        if (auto v = ParseUint(value, 1, 10'000'000)) ephemeral.max_tracked_destinations = *v;
      } else if (key == "utilization_thresholds") {
        if (!value.node.IsSequence()) {
          Expected(value, "a list of numbers");
          return;
        }
        ephemeral.utilization_thresholds.clear();
        std::size_t index = 0;
        for (const YAML::Node& node : value.node) {
          const Field item = ItemField(value, node, index++);
          const auto ratio = ParseRatio(item);
          if (!ratio) continue;
          const auto& thresholds = ephemeral.utilization_thresholds;
          // Two equal thresholds would publish the same series twice.
          if (std::find(thresholds.begin(), thresholds.end(), *ratio) != thresholds.end()) {
            Error(item, fmt::format("duplicate threshold {}", *ratio));
            continue;
          }
          ephemeral.utilization_thresholds.push_back(*ratio);
        }
      } else {
        UnknownKey(field, key, key_pos, kEphemeralKeys);
      }
    });
  }

  // The keys and their checks are the collector's (collectors/cgroups_settings.h).
  void ParseCgroups(const Field& field) {
    ForEachEntry(field, [&](const std::string& key, Position key_pos, const Field& value) {
      if (std::find(kCgroupsSettingKeys.begin(), kCgroupsSettingKeys.end(), key) ==
          kCgroupsSettingKeys.end()) {
        UnknownKey(field, key, key_pos, kCgroupsSettingKeys);
      } else if (!value.node.IsScalar()) {
        Expected(value, "a scalar");
      } else if (auto problem = ApplyCgroupsSetting(config_.cgroups, key, value.node.Scalar())) {
        Expected(value, *problem);
      }
    });
  }

  void ParseListeners(const Field& field) {
    ForEachEntry(field, [&](const std::string& key, Position key_pos, const Field& value) {
      if (key == "top_other_ports") {
        if (auto v = ParseUint(value, 0, 1000)) config_.listeners.top_other_ports = *v;
      } else {
        UnknownKey(field, key, key_pos, kListenersKeys);
      }
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
  Diagnostics& diag_;
};

std::string PositionPrefix(const std::string& source, Position pos) {
  return fmt::format("{}:{}:{}: ", source, pos.line, pos.column);
}

std::string TooLargeMessage(const std::string& source, std::string_view size) {
  return PositionPrefix(source, Position{}) +
         fmt::format("config is too large ({} bytes); the limit is {} bytes (4 MiB)", size,
                     kMaxConfigBytes);
}

// Records where each document starts; builds no nodes.
class DocumentStarts : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    previous_ = last_;
    last_ = mark;
    if (++count_ == 2) second_ = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  std::size_t count() const { return count_; }
  const YAML::Mark& last() const { return last_; }
  const YAML::Mark& previous() const { return previous_; }
  const YAML::Mark& second() const { return second_; }

 private:
  std::size_t count_ = 0;
  YAML::Mark last_ = YAML::Mark::null_mark();
  YAML::Mark previous_ = YAML::Mark::null_mark();
  YAML::Mark second_ = YAML::Mark::null_mark();
};

// Walks the whole stream once without building nodes: reports syntax errors
// anywhere in it (by throwing, like Load), more than one document, and the
// input that hangs yaml-cpp 0.7. Its LoadAll loops forever, adding a null
// document per turn until memory runs out, on a stray ',' at the top of a
// document (jbeder/yaml-cpp#1040, fixed upstream after 0.8 by #1319): the
// parser stops consuming tokens. A document starting where the previous one
// started is that case.
std::optional<std::string> CheckDocuments(const std::string& yaml_text,
                                          const std::string& source_name) {
  std::istringstream in(yaml_text);
  YAML::Parser parser(in);
  DocumentStarts starts;
  while (parser.HandleNextDocument(starts)) {
    if (starts.count() >= 2 && starts.last().pos <= starts.previous().pos) {
      const YAML::Mark& mark = starts.last();
      std::string what = "unexpected token";
      if (mark.pos >= 0 && static_cast<std::size_t>(mark.pos) < yaml_text.size()) {
        const char c = yaml_text[static_cast<std::size_t>(mark.pos)];
        if (c > ' ' && c < 0x7F) what = fmt::format("unexpected '{}'", c);
      }
      return PositionPrefix(source_name, MarkPosition(mark).value_or(Position{})) +
             "invalid YAML: " + what;
    }
  }
  if (starts.count() > 1) {
    return PositionPrefix(source_name, MarkPosition(starts.second()).value_or(Position{})) +
           fmt::format("expected a single YAML document, found {}", starts.count());
  }
  return std::nullopt;
}

Result<std::shared_ptr<const Config>> ParseConfigUnchecked(const std::string& yaml_text,
                                                           const std::string& source_name) {
  if (yaml_text.size() > kMaxConfigBytes) {
    return Fail(TooLargeMessage(source_name, fmt::format("{}", yaml_text.size())));
  }
  if (const auto pos = FindExcessiveNesting(yaml_text)) {
    return Fail(PositionPrefix(source_name, *pos) +
                fmt::format("YAML is nested more than {} levels deep", kMaxFlowDepth));
  }
  YAML::Node root;
  try {
    if (auto problem = CheckDocuments(yaml_text, source_name)) return Fail(std::move(*problem));
    // Load reads only the first document, so it does not have LoadAll's
    // loop; CheckDocuments made sure there is exactly one (or none).
    root = YAML::Load(yaml_text);
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's message for this is just "bad file".
    return Fail(PositionPrefix(source_name, MarkPosition(e.mark).value_or(Position{})) +
                "YAML is nested too deeply; the configuration needs at most 4 levels");
  } catch (const YAML::ParserException& e) {
    return Fail(PositionPrefix(source_name, MarkPosition(e.mark).value_or(Position{})) +
                "invalid YAML: " + Sanitize(e.msg));
  }

  // make_shared: Config holds ~400 KiB of lookup tables, too big for a stack.
  auto config = std::make_shared<Config>();
  config->source = source_name;
  Diagnostics diagnostics;
  Parser parser(*config, diagnostics);
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
                                                  const std::string& source_name) {
  // Nothing may escape: yaml-cpp throws for more than parse errors, and
  // allocation can fail on hostile input.
  try {
    return ParseConfigUnchecked(yaml_text, source_name);
  } catch (const std::exception& e) {
    return Fail(PositionPrefix(source_name, Position{}) +
                "cannot read the configuration: " + Sanitize(e.what()));
  } catch (...) {
    return Fail(PositionPrefix(source_name, Position{}) +
                "cannot read the configuration: unknown error");
  }
}

Result<std::shared_ptr<const Config>> LoadConfigFile(const std::string& path) {
  const auto os_error = [&](std::string_view what, int error) {
    return Fail(fmt::format("{}: {}: {}", path, what,
                            std::error_code(error, std::generic_category()).message()));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return os_error("cannot open config file", errno);
  // Closes fd on every return path.
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};

  struct stat info {};
  if (::fstat(fd, &info) != 0) return os_error("cannot read config file", errno);
  if (S_ISDIR(info.st_mode)) return os_error("cannot read config file", EISDIR);
  if (S_ISREG(info.st_mode) && static_cast<std::uint64_t>(info.st_size) > kMaxConfigBytes) {
    return Fail(TooLargeMessage(path, fmt::format("{}", info.st_size)));
  }

  // Reads at most one byte more than the limit: the size from fstat is not
  // final (the file may grow, or be a pipe).
  std::string text;
  std::array<char, 65536> buffer;
  while (text.size() <= kMaxConfigBytes) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return os_error("cannot read config file", errno);
    }
    if (n == 0) break;
    text.append(buffer.data(), static_cast<std::size_t>(n));
  }
  if (text.size() > kMaxConfigBytes) {
    return Fail(TooLargeMessage(path, fmt::format("more than {}", kMaxConfigBytes)));
  }
  return ParseConfig(text, path);
}

std::shared_ptr<const Config> DefaultConfig() {
  static const std::shared_ptr<const Config> kDefault = [] {
    auto parsed = ParseConfig(kEmbeddedDefaultConfig, "<embedded default>");
    if (parsed) return *parsed;
    // Only a broken build gets here (config_test parses the default); keep
    // the exporter running with the built-in port ranges rather than crash.
    std::fprintf(stderr, "socket_exporter: embedded default config is invalid:\n%s\n",
                 parsed.error().message.c_str());
    auto fallback = std::make_shared<Config>();
    fallback->source = "<built-in fallback>";
    fallback->port_ranges = BuiltInPortRanges();
    fallback->BuildLookups();
    return std::shared_ptr<const Config>(std::move(fallback));
  }();
  return kDefault;
}

}  // namespace socket_exporter
