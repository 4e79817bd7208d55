// libFuzzer target for ParseProcNet (collectors/sources/procnet_parser.h): the text of
// one /proc/net/{tcp,tcp6,udp,udp6} file.
//
// Input: byte 0 picks the file kind (bit 0: 0 = TCP, 1 = UDP; bit 1:
// 0 = IPv4, 1 = IPv6); the remaining bytes are the file's text.
//
// Every input is parsed three times, once per ProcNetSelect, and checked:
//  - the three parses agree: all fail with the same message, or all succeed
//    and kAll's records are exactly kWithoutPeer's plus kWithPeer's, each in
//    file order, split by the state that owns a port (TCP 0A, UDP 07);
//  - the returned count is the number of records delivered;
//  - an error names "line N:", and the records delivered before it are
//    exactly what the first N-1 lines alone give: nothing is delivered from
//    the bad line or after it;
//  - each record has a consistent shape, survives a round trip (printed back
//    in the kernel's format and parsed again it is the same record), and
//    classifies into valid config indexes (fuzz_checks.h).
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/registry.h"
#include "collectors/sources/procnet_parser.h"
#include "tests/fuzz/fuzz_checks.h"

namespace socket_exporter::fuzz {
namespace {

struct Parse {
  Result<std::uint64_t> result;
  std::vector<SocketRecord> records;
};

Parse Run(std::string_view text, Protocol protocol, Family family, ProcNetSelect select) {
  CollectingSink sink;
  Result<std::uint64_t> result = ParseProcNet(text, protocol, family, select, sink);
  return Parse{std::move(result), std::move(sink.records)};
}

bool SameRecords(const std::vector<SocketRecord>& a, const std::vector<SocketRecord>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!SameRecord(a[i], b[i])) return false;
  }
  return true;
}

// The kernel's format for one socket (net/ipv4/tcp_ipv4.c get_tcp4_sock and
// friends): addresses as the in-memory 32-bit words printed %08X.
std::string FormatEndpoint(const IpAddress& address, std::uint16_t port) {
  std::string out;
  const std::size_t words = address.family == Family::kIpv4 ? 1 : 4;
  char text[16];
  for (std::size_t i = 0; i < words; ++i) {
    std::uint32_t word = 0;
    std::memcpy(&word, address.bytes.data() + i * 4, sizeof(word));
    std::snprintf(text, sizeof(text), "%08" PRIX32, word);
    out += text;
  }
  std::snprintf(text, sizeof(text), ":%04X", static_cast<unsigned>(port));
  return out + text;
}

std::string FormatFile(const SocketRecord& r) {
  char line[256];
  std::snprintf(line, sizeof(line),
                " %02X %08" PRIX32 ":%08" PRIX32 " 00:00000000 00000000 %" PRIu32 " 0 %" PRIu64
                " 1 0000000000000000 100 0 0 10 0\n",
                static_cast<unsigned>(r.state), r.wqueue, r.rqueue, r.uid, r.inode);
  return "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
         "timeout inode\n   0: " +
         FormatEndpoint(r.local, r.local_port) + " " + FormatEndpoint(r.remote, r.remote_port) +
         line;
}

std::shared_ptr<const Config> TheConfig() {
  static const std::shared_ptr<const Config> config = DefaultConfig();
  return config;
}

}  // namespace
}  // namespace socket_exporter::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace socket_exporter;
  using namespace socket_exporter::fuzz;
  if (size < 1) return 0;
  const Protocol protocol = (data[0] & 1U) != 0 ? Protocol::kUdp : Protocol::kTcp;
  const Family family = (data[0] & 2U) != 0 ? Family::kIpv6 : Family::kIpv4;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::uint8_t owns_port_state = protocol == Protocol::kTcp ? 0x0A : 0x07;

  const Parse all = Run(text, protocol, family, ProcNetSelect::kAll);
  const Parse without_peer = Run(text, protocol, family, ProcNetSelect::kWithoutPeer);
  const Parse with_peer = Run(text, protocol, family, ProcNetSelect::kWithPeer);

  FUZZ_CHECK(all.result.has_value() == without_peer.result.has_value() &&
                 all.result.has_value() == with_peer.result.has_value(),
             "the selections disagree on whether the file is valid");

  // kAll's records, split by state, are the other two selections' records.
  std::vector<SocketRecord> expected_without;
  std::vector<SocketRecord> expected_with;
  for (const SocketRecord& r : all.records) {
    (r.state == owns_port_state ? expected_without : expected_with).push_back(r);
  }
  FUZZ_CHECK(SameRecords(without_peer.records, expected_without), "kWithoutPeer records differ");
  FUZZ_CHECK(SameRecords(with_peer.records, expected_with), "kWithPeer records differ");

  if (all.result) {
    FUZZ_CHECK(*all.result == all.records.size(), "kAll count differs from delivered");
    FUZZ_CHECK(*without_peer.result == without_peer.records.size(), "kWithoutPeer count");
    FUZZ_CHECK(*with_peer.result == with_peer.records.size(), "kWithPeer count");
  } else {
    const std::string& message = all.result.error().message;
    FUZZ_CHECK(message == without_peer.result.error().message &&
                   message == with_peer.result.error().message,
               "the selections report different errors: " + message);
    unsigned long long line = 0;
    FUZZ_CHECK(std::sscanf(message.c_str(), "line %llu:", &line) == 1 && line >= 1,
               "error does not start with 'line N:': " + message);
    // The first line-1 lines, alone, must give the same records.
    std::size_t prefix_end = 0;
    for (unsigned long long i = 1; i < line; ++i) {
      const std::size_t newline = text.find('\n', prefix_end);
      FUZZ_CHECK(newline != std::string_view::npos, "error names a line past the end: " + message);
      prefix_end = newline + 1;
    }
    if (line == 1) {
      FUZZ_CHECK(all.records.empty(), "records delivered before a line-1 error");
    } else {
      const Parse prefix = Run(text.substr(0, prefix_end), protocol, family, ProcNetSelect::kAll);
      FUZZ_CHECK(prefix.result.has_value(),
                 "the lines before the error do not parse: " + prefix.result.error().message);
      FUZZ_CHECK(SameRecords(prefix.records, all.records),
                 "records delivered from or after the bad line: " + message);
    }
  }

  for (const SocketRecord& r : all.records) {
    CheckRecordShape(r, protocol);
    FUZZ_CHECK(r.family == family, Describe(r));
    const Parse again = Run(FormatFile(r), protocol, family, ProcNetSelect::kAll);
    FUZZ_CHECK(again.result.has_value(),
               "round trip does not parse: " + FormatFile(r) + again.result.error().message);
    FUZZ_CHECK(again.records.size() == 1 && SameRecord(again.records[0], r),
               "round trip changed the record: " + FormatFile(r));
  }
  // In the order ProcNetSource delivers them: sockets that own a port first.
  std::vector<SocketRecord> source_order = without_peer.records;
  source_order.insert(source_order.end(), with_peer.records.begin(), with_peer.records.end());
  CheckClassification(TheConfig(), source_order);
  return 0;
}
