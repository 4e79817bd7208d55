// HTTP basic authentication against the bcrypt hashes of the web config.
//
// bcrypt is slow on purpose (cost 10: tens of milliseconds), and Prometheus
// sends the same credentials on every scrape, so successful verifications are
// remembered: keyed by SHA-256 of user, password and stored hash, so a changed
// hash or password never matches an old entry. Failures are never cached, and
// an unknown user costs one bcrypt run like a known one, so timing does not
// tell which user names exist.
//
// Thread safety: BasicAuthenticator is immutable apart from its cache, which
// is guarded by a mutex; Check() may be called from any thread.
#pragma once

#include <array>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace socket_exporter {

struct BasicCredentials {
  std::string user;
  std::string password;
};

// Parses an Authorization header value "Basic base64(user:password)". The
// scheme is case-insensitive; base64 must be canonical (RFC 4648, padded).
std::optional<BasicCredentials> ParseBasicAuthorization(std::string_view header);

// True when password matches the bcrypt hash ($2a$/$2b$/$2y$), compared in
// constant time. Passwords with NUL bytes never match (crypt() cannot see
// past them).
bool VerifyBcrypt(std::string_view password, const std::string& hash);

class BasicAuthenticator {
 public:
  // users: user name -> bcrypt hash. Empty: authentication is off.
  explicit BasicAuthenticator(std::map<std::string, std::string, std::less<>> users);

  bool enabled() const { return !users_.empty(); }

  // Whether a request with this Authorization header (nullptr or empty when
  // absent) may pass. Always true when authentication is off.
  bool Check(const char* authorization_header) const;

  // How many successful verifications are remembered (for tests).
  std::size_t CachedEntries() const;

 private:
  using Digest = std::array<unsigned char, 32>;
  static constexpr std::size_t kMaxCacheEntries = 256;

  Digest CacheKey(const BasicCredentials& credentials, const std::string& hash) const;

  const std::map<std::string, std::string, std::less<>> users_;
  mutable std::mutex cache_mutex_;
  mutable std::set<Digest> verified_;
};

}  // namespace socket_exporter
