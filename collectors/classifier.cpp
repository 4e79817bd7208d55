#include "collectors/classifier.h"

#include <cstring>

namespace socket_exporter {
std::string_view DirectionName(Direction direction) {
  return direction == Direction::kInbound ? "inbound" : "outbound";
}

bool HasNoPeer(const SocketRecord& record) {
  return record.remote_port == 0 && record.remote.IsUnspecified();
}

bool IsListener(const SocketRecord& record) {
  if (record.protocol == Protocol::kTcp) return record.state == kTcpListen;
  return record.state != kTcpEstablished && record.local_port != 0;
}

std::size_t Classifier::ListenerKeyHash::operator()(const ListenerKey& key) const {
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  std::memcpy(&a, key.address.bytes.data(), 8);
  std::memcpy(&b, key.address.bytes.data() + 8, 8);
  return std::hash<std::uint64_t>{}(a ^ (b * 0x9E3779B97F4A7C15ULL) ^ key.port);
}

Classifier::Classifier(std::shared_ptr<const Config> config) : config_(std::move(config)) {}

void Classifier::AddListener(Listeners& listeners, const IpAddress& address, std::uint16_t port) {
  listeners.any_port.Insert(port);
  if (address.IsUnspecified()) {
    listeners.wildcard_port.Insert(port);
  } else {
    listeners.specific.insert(ListenerKey{address, port});
  }
}

bool Classifier::HasListener(const Listeners& listeners, const IpAddress& address,
                             std::uint16_t port) const {
  if (!listeners.any_port.Contains(port)) return false;
  if (listeners.wildcard_port.Contains(port)) return true;
  return listeners.specific.contains(ListenerKey{address, port});
}

Classification Classifier::Name(const SocketRecord& record, Direction direction,
                                std::uint16_t port) const {
  Classification result;
  result.direction = direction;
  result.service_port = port;
  result.port_range = config_->range_of_port[port];
  result.service = config_->service_of_port[static_cast<std::size_t>(record.protocol)][port];
  return result;
}

Classification Classifier::Classify(const SocketRecord& record) {
  Listeners& listeners = listeners_[static_cast<std::size_t>(record.protocol)];
  if (IsListener(record)) {
    AddListener(listeners, record.local.Normalized(), record.local_port);
    Classification result = Name(record, Direction::kInbound, record.local_port);
    result.is_listener = true;
    return result;
  }
  if (HasNoPeer(record) || HasListener(listeners, record.local.Normalized(), record.local_port)) {
    return Name(record, Direction::kInbound, record.local_port);
  }
  return Name(record, Direction::kOutbound, record.remote_port);
}

}  // namespace socket_exporter
