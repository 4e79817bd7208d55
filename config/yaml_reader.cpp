#include "config/yaml_reader.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <sstream>
#include <tuple>

#include "common/unique_fd.h"

namespace socket_exporter::yaml {
namespace {

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

// Finds the first flow bracket nested deeper than max_flow_depth, skipping
// quoted strings and comments. A heuristic (block scalars are not
// understood), but only ever a few more brackets than real YAML nesting.
std::optional<Position> FindExcessiveNesting(std::string_view text, int max_flow_depth) {
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
          if (++depth > max_flow_depth) return here;
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
// input that hangs yaml-cpp 0.7's LoadAll: the parser stops consuming
// tokens, so a document starting where the previous one started is that
// case.
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

Result<YAML::Node> LoadDocumentUnchecked(const std::string& text, const std::string& source,
                                         int max_flow_depth) {
  if (const auto pos = FindExcessiveNesting(text, max_flow_depth)) {
    return Fail(PositionPrefix(source, *pos) +
                fmt::format("YAML is nested more than {} levels deep", max_flow_depth));
  }
  try {
    if (auto problem = CheckDocuments(text, source)) return Fail(std::move(*problem));
    // Load reads only the first document, so it does not have LoadAll's
    // loop; CheckDocuments made sure there is exactly one (or none).
    return YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's message for this is just "bad file".
    return Fail(PositionPrefix(source, MarkPosition(e.mark).value_or(Position{})) +
                "YAML is nested too deeply; the configuration needs at most 4 levels");
  } catch (const YAML::ParserException& e) {
    return Fail(PositionPrefix(source, MarkPosition(e.mark).value_or(Position{})) +
                "invalid YAML: " + Sanitize(e.msg));
  }
}

}  // namespace

std::optional<Position> MarkPosition(const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0 || mark.column < 0) return std::nullopt;
  return Position{mark.line + 1, mark.column + 1};
}

Position ValuePosition(const YAML::Node& value, Position key_pos) {
  if (!value.IsDefined() || value.IsNull()) return key_pos;
  return MarkPosition(value.Mark()).value_or(key_pos);
}

std::string PositionPrefix(const std::string& source, Position pos) {
  return fmt::format("{}:{}:{}: ", source, pos.line, pos.column);
}

void Diagnostics::Add(Position pos, std::string message) {
  entries_.push_back(Entry{pos, next_seq_++, std::move(message)});
  if (entries_.size() >= 2 * max_reported_) Trim();
}

std::string Diagnostics::Format(const std::string& source) {
  Trim();
  std::string out;
  for (const Entry& e : entries_) {
    if (!out.empty()) out += '\n';
    out += PositionPrefix(source, e.pos) + e.message;
  }
  if (dropped_ > 0) {
    out += fmt::format("\n{}too many errors; {} more not shown",
                       PositionPrefix(source, first_dropped_), dropped_);
  }
  return out;
}

// Keeps the earliest max_reported_ entries. Every entry dropped was after
// all the kept ones when it was dropped, so the kept set is always the
// earliest overall and the "more not shown" line sorts last.
void Diagnostics::Trim() {
  std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.pos, a.seq) < std::tie(b.pos, b.seq);
  });
  if (entries_.size() <= max_reported_) return;
  const Position first = entries_[max_reported_].pos;
  if (dropped_ == 0 || first < first_dropped_) first_dropped_ = first;
  dropped_ += entries_.size() - max_reported_;
  entries_.resize(max_reported_);
}

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

std::string Quote(std::string_view text, std::size_t max_length, char mark) {
  bool truncated = false;
  if (text.size() > max_length) {
    std::size_t length = max_length;
    // Do not cut a UTF-8 sequence in half.
    while (length > 0 && (static_cast<unsigned char>(text[length]) & 0xC0) == 0x80) --length;
    text = text.substr(0, length);
    truncated = true;
  }
  return fmt::format("{}{}{}{}", mark, Sanitize(text), truncated ? "..." : "", mark);
}

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

std::string_view NodeKind(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

std::string Join(std::span<const std::string_view> words) {
  std::string out;
  for (std::string_view word : words) {
    if (!out.empty()) out += ", ";
    out += word;
  }
  return out;
}

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

void FieldReader::Error(Position pos, const std::string& path, std::string_view message) {
  if (path.empty()) {
    diagnostics_.Add(pos, std::string(message));
  } else {
    diagnostics_.Add(pos, fmt::format("{}: {}", path, message));
  }
}
void FieldReader::Error(const Field& field, std::string_view message) {
  Error(field.pos(), field.path, message);
}
void FieldReader::Expected(const Field& field, std::string_view what) {
  Error(field, fmt::format("expected {}, got {}", what, Describe(field.node)));
}

void FieldReader::UnknownKey(const Field& map, const std::string& key, Position key_pos,
                             std::span<const std::string_view> known) {
  if (const auto suggestion = ClosestMatch(key, known)) {
    Error(key_pos, map.path,
          fmt::format("unknown key {}, did you mean '{}'?", Quote(key), *suggestion));
  } else {
    Error(key_pos, map.path,
          fmt::format("unknown key {}; expected one of: {}", Quote(key), Join(known)));
  }
}

std::optional<std::uint32_t> FieldReader::ParseUint(const Field& field, std::uint32_t min,
                                                    std::uint32_t max) {
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

std::optional<bool> FieldReader::ParseBool(const Field& field) {
  if (field.node.IsScalar() && !IsStringTagged(field.node)) {
    const std::string& text = field.node.Scalar();
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
  }
  Expected(field, "a boolean (true or false)");
  return std::nullopt;
}

std::optional<double> FieldReader::ParseRatio(const Field& field) {
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

Result<YAML::Node> LoadDocument(const std::string& text, const std::string& source,
                                int max_flow_depth) {
  // Nothing may escape: yaml-cpp throws for more than parse errors, and
  // allocation can fail on hostile input.
  try {
    return LoadDocumentUnchecked(text, source, max_flow_depth);
  } catch (const std::exception& e) {
    return Fail(PositionPrefix(source, Position{}) + "invalid YAML: " + Sanitize(e.what()));
  }
}

Result<CappedFile> ReadCappedFile(const std::string& path, std::size_t max_bytes,
                                  std::string_view what) {
  const auto os_error = [&](std::string_view verb, int error) {
    return Fail(fmt::format("{}: cannot {} {}: {}", path, verb, what, std::strerror(error)));
  };
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd.valid()) return os_error("open", errno);
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) return os_error("read", errno);
  if (S_ISDIR(info.st_mode)) return os_error("read", EISDIR);
  CappedFile file;
  if (S_ISREG(info.st_mode)) file.size = static_cast<std::uint64_t>(info.st_size);
  if (file.size > max_bytes) {
    file.too_large = true;
    return file;
  }
  // Reads at most one byte more than the limit: the size from fstat is not
  // final (the file may grow, or be a pipe).
  std::array<char, 65536> buffer;
  while (file.text.size() <= max_bytes) {
    const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return os_error("read", errno);
    }
    if (n == 0) break;
    file.text.append(buffer.data(), static_cast<std::size_t>(n));
  }
  if (file.text.size() > max_bytes) {
    file.too_large = true;
    file.text.resize(max_bytes);
  }
  return file;
}

}  // namespace socket_exporter::yaml
