// Ephemeral port exhaustion, computed from the same single socket pass.
//
// connect() needs a local port that makes the 4-tuple unique, so what runs
// out is per destination d = (local IP, remote IP, remote port):
//   R  = ip_local_port_range minus ip_local_reserved_ports (read every scrape)
//   B  = ports in R held by a listener or a bound, unconnected socket
//        ("bind-locked": connect() skips them), per protocol
//   used_d = sockets to d, any state (TIME_WAIT, FIN_WAIT2 included), whose
//        local port is in R \ B
//   utilization_d = used_d / (|R| - |B|)
// B is complete before the first socket with a peer arrives, thanks to the
// source's ordering contract (listeners and unconnected sockets first), so
// each socket is counted once, as it streams by.
//
// Memory is bounded: at most ephemeral.max_tracked_destinations destinations
// are tracked per scrape; sockets to further destinations are counted in
// socket_ephemeral_untracked_sockets.
//
// Thread safety: see collector.h (one scrape at a time).
#pragma once

#include <array>
#include <cstdint>
#include <ostream>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "collectors/collector.h"
#include "collectors/ephemeral_ports.h"

namespace socket_exporter {

inline constexpr std::string_view kEphemeralCollectorName = "ephemeral";

// The `ephemeral:` section of the config file.
struct EphemeralSettings : SectionSettings {
  // Series of socket_ephemeral_destination_ports_used: the K busiest
  // destinations. 0 turns the per-destination series off.
  std::uint32_t top_destinations = 10;
  // Size cap of the per-scrape destination table; destinations beyond it are
  // counted in socket_ephemeral_untracked_sockets.
  std::uint32_t max_tracked_destinations = 65536;
  // socket_ephemeral_destinations_above_ratio{threshold} is published for each.
  std::vector<double> utilization_thresholds = {0.5, 0.8, 0.9};
};
std::shared_ptr<const SectionSettings> ParseEphemeralSettings(yaml::FieldReader& reader,
                                                              const yaml::Field* section);
// Its tables in --summary.
void WriteEphemeralTables(const std::vector<prometheus::MetricFamily>& families,
                          const Config& config, std::ostream& out);

class EphemeralCollector : public Collector {
 public:
  Result<void> Begin(const ScrapeContext& context) override;
  void Observe(const SocketRecord& record, const Classification& cls) override;
  Result<void> Finish(std::vector<prometheus::MetricFamily>& out) override;

 private:
  struct Destination {
    IpAddress local;
    IpAddress remote;
    std::uint16_t remote_port = 0;
    bool operator==(const Destination&) const = default;
  };
  struct DestinationHash {
    std::size_t operator()(const Destination& d) const;
  };
  struct Use {
    std::uint32_t ports = 0;      // sockets (= distinct local ports) to the destination
    std::uint32_t time_wait = 0;  // of which in TIME_WAIT
  };
  struct PerProtocol {
    std::unordered_map<Destination, Use, DestinationHash> destinations;
    std::uint64_t untracked_sockets = 0;
  };

  std::shared_ptr<const Config> config_;
  const EphemeralSettings* settings_ = nullptr;  // held by config_
  EphemeralPorts ports_;                         // R, B and the ports in use
  std::array<PerProtocol, 2> protocols_;
};

}  // namespace socket_exporter
