// Invariant checks shared by the fuzz targets. A failed check prints what was
// wrong and aborts, which libFuzzer reports as a crash and saves the input.
//
// Thread safety: stateless; libFuzzer runs a target on one thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "collectors/classifier.h"
#include "collectors/sources/socket_record.h"
#include "config/config.h"
#include "tests/unit/test_util.h"

namespace socket_exporter::fuzz {

[[noreturn]] inline void CheckFailed(const char* file, int line, const char* condition,
                                     const std::string& detail) {
  std::fprintf(stderr, "%s:%d: fuzz invariant violated: %s\n  %s\n", file, line, condition,
               detail.c_str());
  std::abort();
}

#define FUZZ_CHECK(condition, detail)                                                 \
  do {                                                                                \
    if (!(condition)) {                                                               \
      ::socket_exporter::fuzz::CheckFailed(__FILE__, __LINE__, #condition, (detail)); \
    }                                                                                 \
  } while (false)

// A rejected input gets a bounded, printable message: every line is
// "SOURCE:LINE:COLUMN: text", at most max_lines lines, no control bytes
// besides the newlines.
inline void CheckPositionedMessage(const std::string& message, const char* source,
                                   std::size_t max_lines) {
  FUZZ_CHECK(!message.empty(), "empty error message");
  std::size_t lines = 0;
  std::size_t start = 0;
  while (start <= message.size()) {
    std::size_t end = message.find('\n', start);
    if (end == std::string::npos) end = message.size();
    const std::string line = message.substr(start, end - start);
    ++lines;
    int row = 0;
    int column = 0;
    int consumed = 0;
    const std::string prefix = std::string(source) + ":%d:%d: %n";
    FUZZ_CHECK(std::sscanf(line.c_str(), prefix.c_str(), &row, &column, &consumed) == 2 &&
                   consumed > 0 && row >= 1 && column >= 1,
               "error line without a position: " + line);
    FUZZ_CHECK(static_cast<std::size_t>(consumed) < line.size(),
               "error line without text: " + line);
    start = end + 1;
  }
  FUZZ_CHECK(lines <= max_lines, "error message has " + std::to_string(lines) + " lines");
  for (char c : message) {
    const auto byte = static_cast<unsigned char>(c);
    FUZZ_CHECK(byte == '\n' || (byte >= 0x20 && byte != 0x7F),
               "control byte " + std::to_string(byte) + " in the error message");
  }
}

class CollectingSink : public SocketSink {
 public:
  void OnSocket(const SocketRecord& record) override { records.push_back(record); }
  std::vector<SocketRecord> records;
};

using testing::SameRecord;

inline std::string Describe(const SocketRecord& r) {
  char text[256];
  std::snprintf(text, sizeof(text),
                "proto=%d family=%d state=%u local=%s:%u (family %d) remote=%s:%u (family %d) "
                "rq=%u wq=%u uid=%u inode=%llu",
                static_cast<int>(r.protocol), static_cast<int>(r.family), r.state,
                r.local.ToString().c_str(), r.local_port, static_cast<int>(r.local.family),
                r.remote.ToString().c_str(), r.remote_port, static_cast<int>(r.remote.family),
                r.rqueue, r.wqueue, r.uid, static_cast<unsigned long long>(r.inode));
  return text;
}

// What every record from any source must satisfy, whatever the input: the
// protocol asked for, one family for the socket and both its addresses, and
// an IPv4 address only in the first 4 of its 16 bytes.
inline void CheckRecordShape(const SocketRecord& r, Protocol protocol) {
  FUZZ_CHECK(r.protocol == protocol, Describe(r));
  FUZZ_CHECK(r.family == Family::kIpv4 || r.family == Family::kIpv6, Describe(r));
  FUZZ_CHECK(r.local.family == r.family && r.remote.family == r.family, Describe(r));
  if (r.family == Family::kIpv4) {
    for (std::size_t i = 4; i < 16; ++i) {
      FUZZ_CHECK(r.local.bytes[i] == 0 && r.remote.bytes[i] == 0, Describe(r));
    }
  }
  FUZZ_CHECK(!StateName(r.protocol, r.state).empty(), Describe(r));
}

// Runs records through the classifier the way a scrape does and checks that
// every answer indexes the config correctly and follows the README's rules.
inline void CheckClassification(const std::shared_ptr<const Config>& config,
                                const std::vector<SocketRecord>& records) {
  Classifier classifier(config);
  for (const SocketRecord& r : records) {
    const Classification c = classifier.Classify(r);
    const std::string what = Describe(r);
    FUZZ_CHECK(c.port_range < config->port_ranges.size(), what);
    const PortInterval range = config->port_ranges[c.port_range].ports;
    FUZZ_CHECK(range.first <= c.service_port && c.service_port <= range.last, what);
    FUZZ_CHECK(c.service <= config->services.size(), what);
    if (c.service != 0) {
      const ServiceConfig& service = config->services[c.service - 1u];
      FUZZ_CHECK(r.protocol == Protocol::kTcp ? service.tcp : service.udp, what);
      bool listed = false;
      for (const PortInterval& ports : service.ports) {
        listed = listed || (ports.first <= c.service_port && c.service_port <= ports.last);
      }
      FUZZ_CHECK(listed, what);
    }
    if (c.is_listener) FUZZ_CHECK(IsListener(r), what);
    if (c.direction == Direction::kInbound) {
      FUZZ_CHECK(c.service_port == r.local_port, what);
    } else {
      FUZZ_CHECK(c.direction == Direction::kOutbound && c.service_port == r.remote_port, what);
      FUZZ_CHECK(!HasNoPeer(r) && !IsListener(r), what);
    }
  }
}

}  // namespace socket_exporter::fuzz
