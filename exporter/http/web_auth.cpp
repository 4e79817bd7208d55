#include "exporter/http/web_auth.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>
#include <memory>
#include <utility>

namespace socket_exporter {
namespace {

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard base64 with padding; rejects anything else, including bits left
// over in the last group (non-canonical encodings).
std::optional<std::string> DecodeBase64(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int values[4];
    int padding = 0;
    for (int j = 0; j < 4; ++j) {
      const char c = text[i + static_cast<std::size_t>(j)];
      if (c == '=' && last && j >= 2) {
        values[j] = 0;
        ++padding;
        continue;
      }
      if (padding > 0) return std::nullopt;  // data after '='
      values[j] = Base64Value(c);
      if (values[j] < 0) return std::nullopt;
    }
    const unsigned group =
        (static_cast<unsigned>(values[0]) << 18) | (static_cast<unsigned>(values[1]) << 12) |
        (static_cast<unsigned>(values[2]) << 6) | static_cast<unsigned>(values[3]);
    if (padding == 2 && (group & 0xffffU) != 0) return std::nullopt;
    if (padding == 1 && (group & 0xffU) != 0) return std::nullopt;
    out += static_cast<char>((group >> 16) & 0xffU);
    if (padding < 2) out += static_cast<char>((group >> 8) & 0xffU);
    if (padding < 1) out += static_cast<char>(group & 0xffU);
  }
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) {
      return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

}  // namespace

std::optional<BasicCredentials> ParseBasicAuthorization(std::string_view header) {
  while (!header.empty() && (header.front() == ' ' || header.front() == '\t')) {
    header.remove_prefix(1);
  }
  while (!header.empty() && (header.back() == ' ' || header.back() == '\t')) {
    header.remove_suffix(1);
  }
  const auto space = header.find(' ');
  if (space == std::string_view::npos || !EqualsIgnoreCase(header.substr(0, space), "basic")) {
    return std::nullopt;
  }
  std::string_view encoded = header.substr(space + 1);
  while (!encoded.empty() && encoded.front() == ' ') encoded.remove_prefix(1);
  auto decoded = DecodeBase64(encoded);
  if (!decoded) return std::nullopt;
  const auto colon = decoded->find(':');
  if (colon == std::string::npos) return std::nullopt;
  BasicCredentials credentials{decoded->substr(0, colon), decoded->substr(colon + 1)};
  OPENSSL_cleanse(decoded->data(), decoded->size());
  return credentials;
}

bool VerifyBcrypt(std::string_view password, const std::string& hash) {
  if (password.find('\0') != std::string_view::npos) return false;
  std::string phrase(password);
  // crypt_data is 32 KiB: too big for a worker's stack. It must start zeroed,
  // which make_unique's value-initialisation does.
  auto data = std::make_unique<crypt_data>();
  const char* computed = crypt_rn(phrase.c_str(), hash.c_str(), data.get(), sizeof(crypt_data));
  bool match = false;
  if (computed != nullptr) {
    const std::size_t length = std::strlen(computed);
    match = length == hash.size() && CRYPTO_memcmp(computed, hash.data(), length) == 0;
  }
  OPENSSL_cleanse(phrase.data(), phrase.size());
  OPENSSL_cleanse(data.get(), sizeof(crypt_data));
  return match;
}

BasicAuthenticator::BasicAuthenticator(std::map<std::string, std::string, std::less<>> users)
    : users_(std::move(users)) {}

BasicAuthenticator::Digest BasicAuthenticator::CacheKey(const BasicCredentials& credentials,
                                                        const std::string& hash) const {
  // Lengths first, so "ab"+"c" and "a"+"bc" cannot collide.
  std::string material;
  material.reserve(credentials.user.size() + credentials.password.size() + hash.size() + 24);
  for (const std::string* part : {&credentials.user, &credentials.password, &hash}) {
    material += std::to_string(part->size());
    material += ':';
    material += *part;
  }
  Digest digest{};
  unsigned int length = 0;
  EVP_Digest(material.data(), material.size(), digest.data(), &length, EVP_sha256(), nullptr);
  OPENSSL_cleanse(material.data(), material.size());
  return digest;
}

bool BasicAuthenticator::Check(const char* authorization_header) const {
  if (users_.empty()) return true;
  if (authorization_header == nullptr || *authorization_header == '\0') return false;
  auto credentials = ParseBasicAuthorization(authorization_header);
  if (!credentials) return false;
  const auto user = users_.find(credentials->user);
  if (user == users_.end()) {
    // Spend what a known user would, so response time does not reveal names.
    VerifyBcrypt(credentials->password, users_.begin()->second);
    OPENSSL_cleanse(credentials->password.data(), credentials->password.size());
    return false;
  }
  const Digest key = CacheKey(*credentials, user->second);
  {
    std::lock_guard lock(cache_mutex_);
    if (verified_.contains(key)) {
      OPENSSL_cleanse(credentials->password.data(), credentials->password.size());
      return true;
    }
  }
  const bool ok = VerifyBcrypt(credentials->password, user->second);
  OPENSSL_cleanse(credentials->password.data(), credentials->password.size());
  if (ok) {
    std::lock_guard lock(cache_mutex_);
    // Legitimate scrapers use a handful of credentials; a full cache means
    // churn, and starting over is the simplest bound.
    if (verified_.size() >= kMaxCacheEntries) verified_.clear();
    verified_.insert(key);
  }
  return ok;
}

std::size_t BasicAuthenticator::CachedEntries() const {
  std::lock_guard lock(cache_mutex_);
  return verified_.size();
}

}  // namespace socket_exporter
