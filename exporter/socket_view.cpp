#include "exporter/socket_view.h"

#include <arpa/inet.h>
#include <fnmatch.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <tuple>
#include <utility>

#include "collectors/cgroups_collector.h"
#include "collectors/registry.h"
#include "collectors/sources/cgroup_resolver.h"
#include "collectors/sources/socket_sources.h"
#include "collectors/summary.h"
#include "exporter/scraper.h"

namespace socket_exporter {
namespace {

// Widest endpoint text per family: "255.255.255.255:65535" and
// "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535". inet_ntop only uses the
// dotted IPv6 form for ::ffff:a.b.c.d and ::a.b.c.d, which are shorter.
constexpr std::size_t kIpv4EndpointWidth = 21;
constexpr std::size_t kIpv6EndpointWidth = 47;
constexpr std::size_t kProtoWidth = 5;      // "Proto", "tcp6"
constexpr std::size_t kStateWidth = 14;     // "bound_inactive"
constexpr std::size_t kDirectionWidth = 9;  // "Direction"
// Lines are handed to the stream in chunks of about this size.
constexpr std::size_t kFlushThreshold = 64 * 1024;

using AddressText = std::array<char, INET6_ADDRSTRLEN>;

// Numeric address without allocating: one call per socket and endpoint.
std::string_view FormatAddress(const IpAddress& address, AddressText& text) {
  const int af = address.family == Family::kIpv4 ? AF_INET : AF_INET6;
  if (inet_ntop(af, address.bytes.data(), text.data(), static_cast<socklen_t>(text.size())) ==
      nullptr) {
    return "invalid";  // cannot happen: the buffer fits both families
  }
  return std::string_view(text.data());
}

// "10.0.0.1:22", "[::1]:8080", "0.0.0.0:*" (port 0, as ss and netstat show it).
std::string_view FormatEndpoint(const IpAddress& address, std::uint16_t port,
                                std::array<char, 64>& out) {
  AddressText text;
  const std::string_view host = FormatAddress(address, text);
  const bool v6 = address.family == Family::kIpv6;
  std::size_t size = 0;
  if (port == 0) {
    size = v6 ? fmt::format_to_n(out.data(), out.size(), "[{}]:*", host).size
              : fmt::format_to_n(out.data(), out.size(), "{}:*", host).size;
  } else {
    size = v6 ? fmt::format_to_n(out.data(), out.size(), "[{}]:{}", host, port).size
              : fmt::format_to_n(out.data(), out.size(), "{}:{}", host, port).size;
  }
  return std::string_view(out.data(), std::min(size, out.size()));
}

// JSON string body. Today every value comes from a safe alphabet (numeric
// addresses, config names limited to [a-z0-9_]), but the writer should not
// depend on the config's validation rules staying that strict.
void AppendJsonString(fmt::memory_buffer& buffer, std::string_view text) {
  buffer.push_back('"');
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      buffer.push_back('\\');
      buffer.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      fmt::format_to(std::back_inserter(buffer), "\\u{:04x}", static_cast<unsigned>(c));
    } else {
      buffer.push_back(c);
    }
  }
  buffer.push_back('"');
}

std::string_view ProtoColumn(const SocketRecord& record) {
  // netstat's names: the family is visible without a column of its own.
  if (record.protocol == Protocol::kTcp) return record.family == Family::kIpv6 ? "tcp6" : "tcp";
  return record.family == Family::kIpv6 ? "udp6" : "udp";
}

std::string Join(const std::vector<std::string>& values) {
  std::string out;
  for (const std::string& value : values) {
    if (!out.empty()) out += ", ";
    out += value;
  }
  return out;
}

}  // namespace

bool SocketFilter::OnlyIpv4() const {
  return !families.empty() &&
         std::all_of(families.begin(), families.end(), [](Family f) { return f == Family::kIpv4; });
}

bool SocketFilter::MatchesCgroup(std::string_view cgroup) const {
  if (cgroups.empty()) return true;
  const std::string name(cgroup);
  return std::any_of(cgroups.begin(), cgroups.end(), [&](const std::string& pattern) {
    return ::fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
  });
}

bool SocketFilter::Matches(const SocketRecord& record, const Classification& cls) const {
  if (!protocols.empty() && !Contains(protocols, record.protocol)) return false;
  if (!families.empty() && !Contains(families, record.family)) return false;
  if (!directions.empty() && !Contains(directions, cls.direction)) return false;
  if (!services.empty() && !Contains(services, cls.service)) return false;
  if (!states.empty() && std::find(states.begin(), states.end(),
                                   StateName(record.protocol, record.state)) == states.end()) {
    return false;
  }
  if (!ports.empty()) {
    const auto in = [&](std::uint16_t port) {
      return std::any_of(ports.begin(), ports.end(),
                         [port](const PortSpan& s) { return s.first <= port && port <= s.last; });
    };
    if (!in(record.local_port) && !in(record.remote_port)) return false;
  }
  return true;
}

Result<SocketFilter> ParseSocketFilter(const ListFilterFlags& flags, const Config& config) {
  SocketFilter filter;
  for (const std::string& value : flags.protocol) {
    if (value == "tcp") {
      filter.protocols.push_back(Protocol::kTcp);
    } else if (value == "udp") {
      filter.protocols.push_back(Protocol::kUdp);
    } else {
      return Fail(fmt::format("--filter.protocol: \"{}\" is not tcp or udp", value));
    }
  }
  for (const std::string& value : flags.family) {
    if (value == "ipv4") {
      filter.families.push_back(Family::kIpv4);
    } else if (value == "ipv6") {
      filter.families.push_back(Family::kIpv6);
    } else {
      return Fail(fmt::format("--filter.family: \"{}\" is not ipv4 or ipv6", value));
    }
  }
  const std::vector<std::string> states = StateLabelValues();
  for (const std::string& value : flags.state) {
    if (!Contains(states, value)) {
      return Fail(
          fmt::format("--filter.state: \"{}\" is not a state; use one of {}", value, Join(states)));
    }
    filter.states.push_back(value);
  }
  const std::vector<std::string> services = ServiceOrder(config);
  for (const std::string& value : flags.service) {
    const std::size_t index = IndexIn(services, value);
    if (index == services.size()) {
      return Fail(fmt::format("--filter.service: \"{}\" is not a service of {}; use one of {}",
                              value, config.source, Join(services)));
    }
    // services: config order then "other"; Classification: 0 = other, 1 + i.
    filter.services.push_back(index + 1 == services.size() ? std::uint16_t{0}
                                                           : static_cast<std::uint16_t>(index + 1));
  }
  for (const std::string& value : flags.port) {
    auto span = ParsePortInterval(value);
    if (!span) return Fail("--filter.port: " + span.error().message);
    filter.ports.push_back(*span);
  }
  for (const std::string& value : flags.direction) {
    if (value == "inbound") {
      filter.directions.push_back(Direction::kInbound);
    } else if (value == "outbound") {
      filter.directions.push_back(Direction::kOutbound);
    } else {
      return Fail(fmt::format("--filter.direction: \"{}\" is not inbound or outbound", value));
    }
  }
  for (const std::string& value : flags.cgroup) {
    if (value.empty()) return Fail("--filter.cgroup: empty pattern");
    filter.cgroups.push_back(value);
  }
  return filter;
}

SocketListWriter::SocketListWriter(std::shared_ptr<const Config> config, SocketFilter filter,
                                   ViewFormat format, std::ostream& out)
    : config_(std::move(config)),
      classifier_(config_),
      filter_(std::move(filter)),
      format_(format),
      out_(out),
      address_width_(filter_.OnlyIpv4() ? kIpv4EndpointWidth : kIpv6EndpointWidth),
      service_width_(std::string_view("Service").size()) {
  service_width_ = std::max(service_width_, config_->ServiceName(0).size());
  for (const ServiceConfig& service : config_->services) {
    service_width_ = std::max(service_width_, service.name.size());
  }
  for (const PortRangeConfig& range : config_->port_ranges) {
    range_width_ = std::max(range_width_, range.name.size());
  }
  CgroupResolver::UseHierarchy(config_->Section<CgroupsSettings>(kCgroupsCollectorName)
                                   .hierarchy);  // as the cgroups collector does
}

void SocketListWriter::WriteHeader() {
  if (format_ != ViewFormat::kText) return;
  fmt::format_to(std::back_inserter(buffer_),
                 "{:<{}} {:<{}} {:<{}} {:<{}} {:<{}} {:<{}} {:<{}} {}\n", "Proto", kProtoWidth,
                 "Local Address:Port", address_width_, "Remote Address:Port", address_width_,
                 "State", kStateWidth, "Direction", kDirectionWidth, "Service", service_width_,
                 "Port Range", range_width_, "Cgroup");
}

std::string_view SocketListWriter::Cgroup(std::uint64_t id) {
  if (!cgroup_valid_ || id != cgroup_id_) {
    cgroup_id_ = id;
    cgroup_name_ = CgroupName(id, cgroup_storage_);
    cgroup_valid_ = true;
  }
  return cgroup_name_;
}

void SocketListWriter::OnSocket(const SocketRecord& record) {
  const Classification cls = classifier_.Classify(record);
  if (!filter_.Matches(record, cls)) return;
  const std::string_view cgroup = Cgroup(record.cgroup_id);
  if (!filter_.MatchesCgroup(cgroup)) return;
  ++listed_;
  if (format_ == ViewFormat::kText) {
    AppendText(record, cls, cgroup);
  } else {
    AppendJson(record, cls, cgroup);
  }
  if (buffer_.size() >= kFlushThreshold) Flush();
}

void SocketListWriter::AppendText(const SocketRecord& record, const Classification& cls,
                                  std::string_view cgroup) {
  std::array<char, 64> local;
  std::array<char, 64> remote;
  fmt::format_to(std::back_inserter(buffer_),
                 "{:<{}} {:<{}} {:<{}} {:<{}} {:<{}} {:<{}} {:<{}} {}\n", ProtoColumn(record),
                 kProtoWidth, FormatEndpoint(record.local, record.local_port, local),
                 address_width_, FormatEndpoint(record.remote, record.remote_port, remote),
                 address_width_, StateName(record.protocol, record.state), kStateWidth,
                 DirectionName(cls.direction), kDirectionWidth, config_->ServiceName(cls.service),
                 service_width_, config_->port_ranges[cls.port_range].name, range_width_, cgroup);
}

void SocketListWriter::AppendJson(const SocketRecord& record, const Classification& cls,
                                  std::string_view cgroup) {
  AddressText local;
  AddressText remote;
  auto it = std::back_inserter(buffer_);
  fmt::format_to(it, "{{\"protocol\":\"{}\",\"family\":\"{}\",\"state\":\"{}\",\"local_address\":",
                 ProtocolName(record.protocol), FamilyName(record.family),
                 StateName(record.protocol, record.state));
  AppendJsonString(buffer_, FormatAddress(record.local, local));
  fmt::format_to(it, ",\"local_port\":{},\"remote_address\":", record.local_port);
  AppendJsonString(buffer_, FormatAddress(record.remote, remote));
  fmt::format_to(it,
                 ",\"remote_port\":{},\"direction\":\"{}\",\"service_port\":{},"
                 "\"service_name\":",
                 record.remote_port, DirectionName(cls.direction), cls.service_port);
  AppendJsonString(buffer_, config_->ServiceName(cls.service));
  fmt::format_to(it, ",\"port_range\":");
  AppendJsonString(buffer_, config_->port_ranges[cls.port_range].name);
  fmt::format_to(it, ",\"cgroup\":");
  AppendJsonString(buffer_, cgroup);
  fmt::format_to(it, "}}\n");
}

void SocketListWriter::Flush() {
  out_.write(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
  buffer_.clear();
}

Result<std::uint64_t> WriteSocketList(SocketSource& source, std::shared_ptr<const Config> config,
                                      const SocketFilter& filter, ViewFormat format,
                                      std::ostream& out) {
  SocketListWriter writer(std::move(config), filter, format, out);
  writer.WriteHeader();
  auto stats = source.Stream(writer);
  writer.Flush();
  out.flush();
  TRY(stats);
  if (stats->dump_interrupted > 0) {
    spdlog::warn(
        "the kernel flagged {} dump(s) as interrupted by table changes: a socket may be "
        "missing or listed twice",
        stats->dump_interrupted);
  }
  return writer.listed();
}

void WriteSummary(const std::vector<prometheus::MetricFamily>& families, const Config& config,
                  std::ostream& out) {
  WriteSummary(families, config, AllCollectors(), out);
}

void WriteSummary(const std::vector<prometheus::MetricFamily>& families, const Config& config,
                  std::span<const CollectorInfo> collectors, std::ostream& out) {
  const auto* scanned = FindFamily(families, "socket_exporter_sockets_scanned");
  if (scanned != nullptr && !scanned->metric.empty()) {
    // One sample per source, or per namespace with the netns collector.
    double total = 0;
    std::vector<std::string> sources;
    for (const auto& metric : scanned->metric) {
      total += ValueOf(*scanned, metric);
      const std::string source(LabelOf(metric, "source"));
      if (!Contains(sources, source)) sources.push_back(source);
    }
    out << "Sockets scanned: " << Count(total) << " (source " << Join(sources) << "), config "
        << config.source << "\n";
  } else {
    out << "Sockets scanned: none (no collector reads sockets), config " << config.source << "\n";
  }
  // With the netns collector, every family carries a netns label: the
  // tables then sum over the namespaces, as sum without (netns) would.
  if (const auto* connections = FindFamily(families, "socket_connections")) {
    std::vector<std::string> namespaces;
    for (const auto& metric : connections->metric) {
      const std::string netns(LabelOf(metric, "netns"));
      if (!netns.empty() && !Contains(namespaces, netns)) namespaces.push_back(netns);
    }
    if (!namespaces.empty()) {
      out << "Summed over " << namespaces.size() << " network namespaces (collector netns)\n";
    }
  }
  out << '\n';
  for (const CollectorInfo& info : collectors) {
    if (info.write_summary != nullptr) info.write_summary(families, config, out);
  }
}

int RunSocketView(const Options& options, std::shared_ptr<const Config> config,
                  const Scraper& scraper, const ScraperOptions& scraper_options) {
  if (options.summary) {
    // The collection --once makes; only the rendering differs.
    ScrapeOutcome outcome = scraper.CollectNow();
    WriteSummary(outcome.families, *config, std::cout);
    std::cout.flush();
    return outcome.all_succeeded ? 0 : 2;
  }
  auto filter = ParseSocketFilter(options.filter, *config);
  if (!filter) {
    std::cerr << "socket_exporter: " << filter.error().message << "\n";
    return 1;
  }
  auto source = scraper_options.make_source
                    ? scraper_options.make_source()
                    : MakeSocketSource(scraper_options.source, scraper_options.procfs_root);
  const ViewFormat format = options.output == "json" ? ViewFormat::kJson : ViewFormat::kText;
  auto listed = WriteSocketList(*source, std::move(config), *filter, format, std::cout);
  if (!listed) {
    spdlog::error("reading the socket table ({}) failed: {}", source->Name(),
                  listed.error().message);
    return 2;
  }
  return 0;
}

}  // namespace socket_exporter
