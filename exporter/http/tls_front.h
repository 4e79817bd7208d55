// The front end for listen addresses CivetWeb cannot serve itself: TLS ones
// and IPv6 ones (Debian's CivetWeb 1.15 crashes on the first HTTPS request
// and has no IPv6; see docs/web-security.md). It owns those public sockets,
// accepts (IPv4, IPv6, dual-stack [::]), terminates TLS with OpenSSL 3 when
// configured, and relays the plain bytes to CivetWeb's internal listener on
// 127.0.0.1. CivetWeb still parses HTTP, checks basic auth and answers.
//
// Robustness: at most max_connections relayed connections at once (further
// ones are closed as soon as accepted); a client that does not finish the TLS
// handshake and send its first bytes within handshake_timeout, or later sends
// and receives nothing for idle_timeout, is dropped; every wait is a poll(),
// never a spin.
//
// Only the relay may use the internal port: each of its outgoing sockets'
// local ports is recorded in relay_ports(), which the HTTP layer checks so a
// local user cannot go around TLS, client certificates and this front end by
// connecting to 127.0.0.1:<internal port> directly.
//
// Thread safety: one acceptor thread plus one thread per relayed connection.
// SetTlsContext() and the RelayPorts methods may be called from any thread;
// Listen/Start/the destructor from the owning thread.
#pragma once

#include <netinet/in.h>
#include <openssl/types.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "config/web_config.h"

namespace socket_exporter {

using TlsContextPtr = std::shared_ptr<SSL_CTX>;

// Builds an OpenSSL server context from the config: certificate chain and
// key (checked to match), protocol versions, client certificate policy and
// CA. Errors name the file and OpenSSL's reason.
Result<TlsContextPtr> BuildTlsContext(const TlsServerConfig& config);

// Local ports of the relay's live connections to the internal listener.
// A lock-free bitmap: lookups happen on every request.
class RelayPorts {
 public:
  void Add(std::uint16_t port) { bits_[port].store(true, std::memory_order_release); }
  void Remove(std::uint16_t port) { bits_[port].store(false, std::memory_order_release); }
  bool Contains(std::uint16_t port) const { return bits_[port].load(std::memory_order_acquire); }

 private:
  std::array<std::atomic<bool>, 65536> bits_{};
};

// One address the front end listens on.
struct FrontAddress {
  std::string text;  // as the user wrote it, for messages and logs
  sockaddr_storage address{};
  socklen_t address_length = 0;
  bool dual_stack = false;  // [::]: IPv4 clients too (IPV6_V6ONLY off)
};

class FrontEnd {
 public:
  struct Settings {
    std::size_t max_connections = 64;
    // From accept to the first request bytes (TLS handshake included).
    std::chrono::milliseconds handshake_timeout{10000};
    // Afterwards, the longest time without a byte in either direction.
    std::chrono::milliseconds idle_timeout{60000};
  };

  // Binds and listens on every address, so bind errors surface before
  // anything is served. Nothing is accepted until Start().
  static Result<std::unique_ptr<FrontEnd>> Listen(const std::vector<FrontAddress>& addresses,
                                                  Settings settings);
  ~FrontEnd();
  FrontEnd(const FrontEnd&) = delete;
  FrontEnd& operator=(const FrontEnd&) = delete;

  // The bound port of each address, in order.
  std::vector<int> Ports() const;

  // Starts accepting and relaying to 127.0.0.1:backend_port. tls null means
  // plain relaying (IPv6 without TLS).
  Result<void> Start(std::uint16_t backend_port, TlsContextPtr tls);

  // New connections use this context; established ones keep theirs.
  void SetTlsContext(TlsContextPtr tls);

  const RelayPorts& relay_ports() const;

  struct State;

 private:
  explicit FrontEnd(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace socket_exporter
