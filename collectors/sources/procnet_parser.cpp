#include "collectors/sources/procnet_parser.h"

#include <fmt/format.h>

#include <charconv>
#include <cstring>

#include "common/printable.h"

namespace socket_exporter {
namespace {

constexpr std::uint8_t kProcTcpListen = 0x0A;
constexpr std::uint8_t kProcUdpUnconnected = 0x07;

// Splits a line into space-separated columns without copying.
class Columns {
 public:
  explicit Columns(std::string_view line) : line_(line) {}
  std::string_view Next() {
    while (position_ < line_.size() && IsBlank(line_[position_])) ++position_;
    const std::size_t start = position_;
    while (position_ < line_.size() && !IsBlank(line_[position_])) ++position_;
    return line_.substr(start, position_ - start);
  }

 private:
  static bool IsBlank(char c) { return c == ' ' || c == '\t'; }
  std::string_view line_;
  std::size_t position_ = 0;
};

// The whole of text must be a number in base; no sign, no prefix.
template <typename T>
bool ParseNumber(std::string_view text, int base, T& out) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, out, base);
  return error == std::errc() && stop == end;
}

template <typename T>
bool ParseHexDigits(std::string_view text, std::size_t min_digits, std::size_t max_digits, T& out) {
  return text.size() >= min_digits && text.size() <= max_digits && ParseNumber(text, 16, out);
}

// "0100007F:1F90" -> address and port. Returns what was wrong, or nullptr.
const char* ParseEndpoint(std::string_view text, Family family, IpAddress& address,
                          std::uint16_t& port) {
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) return "no ':' between address and port";
  const std::string_view hex_address = text.substr(0, colon);
  const std::size_t words = family == Family::kIpv4 ? 1 : 4;
  if (hex_address.size() != words * 8) {
    return family == Family::kIpv4 ? "address is not 8 hex digits" : "address is not 32 hex digits";
  }
  address.family = family;
  address.bytes.fill(0);
  for (std::size_t i = 0; i < words; ++i) {
    std::uint32_t word = 0;
    if (!ParseNumber(hex_address.substr(i * 8, 8), 16, word)) return "address is not hex";
    // The kernel printed the word as it sits in memory, i.e. host order;
    // storing it back in host order restores the network-order bytes.
    std::memcpy(address.bytes.data() + i * 4, &word, sizeof(word));
  }
  if (!ParseHexDigits(text.substr(colon + 1), 4, 4, port)) return "port is not 4 hex digits";
  return nullptr;
}

}  // namespace

Result<std::uint64_t> ParseProcNet(std::string_view text, Protocol protocol, Family family,
                                   ProcNetSelect select, SocketSink& sink) {
  const std::uint8_t without_peer_state =
      protocol == Protocol::kTcp ? kProcTcpListen : kProcUdpUnconnected;
  std::uint64_t delivered = 0;
  SocketRecord record;
  record.protocol = protocol;
  record.family = family;

  std::size_t position = 0;
  for (std::size_t line_number = 1; position < text.size(); ++line_number) {
    const std::size_t newline = text.find('\n', position);
    if (newline == std::string_view::npos) {
      return Fail(
          fmt::format("line {}: truncated: no newline at the end of the file", line_number));
    }
    const std::string_view line = text.substr(position, newline - position);
    position = newline + 1;
    const auto bad = [line_number, line](std::string_view what) {
      // The line goes into a log message: quote a bounded, printable prefix.
      constexpr std::size_t kQuoted = 200;
      if (line.size() <= kQuoted) {
        return Fail(
            fmt::format("line {}: {}: \"{}\"", line_number, what, EscapeForLog(line, kQuoted)));
      }
      return Fail(fmt::format("line {}: {}: \"{}\" ({} bytes)", line_number, what,
                              EscapeForLog(line, kQuoted), line.size()));
    };

    Columns columns(line);
    if (line_number == 1) {
      if (columns.Next() != "sl") return bad("not a /proc/net header line");
      continue;
    }

    const std::string_view slot = columns.Next();
    std::uint64_t slot_number = 0;
    if (slot.size() < 2 || slot.back() != ':' ||
        !ParseNumber(slot.substr(0, slot.size() - 1), 10, slot_number)) {
      return bad("missing or bad slot number");
    }
    const std::string_view local = columns.Next();
    if (local.empty()) return bad("missing local address");
    if (const char* why = ParseEndpoint(local, family, record.local, record.local_port)) {
      return bad(fmt::format("bad local address ({})", why));
    }
    const std::string_view remote = columns.Next();
    if (remote.empty()) return bad("missing remote address");
    if (const char* why = ParseEndpoint(remote, family, record.remote, record.remote_port)) {
      return bad(fmt::format("bad remote address ({})", why));
    }
    if (!ParseHexDigits(columns.Next(), 2, 2, record.state)) return bad("missing or bad state");

    const std::string_view queues = columns.Next();
    const std::size_t queue_colon = queues.find(':');
    if (queue_colon == std::string_view::npos ||
        !ParseHexDigits(queues.substr(0, queue_colon), 1, 8, record.wqueue) ||
        !ParseHexDigits(queues.substr(queue_colon + 1), 1, 8, record.rqueue)) {
      return bad("missing or bad tx_queue:rx_queue");
    }
    const std::string_view timer = columns.Next();
    if (timer.find(':') == std::string_view::npos) return bad("missing or bad tr:tm->when");
    if (columns.Next().empty()) return bad("missing retrnsmt");
    if (!ParseNumber(columns.Next(), 10, record.uid)) return bad("missing or bad uid");
    if (columns.Next().empty()) return bad("missing timeout");
    if (!ParseNumber(columns.Next(), 10, record.inode)) return bad("missing or bad inode");

    const bool without_peer = record.state == without_peer_state;
    const bool selected = select == ProcNetSelect::kAll ||
                          (select == ProcNetSelect::kWithoutPeer && without_peer) ||
                          (select == ProcNetSelect::kWithPeer && !without_peer);
    if (!selected) continue;
    sink.OnSocket(record);
    ++delivered;
  }
  if (text.empty()) return Fail("line 1: empty file, expected a header line");
  return delivered;
}

}  // namespace socket_exporter
