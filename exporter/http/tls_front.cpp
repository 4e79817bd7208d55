#include "exporter/http/tls_front.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
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
  // The relay retries partial writes from the same buffer; idle connections
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

// ---- front end state ----------------------------------------------------------

struct FrontEnd::State {
  Settings settings;
  std::vector<FrontAddress> addresses;
  std::vector<int> listen_fds;
  std::vector<int> ports;
  std::uint16_t backend_port = 0;
  int stop_fd = -1;  // eventfd: readable once stopping
  std::thread acceptor;

  std::mutex tls_mutex;
  TlsContextPtr tls;

  RelayPorts relay_ports;

  std::mutex active_mutex;
  std::condition_variable active_changed;
  std::size_t active = 0;

  ~State() {
    for (int fd : listen_fds) ::close(fd);
    if (stop_fd >= 0) ::close(stop_fd);
  }
};

namespace {

void SetNoDelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int RemainingMs(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(std::min<long long>(left.count(), 1 << 30));
}

enum class Wait { kReady, kTimeout, kStop };

// Waits until fd has one of events, the deadline passes or the front end stops.
Wait WaitFor(int fd, short events, int stop_fd, Clock::time_point deadline) {
  for (;;) {
    pollfd fds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    const int n = ::poll(fds, 2, RemainingMs(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || fds[1].revents != 0) return Wait::kStop;
    if (n == 0) return Wait::kTimeout;
    return Wait::kReady;
  }
}

enum class Io { kDone, kWantRead, kWantWrite, kEof, kError };
struct IoResult {
  Io status;
  std::size_t bytes = 0;
};

IoResult FromErrno() {
  if (errno == EAGAIN || errno == EWOULDBLOCK) return {Io::kWantRead};
  return {Io::kError};
}

// The client side of a relayed connection: TLS or plain.
class ClientStream {
 public:
  ClientStream(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}

  IoResult Read(char* buffer, std::size_t size) {
    if (ssl_ == nullptr) {
      for (;;) {
        const ssize_t n = ::recv(fd_, buffer, size, 0);
        if (n > 0) return {Io::kDone, static_cast<std::size_t>(n)};
        if (n == 0) return {Io::kEof};
        if (errno == EINTR) continue;
        return FromErrno();
      }
    }
    ERR_clear_error();
    const int n = SSL_read(ssl_, buffer, static_cast<int>(size));
    if (n > 0) return {Io::kDone, static_cast<std::size_t>(n)};
    return SslStatus(n, /*reading=*/true);
  }

  IoResult Write(const char* data, std::size_t size) {
    if (ssl_ == nullptr) {
      for (;;) {
        const ssize_t n = ::send(fd_, data, size, MSG_NOSIGNAL);
        if (n >= 0) return {Io::kDone, static_cast<std::size_t>(n)};
        if (errno == EINTR) continue;
        const IoResult r = FromErrno();
        return r.status == Io::kWantRead ? IoResult{Io::kWantWrite} : r;
      }
    }
    ERR_clear_error();
    const int n = SSL_write(ssl_, data, static_cast<int>(size));
    if (n > 0) return {Io::kDone, static_cast<std::size_t>(n)};
    return SslStatus(n, /*reading=*/false);
  }

 private:
  IoResult SslStatus(int ret, bool reading) {
    switch (SSL_get_error(ssl_, ret)) {
      case SSL_ERROR_WANT_READ:
        return {Io::kWantRead};
      case SSL_ERROR_WANT_WRITE:
        return {Io::kWantWrite};
      case SSL_ERROR_ZERO_RETURN:
        return {reading ? Io::kEof : Io::kError};
      default:
        ERR_clear_error();
        return {Io::kError};
    }
  }

  int fd_;
  SSL* ssl_;
};

constexpr std::string_view kPlainHttpOnTlsPort =
    "HTTP/1.0 400 Bad Request\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Connection: close\r\n\r\n"
    "This port serves HTTPS; the request was sent as plain HTTP. Use https://.\n";

// A client that speaks plain HTTP to the TLS port gets a readable answer
// instead of a reset, like exporter-toolkit gives.
void AnswerPlainHttp(int fd) {
  char discard[4096];
  while (::recv(fd, discard, sizeof(discard), 0) > 0) {
  }
  ::send(fd, kPlainHttpOnTlsPort.data(), kPlainHttpOnTlsPort.size(), MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
}

// Relays bytes between the client and CivetWeb's internal port until either
// side is done, an error occurs, or nothing moved for idle_timeout.
class Relay {
 public:
  Relay(FrontEnd::State& state, int client_fd, SSL* ssl)
      : state_(state), client_fd_(client_fd), client_(client_fd, ssl) {}
  ~Relay() {
    if (backend_fd_ >= 0) {
      // Forget the port before closing, so that no other socket can take it
      // over while it is still trusted.
      if (backend_port_ != 0) state_.relay_ports.Remove(backend_port_);
      ::close(backend_fd_);
    }
  }
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Returns true when the connection ended cleanly.
  bool Run() {
    for (;;) {
      short client_events = 0;
      short backend_events = 0;
      bool progress = true;
      // Move data until nothing moves; what the last pass waited for is what
      // poll() waits for.
      while (progress) {
        progress = false;
        client_events = 0;
        backend_events = 0;
        if (to_backend_.empty() && !client_eof_) {
          const IoResult r = client_.Read(to_backend_.buffer, sizeof(to_backend_.buffer));
          if (r.status == Io::kDone) {
            to_backend_.Fill(r.bytes);
            progress = true;
          } else if (r.status == Io::kEof) {
            client_eof_ = true;
            progress = true;
          } else if (!Want(r, client_events)) {
            return false;
          }
        }
        if (!to_backend_.empty()) {
          if (backend_fd_ < 0 && !ConnectBackend()) return false;
          const ssize_t n =
              ::send(backend_fd_, to_backend_.data(), to_backend_.size(), MSG_NOSIGNAL);
          if (n > 0) {
            to_backend_.Consume(static_cast<std::size_t>(n));
            progress = true;
          } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            backend_events |= POLLOUT;
          } else {
            return false;
          }
        }
        if (client_eof_ && to_backend_.empty()) {
          if (backend_fd_ < 0) return true;  // the client left without asking anything
          if (!backend_write_shut_) {
            ::shutdown(backend_fd_, SHUT_WR);
            backend_write_shut_ = true;
          }
        }
        if (backend_fd_ >= 0 && to_client_.empty() && !backend_eof_) {
          const ssize_t n = ::recv(backend_fd_, to_client_.buffer, sizeof(to_client_.buffer), 0);
          if (n > 0) {
            to_client_.Fill(static_cast<std::size_t>(n));
            progress = true;
          } else if (n == 0) {
            backend_eof_ = true;
            progress = true;
          } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            backend_events |= POLLIN;
          } else {
            return false;
          }
        }
        if (!to_client_.empty()) {
          const IoResult r = client_.Write(to_client_.data(), to_client_.size());
          if (r.status == Io::kDone) {
            to_client_.Consume(r.bytes);
            progress = progress || r.bytes > 0;
          } else if (!Want(r, client_events)) {
            return false;
          }
        }
        // CivetWeb closed the connection and everything it sent was passed on.
        if (backend_eof_ && to_client_.empty()) return true;
      }
      // Only sockets with something to wait for are polled: a hung-up socket
      // nobody reads from would otherwise wake poll() over and over.
      pollfd fds[3] = {{client_events ? client_fd_ : -1, client_events, 0},
                       {backend_events ? backend_fd_ : -1, backend_events, 0},
                       {state_.stop_fd, POLLIN, 0}};
      // Until the client has sent a first byte it gets no more time than a
      // handshake: a connection that never asks anything goes soon.
      const auto timeout =
          backend_fd_ < 0 ? state_.settings.handshake_timeout : state_.settings.idle_timeout;
      int n;
      do {
        n = ::poll(fds, 3, static_cast<int>(timeout.count()));
      } while (n < 0 && errno == EINTR);
      if (n <= 0 || fds[2].revents != 0) return false;  // idle timeout, error or stop
    }
  }

 private:
  struct Buffer {
    char buffer[16384];
    std::size_t begin = 0;
    std::size_t end = 0;
    bool empty() const { return begin == end; }
    const char* data() const { return buffer + begin; }
    std::size_t size() const { return end - begin; }
    void Fill(std::size_t n) {
      begin = 0;
      end = n;
    }
    void Consume(std::size_t n) { begin += n; }
  };

  static bool Want(const IoResult& r, short& events) {
    if (r.status == Io::kWantRead) {
      events |= POLLIN;
      return true;
    }
    if (r.status == Io::kWantWrite) {
      events |= POLLOUT;
      return true;
    }
    return false;
  }

  // Connects to CivetWeb lazily, once the client has sent something: a client
  // that connects and stays silent never occupies a CivetWeb worker.
  bool ConnectBackend() {
    backend_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (backend_fd_ < 0) return false;
    SetNoDelay(backend_fd_);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(state_.backend_port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(backend_fd_, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) != 0 &&
        errno != EINPROGRESS) {
      spdlog::warn("relay: cannot connect to the internal HTTP port {}: {}", state_.backend_port,
                   std::strerror(errno));
      return false;
    }
    // connect() has chosen the local port; trust it before the first byte
    // reaches CivetWeb.
    sockaddr_in local{};
    socklen_t length = sizeof(local);
    if (::getsockname(backend_fd_, reinterpret_cast<sockaddr*>(&local), &length) != 0) {
      return false;
    }
    backend_port_ = ntohs(local.sin_port);
    state_.relay_ports.Add(backend_port_);
    return true;
  }

  FrontEnd::State& state_;
  int client_fd_;
  ClientStream client_;
  int backend_fd_ = -1;
  std::uint16_t backend_port_ = 0;
  bool client_eof_ = false;
  bool backend_eof_ = false;
  bool backend_write_shut_ = false;
  Buffer to_backend_;
  Buffer to_client_;
};

struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};

// Runs on its own thread for one accepted connection; owns client_fd.
void ServeConnection(std::shared_ptr<FrontEnd::State> state, int client_fd, TlsContextPtr tls) {
  pthread_setname_np(pthread_self(), tls ? "tls-relay" : "relay");
  SetNoDelay(client_fd);
  std::unique_ptr<SSL, SslDeleter> ssl;
  bool handshake_done = tls == nullptr;
  if (tls) {
    const Clock::time_point deadline = Clock::now() + state->settings.handshake_timeout;
    unsigned char first = 0;
    if (WaitFor(client_fd, POLLIN, state->stop_fd, deadline) == Wait::kReady &&
        ::recv(client_fd, &first, 1, MSG_PEEK) == 1) {
      if (first != 0x16) {  // not a TLS handshake record
        if (first >= 'A' && first <= 'Z') AnswerPlainHttp(client_fd);
      } else {
        ERR_clear_error();
        ssl.reset(SSL_new(tls.get()));
        if (ssl && SSL_set_fd(ssl.get(), client_fd) == 1) {
          for (;;) {
            ERR_clear_error();
            const int r = SSL_accept(ssl.get());
            if (r == 1) {
              handshake_done = true;
              break;
            }
            const int error = SSL_get_error(ssl.get(), r);
            short events = 0;
            if (error == SSL_ERROR_WANT_READ) events = POLLIN;
            if (error == SSL_ERROR_WANT_WRITE) events = POLLOUT;
            if (events == 0) {
              spdlog::debug("TLS handshake failed: {}", OpenSslErrors());
              break;
            }
            if (WaitFor(client_fd, events, state->stop_fd, deadline) != Wait::kReady) {
              spdlog::debug("TLS handshake timed out");
              break;
            }
          }
        }
      }
    }
  }
  if (handshake_done) {
    const bool clean = Relay(*state, client_fd, ssl.get()).Run();
    if (clean && ssl) {
      ERR_clear_error();
      SSL_shutdown(ssl.get());  // one close_notify, best effort; nothing waits for the reply
    }
  }
  ERR_clear_error();
  ssl.reset();
  ::close(client_fd);
  OPENSSL_thread_stop();  // this thread's OpenSSL state, freed now rather than at exit
  std::lock_guard lock(state->active_mutex);
  --state->active;
  state->active_changed.notify_all();
}

void AcceptLoop(std::shared_ptr<FrontEnd::State> state) {
  pthread_setname_np(pthread_self(), "front-accept");
  std::vector<pollfd> fds;
  fds.push_back({state->stop_fd, POLLIN, 0});
  for (int fd : state->listen_fds) fds.push_back({fd, POLLIN, 0});
  Clock::time_point last_warning{};
  for (;;) {
    const int n = ::poll(fds.data(), fds.size(), -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || fds[0].revents != 0) return;
    for (std::size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      // Bounded: one pass never starves the other listeners or the stop fd.
      for (int k = 0; k < 64; ++k) {
        const int client = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (client < 0) {
          if (errno == EINTR || errno == ECONNABORTED) continue;
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            // The connection stays queued; back off instead of spinning on it.
            if (Clock::now() - last_warning > std::chrono::seconds(60)) {
              spdlog::warn("cannot accept a connection: {}", std::strerror(errno));
              last_warning = Clock::now();
            }
            pollfd stop = {state->stop_fd, POLLIN, 0};
            ::poll(&stop, 1, 100);
          }
          break;
        }
        {
          std::lock_guard lock(state->active_mutex);
          if (state->active >= state->settings.max_connections) {
            ::close(client);  // over the limit: refuse rather than queue
            if (Clock::now() - last_warning > std::chrono::seconds(60)) {
              spdlog::warn("{} connections are open, the limit; closing new ones", state->active);
              last_warning = Clock::now();
            }
            continue;
          }
          ++state->active;
        }
        TlsContextPtr tls;
        {
          std::lock_guard lock(state->tls_mutex);
          tls = state->tls;
        }
        try {
          std::thread(ServeConnection, state, client, std::move(tls)).detach();
        } catch (const std::system_error& e) {
          ::close(client);
          std::lock_guard lock(state->active_mutex);
          --state->active;
          state->active_changed.notify_all();
        }
      }
    }
  }
}

}  // namespace

FrontEnd::FrontEnd(std::shared_ptr<State> state) : state_(std::move(state)) {}

Result<std::unique_ptr<FrontEnd>> FrontEnd::Listen(const std::vector<FrontAddress>& addresses,
                                                   Settings settings) {
  auto state = std::make_shared<State>();
  state->settings = settings;
  state->addresses = addresses;
  state->stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (state->stop_fd < 0) return Fail(fmt::format("eventfd: {}", std::strerror(errno)));
  for (const FrontAddress& address : addresses) {
    const int family = address.address.ss_family;
    const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      return Fail(
          fmt::format("cannot listen on {}: socket: {}", address.text, std::strerror(errno)));
    }
    state->listen_fds.push_back(fd);  // closed by ~State on any failure below
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_INET6) {
      const int v6only = address.dual_stack ? 0 : 1;
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    }
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&address.address), address.address_length) !=
            0 ||
        ::listen(fd, 128) != 0) {
      return Fail(fmt::format("cannot listen on {}: {}", address.text, std::strerror(errno)));
    }
    sockaddr_storage bound{};
    socklen_t length = sizeof(bound);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
    const in_port_t port = family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&bound)->sin_port;
    state->ports.push_back(ntohs(port));
  }
  return std::unique_ptr<FrontEnd>(new FrontEnd(std::move(state)));
}

FrontEnd::~FrontEnd() {
  if (!state_->acceptor.joinable()) return;
  const std::uint64_t one = 1;
  if (::write(state_->stop_fd, &one, sizeof(one)) < 0) {
    // An eventfd write only fails on overflow, which cannot happen here.
  }
  state_->acceptor.join();
  // Connection threads see the eventfd too and end promptly; each holds the
  // state alive until it has finished.
  std::unique_lock lock(state_->active_mutex);
  state_->active_changed.wait(lock, [&] { return state_->active == 0; });
}

std::vector<int> FrontEnd::Ports() const { return state_->ports; }

Result<void> FrontEnd::Start(std::uint16_t backend_port, TlsContextPtr tls) {
  // OpenSSL writes to sockets with write(), which raises SIGPIPE when the
  // client has gone; the default action would end the process.
  std::signal(SIGPIPE, SIG_IGN);
  state_->backend_port = backend_port;
  SetTlsContext(std::move(tls));
  try {
    state_->acceptor = std::thread(AcceptLoop, state_);
  } catch (const std::system_error& e) {
    return Fail(fmt::format("cannot start the connection acceptor: {}", e.what()));
  }
  return {};
}

void FrontEnd::SetTlsContext(TlsContextPtr tls) {
  std::lock_guard lock(state_->tls_mutex);
  state_->tls = std::move(tls);
}

const RelayPorts& FrontEnd::relay_ports() const { return state_->relay_ports; }

}  // namespace socket_exporter
