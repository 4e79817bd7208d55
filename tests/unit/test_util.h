// Helpers for unit tests: build records and read metric families.
#pragma once

#include <arpa/inet.h>
#include <prometheus/metric_family.h>

#include <map>
#include <string>
#include <vector>

#include "collectors/sources/socket_record.h"

namespace socket_exporter::testing {

inline IpAddress Ip(const std::string& text) {
  IpAddress address;
  if (text.find(':') != std::string::npos) {
    address.family = Family::kIpv6;
    inet_pton(AF_INET6, text.c_str(), address.bytes.data());
  } else {
    address.family = Family::kIpv4;
    inet_pton(AF_INET, text.c_str(), address.bytes.data());
  }
  return address;
}

inline SocketRecord Tcp(std::uint8_t state, const std::string& local, std::uint16_t local_port,
                        const std::string& remote, std::uint16_t remote_port) {
  SocketRecord record;
  record.protocol = Protocol::kTcp;
  record.local = Ip(local);
  record.remote = Ip(remote);
  record.family = record.local.family;
  record.state = state;
  record.local_port = local_port;
  record.remote_port = remote_port;
  return record;
}

inline SocketRecord Udp(bool connected, const std::string& local, std::uint16_t local_port,
                        const std::string& remote, std::uint16_t remote_port) {
  SocketRecord record =
      Tcp(connected ? kTcpEstablished : kTcpClose, local, local_port, remote, remote_port);
  record.protocol = Protocol::kUdp;
  return record;
}

// Value of the sample of `name` whose labels include all of `labels`
// (summed over the rest); -1 if there is no such sample.
inline double Value(const std::vector<prometheus::MetricFamily>& families, const std::string& name,
                    const std::map<std::string, std::string>& labels) {
  double sum = 0;
  bool found = false;
  for (const auto& family : families) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      bool match = true;
      for (const auto& [key, value] : labels) {
        bool has = false;
        for (const auto& label : metric.label) {
          if (label.name == key && label.value == value) has = true;
        }
        match = match && has;
      }
      if (!match) continue;
      found = true;
      sum += family.type == prometheus::MetricType::Counter ? metric.counter.value
                                                            : metric.gauge.value;
    }
  }
  return found ? sum : -1;
}

inline std::size_t SeriesCount(const std::vector<prometheus::MetricFamily>& families,
                               const std::string& name) {
  for (const auto& family : families) {
    if (family.name == name) return family.metric.size();
  }
  return 0;
}

}  // namespace socket_exporter::testing
