#include "exporter/web.h"

#include <CivetServer.h>
#include <civetweb.h>
#include <fmt/format.h>
#include <prometheus/exposer.h>

#include <charconv>
#include <cstring>
#include <mutex>

#include "exporter/version.h"

namespace socket_exporter {

struct WebServer::Impl {
  WebOptions options;
  std::shared_ptr<Scraper> scraper;
  std::string landing_page;
  CivetCallbacks callbacks{};
  std::unique_ptr<prometheus::Exposer> exposer;
  std::vector<int> ports;
};

namespace {

// prometheus-cpp owns the CivetServer, so a request cannot reach our Impl via
// CivetWeb's user data; servers are found by the port the request came in on.
std::mutex servers_mutex;
std::vector<WebServer::Impl*> servers;

WebServer::Impl* FindServer(int port) {
  std::lock_guard lock(servers_mutex);
  for (WebServer::Impl* impl : servers) {
    for (int p : impl->ports) {
      if (p == port) return impl;
    }
  }
  return servers.size() == 1 ? servers.front() : nullptr;
}

void SendText(mg_connection* conn, int status, const char* reason, const char* content_type,
              const std::string& body, bool head_only) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\n\r\n",
            status, reason, content_type, body.size());
  if (!head_only) mg_write(conn, body.data(), body.size());
}

// Runs for every request before prometheus-cpp's handlers. Returns 1 when the
// request was answered here, 0 to let the Exposer serve the telemetry path.
int BeginRequest(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  WebServer::Impl* impl = FindServer(info->server_port);
  if (impl == nullptr) return 0;
  Scraper::NoteRequestArrival();
  const std::string_view uri = info->local_uri ? info->local_uri : "";
  const std::string_view method = info->request_method ? info->request_method : "";
  const bool head = method == "HEAD";
  if (method != "GET" && !head) {
    SendText(conn, 405, "Method Not Allowed", "text/plain; charset=utf-8",
             "Method Not Allowed\n", false);
    return 1;
  }
  if (uri == impl->options.telemetry_path) {
    if (!head) return 0;
    // prometheus-cpp answers HEAD with 404; monitoring probes expect 200.
    SendText(conn, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", "", true);
    return 1;
  }
  if (uri == "/") {
    SendText(conn, 200, "OK", "text/html; charset=utf-8", impl->landing_page, head);
  } else if (uri == "/-/healthy") {
    SendText(conn, 200, "OK", "text/plain; charset=utf-8", "Healthy\n", head);
  } else if (uri == "/-/ready") {
    SendText(conn, 200, "OK", "text/plain; charset=utf-8", "Ready\n", head);
  } else {
    SendText(conn, 404, "Not Found", "text/plain; charset=utf-8", "Not Found\n", head);
  }
  return 1;
}

// CivetWeb logs to stderr by default; keep its messages out of the way.
int LogMessage(const mg_connection*, const char*) { return 1; }

std::string LandingPage(const std::string& telemetry_path) {
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">"
      "<title>socket_exporter</title></head>\n<body>\n<h1>socket_exporter</h1>\n"
      "<p>Prometheus exporter for Linux TCP/UDP socket metrics. Version {} (revision {}).</p>\n"
      "<ul>\n<li><a href=\"{}\">Metrics</a></li>\n<li><a href=\"/-/healthy\">Health</a></li>\n"
      "</ul>\n</body>\n</html>\n",
      kVersion, kRevision, telemetry_path);
}

}  // namespace

Result<std::string> ToCivetListeningPorts(const std::string& listen_address) {
  const auto colon = listen_address.rfind(':');
  if (colon == std::string::npos) {
    return Fail(fmt::format("--web.listen-address \"{}\": expected HOST:PORT or :PORT",
                            listen_address));
  }
  const std::string host = listen_address.substr(0, colon);
  const std::string port = listen_address.substr(colon + 1);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return Fail(fmt::format("--web.listen-address \"{}\": port must be a number 0-65535",
                            listen_address));
  }
  if (host.empty() || host == "0.0.0.0") return port;
  if (host.front() == '[') {
    return Fail(fmt::format(
        "--web.listen-address \"{}\": IPv6 addresses are not supported by this build's HTTP "
        "server yet; use an IPv4 address",
        listen_address));
  }
  return host + ":" + port;
}

WebServer::WebServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WebServer::~WebServer() {
  {
    std::lock_guard lock(servers_mutex);
    std::erase(servers, impl_.get());
  }
  impl_->exposer.reset();  // stops CivetWeb's threads before Impl goes away
}

Result<std::unique_ptr<WebServer>> WebServer::Start(const WebOptions& options,
                                                    std::shared_ptr<Scraper> scraper) {
  auto ports = ToCivetListeningPorts(options.listen_address);
  if (!ports) return std::unexpected(ports.error());
  if (options.telemetry_path.empty() || options.telemetry_path.front() != '/' ||
      options.telemetry_path == "/") {
    return Fail(fmt::format("--web.telemetry-path \"{}\": expected a path like /metrics",
                            options.telemetry_path));
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->scraper = std::move(scraper);
  impl->landing_page = LandingPage(options.telemetry_path);
  impl->callbacks.begin_request = &BeginRequest;
  impl->callbacks.log_message = &LogMessage;
  try {
    impl->exposer = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", *ports, "num_threads",
                                 std::to_string(options.threads), "request_timeout_ms", "10000",
                                 "enable_keep_alive", "yes"},
        &impl->callbacks);
  } catch (const std::exception& e) {
    return Fail(fmt::format("cannot listen on {}: {}", options.listen_address, e.what()));
  }
  impl->exposer->RegisterCollectable(impl->scraper, options.telemetry_path);
  impl->ports = impl->exposer->GetListeningPorts();
  {
    std::lock_guard lock(servers_mutex);
    servers.push_back(impl.get());
  }
  return std::unique_ptr<WebServer>(new WebServer(std::move(impl)));
}

std::vector<int> WebServer::ListeningPorts() const { return impl_->exposer->GetListeningPorts(); }

}  // namespace socket_exporter
