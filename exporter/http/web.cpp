#include "exporter/http/web.h"

#include <CivetServer.h>
#include <arpa/inet.h>
#include <civetweb.h>
#include <fmt/format.h>
#include <netdb.h>
#include <prometheus/exposer.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <charconv>
#include <cstring>
#include <mutex>
#include <set>

#include "common/ports.h"
#include "common/version.h"
#include "exporter/http/web_auth.h"

namespace socket_exporter {

struct WebServer::Impl {
  WebOptions options;
  std::shared_ptr<prometheus::Collectable> metrics;
  std::string landing_page;
  CivetCallbacks callbacks{};
  std::unique_ptr<FrontEnd> front;  // owns every public socket
  std::unique_ptr<prometheus::Exposer> exposer;
  std::vector<int> civet_ports;  // CivetWeb's listeners: the internal one only
  int internal_port = 0;
  bool tls = false;
  std::vector<ListenEndpoint> endpoints;

  mutable std::mutex auth_mutex;
  std::shared_ptr<const BasicAuthenticator> auth;

  std::shared_ptr<const BasicAuthenticator> Authenticator() const {
    std::lock_guard lock(auth_mutex);
    return auth;
  }
};

namespace {

// prometheus-cpp owns the CivetServer, so a request cannot reach our Impl via
// CivetWeb's user data; servers are found by the port the request came in on.
std::mutex servers_mutex;
std::vector<WebServer::Impl*> servers;

WebServer::Impl* FindServer(int port) {
  std::lock_guard lock(servers_mutex);
  for (WebServer::Impl* impl : servers) {
    for (int p : impl->civet_ports) {
      if (p == port) return impl;
    }
  }
  return nullptr;
}

void SendText(mg_connection* conn, int status, const char* reason, const char* content_type,
              const std::string& body, bool head_only, const char* extra_headers = "") {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\n%s\r\n",
            status, reason, content_type, body.size(), extra_headers);
  if (!head_only) mg_write(conn, body.data(), body.size());
}

// Runs for every request before prometheus-cpp's handlers. Returns 1 when the
// request was answered here, 0 to let the Exposer serve the telemetry path.
int BeginRequest(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  const std::string_view method = info->request_method ? info->request_method : "";
  const bool head = method == "HEAD";
  WebServer::Impl* impl = FindServer(info->server_port);
  if (impl == nullptr) {
    // Only while starting or stopping; never let a request through unchecked.
    SendText(conn, 503, "Service Unavailable", "text/plain; charset=utf-8", "Service Unavailable\n",
             head);
    return 1;
  }
  {
    // CivetWeb listens on the internal port only, which carries what the
    // front end hands on after its TLS, client certificate and request
    // checks. Anyone else talking to it directly would skip those checks.
    const bool from_relay =
        impl->front && std::string_view(info->remote_addr) == "127.0.0.1" &&
        info->remote_port > 0 && info->remote_port <= 65535 &&
        impl->front->relay_ports().Contains(static_cast<std::uint16_t>(info->remote_port));
    if (!from_relay) {
      SendText(conn, 403, "Forbidden", "text/plain; charset=utf-8",
               "Forbidden: this is the exporter's internal port; use its public address\n", head);
      return 1;
    }
  }
  if (const auto auth = impl->Authenticator(); auth && auth->enabled()) {
    if (!auth->Check(mg_get_header(conn, "Authorization"))) {
      SendText(conn, 401, "Unauthorized", "text/plain; charset=utf-8", "Unauthorized\n", head,
               "WWW-Authenticate: Basic realm=\"socket_exporter\"\r\n");
      return 1;
    }
  }
  if (impl->options.on_request) impl->options.on_request();
  const std::string_view uri = info->local_uri ? info->local_uri : "";
  if (method != "GET" && !head) {
    SendText(conn, 405, "Method Not Allowed", "text/plain; charset=utf-8", "Method Not Allowed\n",
             false);
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

Result<ListenAddress> ParseOneAddress(std::string_view text) {
  ListenAddress address;
  address.text = std::string(text);
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return Fail(fmt::format("--web.listen-address \"{}\": expected HOST:PORT or :PORT", text));
  }
  std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  const auto parsed_port = ParsePort(port);
  if (!parsed_port) {
    return Fail(fmt::format("--web.listen-address \"{}\": port must be a number 0-65535", text));
  }
  address.port = *parsed_port;
  if (!host.empty() && host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') {
      return Fail(fmt::format(
          "--web.listen-address \"{}\": an IPv6 address goes in brackets, e.g. [::1]:19375", text));
    }
    host = host.substr(1, host.size() - 2);
    address.ipv6 = true;
    addrinfo hints{};
    hints.ai_family = AF_INET6;
    hints.ai_flags = AI_NUMERICHOST;
    addrinfo* found = nullptr;
    const std::string literal(host);
    if (getaddrinfo(literal.c_str(), nullptr, &hints, &found) != 0) {
      return Fail(
          fmt::format("--web.listen-address \"{}\": \"{}\" is not an IPv6 address", text, host));
    }
    freeaddrinfo(found);
  } else if (!host.empty()) {
    in_addr ignored{};
    const std::string literal(host);
    if (inet_pton(AF_INET, literal.c_str(), &ignored) != 1) {
      return Fail(fmt::format(
          "--web.listen-address \"{}\": host must be an IP address: IPv4 like 127.0.0.1, or "
          "IPv6 in brackets like [::1] ([::] for every IPv6 and IPv4 address)",
          text));
    }
  }
  address.host = std::string(host);
  return address;
}

Result<FrontAddress> ToFrontAddress(const ListenAddress& address) {
  FrontAddress out;
  out.text = address.text;
  if (address.host.empty()) {
    // ":PORT": every IPv6 and IPv4 address, as in Go programs; IPv4 alone
    // where the host has no IPv6.
    sockaddr_in6 any{};
    any.sin6_family = AF_INET6;
    any.sin6_port = htons(address.port);
    any.sin6_addr = in6addr_any;
    std::memcpy(&out.address, &any, sizeof(any));
    out.address_length = sizeof(any);
    out.dual_stack = true;
    out.ipv4_fallback = true;
    return out;
  }
  addrinfo hints{};
  hints.ai_family = address.ipv6 ? AF_INET6 : AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  const int rc = getaddrinfo(address.host.empty() ? nullptr : address.host.c_str(), port.c_str(),
                             &hints, &found);
  if (rc != 0 || found == nullptr) {
    return Fail(fmt::format("--web.listen-address \"{}\": {}", address.text, gai_strerror(rc)));
  }
  std::memcpy(&out.address, found->ai_addr, found->ai_addrlen);
  out.address_length = found->ai_addrlen;
  freeaddrinfo(found);
  if (address.ipv6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&out.address);
    out.dual_stack = IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr);
  }
  return out;
}

// Each open connection holds a descriptor: raise the soft limit to the hard
// one (Go programs such as node_exporter do the same at startup).
void RaiseOpenFilesLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  const rlim_t before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) == 0) {
    spdlog::debug("open files limit raised from {} to {}", before, limit.rlim_cur);
  }
}

}  // namespace

Result<std::vector<ListenAddress>> ParseListenAddresses(std::string_view value) {
  std::vector<ListenAddress> out;
  std::set<std::string, std::less<>> seen;
  std::size_t start = 0;
  while (start <= value.size()) {
    const auto comma = value.find(',', start);
    const std::string_view item = value.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (item.empty()) {
      return Fail(fmt::format("--web.listen-address \"{}\": empty address in the list", value));
    }
    TRY_ASSIGN(auto address, ParseOneAddress(item));
    if (address.port != 0 && !seen.insert(std::string(item)).second) {
      return Fail(fmt::format("--web.listen-address \"{}\" is given twice", item));
    }
    out.push_back(std::move(address));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

WebServer::WebServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WebServer::~WebServer() {
  {
    std::lock_guard lock(servers_mutex);
    std::erase(servers, impl_.get());
  }
  // CivetWeb's threads call BeginRequest, which reads the front end: stop
  // them first.
  impl_->exposer.reset();
  impl_->front.reset();
}

std::vector<std::string> CivetOptions(const std::string& listening_ports, int threads) {
  return {"listening_ports",    listening_ports,
          "num_threads",        std::to_string(threads),
          "request_timeout_ms", "10000",
          "enable_keep_alive",  "yes",
          "tcp_nodelay",        "1"};
}

Result<std::unique_ptr<WebServer>> WebServer::Start(
    const WebOptions& options, std::shared_ptr<prometheus::Collectable> metrics) {
  TRY_ASSIGN(auto addresses, ParseListenAddresses(options.listen_address));
  if (options.telemetry_path.empty() || options.telemetry_path.front() != '/' ||
      options.telemetry_path == "/") {
    return Fail(fmt::format("--web.telemetry-path \"{}\": expected a path like /metrics",
                            options.telemetry_path));
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->metrics = std::move(metrics);
  impl->landing_page = LandingPage(options.telemetry_path);
  impl->callbacks.begin_request = &BeginRequest;
  impl->callbacks.log_message = &LogMessage;

  const WebConfig* web_config = options.web_config.get();
  impl->tls = web_config != nullptr && web_config->tls.has_value();
  impl->auth = std::make_shared<const BasicAuthenticator>(
      web_config != nullptr ? web_config->basic_auth_users
                            : std::map<std::string, std::string, std::less<>>{});
  TlsContextPtr tls_context;
  if (impl->tls) {
    auto built = BuildTlsContext(*web_config->tls);
    if (!built) return Fail(fmt::format("{}: {}", web_config->source, built.error().message));
    tls_context = std::move(*built);
  }

  // The front end owns every public address; CivetWeb listens on the
  // internal port only.
  std::vector<FrontAddress> front_addresses;
  for (const ListenAddress& address : addresses) {
    TRY_ASSIGN(FrontAddress front_address, ToFrontAddress(address));
    front_addresses.push_back(std::move(front_address));
  }
  RaiseOpenFilesLimit();
  TRY_ASSIGN(impl->front, FrontEnd::Listen(front_addresses, options.front_end));
  const std::string civet_listening = "127.0.0.1:0";

  try {
    impl->exposer = std::make_unique<prometheus::Exposer>(
        CivetOptions(civet_listening, options.threads), &impl->callbacks);
  } catch (const std::exception& e) {
    return Fail(fmt::format("cannot listen on {}: {}", options.listen_address, e.what()));
  }
  impl->exposer->RegisterCollectable(impl->metrics, options.telemetry_path);
  {
    std::lock_guard lock(servers_mutex);
    impl->civet_ports = impl->exposer->GetListeningPorts();
    impl->internal_port = impl->civet_ports.back();
    servers.push_back(impl.get());
  }

  const std::vector<int> front_ports = impl->front->Ports();
  auto started = impl->front->Start(static_cast<std::uint16_t>(impl->internal_port), tls_context);
  if (!started) {
    WebServer cleanup(std::move(impl));  // unregisters and stops CivetWeb
    return Fail(std::move(started).error().message);
  }
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    ListenEndpoint endpoint;
    endpoint.address = addresses[i].text;
    endpoint.tls = impl->tls;
    endpoint.port = front_ports[i];
    impl->endpoints.push_back(std::move(endpoint));
  }
  return std::unique_ptr<WebServer>(new WebServer(std::move(impl)));
}

std::vector<ListenEndpoint> WebServer::Endpoints() const { return impl_->endpoints; }

int WebServer::InternalPort() const { return impl_->internal_port; }

FrontEnd::Stats WebServer::ConnectionStats() const { return impl_->front->GetStats(); }

Result<void> WebServer::ApplyWebConfig(std::shared_ptr<const WebConfig> config) {
  const bool want_tls = config != nullptr && config->tls.has_value();
  if (want_tls != impl_->tls) {
    return Fail(fmt::format("{}: {} needs a restart (TLS was {} at startup)",
                            config ? config->source : std::string("web config"),
                            want_tls ? "turning TLS on" : "turning TLS off",
                            impl_->tls ? "on" : "off"));
  }
  // Build everything first, so a failure leaves the running config whole.
  TlsContextPtr tls_context;
  if (want_tls) {
    auto built = BuildTlsContext(*config->tls);
    if (!built) return Fail(fmt::format("{}: {}", config->source, built.error().message));
    tls_context = std::move(*built);
  }
  auto auth = std::make_shared<const BasicAuthenticator>(
      config ? config->basic_auth_users : std::map<std::string, std::string, std::less<>>{});
  if (tls_context) impl_->front->SetTlsContext(std::move(tls_context));
  std::lock_guard lock(impl_->auth_mutex);
  impl_->auth = std::move(auth);
  return {};
}

}  // namespace socket_exporter
