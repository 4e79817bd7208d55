// `--list` and `--summary`: the socket table as the exporter classifies it,
// for people writing a config (README "Classification", docs/list-view.md).
//
// Both views read the same source and classify with the same code as a
// scrape, so they cannot disagree with /metrics:
//  - --list streams: a SocketListWriter is a SocketSink that classifies each
//    record with collectors/classifier.h and prints one line for it at once.
//    Nothing but the classifier's listener bitmaps outlives a record.
//  - --summary runs one ordinary collection (Scraper::CollectNow, the code
//    path of --once) and renders the families as tables, so its memory is
//    the collectors' (bounded by the config), never the socket table's.
//
// Thread safety: a SocketListWriter is used by one thread (it is the sink of
// one Stream()); the free functions are stateless and thread-safe.
#pragma once

#include <fmt/format.h>
#include <prometheus/metric_family.h>

#include <cstdint>
#include <memory>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/classifier.h"
#include "collectors/registry.h"
#include "collectors/sources/socket_record.h"
#include "collectors/sources/socket_source.h"
#include "common/ports.h"
#include "common/result.h"
#include "config/config.h"
#include "exporter/cli.h"

namespace socket_exporter {

class Scraper;
struct ScraperOptions;

enum class ViewFormat : std::uint8_t { kText, kJson };

// Which sockets --list prints. An empty list means "any"; a socket must
// match every non-empty list, and one entry of each (values of one flag are
// alternatives, different flags narrow each other).
struct SocketFilter {
  using PortSpan = PortInterval;
  std::vector<Protocol> protocols;
  std::vector<Family> families;
  std::vector<std::string> states;      // label values, see StateLabelValues()
  std::vector<std::uint16_t> services;  // Classification::service indices (0 = "other")
  std::vector<PortSpan> ports;          // local or remote port
  std::vector<Direction> directions;
  std::vector<std::string> cgroups;  // fnmatch(3) globs on the cgroup name

  // Only families == {ipv4} can rule out IPv6 addresses (column widths).
  bool OnlyIpv4() const;
  bool Matches(const SocketRecord& record, const Classification& cls) const;
  bool MatchesCgroup(std::string_view cgroup) const;
};

// Validates the --filter.* flags against the fixed label values and the
// config's service names ("other" included). Ports are "N" or "N-M".
// Errors name the flag, the bad value and what is accepted.
Result<SocketFilter> ParseSocketFilter(const ListFilterFlags& flags, const Config& config);

// The SocketSink of --list. Call WriteHeader() (text only) before the
// stream and Flush() after it; lines are buffered in 64 KiB chunks.
//
// Text: one line per socket in fixed-width columns, every width chosen up
// front for the widest value the column can hold (an IPv6 endpoint is at
// most 47 characters: "[" + 39 + "]:" + 5), so lines align while streaming.
// Columns: Proto (tcp, tcp6, udp, udp6, netstat style), Local Address:Port,
// Remote Address:Port (IPv6 in brackets, port 0 as "*"), State, Direction,
// Service, Port Range, Cgroup (the cgroup collector's names: a path relative
// to the cgroup2 mount, or unowned / removed / unresolved).
// JSON: one object per line with the fields protocol, family, state,
// local_address, local_port, remote_address, remote_port, direction,
// service_port, service_name, port_range, cgroup (addresses without
// brackets).
class SocketListWriter : public SocketSink {
 public:
  SocketListWriter(std::shared_ptr<const Config> config, SocketFilter filter, ViewFormat format,
                   std::ostream& out);

  void WriteHeader();
  void OnSocket(const SocketRecord& record) override;
  void Flush();

  std::uint64_t listed() const { return listed_; }

 private:
  void AppendText(const SocketRecord& record, const Classification& cls, std::string_view cgroup);
  void AppendJson(const SocketRecord& record, const Classification& cls, std::string_view cgroup);
  std::string_view Cgroup(std::uint64_t id);

  std::shared_ptr<const Config> config_;
  // Every socket goes through the classifier, printed or not: it learns the
  // listeners from the stream, so filtering before it would misclassify.
  Classifier classifier_;
  SocketFilter filter_;
  ViewFormat format_;
  std::ostream& out_;
  std::size_t address_width_;
  std::size_t service_width_;
  std::size_t range_width_ = std::string_view("Port Range").size();
  fmt::memory_buffer buffer_;
  std::uint64_t listed_ = 0;
  // The last cgroup resolved: sockets of one cgroup often come in runs.
  std::uint64_t cgroup_id_ = 0;
  std::string cgroup_storage_;
  std::string_view cgroup_name_;
  bool cgroup_valid_ = false;
};

// Streams `source` through a SocketListWriter into out. Returns the number
// of sockets listed; on a source error, what was listed so far has been
// written.
Result<std::uint64_t> WriteSocketList(SocketSource& source, std::shared_ptr<const Config> config,
                                      const SocketFilter& filter, ViewFormat format,
                                      std::ostream& out);

// Renders one collection's families (Scraper output) as the --summary
// tables: sockets by state x service, by service x port range x direction,
// ephemeral capacity and utilization per protocol, top destinations, and
// sockets by cgroup (the cgroups collector's series). Reads
// only families; metrics it does not know are ignored. Durations and
// timestamps are not shown, so the output of a fixed input is fixed.
void WriteSummary(const std::vector<prometheus::MetricFamily>& families, const Config& config,
                  std::ostream& out);
// The same with the tables of these collectors (tests add their own).
void WriteSummary(const std::vector<prometheus::MetricFamily>& families, const Config& config,
                  std::span<const CollectorInfo> collectors, std::ostream& out);

// --list / --summary from the command line; returns the exit code: 0, 1 for
// an invalid filter, 2 when the socket table (or a collector) failed, as
// --once does.
int RunSocketView(const Options& options, std::shared_ptr<const Config> config,
                  const Scraper& scraper, const ScraperOptions& scraper_options);

}  // namespace socket_exporter
