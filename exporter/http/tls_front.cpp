#include "exporter/http/tls_front.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <thread>

namespace socket_exporter {

using Clock = std::chrono::steady_clock;

// ---- TLS context ------------------------------------------------------------

namespace {

// Everything OpenSSL queued on this thread, oldest first, and clears it.
std::string OpenSslErrors() {
  std::string out;
  while (const unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof(text));
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

// Without this OpenSSL would prompt on the terminal for an encrypted key,
// blocking startup or a SIGHUP forever. Such keys are refused instead.
int RefusePassphrase(char*, int, int, void*) { return -1; }

// RequestClientCert and RequireAnyClientCert take any certificate, as Go's
// crypto/tls does for those modes.
int AcceptAnyCertificate(int, X509_STORE_CTX*) { return 1; }

// Prometheus offers h2 and http/1.1; CivetWeb speaks HTTP/1.1 only.
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* out_length,
               const unsigned char* offered, unsigned int offered_length, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, out_length, kHttp11, sizeof(kHttp11), offered,
                            offered_length) == OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

int OpenSslVersion(TlsVersion version) {
  switch (version) {
    case TlsVersion::kTls10:
      return TLS1_VERSION;
    case TlsVersion::kTls11:
      return TLS1_1_VERSION;
    case TlsVersion::kTls12:
      return TLS1_2_VERSION;
    case TlsVersion::kTls13:
      return TLS1_3_VERSION;
  }
  return TLS1_2_VERSION;
}

}  // namespace

Result<TlsContextPtr> BuildTlsContext(const TlsServerConfig& config) {
  ERR_clear_error();
  TlsContextPtr ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!ctx) return Fail("cannot create a TLS context: " + OpenSslErrors());
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_default_passwd_cb(c, &RefusePassphrase);
  if (SSL_CTX_set_min_proto_version(c, OpenSslVersion(config.min_version)) != 1 ||
      (config.max_version &&
       SSL_CTX_set_max_proto_version(c, OpenSslVersion(*config.max_version)) != 1)) {
    return Fail("cannot set the TLS versions: " + OpenSslErrors());
  }
  // No renegotiation (a cheap way for a client to make the server work), no
  // compression; a peer that closes without close_notify is an ordinary EOF.
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Partial writes are retried from a buffer that may have moved; idle connections
  // give their buffers back.
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(c, config.cert_file.c_str()) != 1) {
    return Fail(fmt::format("cert_file \"{}\": cannot load a PEM certificate: {}", config.cert_file,
                            OpenSslErrors()));
  }
  if (SSL_CTX_use_PrivateKey_file(c, config.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    const unsigned long last = ERR_peek_last_error();
    if (ERR_GET_LIB(last) == ERR_LIB_X509 && ERR_GET_REASON(last) == X509_R_KEY_VALUES_MISMATCH) {
      return Fail(fmt::format("key_file \"{}\" does not belong to cert_file \"{}\": {}",
                              config.key_file, config.cert_file, OpenSslErrors()));
    }
    return Fail(fmt::format("key_file \"{}\": cannot load an unencrypted PEM private key: {}",
                            config.key_file, OpenSslErrors()));
  }
  if (SSL_CTX_check_private_key(c) != 1) {
    return Fail(fmt::format("key_file \"{}\" does not belong to cert_file \"{}\": {}",
                            config.key_file, config.cert_file, OpenSslErrors()));
  }
  if (!config.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(c, config.client_ca_file.c_str(), nullptr) != 1) {
      return Fail(fmt::format("client_ca_file \"{}\": cannot load PEM CA certificates: {}",
                              config.client_ca_file, OpenSslErrors()));
    }
    // Tells clients which CAs are accepted, so they pick the right certificate.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config.client_ca_file.c_str());
    if (names == nullptr) {
      return Fail(fmt::format("client_ca_file \"{}\": no CA certificate names: {}",
                              config.client_ca_file, OpenSslErrors()));
    }
    SSL_CTX_set_client_CA_list(c, names);
  }
  switch (config.client_auth) {
    case ClientAuth::kNoClientCert:
      SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
      break;
    case ClientAuth::kRequestClientCert:
      SSL_CTX_set_verify(c, SSL_VERIFY_PEER, &AcceptAnyCertificate);
      break;
    case ClientAuth::kRequireAnyClientCert:
      SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                         &AcceptAnyCertificate);
      break;
    case ClientAuth::kVerifyClientCertIfGiven:
      SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
      break;
    case ClientAuth::kRequireAndVerifyClientCert:
      SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
      break;
  }
  // Session resumption with client verification needs a context id, or
  // OpenSSL fails resumed handshakes.
  static const unsigned char kSessionContext[] = "socket_exporter";
  SSL_CTX_set_session_id_context(c, kSessionContext, sizeof(kSessionContext) - 1);
  SSL_CTX_set_alpn_select_cb(c, &SelectAlpn, nullptr);
  return ctx;
}

// ---- front end ------------------------------------------------------------------

std::string_view CloseReasonName(CloseReason reason) {
  switch (reason) {
    case CloseReason::kClientClosed:
      return "client_closed";
    case CloseReason::kDone:
      return "done";
    case CloseReason::kHandshakeTimeout:
      return "handshake_timeout";
    case CloseReason::kHandshakeFailed:
      return "handshake_failed";
    case CloseReason::kHeaderTimeout:
      return "header_timeout";
    case CloseReason::kIdleTimeout:
      return "idle_timeout";
    case CloseReason::kHeadTooLarge:
      return "head_too_large";
    case CloseReason::kBadRequest:
      return "bad_request";
    case CloseReason::kWriteTimeout:
      return "write_timeout";
    case CloseReason::kEvicted:
      return "evicted";
    case CloseReason::kEngineError:
      return "engine_error";
    case CloseReason::kCount:
      break;
  }
  return "unknown";
}

namespace {

// What a connection is doing, and so which deadline applies to it.
enum class Phase : std::uint8_t {
  kHandshake,  // TLS handshake (handshake_timeout)
  kHead,       // reading a request (header_timeout)
  kIdle,       // keep-alive, waiting for the next request (idle_timeout)
  kForward,    // the request is with the engine; the answer goes to the client
};

// Connections waiting for the same kind of deadline, in the order they
// started waiting: every timeout of a kind is the same length, so the head
// of each list is always the next to expire, and eviction takes it in O(1).
enum TimerList : std::uint8_t {
  kHandshakeList,
  kHeadList,
  kIdleList,
  kWriteList,
  kListCount,
  kNoList
};

struct Connection {
  int fd = -1;
  SSL* ssl = nullptr;
  TlsContextPtr tls;  // the context this connection was accepted with
  Phase phase = Phase::kHead;
  bool closed = false;

  // Every open connection, for the stop.
  Connection* all_prev = nullptr;
  Connection* all_next = nullptr;

  // Timer list membership.
  TimerList list = kNoList;
  Connection* prev = nullptr;
  Connection* next = nullptr;
  Clock::time_point deadline{};

  // Client side.
  std::string in;               // bytes of requests not yet handed on
  std::size_t scanned = 0;      // in[0, scanned) holds no end of head
  std::size_t request_end = 0;  // when a head is complete: its end plus body
  std::uint32_t client_events = 0;
  bool tls_write_wants_read = false;

  // Engine side, while forwarding.
  int backend_fd = -1;
  std::uint16_t backend_port = 0;
  std::uint32_t backend_events = 0;
  std::string to_backend;
  std::size_t to_backend_sent = 0;
  bool backend_eof = false;

  // The answer.
  std::string out;
  std::size_t out_sent = 0;
  std::size_t answer_head_scanned = 0;
  bool answer_head_seen = false;
  bool close_after = false;  // the client or the answer wants the connection closed
  bool head_request = false;
};

// epoll data: a Connection pointer, its lowest bit set for the engine side;
// values below kFirstPointer are the stop eventfd (0) and listeners (1 + i).
constexpr std::uint64_t kFirstPointer = 1 << 16;

void SetNoDelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

bool IsTokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool ContainsTokenIgnoreCase(std::string_view list, std::string_view token) {
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t comma = list.find(',', start);
    if (comma == std::string_view::npos) comma = list.size();
    std::string_view item = list.substr(start, comma - start);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (EqualsIgnoreCase(item, token)) return true;
    start = comma + 1;
  }
  return false;
}

// The end of an HTTP head in text (after its blank line), searching from
// `from`; npos if it is not complete. Lines end in CRLF or a bare LF.
std::size_t FindHeadEnd(std::string_view text, std::size_t from) {
  for (std::size_t i = from; i < text.size(); ++i) {
    if (text[i] != '\n') continue;
    if (i + 1 < text.size() && text[i + 1] == '\n') return i + 2;
    if (i + 2 < text.size() && text[i + 1] == '\r' && text[i + 2] == '\n') return i + 3;
  }
  return std::string_view::npos;
}

// Splits a head into lines without their line ends.
template <typename F>
void ForEachLine(std::string_view head, F&& f) {
  std::size_t start = 0;
  while (start < head.size()) {
    std::size_t end = head.find('\n', start);
    if (end == std::string_view::npos) end = head.size();
    std::string_view line = head.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!f(line)) return;
    start = end + 1;
  }
}

struct ParsedRequest {
  bool ok = false;
  int status = 400;  // when not ok
  std::string error;
  bool keep_alive = false;
  bool head = false;
  std::size_t body_length = 0;
  std::string forward;  // the head as the engine gets it
};

// Checks the request head (request line, header syntax, framing) and rewrites
// it for the engine: hop-by-hop Connection headers replaced by
// "Connection: close". The engine checks the rest, as it always did.
ParsedRequest ParseRequest(std::string_view head, std::size_t max_body) {
  ParsedRequest r;
  bool first = true;
  bool http11 = false;
  bool connection_close = false;
  bool connection_keep_alive = false;
  bool have_length = false;
  bool valid = true;
  r.forward.reserve(head.size() + 20);
  ForEachLine(head, [&](std::string_view line) {
    if (first) {
      first = false;
      const auto sp1 = line.find(' ');
      const auto sp2 = line.rfind(' ');
      if (sp1 == std::string_view::npos || sp2 == sp1 || sp1 == 0) {
        r.error = "malformed request line";
        return valid = false;
      }
      const std::string_view method = line.substr(0, sp1);
      const std::string_view version = line.substr(sp2 + 1);
      for (char c : method) {
        if (!IsTokenChar(c)) {
          r.error = "malformed method";
          return valid = false;
        }
      }
      if (version == "HTTP/1.1") {
        http11 = true;
      } else if (version != "HTTP/1.0") {
        r.status = 505;
        r.error = "only HTTP/1.0 and HTTP/1.1 are served";
        return valid = false;
      }
      r.head = method == "HEAD";
      r.forward.append(line).append("\r\n");
      return true;
    }
    if (line.empty()) return false;  // the blank line ending the head
    const auto colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) {
      r.error = "malformed header line";
      return valid = false;
    }
    const std::string_view name = line.substr(0, colon);
    for (char c : name) {
      if (!IsTokenChar(c)) {  // also refuses obsolete line folding
        r.error = "malformed header name";
        return valid = false;
      }
    }
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (EqualsIgnoreCase(name, "Connection")) {
      connection_close = connection_close || ContainsTokenIgnoreCase(value, "close");
      connection_keep_alive = connection_keep_alive || ContainsTokenIgnoreCase(value, "keep-alive");
      return true;  // hop-by-hop: not forwarded
    }
    if (EqualsIgnoreCase(name, "Keep-Alive")) return true;
    if (EqualsIgnoreCase(name, "Transfer-Encoding")) {
      r.status = 411;
      r.error = "chunked request bodies are not accepted";
      return valid = false;
    }
    if (EqualsIgnoreCase(name, "Content-Length")) {
      std::size_t length = 0;
      if (value.empty() || value.size() > 12) {
        r.error = "bad Content-Length";
        return valid = false;
      }
      for (char c : value) {
        if (c < '0' || c > '9') {
          r.error = "bad Content-Length";
          return valid = false;
        }
        length = length * 10 + static_cast<std::size_t>(c - '0');
      }
      if (have_length && length != r.body_length) {
        r.error = "conflicting Content-Length";
        return valid = false;
      }
      have_length = true;
      r.body_length = length;
      if (length > max_body) {
        r.status = 413;
        r.error = "request body too large";
        return valid = false;
      }
    }
    r.forward.append(line).append("\r\n");
    return true;
  });
  if (!valid) return r;
  r.forward.append("Connection: close\r\n\r\n");
  r.keep_alive = http11 ? !connection_close : (connection_keep_alive && !connection_close);
  r.ok = true;
  return r;
}

// What the front end needs to know of the engine's answer head: whether the
// client can tell where the answer ends without the connection closing.
bool AnswerKeepsConnection(std::string_view head, bool head_request) {
  bool first = true;
  bool framed = head_request;
  bool close = false;
  bool http11 = false;
  ForEachLine(head, [&](std::string_view line) {
    if (first) {
      first = false;
      http11 = line.starts_with("HTTP/1.1 ");
      if (line.size() >= 12) {
        const std::string_view status = line.substr(9, 3);
        if (status == "204" || status == "304" || status.front() == '1') framed = true;
      }
      return true;
    }
    if (line.empty()) return false;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return true;
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = line.substr(colon + 1);
    if (EqualsIgnoreCase(name, "Content-Length")) framed = true;
    if (EqualsIgnoreCase(name, "Transfer-Encoding") && ContainsTokenIgnoreCase(value, "chunked")) {
      framed = true;
    }
    if (EqualsIgnoreCase(name, "Connection") && ContainsTokenIgnoreCase(value, "close")) {
      close = true;
    }
    return true;
  });
  return http11 && framed && !close;
}

std::string SimpleAnswer(int status, std::string_view reason, std::string_view body) {
  return fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n"
      "Connection: close\r\n\r\n{}",
      status, reason, body.size(), body);
}

constexpr std::string_view kPlainHttpOnTlsPort =
    "HTTP/1.0 400 Bad Request\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Connection: close\r\n\r\n"
    "This port serves HTTPS; the request was sent as plain HTTP. Use https://.\n";

}  // namespace

struct FrontEnd::State {
  Settings settings;
  std::vector<FrontAddress> addresses;
  std::vector<int> listen_fds;
  std::vector<int> ports;
  std::uint16_t backend_port = 0;
  int stop_fd = -1;  // eventfd: readable once stopping
  int epoll_fd = -1;
  std::thread loop;

  std::mutex tls_mutex;
  TlsContextPtr tls;

  RelayPorts relay_ports;

  // Written by the loop thread, read by scrapes.
  std::atomic<std::uint64_t> open{0};
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(CloseReason::kCount)> closed{};

  // Loop thread only.
  std::size_t connections = 0;
  struct List {
    Connection* head = nullptr;
    Connection* tail = nullptr;
  };
  std::array<List, kListCount> lists{};
  std::vector<Connection*> graveyard;  // closed during this batch of events, freed after it
  Connection* all = nullptr;           // every open connection
  Clock::time_point last_accept_warning{};
  bool accept_paused = false;
  std::array<char, 65536> read_buffer{};
  Clock::time_point accept_resume{};

  ~State() {
    for (int fd : listen_fds) ::close(fd);
    if (stop_fd >= 0) ::close(stop_fd);
    if (epoll_fd >= 0) ::close(epoll_fd);
  }

  std::chrono::milliseconds TimeoutOf(TimerList list) const {
    switch (list) {
      case kHandshakeList:
        return settings.handshake_timeout;
      case kHeadList:
        return settings.header_timeout;
      case kIdleList:
        return settings.idle_timeout;
      default:
        return settings.write_timeout;
    }
  }

  void Unlink(Connection* c) {
    if (c->list == kNoList) return;
    List& l = lists[c->list];
    (c->prev ? c->prev->next : l.head) = c->next;
    (c->next ? c->next->prev : l.tail) = c->prev;
    c->prev = c->next = nullptr;
    c->list = kNoList;
  }
  // Puts c at the end of list, due after that list's timeout from now.
  void Link(Connection* c, TimerList list, Clock::time_point now) {
    Unlink(c);
    List& l = lists[list];
    c->list = list;
    c->deadline = now + TimeoutOf(list);
    c->prev = l.tail;
    c->next = nullptr;
    (l.tail ? l.tail->next : l.head) = c;
    l.tail = c;
  }

  void Watch(Connection* c, bool backend, std::uint32_t events) {
    std::uint32_t& current = backend ? c->backend_events : c->client_events;
    const int fd = backend ? c->backend_fd : c->fd;
    if (current == events) return;
    epoll_event e{};
    e.events = events;
    e.data.u64 = reinterpret_cast<std::uint64_t>(c) | (backend ? 1 : 0);
    ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &e);
    current = events;
  }

  void CloseBackend(Connection* c) {
    if (c->backend_fd < 0) return;
    // Forget the port before closing, so that no other socket can take it
    // over while it is still trusted.
    if (c->backend_port != 0) relay_ports.Remove(c->backend_port);
    ::close(c->backend_fd);
    c->backend_fd = -1;
    c->backend_port = 0;
    c->backend_events = 0;
  }

  void Close(Connection* c, CloseReason reason) {
    if (c->closed) return;
    c->closed = true;
    closed[static_cast<std::size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
    Unlink(c);
    CloseBackend(c);
    if (c->ssl != nullptr) {
      if (reason == CloseReason::kDone) {
        ERR_clear_error();
        SSL_shutdown(c->ssl);  // one close_notify, best effort; nothing waits for the reply
      }
      ERR_clear_error();
      SSL_free(c->ssl);
      c->ssl = nullptr;
    }
    ::close(c->fd);
    c->fd = -1;
    (c->all_prev ? c->all_prev->all_next : all) = c->all_next;
    if (c->all_next) c->all_next->all_prev = c->all_prev;
    --connections;
    open.store(connections, std::memory_order_relaxed);
    graveyard.push_back(c);
  }

  // ---- client I/O ----
  enum class Io { kDone, kAgain, kEof, kError };

  Io ReadClient(Connection* c, char* buffer, std::size_t size, std::size_t& got) {
    got = 0;
    if (c->ssl == nullptr) {
      for (;;) {
        const ssize_t n = ::recv(c->fd, buffer, size, 0);
        if (n > 0) {
          got = static_cast<std::size_t>(n);
          return Io::kDone;
        }
        if (n == 0) return Io::kEof;
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? Io::kAgain : Io::kError;
      }
    }
    ERR_clear_error();
    const int n = SSL_read(c->ssl, buffer, static_cast<int>(std::min<std::size_t>(size, 1 << 30)));
    if (n > 0) {
      got = static_cast<std::size_t>(n);
      return Io::kDone;
    }
    switch (SSL_get_error(c->ssl, n)) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:  // no renegotiation: does not happen; wait for input
        return Io::kAgain;
      case SSL_ERROR_ZERO_RETURN:
        return Io::kEof;
      default:
        ERR_clear_error();
        return Io::kError;
    }
  }

  Io WriteClient(Connection* c, const char* data, std::size_t size, std::size_t& wrote) {
    wrote = 0;
    c->tls_write_wants_read = false;
    if (c->ssl == nullptr) {
      for (;;) {
        const ssize_t n = ::send(c->fd, data, size, MSG_NOSIGNAL);
        if (n >= 0) {
          wrote = static_cast<std::size_t>(n);
          return Io::kDone;
        }
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? Io::kAgain : Io::kError;
      }
    }
    ERR_clear_error();
    const int n = SSL_write(c->ssl, data, static_cast<int>(std::min<std::size_t>(size, 1 << 30)));
    if (n > 0) {
      wrote = static_cast<std::size_t>(n);
      return Io::kDone;
    }
    switch (SSL_get_error(c->ssl, n)) {
      case SSL_ERROR_WANT_WRITE:
        return Io::kAgain;
      case SSL_ERROR_WANT_READ:
        c->tls_write_wants_read = true;
        return Io::kAgain;
      default:
        ERR_clear_error();
        return Io::kError;
    }
  }

  // Answers a request the front end refuses itself, best effort (one write),
  // and closes.
  void Refuse(Connection* c, int status, std::string_view reason_phrase, std::string_view body,
              CloseReason reason) {
    const std::string answer = SimpleAnswer(status, reason_phrase, body);
    std::size_t wrote = 0;
    WriteClient(c, answer.data(), answer.size(), wrote);
    ::shutdown(c->fd, SHUT_WR);
    Close(c, reason);
  }

  // ---- state machine ----

  void Accept(int listen_fd, Clock::time_point now) {
    // Bounded: one pass never starves the other listeners or the stop fd.
    for (int k = 0; k < 64; ++k) {
      const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors although the cap is below the nofile limit
          // (other parts of the process use some): make room.
          if (now - last_accept_warning > std::chrono::seconds(60)) {
            spdlog::warn("cannot accept a connection: {}; closing the oldest idle one",
                         std::strerror(errno));
            last_accept_warning = now;
          }
          if (!Evict()) {
            // Nothing to close: stop watching the listeners for a moment
            // rather than waking for the same queued connection at once.
            PauseAccepting(now);
            return;
          }
          continue;
        }
        return;
      }
      if (connections >= settings.max_connections && !Evict()) {
        // Every connection is being answered: nothing to take room from.
        ::close(fd);
        closed[static_cast<std::size_t>(CloseReason::kEvicted)].fetch_add(
            1, std::memory_order_relaxed);
        continue;
      }
      auto* c = new Connection;
      c->fd = fd;
      SetNoDelay(fd);
      {
        std::lock_guard lock(tls_mutex);
        c->tls = tls;
      }
      epoll_event e{};
      e.events = EPOLLIN;
      e.data.u64 = reinterpret_cast<std::uint64_t>(c);
      if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &e) != 0) {
        ::close(fd);
        delete c;
        continue;
      }
      c->client_events = EPOLLIN;
      c->all_next = all;
      if (all) all->all_prev = c;
      all = c;
      ++connections;
      open.store(connections, std::memory_order_relaxed);
      if (c->tls) {
        c->phase = Phase::kHandshake;
        Link(c, kHandshakeList, now);
      } else {
        c->phase = Phase::kHead;
        Link(c, kHeadList, now);
      }
    }
  }

  void PauseAccepting(Clock::time_point now) {
    if (accept_paused) return;
    for (int fd : listen_fds) ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
    accept_paused = true;
    accept_resume = now + std::chrono::milliseconds(100);
  }
  void ResumeAccepting(Clock::time_point now) {
    if (!accept_paused || now < accept_resume) return;
    for (std::size_t i = 0; i < listen_fds.size(); ++i) {
      epoll_event e{};
      e.events = EPOLLIN;
      e.data.u64 = i + 1;
      ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fds[i], &e);
    }
    accept_paused = false;
  }

  // Closes the connection that matters least to make room for a new one:
  // the oldest that has not completed a request, else the oldest idle
  // keep-alive one, else the slowest reader of an answer.
  bool Evict() {
    Connection* victim = nullptr;
    Connection* handshake = lists[kHandshakeList].head;
    Connection* head = lists[kHeadList].head;
    if (handshake && head) {
      // Both lists are in arrival order; their deadlines differ by a constant.
      victim = handshake->deadline - settings.handshake_timeout <
                       head->deadline - settings.header_timeout
                   ? handshake
                   : head;
    } else {
      victim = handshake ? handshake : head;
    }
    if (!victim) victim = lists[kIdleList].head;
    if (!victim) victim = lists[kWriteList].head;
    if (!victim) return false;
    Close(victim, CloseReason::kEvicted);
    return true;
  }

  void OnClient(Connection* c, std::uint32_t events, Clock::time_point now) {
    if ((events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLIN)) {
      Close(c, CloseReason::kClientClosed);
      return;
    }
    switch (c->phase) {
      case Phase::kHandshake:
        Handshake(c, now);
        return;
      case Phase::kHead:
      case Phase::kIdle:
        ReadRequest(c, now);
        return;
      case Phase::kForward:
        if (events & (EPOLLERR | EPOLLHUP)) {
          Close(c, CloseReason::kClientClosed);
          return;
        }
        FlushAnswer(c, now);
        return;
    }
  }

  void Handshake(Connection* c, Clock::time_point now) {
    if (c->ssl == nullptr) {
      unsigned char first = 0;
      const ssize_t n = ::recv(c->fd, &first, 1, MSG_PEEK);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
      if (n <= 0) {
        Close(c, CloseReason::kClientClosed);
        return;
      }
      if (first != 0x16) {  // not a TLS handshake record
        // A client speaking plain HTTP to the TLS port gets a readable answer
        // instead of a reset, like exporter-toolkit gives.
        if (first >= 'A' && first <= 'Z') {
          char discard[4096];
          while (::recv(c->fd, discard, sizeof(discard), 0) > 0) {
          }
          ::send(c->fd, kPlainHttpOnTlsPort.data(), kPlainHttpOnTlsPort.size(), MSG_NOSIGNAL);
          ::shutdown(c->fd, SHUT_WR);
        }
        Close(c, CloseReason::kHandshakeFailed);
        return;
      }
      ERR_clear_error();
      c->ssl = SSL_new(c->tls.get());
      if (c->ssl == nullptr || SSL_set_fd(c->ssl, c->fd) != 1) {
        Close(c, CloseReason::kHandshakeFailed);
        return;
      }
      SSL_set_accept_state(c->ssl);
    }
    ERR_clear_error();
    const int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
      c->tls.reset();  // the SSL object holds its context
      c->phase = Phase::kHead;
      Link(c, kHeadList, now);
      Watch(c, false, EPOLLIN);
      ReadRequest(c, now);  // the request may have come with the handshake's last bytes
      return;
    }
    const int error = SSL_get_error(c->ssl, r);
    if (error == SSL_ERROR_WANT_READ) {
      Watch(c, false, EPOLLIN);
    } else if (error == SSL_ERROR_WANT_WRITE) {
      Watch(c, false, EPOLLOUT);
    } else {
      spdlog::debug("TLS handshake failed: {}", OpenSslErrors());
      Close(c, CloseReason::kHandshakeFailed);
    }
  }

  void ReadRequest(Connection* c, Clock::time_point now) {
    const std::size_t max_head = settings.max_header_bytes;
    for (;;) {
      // A complete head (and body) may already be buffered: pipelined.
      if (c->request_end == 0 && c->scanned < c->in.size()) {
        const std::size_t from = c->scanned >= 2 ? c->scanned - 2 : 0;
        const std::size_t end = FindHeadEnd(c->in, from);
        if (end == std::string::npos) {
          c->scanned = c->in.size();
        } else if (end > max_head) {
          c->scanned = c->in.size();
        } else {
          ParsedRequest parsed = ParseRequest(std::string_view(c->in).substr(0, end), max_head);
          if (!parsed.ok) {
            const std::string_view phrase = parsed.status == 505   ? "HTTP Version Not Supported"
                                            : parsed.status == 411 ? "Length Required"
                                            : parsed.status == 413 ? "Content Too Large"
                                                                   : "Bad Request";
            Refuse(c, parsed.status, phrase, parsed.error + "\n", CloseReason::kBadRequest);
            return;
          }
          c->request_end = end + parsed.body_length;
          c->to_backend = std::move(parsed.forward);
          c->head_request = parsed.head;
          c->close_after = !parsed.keep_alive;
          c->scanned = end;
        }
      }
      if (c->request_end == 0 && c->in.size() > max_head) {
        Refuse(c, 431, "Request Header Fields Too Large",
               fmt::format("the request head is larger than {} bytes\n", max_head),
               CloseReason::kHeadTooLarge);
        return;
      }
      if (c->request_end != 0 && c->in.size() >= c->request_end) {
        const std::size_t head_end = c->scanned;
        c->to_backend.append(c->in, head_end, c->request_end - head_end);  // the body
        c->in.erase(0, c->request_end);
        c->scanned = 0;
        c->request_end = 0;
        Forward(c, now);
        return;
      }
      // Read no more than the limit needs: the rest stays in the kernel.
      const std::size_t want =
          c->request_end != 0 ? c->request_end - c->in.size() : max_head + 1 - c->in.size();
      char buffer[16384];
      std::size_t got = 0;
      const Io io = ReadClient(c, buffer, std::min(want, sizeof(buffer)), got);
      if (io == Io::kAgain) {
        Watch(c, false, EPOLLIN);
        return;
      }
      if (io != Io::kDone) {
        Close(c, CloseReason::kClientClosed);
        return;
      }
      if (c->phase == Phase::kIdle) {
        c->phase = Phase::kHead;  // a new request starts: its head has header_timeout
        Link(c, kHeadList, now);
      }
      c->in.append(buffer, got);
    }
  }

  void Forward(Connection* c, Clock::time_point now) {
    c->phase = Phase::kForward;
    Unlink(c);  // no timer while the engine works; write_timeout once the client lags
    Watch(c, false, 0);
    c->to_backend_sent = 0;
    c->backend_eof = false;
    c->answer_head_seen = false;
    c->answer_head_scanned = 0;
    c->out.clear();
    c->out_sent = 0;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      Refuse(c, 503, "Service Unavailable", "no descriptor for the request\n",
             CloseReason::kEngineError);
      return;
    }
    SetNoDelay(fd);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(backend_port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sockaddr_in local{};
    socklen_t length = sizeof(local);
    if ((::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) != 0 &&
         errno != EINPROGRESS) ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0) {
      spdlog::warn("cannot connect to the internal HTTP port {}: {}", backend_port,
                   std::strerror(errno));
      ::close(fd);
      Refuse(c, 503, "Service Unavailable", "the HTTP engine is not reachable\n",
             CloseReason::kEngineError);
      return;
    }
    // connect() has chosen the local port; trust it before the first byte
    // reaches the engine.
    c->backend_fd = fd;
    c->backend_port = ntohs(local.sin_port);
    relay_ports.Add(c->backend_port);
    epoll_event e{};
    e.events = EPOLLOUT;
    e.data.u64 = reinterpret_cast<std::uint64_t>(c) | 1;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &e);
    c->backend_events = EPOLLOUT;
    // On loopback the connection is usually established by now: send at
    // once rather than after another epoll round.
    OnBackend(c, EPOLLOUT, now);
  }

  void OnBackend(Connection* c, std::uint32_t events, Clock::time_point now) {
    if (c->backend_fd < 0) return;
    if (c->to_backend_sent < c->to_backend.size()) {
      for (;;) {
        const ssize_t n = ::send(c->backend_fd, c->to_backend.data() + c->to_backend_sent,
                                 c->to_backend.size() - c->to_backend_sent, MSG_NOSIGNAL);
        if (n > 0) {
          c->to_backend_sent += static_cast<std::size_t>(n);
          if (c->to_backend_sent == c->to_backend.size()) break;
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // still EPOLLOUT
        Refuse(c, 502, "Bad Gateway", "the HTTP engine refused the request\n",
               CloseReason::kEngineError);
        return;
      }
      std::string().swap(c->to_backend);
      c->to_backend_sent = 0;
      Watch(c, true, EPOLLIN);
      return;  // the answer comes later
    }
    (void)events;
    ReadAnswer(c, now);
  }

  void ReadAnswer(Connection* c, Clock::time_point now) {
    while (c->backend_fd >= 0 && c->out.size() - c->out_sent < settings.max_buffered_answer) {
      if (c->out_sent > 0 && c->out_sent == c->out.size()) {
        c->out.clear();
        c->out_sent = 0;
      }
      // Into the loop's buffer, then appended: no zero-filling of the
      // string's spare room on every read.
      const ssize_t n = ::recv(c->backend_fd, read_buffer.data(), read_buffer.size(), 0);
      if (n > 0) {
        c->out.append(read_buffer.data(), static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      // The engine has answered in full (it closes: Connection: close), or
      // failed. Everything is read: reset rather than close, so that neither
      // side keeps the connection in TIME_WAIT (one per scrape in the
      // exporter's own socket counts otherwise).
      c->backend_eof = true;
      const linger reset{1, 0};
      ::setsockopt(c->backend_fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
      CloseBackend(c);
    }
    if (!c->answer_head_seen) {
      const std::size_t end = FindHeadEnd(c->out, c->answer_head_scanned);
      if (end != std::string::npos) {
        c->answer_head_seen = true;
        // From here the client has write_timeout to take the whole answer.
        Link(c, kWriteList, now);
        if (!AnswerKeepsConnection(std::string_view(c->out).substr(0, end), c->head_request)) {
          c->close_after = true;
        }
      } else {
        c->answer_head_scanned = c->out.size() >= 2 ? c->out.size() - 2 : 0;
        if (c->backend_eof || c->out.size() >= settings.max_buffered_answer) {
          // No answer, or no end of head in all that.
          // prometheus-cpp closes without an answer when a collection throws;
          // the client sees the connection close, as it did before.
          Close(c, CloseReason::kEngineError);
          return;
        }
      }
    }
    if (c->backend_fd >= 0) {
      // Stop reading while the buffer is full; FlushAnswer resumes.
      Watch(
          c, true,
          c->out.size() - c->out_sent < settings.max_buffered_answer ? std::uint32_t{EPOLLIN} : 0u);
    }
    FlushAnswer(c, now);
  }

  void FlushAnswer(Connection* c, Clock::time_point now) {
    if (c->closed) return;
    // The head is passed on once complete; nothing before it.
    while (c->answer_head_seen && c->out_sent < c->out.size()) {
      std::size_t wrote = 0;
      const Io io = WriteClient(c, c->out.data() + c->out_sent, c->out.size() - c->out_sent, wrote);
      if (io == Io::kDone) {
        c->out_sent += wrote;
        continue;
      }
      if (io == Io::kAgain) break;
      Close(c, CloseReason::kClientClosed);
      return;
    }
    if (c->out_sent < c->out.size() && c->answer_head_seen) {
      // Waiting for the client (the write_timeout timer runs since the head).
      Watch(c, false, c->tls_write_wants_read ? EPOLLIN : EPOLLOUT);
      return;
    }
    Watch(c, false, 0);
    if (c->backend_fd >= 0) {
      if (c->backend_events == 0) ReadAnswer(c, now);  // was paused on a full buffer
      return;
    }
    if (!c->backend_eof) return;
    // The answer is delivered.
    Unlink(c);
    if (c->close_after) {
      ::shutdown(c->fd, SHUT_WR);
      Close(c, CloseReason::kDone);
      return;
    }
    if (c->out.capacity() > 65536) {
      std::string().swap(c->out);  // idle connections keep little memory
    } else {
      c->out.clear();
    }
    c->out_sent = 0;
    if (c->in.empty()) {
      if (c->in.capacity() > 4096) std::string().swap(c->in);
      c->phase = Phase::kIdle;
      Link(c, kIdleList, now);
    } else {
      c->phase = Phase::kHead;
      Link(c, kHeadList, now);
    }
    Watch(c, false, EPOLLIN);
    if (c->phase == Phase::kHead || (c->ssl != nullptr && SSL_pending(c->ssl) > 0)) {
      ReadRequest(c, now);
    }
  }

  void Expire(Clock::time_point now) {
    static constexpr CloseReason kReasons[kListCount] = {
        CloseReason::kHandshakeTimeout, CloseReason::kHeaderTimeout, CloseReason::kIdleTimeout,
        CloseReason::kWriteTimeout};
    for (int l = 0; l < kListCount; ++l) {
      while (lists[l].head != nullptr && lists[l].head->deadline <= now) {
        Close(lists[l].head, kReasons[l]);
      }
    }
  }

  int NextTimeoutMs(Clock::time_point now) const {
    Clock::time_point next = Clock::time_point::max();
    for (const List& l : lists) {
      if (l.head != nullptr) next = std::min(next, l.head->deadline);
    }
    if (accept_paused) next = std::min(next, accept_resume);
    if (next == Clock::time_point::max()) return -1;
    if (next <= now) return 0;
    // Rounded up, so a wake-up is never early and spins.
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
    return static_cast<int>(std::min<long long>(ms, 1 << 30));
  }

  void Run() {
    pthread_setname_np(pthread_self(), "http-front");
    std::vector<epoll_event> events(256);
    for (;;) {
      const int n = ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()),
                                 NextTimeoutMs(Clock::now()));
      if (n < 0 && errno != EINTR) break;
      const Clock::time_point now = Clock::now();
      bool stop = false;
      for (int i = 0; i < n; ++i) {
        const std::uint64_t data = events[i].data.u64;
        if (data < kFirstPointer) {
          if (data == 0) {
            stop = true;
          } else {
            Accept(listen_fds[data - 1], now);
          }
          continue;
        }
        auto* c = reinterpret_cast<Connection*>(data & ~std::uint64_t{1});
        if (c->closed) continue;
        if (data & 1) {
          OnBackend(c, events[i].events, now);
        } else {
          OnClient(c, events[i].events, now);
        }
      }
      Expire(now);
      ResumeAccepting(now);
      for (Connection* c : graveyard) delete c;
      graveyard.clear();
      if (stop) break;
    }
    // Stopping: close what is left (not counted; nobody scrapes any more).
    while (all != nullptr) {
      Connection* c = all;
      Close(c, CloseReason::kClientClosed);
      delete c;
      graveyard.clear();
    }
    OPENSSL_thread_stop();
  }
};

FrontEnd::FrontEnd(std::shared_ptr<State> state) : state_(std::move(state)) {}

namespace {

// Creates, binds and listens one socket; returns the fd or an error text.
Result<int> ListenOn(const FrontAddress& address) {
  const int family = address.address.ss_family;
  const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Fail(std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (family == AF_INET6) {
    const int v6only = address.dual_stack ? 0 : 1;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
  }
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address.address), address.address_length) !=
          0 ||
      ::listen(fd, 1024) != 0) {
    const int error = errno;
    ::close(fd);
    errno = error;
    return Fail(std::strerror(error));
  }
  return fd;
}

}  // namespace

Result<std::unique_ptr<FrontEnd>> FrontEnd::Listen(const std::vector<FrontAddress>& addresses,
                                                   Settings settings) {
  auto state = std::make_shared<State>();
  // Each connection needs a descriptor, two while the engine answers it;
  // keep a reserve for the rest of the process.
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    const std::size_t fit =
        nofile.rlim_cur > 512 ? static_cast<std::size_t>(nofile.rlim_cur - 256) / 2 : 128;
    if (settings.max_connections > fit) {
      spdlog::info("--web.max-connections {} lowered to {}: the open files limit is {}",
                   settings.max_connections, fit, nofile.rlim_cur);
      settings.max_connections = fit;
    }
  }
  settings.max_connections = std::max<std::size_t>(settings.max_connections, 1);
  state->settings = settings;
  state->addresses = addresses;
  state->stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (state->stop_fd < 0) return Fail(fmt::format("eventfd: {}", std::strerror(errno)));
  state->epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (state->epoll_fd < 0) return Fail(fmt::format("epoll: {}", std::strerror(errno)));
  for (FrontAddress& address : state->addresses) {
    Result<int> fd = ListenOn(address);
    if (!fd && address.ipv4_fallback && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
      // ":PORT" on a host without IPv6: every IPv4 address.
      spdlog::info("{}: IPv6 is not available ({}); listening on IPv4 only", address.text,
                   fd.error().message);
      const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address.address);
      sockaddr_in v4{};
      v4.sin_family = AF_INET;
      v4.sin_port = v6->sin6_port;
      v4.sin_addr.s_addr = htonl(INADDR_ANY);
      address.address = {};
      std::memcpy(&address.address, &v4, sizeof(v4));
      address.address_length = sizeof(v4);
      address.dual_stack = false;
      fd = ListenOn(address);
    }
    if (!fd) return Fail(fmt::format("cannot listen on {}: {}", address.text, fd.error().message));
    state->listen_fds.push_back(*fd);  // closed by ~State on any failure below
    sockaddr_storage bound{};
    socklen_t length = sizeof(bound);
    ::getsockname(*fd, reinterpret_cast<sockaddr*>(&bound), &length);
    const in_port_t port = bound.ss_family == AF_INET6
                               ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                               : reinterpret_cast<sockaddr_in*>(&bound)->sin_port;
    state->ports.push_back(ntohs(port));
  }
  return std::unique_ptr<FrontEnd>(new FrontEnd(std::move(state)));
}

FrontEnd::~FrontEnd() {
  if (!state_->loop.joinable()) return;
  const std::uint64_t one = 1;
  if (::write(state_->stop_fd, &one, sizeof(one)) < 0) {
    // An eventfd write only fails on overflow, which cannot happen here.
  }
  state_->loop.join();  // the loop closes every connection before it returns
}

std::vector<int> FrontEnd::Ports() const { return state_->ports; }

Result<void> FrontEnd::Start(std::uint16_t backend_port, TlsContextPtr tls) {
  // OpenSSL writes to sockets with write(), which raises SIGPIPE when the
  // client has gone; the default action would end the process.
  std::signal(SIGPIPE, SIG_IGN);
  state_->backend_port = backend_port;
  SetTlsContext(std::move(tls));
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.u64 = 0;
  if (::epoll_ctl(state_->epoll_fd, EPOLL_CTL_ADD, state_->stop_fd, &e) != 0) {
    return Fail(fmt::format("epoll: {}", std::strerror(errno)));
  }
  for (std::size_t i = 0; i < state_->listen_fds.size(); ++i) {
    e.data.u64 = i + 1;
    if (::epoll_ctl(state_->epoll_fd, EPOLL_CTL_ADD, state_->listen_fds[i], &e) != 0) {
      return Fail(fmt::format("epoll: {}", std::strerror(errno)));
    }
  }
  try {
    state_->loop = std::thread([state = state_] { state->Run(); });
  } catch (const std::system_error& error) {
    return Fail(fmt::format("cannot start the HTTP front end thread: {}", error.what()));
  }
  return {};
}

void FrontEnd::SetTlsContext(TlsContextPtr tls) {
  std::lock_guard lock(state_->tls_mutex);
  state_->tls = std::move(tls);
}

FrontEnd::Stats FrontEnd::GetStats() const {
  Stats stats;
  stats.open = state_->open.load(std::memory_order_relaxed);
  stats.limit = state_->settings.max_connections;
  for (std::size_t i = 0; i < stats.closed.size(); ++i) {
    stats.closed[i] = state_->closed[i].load(std::memory_order_relaxed);
  }
  return stats;
}

const RelayPorts& FrontEnd::relay_ports() const { return state_->relay_ports; }

}  // namespace socket_exporter
