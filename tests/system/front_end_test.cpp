// Tests of the HTTP front end in-process, against a stub standing in for the
// HTTP engine (CivetWeb): complete requests only reach the engine, with
// "Connection: close"; keep-alive and pipelining towards the client; the
// engine's peer ports are trusted only while in use; every bound (header,
// handshake, idle and write timeouts, head size, connection cap with
// eviction) closes the connection it should and counts the reason; TLS, IPv6
// and dual-stack; plain HTTP on a TLS port gets a 400; stopping does not hang.
#include "exporter/http/front_end.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/test_util.h"

namespace socket_exporter {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Timing guards are generous, and multiplied under the sanitizers.
constexpr int kSlowdown = static_cast<int>(testing::kSlowdown);

std::uint64_t Closed(const FrontEnd& front, CloseReason reason) {
  return front.GetStats().closed[static_cast<std::size_t>(reason)];
}

// Stands in for CivetWeb on 127.0.0.1:<port>: reads one request head per
// connection, notes it and whether its peer port was trusted at that moment,
// answers "HTTP/1.1 200 OK" with the request line as the body (or `body_size`
// bytes), and closes.
class EngineStub {
 public:
  explicit EngineStub(std::size_t body_size = 0) : body_size_(body_size) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(::listen(fd_, 64), 0);
    socklen_t length = sizeof(address);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~EngineStub() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    acceptor_.join();
    for (auto& t : workers_) t.join();
    ::close(fd_);
  }
  std::uint16_t port() const { return port_; }
  void set_front(const FrontEnd* front) { front_ = front; }
  std::vector<std::string> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::vector<std::uint16_t> peer_ports() {
    std::lock_guard lock(mutex_);
    return peer_ports_;
  }
  int untrusted() const { return untrusted_; }
  // Answers whose last byte the engine could hand to the kernel (or gave up on).
  int answers_finished() const { return finished_; }

 private:
  void Accept() {
    for (;;) {
      sockaddr_in peer{};
      socklen_t length = sizeof(peer);
      const int client = ::accept(fd_, reinterpret_cast<sockaddr*>(&peer), &length);
      if (client < 0 || stop_) {
        if (client >= 0) ::close(client);
        return;
      }
      const std::uint16_t peer_port = ntohs(peer.sin_port);
      workers_.emplace_back([this, client, peer_port] {
        std::string request;
        char buffer[4096];
        while (request.find("\r\n\r\n") == std::string::npos) {
          const ssize_t n = ::recv(client, buffer, sizeof(buffer), 0);
          if (n <= 0) break;
          request.append(buffer, static_cast<std::size_t>(n));
        }
        {
          std::lock_guard lock(mutex_);
          requests_.push_back(request);
          peer_ports_.push_back(peer_port);
          const FrontEnd* front = front_.load();
          if (front != nullptr && !front->relay_ports().Contains(peer_port)) ++untrusted_;
        }
        const std::string line = request.substr(0, request.find("\r\n"));
        const std::string body = body_size_ ? std::string(body_size_, 'b') : line;
        const std::string answer =
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body;
        std::size_t sent = 0;
        while (sent < answer.size()) {
          const ssize_t n =
              ::send(client, answer.data() + sent, answer.size() - sent, MSG_NOSIGNAL);
          if (n <= 0) break;
          sent += static_cast<std::size_t>(n);
        }
        ++finished_;
        ::close(client);
      });
    }
  }

  std::size_t body_size_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<const FrontEnd*> front_{nullptr};
  std::atomic<int> untrusted_{0};
  std::atomic<int> finished_{0};
  std::thread acceptor_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::vector<std::string> requests_;
  std::vector<std::uint16_t> peer_ports_;
};

FrontAddress Loopback4() {
  FrontAddress address;
  address.text = "127.0.0.1:0";
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address.address);
  v4->sin_family = AF_INET;
  v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.address_length = sizeof(sockaddr_in);
  return address;
}

bool HaveIpv6Loopback() {
  const int probe = ::socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 any{};
  any.sin6_family = AF_INET6;
  any.sin6_addr = in6addr_loopback;
  const bool ok = probe >= 0 && ::bind(probe, reinterpret_cast<sockaddr*>(&any), sizeof(any)) == 0;
  if (probe >= 0) ::close(probe);
  return ok;
}

int Connect(int port, int family = AF_INET, int rcvbuf = 0) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  sockaddr_storage to{};
  socklen_t length = 0;
  if (family == AF_INET) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&to);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    length = sizeof(sockaddr_in);
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&to);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    v6->sin6_addr = in6addr_loopback;
    length = sizeof(sockaddr_in6);
  }
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&to), length), 0) << std::strerror(errno);
  return fd;
}

void SendAll(int fd, const std::string& data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;
    sent += static_cast<std::size_t>(n);
  }
}

// What arrives within the timeout: data, "" on EOF or reset, or "<timeout>".
std::string ReadSome(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return "<timeout>";
  char buffer[65536];
  const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
  if (n <= 0) return "";
  return std::string(buffer, static_cast<std::size_t>(n));
}

// Reads one answer with a Content-Length body.
std::string ReadAnswer(int fd, std::chrono::milliseconds timeout = 3s * kSlowdown) {
  std::string got;
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    const auto head_end = got.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      const auto cl = got.find("Content-Length: ");
      if (cl != std::string::npos && cl < head_end) {
        const std::size_t length = std::stoul(got.substr(cl + 16));
        if (got.size() >= head_end + 4 + length) return got;
      }
    }
    const std::string part = ReadSome(
        fd, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    if (part.empty() || part == "<timeout>") break;
    got += part;
  }
  return got;
}

// Reads until EOF; returns how long it took, or nullopt past the timeout.
std::optional<Clock::duration> TimeToEof(int fd, std::chrono::milliseconds timeout) {
  const auto start = Clock::now();
  while (Clock::now() - start < timeout) {
    const std::string part = ReadSome(fd, 50ms);
    if (part.empty()) return Clock::now() - start;
  }
  return std::nullopt;
}

bool Eventually(const std::function<bool()>& predicate,
                std::chrono::milliseconds timeout = 3s * kSlowdown) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return predicate();
}

std::unique_ptr<FrontEnd> StartFront(const std::vector<FrontAddress>& addresses, EngineStub& engine,
                                     FrontEnd::Settings settings = {},
                                     TlsContextPtr tls = nullptr) {
  auto front = FrontEnd::Listen(addresses, settings);
  EXPECT_TRUE(front) << front.error().message;
  if (!front) return nullptr;
  engine.set_front(front->get());
  auto started = (*front)->Start(engine.port(), std::move(tls));
  EXPECT_TRUE(started) << started.error().message;
  return std::move(*front);
}

const std::string kGet = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";

TEST(FrontEndTest, HandsOnlyCompleteRequestsToTheEngineAndTrustsOnlyLiveRelayPorts) {
  EngineStub engine;
  auto front = StartFront({Loopback4()}, engine);
  ASSERT_TRUE(front);
  const int client = Connect(front->Ports()[0]);
  SendAll(client, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nAccept: */*");
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(engine.requests().empty()) << "an incomplete request reached the engine";
  SendAll(client, "\r\n\r\n");
  const std::string answer = ReadAnswer(client);
  EXPECT_NE(answer.find("\r\n\r\nGET /metrics HTTP/1.1"), std::string::npos) << answer;
  ASSERT_EQ(engine.requests().size(), 1u);
  const std::string forwarded = engine.requests()[0];
  EXPECT_NE(forwarded.find("\r\nConnection: close\r\n\r\n"), std::string::npos) << forwarded;
  EXPECT_EQ(forwarded.find("keep-alive"), std::string::npos) << forwarded;
  EXPECT_NE(forwarded.find("\r\nAccept: */*\r\n"), std::string::npos) << forwarded;
  EXPECT_EQ(engine.untrusted(), 0) << "the engine saw a request from an untrusted port";
  const std::uint16_t relay_port = engine.peer_ports()[0];
  EXPECT_TRUE(Eventually([&] { return !front->relay_ports().Contains(relay_port); }))
      << "the relay port stays trusted after the answer";
  // The connection stays open for the next request (keep-alive), and two
  // pipelined requests get two answers in order.
  SendAll(client, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string a = ReadAnswer(client);
  EXPECT_NE(a.find("GET /a HTTP/1.1"), std::string::npos) << a;
  std::string b = a.substr(a.find("GET /a HTTP/1.1") + 15);
  if (b.find("GET /b") == std::string::npos) b += ReadAnswer(client);
  EXPECT_NE(b.find("GET /b HTTP/1.1"), std::string::npos) << b;
  EXPECT_EQ(front->GetStats().open, 1u);
  ::close(client);
  EXPECT_TRUE(Eventually([&] { return front->GetStats().open == 0; }));
  EXPECT_EQ(Closed(*front, CloseReason::kClientClosed), 1u);
}

TEST(FrontEndTest, ClosesAfterTheAnswerWhenTheClientAsksTo) {
  EngineStub engine;
  auto front = StartFront({Loopback4()}, engine);
  ASSERT_TRUE(front);
  for (const std::string request :
       {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", "GET / HTTP/1.0\r\n\r\n"}) {
    const int client = Connect(front->Ports()[0]);
    SendAll(client, request);
    EXPECT_NE(ReadAnswer(client).find("200 OK"), std::string::npos);
    EXPECT_TRUE(TimeToEof(client, 2s * kSlowdown)) << request;
    ::close(client);
  }
  EXPECT_TRUE(Eventually([&] { return Closed(*front, CloseReason::kDone) == 2; }));
}

TEST(FrontEndTest, ServesIpv6AndDualStack) {
  if (!HaveIpv6Loopback()) GTEST_SKIP() << "this host has no IPv6 loopback";
  EngineStub engine;
  FrontAddress any;
  any.text = ":0";
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&any.address);
  v6->sin6_family = AF_INET6;
  v6->sin6_addr = in6addr_any;
  any.address_length = sizeof(sockaddr_in6);
  any.dual_stack = true;
  any.ipv4_fallback = true;
  auto front = StartFront({any}, engine);
  ASSERT_TRUE(front);
  for (int family : {AF_INET, AF_INET6}) {
    const int client = Connect(front->Ports()[0], family);
    SendAll(client, kGet);
    EXPECT_NE(ReadAnswer(client).find("200 OK"), std::string::npos)
        << (family == AF_INET ? "IPv4" : "IPv6");
    ::close(client);
  }
}

TEST(FrontEndTest, CutsOffASlowHeadAtTheHeaderTimeout) {
  EngineStub engine;
  FrontEnd::Settings settings;
  settings.header_timeout = 400ms;
  auto front = StartFront({Loopback4()}, engine, settings);
  ASSERT_TRUE(front);
  const int client = Connect(front->Ports()[0]);
  const auto start = Clock::now();
  bool closed = false;
  // One byte every 50 ms: progress, but the head is never complete in time.
  for (char c : kGet) {
    if (::send(client, &c, 1, MSG_NOSIGNAL) != 1 || ReadSome(client, 50ms) == "") {
      closed = true;
      break;
    }
  }
  if (!closed) closed = TimeToEof(client, 2s * kSlowdown).has_value();
  const auto waited = Clock::now() - start;
  EXPECT_TRUE(closed);
  EXPECT_GE(waited, 350ms);
  EXPECT_LT(waited, 1500ms * kSlowdown);
  EXPECT_TRUE(engine.requests().empty()) << "a partial request reached the engine";
  EXPECT_TRUE(Eventually([&] { return Closed(*front, CloseReason::kHeaderTimeout) == 1; }));
  ::close(client);
}

TEST(FrontEndTest, RefusesAHeadOverTheLimitWith431) {
  EngineStub engine;
  auto front = StartFront({Loopback4()}, engine);
  ASSERT_TRUE(front);
  const int client = Connect(front->Ports()[0]);
  // 1 MiB of header, sent from another thread: the front end stops reading
  // at its limit, so the sender may block until the connection closes.
  std::thread sender([client] {
    SendAll(client, "GET / HTTP/1.1\r\nX-Big: " + std::string(1 << 20, 'a') + "\r\n\r\n");
  });
  std::string answer;
  for (std::string part; (part = ReadSome(client, 3s * kSlowdown)) != "" && part != "<timeout>";)
    answer += part;
  ::shutdown(client, SHUT_RDWR);
  sender.join();
  ::close(client);
  EXPECT_EQ(answer.rfind("HTTP/1.1 431 ", 0), 0u) << answer.substr(0, 200);
  EXPECT_TRUE(engine.requests().empty());
  EXPECT_TRUE(Eventually([&] { return Closed(*front, CloseReason::kHeadTooLarge) == 1; }));
  // Others are still served.
  const int other = Connect(front->Ports()[0]);
  SendAll(other, kGet);
  EXPECT_NE(ReadAnswer(other).find("200 OK"), std::string::npos);
  ::close(other);
}

TEST(FrontEndTest, RefusesBadRequestsWithoutReachingTheEngine) {
  EngineStub engine;
  auto front = StartFront({Loopback4()}, engine);
  ASSERT_TRUE(front);
  const std::pair<std::string, std::string> cases[] = {
      {"GET / HTTP/2.0\r\n\r\n", "HTTP/1.1 505 "},
      {"GARBAGE\r\n\r\n", "HTTP/1.1 400 "},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 411 "},
      {"GET / HTTP/1.1\r\n folded: x\r\n\r\n", "HTTP/1.1 400 "},
  };
  for (const auto& [request, status] : cases) {
    const int client = Connect(front->Ports()[0]);
    SendAll(client, request);
    const std::string answer = ReadSome(client, 2s * kSlowdown);
    EXPECT_EQ(answer.rfind(status, 0), 0u) << request << " -> " << answer;
    ::close(client);
  }
  EXPECT_TRUE(engine.requests().empty());
  EXPECT_TRUE(Eventually([&] { return Closed(*front, CloseReason::kBadRequest) == 4; }));
  // A body within the limit is handed on with its request.
  const int client = Connect(front->Ports()[0]);
  SendAll(client, "POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_NE(ReadAnswer(client).find("POST /p"), std::string::npos);
  ::close(client);
}

TEST(FrontEndTest, ClosesIdleKeepAliveConnections) {
  EngineStub engine;
  FrontEnd::Settings settings;
  settings.idle_timeout = 300ms;
  auto front = StartFront({Loopback4()}, engine, settings);
  ASSERT_TRUE(front);
  const int client = Connect(front->Ports()[0]);
  SendAll(client, kGet);
  EXPECT_NE(ReadAnswer(client).find("200 OK"), std::string::npos);
  const auto waited = TimeToEof(client, 3s * kSlowdown);
  ASSERT_TRUE(waited);
  EXPECT_GE(*waited, 250ms);
  EXPECT_TRUE(Eventually([&] { return Closed(*front, CloseReason::kIdleTimeout) == 1; }));
  ::close(client);
}

TEST(FrontEndTest, AClientThatNeverReadsIsCutOffAndNeverHoldsTheEngine) {
  // A 64 MiB answer, more than the kernel's socket buffers and the front
  // end's 1 MiB can hold; the client reads nothing.
  EngineStub engine(64 << 20);
  FrontEnd::Settings settings;
  settings.write_timeout = 500ms;
  settings.max_buffered_answer = 1 << 20;
  auto front = StartFront({Loopback4()}, engine, settings);
  ASSERT_TRUE(front);
  const int client = Connect(front->Ports()[0], AF_INET, 4096);
  SendAll(client, kGet);
  const auto start = Clock::now();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(engine.answers_finished(), 0) << "the test needs an answer that cannot be buffered";
  EXPECT_TRUE(
      Eventually([&] { return Closed(*front, CloseReason::kWriteTimeout) == 1; }, 5s * kSlowdown));
  const auto cut = Clock::now() - start;
  EXPECT_GE(cut, 450ms);
  // The engine's writer is released when the connection is cut (not later).
  EXPECT_TRUE(Eventually([&] { return engine.answers_finished() == 1; }, 2s * kSlowdown));
  EXPECT_EQ(front->GetStats().open, 0u);
  ::close(client);
  // An answer the front end can hold in full (24 MiB: more than the kernel's
  // buffers between the client and the front end) frees the engine while the
  // client still has not read it and its connection is open.
  EngineStub small_engine(24 << 20);
  settings.max_buffered_answer = 32 << 20;
  settings.write_timeout = 10s * kSlowdown;
  auto front2 = StartFront({Loopback4()}, small_engine, settings);
  ASSERT_TRUE(front2);
  const int lazy = Connect(front2->Ports()[0], AF_INET, 4096);
  SendAll(lazy, kGet);
  EXPECT_TRUE(Eventually([&] { return small_engine.answers_finished() == 1; }, 5s * kSlowdown))
      << "the engine waited for a client that does not read";
  EXPECT_EQ(front2->GetStats().open, 1u) << "the connection is not open any more";
  EXPECT_EQ(Closed(*front2, CloseReason::kWriteTimeout), 0u);
  ::close(lazy);
}

TEST(FrontEndTest, EvictsTheOldestIdleConnectionAtTheCap) {
  EngineStub engine;
  FrontEnd::Settings settings;
  settings.max_connections = 3;
  auto front = StartFront({Loopback4()}, engine, settings);
  ASSERT_TRUE(front);
  const int port = front->Ports()[0];
  const int oldest = Connect(port);
  std::this_thread::sleep_for(20ms);
  const int second = Connect(port);
  const int third = Connect(port);
  ASSERT_TRUE(Eventually([&] { return front->GetStats().open == 3; }));
  const int scraper = Connect(port);
  SendAll(scraper, kGet);
  EXPECT_NE(ReadAnswer(scraper).find("200 OK"), std::string::npos)
      << "the new connection was not served at the cap";
  EXPECT_EQ(ReadSome(oldest, 2s * kSlowdown), "") << "the oldest connection was not evicted";
  EXPECT_EQ(ReadSome(second, 100ms), "<timeout>") << "a younger connection was closed";
  EXPECT_EQ(Closed(*front, CloseReason::kEvicted), 1u);
  EXPECT_EQ(front->GetStats().limit, 3u);
  for (int fd : {oldest, second, third, scraper}) ::close(fd);
}

class TlsFrontEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("se-tlsfront-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    X509_sign(cert, key, EVP_sha256());
    config_.cert_file = (dir_ / "c.pem").string();
    config_.key_file = (dir_ / "k.pem").string();
    FILE* out = std::fopen(config_.cert_file.c_str(), "w");
    PEM_write_X509(out, cert);
    std::fclose(out);
    out = std::fopen(config_.key_file.c_str(), "w");
    PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(out);
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  TlsServerConfig config_;
};

// A TLS client over a blocking socket; returns the first answer, or "".
std::string TlsGet(int port, const std::string& request) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  const int fd = Connect(port);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  std::string answer;
  if (SSL_connect(ssl) == 1 &&
      SSL_write(ssl, request.data(), static_cast<int>(request.size())) > 0) {
    char buffer[4096];
    for (;;) {
      const int n = SSL_read(ssl, buffer, sizeof(buffer));
      if (n <= 0) break;
      answer.append(buffer, static_cast<std::size_t>(n));
      if (answer.find("\r\n\r\n") != std::string::npos &&
          answer.find("GET /tls") != answer.rfind("GET /tls")) {
        break;  // the body, the request line, has arrived
      }
      if (answer.size() > 200) break;
    }
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
  ERR_clear_error();
  return answer;
}

TEST_F(TlsFrontEndTest, ServesRequestsOverTls) {
  auto tls = BuildTlsContext(config_);
  ASSERT_TRUE(tls) << tls.error().message;
  EngineStub engine;
  auto front = StartFront({Loopback4()}, engine, {}, *tls);
  ASSERT_TRUE(front);
  const std::string answer =
      TlsGet(front->Ports()[0], "GET /tls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK", 0), 0u) << answer;
  EXPECT_NE(answer.find("\r\n\r\nGET /tls HTTP/1.1"), std::string::npos) << answer;
}

TEST_F(TlsFrontEndTest, HandshakeTimeoutCutsOffSilentAndStalledClients) {
  auto tls = BuildTlsContext(config_);
  ASSERT_TRUE(tls) << tls.error().message;
  EngineStub engine;
  FrontEnd::Settings settings;
  settings.handshake_timeout = 300ms;
  auto front = StartFront({Loopback4()}, engine, settings, *tls);
  ASSERT_TRUE(front);
  const int silent = Connect(front->Ports()[0]);
  // A client that stops mid-handshake: a TLS record header announcing 512
  // bytes of ClientHello, then only a few of them.
  const int stalled = Connect(front->Ports()[0]);
  SendAll(stalled, std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11));
  for (int fd : {silent, stalled}) {
    const auto waited = TimeToEof(fd, 3s * kSlowdown);
    ASSERT_TRUE(waited);
    EXPECT_LT(*waited, 1500ms * kSlowdown);
    ::close(fd);
  }
  EXPECT_TRUE(Eventually([&] { return Closed(*front, CloseReason::kHandshakeTimeout) == 2; }));
  EXPECT_TRUE(engine.requests().empty()) << "a client without a handshake reached the engine";
  const std::string answer =
      TlsGet(front->Ports()[0], "GET /tls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK", 0), 0u) << "others are not served: " << answer;
}

TEST_F(TlsFrontEndTest, PlainHttpOnTheTlsPortGetsA400AndNeverReachesTheEngine) {
  auto tls = BuildTlsContext(config_);
  ASSERT_TRUE(tls) << tls.error().message;
  EngineStub engine;
  auto front = StartFront({Loopback4()}, engine, {}, *tls);
  ASSERT_TRUE(front);
  const int client = Connect(front->Ports()[0]);
  SendAll(client, kGet);
  std::string answer;
  for (std::string part; (part = ReadSome(client, 2s)) != "" && part != "<timeout>";)
    answer += part;
  EXPECT_EQ(answer.rfind("HTTP/1.0 400 Bad Request\r\n", 0), 0u) << answer;
  EXPECT_TRUE(engine.requests().empty());
  EXPECT_TRUE(Eventually([&] { return Closed(*front, CloseReason::kHandshakeFailed) == 1; }));
  ::close(client);
}

TEST(FrontEndStopTest, StopsPromptlyWithOpenConnections) {
  EngineStub engine;
  auto front = StartFront({Loopback4()}, engine);
  ASSERT_TRUE(front);
  const int client = Connect(front->Ports()[0]);
  const int busy = Connect(front->Ports()[0]);
  SendAll(busy, "GET / HTTP/1.1\r\n");
  std::this_thread::sleep_for(50ms);
  const auto start = Clock::now();
  front.reset();
  EXPECT_LT(Clock::now() - start, 1s * kSlowdown);
  EXPECT_EQ(ReadSome(client, 1s), "");
  EXPECT_EQ(ReadSome(busy, 1s), "");
  ::close(client);
  ::close(busy);
}

TEST(FrontEndListenTest, ReportsBindErrors) {
  auto first = FrontEnd::Listen({Loopback4()}, {});
  ASSERT_TRUE(first);
  FrontAddress taken = Loopback4();
  taken.text = "127.0.0.1:" + std::to_string((*first)->Ports()[0]);
  reinterpret_cast<sockaddr_in*>(&taken.address)->sin_port =
      htons(static_cast<std::uint16_t>((*first)->Ports()[0]));
  auto second = FrontEnd::Listen({taken}, {});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().message, "cannot listen on " + taken.text + ": Address already in use");
}

}  // namespace
}  // namespace socket_exporter
