// The YAML diagnostics shared by the config file (config.h) and the web
// config (web_config.h): positions as editors show them, a bounded list of
// errors sorted by position, text from the file made safe to print, and one
// guarded way from text to a YAML document.
//
// Every error names "SOURCE:LINE:COLUMN: what was expected". Nothing here
// throws: yaml-cpp's exceptions become errors at the document's position.
//
// Thread safety: free functions without shared state; a Diagnostics object
// belongs to one parse.
#pragma once

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"

namespace socket_exporter::yaml {

// 1-based, as editors show them.
struct Position {
  int line = 1;
  int column = 1;
  friend auto operator<=>(const Position&, const Position&) = default;
};

// The position of a mark; nothing for yaml-cpp's null mark.
std::optional<Position> MarkPosition(const YAML::Mark& mark);
// Where an error about a value points: the value itself, or its key when
// the value is empty (yaml-cpp gives an empty value the next token's mark).
Position ValuePosition(const YAML::Node& value, Position key_pos);
// "SOURCE:LINE:COLUMN: "
std::string PositionPrefix(const std::string& source, Position pos);

// Collects errors and formats them sorted by position, one per line. Keeps
// only the max_reported earliest, so that a hostile file cannot make the
// list itself exhaust memory; the last line then says how many were left out.
class Diagnostics {
 public:
  explicit Diagnostics(std::size_t max_reported = 100) : max_reported_(max_reported) {}
  void Add(Position pos, std::string message);
  bool empty() const { return next_seq_ == 0; }
  std::string Format(const std::string& source);

 private:
  struct Entry {
    Position pos;
    std::size_t seq;  // keeps errors at the same position in discovery order
    std::string message;
  };
  void Trim();

  std::size_t max_reported_;
  std::vector<Entry> entries_;
  std::size_t next_seq_ = 0;
  std::size_t dropped_ = 0;
  Position first_dropped_;
};

// Text from the file made safe to print: control bytes and bytes that are
// not valid UTF-8 become \xNN, so binary garbage cannot mangle a terminal or
// a log line.
std::string Sanitize(std::string_view text);
// The text sanitized, cut after max_length bytes (never inside a UTF-8
// sequence, "..." marks the cut) and put between two quote marks.
std::string Quote(std::string_view text, std::size_t max_length = 64, char mark = '\'');

// A scalar the author marked as a string ('80', "true", !!str 5): YAML says
// it is not a number or a boolean, so neither do we.
bool IsStringTagged(const YAML::Node& node);
// What a value is, for "expected X, got Y": "an empty value", "a list",
// "a map", or the scalar itself, quoted.
std::string Describe(const YAML::Node& node);
// The node's kind alone: "nothing", "a scalar", "a list", "a mapping".
std::string_view NodeKind(const YAML::Node& node);

// "a, b, c"
std::string Join(std::span<const std::string_view> words);
// The known word within edit distance 2 of word, if any ("did you mean").
std::optional<std::string_view> ClosestMatch(std::string_view word,
                                             std::span<const std::string_view> known);

// Parses text that must hold one YAML document or none (an empty node).
// Guards what yaml-cpp 0.7 does not: flow nesting deeper than max_flow_depth
// (its recursion guard only says "bad file"), and the stray ',' at the top of
// a document that makes its LoadAll loop forever, adding a null document per
// turn until memory runs out (jbeder/yaml-cpp#1040, fixed upstream after 0.8).
// Syntax errors, several documents and every exception become errors with
// the source's position.
Result<YAML::Node> LoadDocument(const std::string& text, const std::string& source,
                                int max_flow_depth = 64);

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

// "a.b", "a[3]": where a value is, in messages.
std::string ChildPath(const std::string& path, std::string_view key);
std::string ItemPath(const std::string& path, std::size_t index);
// The index-th item of a list, with its path and position.
Field ItemField(const Field& list, const YAML::Node& item, std::size_t index);
// Strict decimal: digits only. Saturates instead of overflowing so that a
// 30-digit number is simply "out of range".
std::optional<std::uint64_t> ParseDecimal(std::string_view text);

// Reads values of a schema and reports what is wrong with them, as
// "PATH: expected WHAT, got VALUE" at the value's position. A section
// parser (a collector's settings, config.h) gets one and reports through it.
class FieldReader {
 public:
  explicit FieldReader(Diagnostics& diagnostics) : diagnostics_(diagnostics) {}

  void Error(Position pos, const std::string& path, std::string_view message);
  void Error(const Field& field, std::string_view message);
  void Expected(const Field& field, std::string_view what);
  // "unknown key 'x', did you mean 'y'?" or the list of known keys.
  void UnknownKey(const Field& map, const std::string& key, Position key_pos,
                  std::span<const std::string_view> known);

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

  // An integer in [min, max]; a string-tagged scalar ('5') is not one.
  std::optional<std::uint32_t> ParseUint(const Field& field, std::uint32_t min, std::uint32_t max);
  // YAML 1.2 core-schema booleans only: "yes"/"on" are YAML 1.1 and are
  // usually accidents.
  std::optional<bool> ParseBool(const Field& field);
  // A number in (0, 1].
  std::optional<double> ParseRatio(const Field& field);

 protected:
  Diagnostics& diagnostics_;
};

// A file read whole, up to a cap: a wrong path (a log, a disk image) must not
// make the exporter read gigabytes.
struct CappedFile {
  std::string text;  // at most max_bytes
  bool too_large = false;
  std::uint64_t size = 0;  // the file's size where fstat knows it (0 for a pipe)
};
// Errors: "PATH: cannot open WHAT: REASON", "PATH: cannot read WHAT: REASON".
Result<CappedFile> ReadCappedFile(const std::string& path, std::size_t max_bytes,
                                  std::string_view what);

}  // namespace socket_exporter::yaml
