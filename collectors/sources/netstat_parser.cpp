#include "collectors/sources/netstat_parser.h"

#include <fmt/format.h>

#include <charconv>
#include <vector>

namespace socket_exporter {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Splits a line into blank-separated words.
std::vector<std::string_view> Words(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && IsBlank(line[i])) ++i;
    const std::size_t start = i;
    while (i < line.size() && !IsBlank(line[i])) ++i;
    if (i > start) words.push_back(line.substr(start, i - start));
  }
  return words;
}

// A non-blank line, split into its "Prefix" (without the colon) and the
// words after it.
struct Line {
  std::size_t number = 0;  // 1-based
  std::string_view prefix;
  std::vector<std::string_view> words;
};

Result<Line> SplitLine(std::string_view text, std::size_t number) {
  const std::size_t colon = text.find(':');
  std::string_view prefix = colon == std::string_view::npos ? text : text.substr(0, colon);
  while (!prefix.empty() && IsBlank(prefix.front())) prefix.remove_prefix(1);
  if (colon == std::string_view::npos || prefix.empty() ||
      prefix.find_first_of(" \t") != std::string_view::npos) {
    return Fail(fmt::format("line {}: expected \"Prefix: ...\", got \"{}\"", number, text));
  }
  return Line{number, prefix, Words(text.substr(colon + 1))};
}

}  // namespace

Result<std::map<std::string, std::uint64_t>> ParseNetstat(std::string_view text) {
  std::vector<Line> lines;
  std::size_t number = 0;
  while (!text.empty()) {
    const std::size_t newline = text.find('\n');
    const std::string_view raw = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
    ++number;
    if (Words(raw).empty()) continue;  // tolerate blank lines (e.g. a final one)
    TRY_ASSIGN(auto line, SplitLine(raw, number));
    lines.push_back(std::move(line));
  }

  std::map<std::string, std::uint64_t> counters;
  for (std::size_t i = 0; i < lines.size(); i += 2) {
    const Line& header = lines[i];
    if (i + 1 == lines.size()) {
      return Fail(
          fmt::format("line {}: header \"{}:\" has no value line", header.number, header.prefix));
    }
    const Line& values = lines[i + 1];
    if (values.prefix != header.prefix) {
      return Fail(
          fmt::format("line {}: value line \"{}:\" does not match header \"{}:\" of line {}",
                      values.number, values.prefix, header.prefix, header.number));
    }
    if (values.words.size() != header.words.size()) {
      return Fail(fmt::format("line {}: {} values for the {} names of \"{}:\" on line {}",
                              values.number, values.words.size(), header.words.size(),
                              header.prefix, header.number));
    }
    for (std::size_t k = 0; k < header.words.size(); ++k) {
      const std::string_view word = values.words[k];
      std::uint64_t value = 0;
      const auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), value);
      if (ec != std::errc() || end != word.data() + word.size()) {
        return Fail(fmt::format("line {}: value \"{}\" of {}.{} is not an unsigned 64-bit number",
                                values.number, word, header.prefix, header.words[k]));
      }
      std::string key = fmt::format("{}.{}", header.prefix, header.words[k]);
      if (!counters.emplace(key, value).second) {
        return Fail(fmt::format("line {}: {} appears twice", header.number, key));
      }
    }
  }
  return counters;
}

}  // namespace socket_exporter
