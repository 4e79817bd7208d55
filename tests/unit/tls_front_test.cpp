// Tests of the TLS/IPv6 front end in-process, against an echo server standing
// in for CivetWeb: bytes go both ways, the relay's backend ports are trusted
// only while in use, the connection limit, idle and handshake timeouts hold,
// plain HTTP on a TLS port gets a 400, and stopping does not hang.
#include "exporter/http/tls_front.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
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
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace socket_exporter {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Echoes every connection on 127.0.0.1:<port>; remembers the peers' ports.
class EchoServer {
 public:
  EchoServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t length = sizeof(address);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~EchoServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    acceptor_.join();
    for (auto& t : workers_) t.join();
    ::close(fd_);
  }
  std::uint16_t port() const { return port_; }
  std::set<std::uint16_t> peer_ports() {
    std::lock_guard lock(mutex_);
    return peer_ports_;
  }

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
      {
        std::lock_guard lock(mutex_);
        peer_ports_.insert(ntohs(peer.sin_port));
      }
      workers_.emplace_back([client] {
        char buffer[4096];
        for (;;) {
          const ssize_t n = ::recv(client, buffer, sizeof(buffer), 0);
          if (n <= 0) break;
          ::send(client, buffer, static_cast<std::size_t>(n), MSG_NOSIGNAL);
        }
        ::close(client);
      });
    }
  }

  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::set<std::uint16_t> peer_ports_;
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

int Connect(int port, int family = AF_INET) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
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

// What arrives within the timeout: data, "" on EOF, or "<timeout>".
std::string ReadSome(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return "<timeout>";
  char buffer[4096];
  const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
  if (n <= 0) return "";
  return std::string(buffer, static_cast<std::size_t>(n));
}

bool Eventually(const std::function<bool()>& predicate, std::chrono::milliseconds timeout = 3s) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return predicate();
}

std::unique_ptr<FrontEnd> StartFront(const std::vector<FrontAddress>& addresses,
                                     std::uint16_t backend, FrontEnd::Settings settings = {},
                                     TlsContextPtr tls = nullptr) {
  auto front = FrontEnd::Listen(addresses, settings);
  EXPECT_TRUE(front) << front.error().message;
  if (!front) return nullptr;
  auto started = (*front)->Start(backend, std::move(tls));
  EXPECT_TRUE(started) << started.error().message;
  return std::move(*front);
}

TEST(FrontEndTest, RelaysBothWaysAndTrustsOnlyLiveRelayPorts) {
  EchoServer echo;
  auto front = StartFront({Loopback4()}, echo.port());
  ASSERT_TRUE(front);
  const int client = Connect(front->Ports()[0]);
  ASSERT_EQ(::send(client, "ping", 4, 0), 4);
  EXPECT_EQ(ReadSome(client, 2s), "ping");
  const auto peers = echo.peer_ports();
  ASSERT_EQ(peers.size(), 1u);
  const std::uint16_t relay_port = *peers.begin();
  EXPECT_TRUE(front->relay_ports().Contains(relay_port));
  EXPECT_FALSE(front->relay_ports().Contains(front->Ports()[0] == 1 ? 2 : 1));
  ::close(client);
  EXPECT_TRUE(Eventually([&] { return !front->relay_ports().Contains(relay_port); }))
      << "the relay port stays trusted after the connection ended";
}

TEST(FrontEndTest, RelaysFromIpv6Loopback) {
  const int probe = ::socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 any{};
  any.sin6_family = AF_INET6;
  any.sin6_addr = in6addr_loopback;
  const bool have_ipv6 =
      probe >= 0 && ::bind(probe, reinterpret_cast<sockaddr*>(&any), sizeof(any)) == 0;
  if (probe >= 0) ::close(probe);
  if (!have_ipv6) GTEST_SKIP() << "this host has no IPv6 loopback";
  EchoServer echo;
  FrontAddress address;
  address.text = "[::1]:0";
  std::memcpy(&address.address, &any, sizeof(any));
  address.address_length = sizeof(any);
  auto front = StartFront({address}, echo.port());
  ASSERT_TRUE(front);
  const int client = Connect(front->Ports()[0], AF_INET6);
  ASSERT_EQ(::send(client, "six", 3, 0), 3);
  EXPECT_EQ(ReadSome(client, 2s), "six");
  ::close(client);
}

TEST(FrontEndTest, ClosesConnectionsBeyondTheLimitAndRecovers) {
  EchoServer echo;
  FrontEnd::Settings settings;
  settings.max_connections = 2;
  auto front = StartFront({Loopback4()}, echo.port(), settings);
  ASSERT_TRUE(front);
  const int port = front->Ports()[0];
  const int a = Connect(port);
  const int b = Connect(port);
  const int c = Connect(port);
  EXPECT_EQ(ReadSome(c, 2s), "") << "the third connection was not closed";
  EXPECT_EQ(ReadSome(a, 200ms), "<timeout>") << "a connection within the limit was closed";
  ::close(c);
  ::close(a);
  ::close(b);
  // Slots come back once the relays have seen the clients leave.
  EXPECT_TRUE(Eventually([&] {
    const int d = Connect(port);
    ::send(d, "x", 1, MSG_NOSIGNAL);
    const bool ok = ReadSome(d, 1s) == "x";
    ::close(d);
    return ok;
  }));
}

TEST(FrontEndTest, DropsClientsThatNeverAskAnything) {
  EchoServer echo;
  FrontEnd::Settings settings;
  settings.handshake_timeout = 300ms;
  auto front = StartFront({Loopback4()}, echo.port(), settings);
  ASSERT_TRUE(front);
  const int client = Connect(front->Ports()[0]);
  const auto start = Clock::now();
  EXPECT_EQ(ReadSome(client, 5s), "");
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, 250ms);
  EXPECT_LT(waited, 2s);
  EXPECT_TRUE(echo.peer_ports().empty()) << "a silent client reached the backend";
  ::close(client);
}

TEST(FrontEndTest, DropsConnectionsThatFallIdle) {
  EchoServer echo;
  FrontEnd::Settings settings;
  settings.idle_timeout = 300ms;
  auto front = StartFront({Loopback4()}, echo.port(), settings);
  ASSERT_TRUE(front);
  const int client = Connect(front->Ports()[0]);
  ASSERT_EQ(::send(client, "x", 1, 0), 1);
  EXPECT_EQ(ReadSome(client, 2s), "x");
  const auto start = Clock::now();
  EXPECT_EQ(ReadSome(client, 5s), "");
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, 250ms);
  EXPECT_LT(waited, 2s);
  ::close(client);
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

TEST_F(TlsFrontEndTest, HandshakeTimeoutDropsSilentClients) {
  auto tls = BuildTlsContext(config_);
  ASSERT_TRUE(tls) << tls.error().message;
  EchoServer echo;
  FrontEnd::Settings settings;
  settings.handshake_timeout = 300ms;
  auto front = StartFront({Loopback4()}, echo.port(), settings, *tls);
  ASSERT_TRUE(front);
  const int client = Connect(front->Ports()[0]);
  const auto start = Clock::now();
  EXPECT_EQ(ReadSome(client, 5s), "");
  EXPECT_LT(Clock::now() - start, 2s);
  ::close(client);
  EXPECT_TRUE(echo.peer_ports().empty()) << "a client without a handshake reached the backend";
}

TEST_F(TlsFrontEndTest, PlainHttpOnTheTlsPortGetsA400AndNeverReachesTheBackend) {
  auto tls = BuildTlsContext(config_);
  ASSERT_TRUE(tls) << tls.error().message;
  EchoServer echo;
  auto front = StartFront({Loopback4()}, echo.port(), {}, *tls);
  ASSERT_TRUE(front);
  const int client = Connect(front->Ports()[0]);
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(client, request.data(), request.size(), 0),
            static_cast<ssize_t>(request.size()));
  std::string answer;
  for (std::string part; (part = ReadSome(client, 2s)) != "" && part != "<timeout>";)
    answer += part;
  EXPECT_EQ(answer.rfind("HTTP/1.0 400 Bad Request\r\n", 0), 0u) << answer;
  EXPECT_TRUE(echo.peer_ports().empty());
  ::close(client);
}

TEST(FrontEndStopTest, StopsPromptlyWithOpenConnections) {
  EchoServer echo;
  auto front = StartFront({Loopback4()}, echo.port());
  ASSERT_TRUE(front);
  const int client = Connect(front->Ports()[0]);
  std::this_thread::sleep_for(50ms);  // let the relay thread start waiting
  const auto start = Clock::now();
  front.reset();
  EXPECT_LT(Clock::now() - start, 1s);
  EXPECT_EQ(ReadSome(client, 1s), "");
  ::close(client);
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
