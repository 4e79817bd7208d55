// Decides, for each socket, its direction and its service port, then names
// the service port's port range and service from the config.
//
// Rules (README "Classification"):
//  - a socket without a peer (TCP LISTEN, bound_inactive, unconnected UDP) is
//    inbound and its service port is its local port;
//  - a socket whose local port has a listener of the same protocol, on the
//    same address or a wildcard address, is inbound, service port = local port;
//  - anything else is outbound and its service port is the remote port.
// "Listener" means TCP LISTEN, or for UDP an unconnected socket with a port.
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are compared as IPv4.
//
// The classifier learns listeners from the stream itself, so it depends on
// the source's ordering contract (socket_source.h): listeners first.
//
// Thread safety: one instance per scrape, used by one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_set>
#include <vector>

#include "collectors/sources/socket_record.h"
#include "common/ports.h"
#include "config/config.h"

namespace socket_exporter {

enum class Direction : std::uint8_t { kInbound = 0, kOutbound = 1 };
std::string_view DirectionName(Direction direction);

struct Classification {
  Direction direction = Direction::kOutbound;
  std::uint16_t service_port = 0;
  std::uint16_t port_range = 0;  // index into Config::port_ranges
  std::uint16_t service = 0;     // 0 = "other", else 1 + index into Config::services
  bool is_listener = false;      // TCP LISTEN or UDP unconnected with a port
};

// True for sockets that own a port for inbound traffic (see above).
bool IsListener(const SocketRecord& record);
// True for sockets that have no remote endpoint.
bool HasNoPeer(const SocketRecord& record);

class Classifier {
 public:
  explicit Classifier(std::shared_ptr<const Config> config);

  Classification Classify(const SocketRecord& record);

 private:
  struct ListenerKey {
    IpAddress address;
    std::uint16_t port;
    bool operator==(const ListenerKey&) const = default;
  };
  struct ListenerKeyHash {
    std::size_t operator()(const ListenerKey& key) const;
  };
  struct Listeners {
    // Bit per port: some listener has it, and a wildcard listener has it.
    PortSet any_port;
    PortSet wildcard_port;
    std::unordered_set<ListenerKey, ListenerKeyHash> specific;
  };

  void AddListener(Listeners& listeners, const IpAddress& address, std::uint16_t port);
  bool HasListener(const Listeners& listeners, const IpAddress& address, std::uint16_t port) const;
  Classification Name(const SocketRecord& record, Direction direction, std::uint16_t port) const;

  std::shared_ptr<const Config> config_;
  Listeners listeners_[2];  // [0] tcp, [1] udp
};

}  // namespace socket_exporter
