// libFuzzer target for ParseSockDiagBatch (collectors/sources/netlink_parser.h): one
// sock_diag reply datagram, as recvmsg() would return it.
//
// Input: byte 0 picks the protocol the dump was for (bit 0: 0 = TCP,
// 1 = UDP); the remaining bytes are the datagram.
//
// Beyond "no crash, no sanitizer report", every input is checked against a
// second, deliberately plain decoder below that walks the same bytes by fixed
// offsets (not through the kernel structs):
//  - the parser fails exactly when the reference finds a malformed message,
//    and its error names the byte offset where the reference stopped;
//  - the records delivered are exactly the reference's, field by field, in
//    order: ports, addresses, state (with CLOSE -> bound_inactive for TCP),
//    queues, uid, inode -- so nothing is delivered after an error, after
//    NLMSG_DONE or after a kernel error;
//  - the status (done, kernel_errno, dump_interrupted, records) matches;
//  - every record has a consistent shape (fuzz_checks.h) and classifies into
//    valid config indexes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "collectors/registry.h"
#include "collectors/sources/netlink_parser.h"
#include "tests/fuzz/fuzz_checks.h"

namespace socket_exporter::fuzz {
namespace {

// Wire constants, spelled out rather than taken from the kernel headers the
// parser uses, so that a wrong constant there shows up as a mismatch here.
constexpr std::size_t kHeader = 16;        // struct nlmsghdr
constexpr std::size_t kDiagMsg = 72;       // struct inet_diag_msg
constexpr std::uint16_t kNoop = 1;         // NLMSG_NOOP
constexpr std::uint16_t kError = 2;        // NLMSG_ERROR
constexpr std::uint16_t kDone = 3;         // NLMSG_DONE
constexpr std::uint16_t kTcpDiag = 18;     // TCPDIAG_GETSOCK
constexpr std::uint16_t kByFamily = 20;    // SOCK_DIAG_BY_FAMILY
constexpr std::uint16_t kDumpIntr = 0x10;  // NLM_F_DUMP_INTR
constexpr std::uint8_t kAfInet = 2;
constexpr std::uint8_t kAfInet6 = 10;

struct Reference {
  std::vector<SocketRecord> records;
  std::optional<std::size_t> error_at;  // offset of the malformed message
  bool done = false;
  bool interrupted = false;
  long long kernel_error = 0;  // magnitude, as a wide integer: INT_MIN is legal input
};

// Netlink headers and inet_diag_msg's queue/uid/inode fields are in host
// byte order; the ports are big endian.
template <typename T>
T Host(const std::uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(value));
  return value;
}
std::uint16_t BigEndian16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

Reference Decode(std::span<const std::uint8_t> bytes, Protocol protocol) {
  Reference ref;
  std::size_t at = 0;
  const auto malformed = [&ref, &at] {
    ref.error_at = at;
    return ref;
  };
  while (at < bytes.size()) {
    const std::size_t left = bytes.size() - at;
    const std::uint8_t* m = bytes.data() + at;
    if (left < kHeader) return malformed();
    const auto length = Host<std::uint32_t>(m);
    const auto type = Host<std::uint16_t>(m + 4);
    const auto flags = Host<std::uint16_t>(m + 6);
    if (length < kHeader || length > left) return malformed();
    if ((flags & kDumpIntr) != 0) ref.interrupted = true;
    const std::uint8_t* payload = m + kHeader;
    const std::size_t payload_length = length - kHeader;
    if (type == kNoop) {
      // skipped
    } else if (type == kDone) {
      if (payload_length >= 4) ref.kernel_error = Host<std::int32_t>(payload);
      ref.done = true;
      break;
    } else if (type == kError) {
      if (payload_length < 4) return malformed();
      const auto error = Host<std::int32_t>(payload);
      if (error != 0) {
        ref.kernel_error = error;
        ref.done = true;
        break;
      }
    } else if (type == kByFamily || type == kTcpDiag) {
      if (payload_length < kDiagMsg) return malformed();
      const std::uint8_t family = payload[0];
      if (family != kAfInet && family != kAfInet6) return malformed();
      SocketRecord r;
      r.protocol = protocol;
      r.family = family == kAfInet ? Family::kIpv4 : Family::kIpv6;
      r.state = payload[1];
      if (protocol == Protocol::kTcp && r.state == 7) r.state = 13;  // CLOSE -> bound_inactive
      r.local_port = BigEndian16(payload + 4);
      r.remote_port = BigEndian16(payload + 6);
      const std::size_t address_length = family == kAfInet ? 4 : 16;
      r.local.family = r.remote.family = r.family;
      std::memcpy(r.local.bytes.data(), payload + 8, address_length);
      std::memcpy(r.remote.bytes.data(), payload + 24, address_length);
      r.rqueue = Host<std::uint32_t>(payload + 56);
      r.wqueue = Host<std::uint32_t>(payload + 60);
      r.uid = Host<std::uint32_t>(payload + 64);
      r.inode = Host<std::uint32_t>(payload + 68);
      ref.records.push_back(r);
    } else {
      return malformed();  // NLMSG_OVERRUN (4) or a type no dump sends
    }
    const std::size_t aligned = (std::size_t{length} + 3) & ~std::size_t{3};
    at += aligned < left ? aligned : left;  // the last message may lack its padding
  }
  if (ref.kernel_error < 0) ref.kernel_error = -ref.kernel_error;
  return ref;
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
  const std::span<const std::uint8_t> datagram(data + 1, size - 1);

  CollectingSink sink;
  const Result<NetlinkBatchStatus> status = ParseSockDiagBatch(datagram, protocol, sink);
  const Reference ref = Decode(datagram, protocol);

  if (ref.error_at) {
    FUZZ_CHECK(!status, "the parser accepted a datagram the reference rejects at byte " +
                            std::to_string(*ref.error_at));
    const std::string& message = status.error().message;
    FUZZ_CHECK(message.find("at byte " + std::to_string(*ref.error_at)) != std::string::npos,
               "error does not name byte " + std::to_string(*ref.error_at) + ": " + message);
  } else {
    FUZZ_CHECK(status.has_value(),
               "the parser rejected a well-formed datagram: " + status.error().message);
    FUZZ_CHECK(status->records == sink.records.size(), "status.records differs from delivered");
    FUZZ_CHECK(status->done == ref.done, "done differs from the reference");
    FUZZ_CHECK(status->dump_interrupted == ref.interrupted, "dump_interrupted differs");
    FUZZ_CHECK(status->kernel_errno >= 0, "negative kernel_errno");
    FUZZ_CHECK(status->kernel_errno == 0 || status->done, "kernel error without done");
    // INT_MIN has no positive int; any positive answer will do, as long as
    // an error is still an error.
    if (ref.kernel_error > 0x7fffffffLL) {
      FUZZ_CHECK(status->kernel_errno > 0, "INT_MIN kernel error lost");
    } else {
      FUZZ_CHECK(status->kernel_errno == ref.kernel_error,
                 "kernel_errno " + std::to_string(status->kernel_errno) + ", reference " +
                     std::to_string(ref.kernel_error));
    }
    if (status->kernel_errno != 0) FUZZ_CHECK(!ErrnoText(status->kernel_errno).empty(), "");
  }

  FUZZ_CHECK(sink.records.size() == ref.records.size(),
             "delivered " + std::to_string(sink.records.size()) + " records, reference " +
                 std::to_string(ref.records.size()));
  for (std::size_t i = 0; i < sink.records.size(); ++i) {
    FUZZ_CHECK(SameRecord(sink.records[i], ref.records[i]),
               "record " + std::to_string(i) + ": got " + Describe(sink.records[i]) +
                   ", reference " + Describe(ref.records[i]));
    CheckRecordShape(sink.records[i], protocol);
    if (protocol == Protocol::kTcp) {
      FUZZ_CHECK(sink.records[i].state != kTcpClose, "TCP CLOSE not translated to bound_inactive");
    }
  }
  CheckClassification(TheConfig(), sink.records);
  return 0;
}
