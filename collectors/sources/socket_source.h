// Where socket records come from. A source streams every TCP and UDP socket of
// the current network namespace into a sink, without keeping a list.
//
// Ordering contract (the classifier relies on it): for each protocol, every
// socket without a peer that can own a port for inbound traffic -- TCP LISTEN
// sockets, UDP unconnected sockets -- is delivered before any socket of that
// protocol that has a peer. Both sources meet it cheaply: the kernel walks the
// TCP listening hash before the established hash, and UDP is dumped as
// "unconnected" then "connected" (the UDP table is small).
//
// Thread safety: a source instance is used by one thread at a time.
#pragma once

#include <memory>
#include <string>

#include "collectors/sources/socket_record.h"
#include "common/result.h"

namespace socket_exporter {

struct SourceStats {
  std::uint64_t records = 0;
  std::uint64_t dump_interrupted = 0;  // NLM_F_DUMP_INTR seen: table changed mid-dump
};

class SocketSource {
 public:
  virtual ~SocketSource() = default;
  virtual std::string Name() const = 0;  // "netlink" or "procfs"
  // May start reading the tables in the background, so that work the
  // caller does before Stream() (the collectors' Begin) overlaps the
  // kernel's walk. Must be followed by Stream() or Abandon(). Failures
  // surface from Stream().
  virtual void Prefetch() {}
  // Ends what Prefetch() started without delivering it.
  virtual void Abandon() {}
  // Streams all TCP and UDP sockets (IPv4 and IPv6) into sink.
  virtual Result<SourceStats> Stream(SocketSink& sink) = 0;
};

}  // namespace socket_exporter
