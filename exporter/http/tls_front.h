// The front end: owns every public listening socket (IPv4, IPv6, dual-stack;
// plain and TLS) and is the only way to the HTTP engine (prometheus-cpp's
// CivetWeb), which listens on an internal 127.0.0.1 port only.
//
// One thread runs an epoll loop over non-blocking sockets; there is no thread
// per connection. For each connection it completes the TLS handshake
// (OpenSSL 3), reads the request head into a bounded buffer, and only then
// opens a connection to the engine and hands it the complete request, with
// "Connection: close" so that the end of the engine's answer is its EOF. The
// answer is read from the engine as fast as the engine writes it, into the
// connection's buffer (bounded), and written to the client as the client
// reads. So CivetWeb's workers never wait for a slow client, in either
// direction. Keep-alive towards the client is kept by the front end itself.
//
// Bounds (Settings, from --web.* flags; docs/web-security.md):
//   handshake_timeout  accept -> TLS handshake done
//   header_timeout     first byte of a request (accept, for plain HTTP) ->
//                      complete head (and body, if any)
//   idle_timeout       keep-alive connection waiting for its next request
//   write_timeout      from the answer's first byte to the client having all of it
//   max_header_bytes   request head; more gets 431 and the connection closed
//   max_connections    open connections; at the cap the oldest connection that
//                      has not yet sent a complete request (else the oldest
//                      idle keep-alive one, else the slowest reader) is closed
//                      to make room for the new one
// Every close is counted by reason (Stats), published as
// socket_exporter_http_connections_closed_total{reason}.
//
// Only the front end may use the internal port: the local port of each of its
// live connections to the engine is recorded in relay_ports() (after
// connect(), before the first byte is sent, removed before close), and the
// HTTP layer answers 403 to any request on the internal port from elsewhere.
//
// Thread safety: SetTlsContext(), GetStats() and relay_ports() from any
// thread; Listen/Start/the destructor from the owning thread.
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
#include <string_view>
#include <vector>

#include "common/result.h"
#include "config/web_config.h"

namespace socket_exporter {

using TlsContextPtr = std::shared_ptr<SSL_CTX>;

// Builds an OpenSSL server context from the config: certificate chain and
// key (checked to match), protocol versions, client certificate policy and
// CA. Errors name the file and OpenSSL's reason.
Result<TlsContextPtr> BuildTlsContext(const TlsServerConfig& config);

// Local ports of the front end's live connections to the internal listener.
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
  bool dual_stack = false;  // IPv6 wildcard: IPv4 clients too (IPV6_V6ONLY off)
  // ":PORT": IPv6 dual-stack, or IPv4 0.0.0.0 where the host has no IPv6.
  bool ipv4_fallback = false;
};

// Why a connection was closed; the label values of
// socket_exporter_http_connections_closed_total.
enum class CloseReason : std::uint8_t {
  kClientClosed,      // the client closed (or reset) the connection
  kDone,              // answered, and the request or answer said Connection: close
  kHandshakeTimeout,  // TLS handshake not done within handshake_timeout
  kHandshakeFailed,   // TLS handshake error (bad certificate, protocol, plain HTTP)
  kHeaderTimeout,     // request head not complete within header_timeout
  kIdleTimeout,       // keep-alive connection without a new request for idle_timeout
  kHeadTooLarge,      // request head over max_header_bytes (answered 431)
  kBadRequest,        // not HTTP/1.x, or a body the exporter does not take (answered 4xx)
  kWriteTimeout,      // the client did not read the answer for write_timeout
  kEvicted,           // closed to make room at max_connections
  kEngineError,       // the internal HTTP engine could not be reached or gave no answer
  kCount
};
std::string_view CloseReasonName(CloseReason reason);

class FrontEnd {
 public:
  struct Settings {
    std::size_t max_connections = 8192;
    std::chrono::milliseconds handshake_timeout{10000};
    std::chrono::milliseconds header_timeout{10000};
    std::chrono::milliseconds idle_timeout{60000};
    std::chrono::milliseconds write_timeout{10000};
    std::size_t max_header_bytes = 16384;
    // Answer bytes held per connection; beyond it the front end stops reading
    // from the engine until the client catches up (write_timeout bounds that).
    std::size_t max_buffered_answer = 16u << 20;
  };

  struct Stats {
    std::uint64_t open = 0;
    std::uint64_t limit = 0;  // max_connections as applied (the nofile limit may lower it)
    std::array<std::uint64_t, static_cast<std::size_t>(CloseReason::kCount)> closed{};
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

  // Starts serving, handing requests to 127.0.0.1:backend_port. tls null
  // means plain HTTP on every address.
  Result<void> Start(std::uint16_t backend_port, TlsContextPtr tls);

  // New connections use this context; established ones keep theirs.
  void SetTlsContext(TlsContextPtr tls);

  Stats GetStats() const;
  const RelayPorts& relay_ports() const;

  struct State;

 private:
  explicit FrontEnd(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace socket_exporter
