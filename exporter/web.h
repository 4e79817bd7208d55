// HTTP serving: prometheus-cpp's pull Exposer (CivetWeb) for the telemetry
// path, plus a landing page at "/", "/-/healthy" and "/-/ready" answered from
// CivetWeb's begin_request callback.
//
// Thread safety: Start() and the destructor from one thread; requests are
// served on CivetWeb's worker threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "exporter/scraper.h"

namespace prometheus {
class Exposer;
}

namespace socket_exporter {

struct WebOptions {
  std::string listen_address = ":19375";
  std::string telemetry_path = "/metrics";
  int threads = 4;
};

// Turns a Prometheus-style listen address into CivetWeb's listening_ports
// syntax: ":19375" -> "19375", "127.0.0.1:0" stays. Errors name what is wrong.
Result<std::string> ToCivetListeningPorts(const std::string& listen_address);

class WebServer {
 public:
  static Result<std::unique_ptr<WebServer>> Start(const WebOptions& options,
                                                  std::shared_ptr<Scraper> scraper);
  ~WebServer();
  WebServer(const WebServer&) = delete;
  WebServer& operator=(const WebServer&) = delete;

  std::vector<int> ListeningPorts() const;

  struct Impl;

 private:
  explicit WebServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace socket_exporter
