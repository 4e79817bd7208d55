// HTTP serving: prometheus-cpp's pull Exposer (CivetWeb) for the telemetry
// path, plus a landing page at "/", "/-/healthy" and "/-/ready" answered from
// CivetWeb's begin_request callback, which also enforces basic auth.
//
// Listen addresses: every public socket, plain or TLS, IPv4 or IPv6, belongs
// to the event-driven front end (tls_front.h). It completes TLS handshakes
// and reads request heads under deadlines and size caps, then hands complete
// requests to CivetWeb on an internal 127.0.0.1 port (Debian's CivetWeb
// crashes on HTTPS and cannot bind IPv6; and its workers must never wait for
// a slow client). Requests on the internal port are refused unless they come
// from the front end's own sockets. See docs/web-security.md.
//
// Thread safety: Start(), ApplyWebConfig() and the destructor from one thread;
// requests are served on CivetWeb's and the front end's threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "config/web_config.h"
#include "exporter/http/tls_front.h"

namespace prometheus {
class Collectable;
class Exposer;
}  // namespace prometheus

namespace socket_exporter {

// One --web.listen-address entry.
struct ListenAddress {
  std::string text;  // as given, e.g. "[::1]:19375"
  bool ipv6 = false;
  std::string host;  // IP literal without brackets; empty for ":PORT"
  std::uint16_t port = 0;
};

// Parses a --web.listen-address value: one address or several separated by
// commas. Each is HOST:PORT or :PORT (every IPv6 and IPv4 address, IPv4 only
// where the host has no IPv6); HOST is an IPv4 literal ("0.0.0.0": every IPv4
// address) or an IPv6 literal in brackets ("[::]" is dual-stack: IPv6 and
// IPv4). Errors name the offending entry.
Result<std::vector<ListenAddress>> ParseListenAddresses(std::string_view value);

struct WebOptions {
  std::string listen_address = ":19375";  // one or several, comma-separated
  std::string telemetry_path = "/metrics";
  // CivetWeb serves one connection per thread; a request waiting for a free
  // thread is not yet "arrived" for the Scraper and cannot share the running
  // collection. 16 lets that many simultaneous scrapers share one table walk
  // (tests/integration/test_concurrent_scrapes.py); an idle thread costs ~0.1 MiB.
  int threads = 16;
  // TLS and basic auth; null means plain HTTP without authentication.
  std::shared_ptr<const WebConfig> web_config;
  FrontEnd::Settings front_end;
  // Called on the thread that will serve the request, once the request is
  // authorized and before the metrics are collected for it.
  std::function<void()> on_request;
};

// CivetWeb's settings for the exporter's HTTP server: listening_ports as
// CivetWeb spells them, and the worker thread count. bench/stack_floor
// serves with the same ones.
std::vector<std::string> CivetOptions(const std::string& listening_ports, int threads);

struct ListenEndpoint {
  std::string address;  // as given
  int port = 0;         // as bound
  bool tls = false;
};

class WebServer {
 public:
  static Result<std::unique_ptr<WebServer>> Start(const WebOptions& options,
                                                  std::shared_ptr<prometheus::Collectable> metrics);
  ~WebServer();
  WebServer(const WebServer&) = delete;
  WebServer& operator=(const WebServer&) = delete;

  // The public endpoints, in the order of --web.listen-address.
  std::vector<ListenEndpoint> Endpoints() const;
  // CivetWeb's internal port, for the front end only.
  int InternalPort() const;

  // The front end's connection counts, for socket_exporter_http_* metrics.
  FrontEnd::Stats ConnectionStats() const;

  // Applies a reloaded web config to new connections and requests: users,
  // certificates, client CA, TLS versions. On error nothing changes. Turning
  // TLS on or off needs a restart and is refused.
  Result<void> ApplyWebConfig(std::shared_ptr<const WebConfig> config);

  struct Impl;

 private:
  explicit WebServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace socket_exporter
