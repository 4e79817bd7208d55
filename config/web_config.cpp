#include "config/web_config.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>
#include <vector>

#include "config/yaml_reader.h"

namespace socket_exporter {
namespace {

using yaml::Diagnostics;
using yaml::MarkPosition;
using yaml::NodeKind;
using yaml::Position;
using yaml::ValuePosition;

// Beyond this, more lines help nobody.
constexpr std::size_t kMaxReportedErrors = 50;

// Values from the file in messages: double quotes, as exporter-toolkit's
// messages show them.
std::string Quoted(std::string_view text) { return yaml::Quote(text, 64, '"'); }

constexpr std::array<std::string_view, 2> kTopLevelKeys = {"tls_server_config", "basic_auth_users"};
// exporter-toolkit keys this exporter does not implement: named as such, so
// a node_exporter web config that uses them fails with a clear reason rather
// than "unknown key".
constexpr std::array<std::string_view, 2> kUnsupportedTopLevelKeys = {"http_server_config",
                                                                      "rate_limit"};
constexpr std::array<std::string_view, 6> kTlsKeys = {
    "cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"};
constexpr std::array<std::string_view, 7> kUnsupportedTlsKeys = {"cert",
                                                                 "key",
                                                                 "client_ca",
                                                                 "cipher_suites",
                                                                 "curve_preferences",
                                                                 "prefer_server_cipher_suites",
                                                                 "client_allowed_sans"};

constexpr std::size_t kMaxQuotedPath = 4096;  // PATH_MAX: a path is shown whole

template <std::size_t N>
std::string JoinNames(const std::array<std::string_view, N>& names) {
  std::string out;
  for (std::string_view name : names) out += (out.empty() ? "" : ", ") + std::string(name);
  return out;
}

template <std::size_t N>
bool Contains(const std::array<std::string_view, N>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// Returns why the file cannot be used, or nothing when it can be read.
std::optional<std::string> CheckReadableFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return std::string(std::strerror(errno));
  struct stat st {};
  std::optional<std::string> problem;
  if (::fstat(fd, &st) != 0) {
    problem = std::strerror(errno);
  } else if (S_ISDIR(st.st_mode)) {
    problem = "is a directory, expected a PEM file";
  } else if (!S_ISREG(st.st_mode)) {
    problem = "is not a regular file";
  } else if (st.st_size == 0) {
    problem = "is empty";
  }
  ::close(fd);
  return problem;
}

std::string ResolvePath(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path.front() == '/' || base_dir.empty()) return path;
  return (std::filesystem::path(base_dir) / path).lexically_normal().string();
}

std::optional<ClientAuth> ParseClientAuth(std::string_view text) {
  if (text == "NoClientCert") return ClientAuth::kNoClientCert;
  if (text == "RequestClientCert") return ClientAuth::kRequestClientCert;
  // "RequireClientCert" is exporter-toolkit's old spelling, still accepted there.
  if (text == "RequireAnyClientCert" || text == "RequireClientCert") {
    return ClientAuth::kRequireAnyClientCert;
  }
  if (text == "VerifyClientCertIfGiven") return ClientAuth::kVerifyClientCertIfGiven;
  if (text == "RequireAndVerifyClientCert") return ClientAuth::kRequireAndVerifyClientCert;
  return std::nullopt;
}

std::optional<TlsVersion> ParseTlsVersion(std::string_view text) {
  if (text == "TLS10") return TlsVersion::kTls10;
  if (text == "TLS11") return TlsVersion::kTls11;
  if (text == "TLS12") return TlsVersion::kTls12;
  if (text == "TLS13") return TlsVersion::kTls13;
  return std::nullopt;
}

bool IsBcryptAlphabet(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '/';
}

// "$2b$10$" + 22 characters of salt + 31 of hash. Returns why not, if not.
std::optional<std::string> BcryptHashProblem(std::string_view hash) {
  const bool prefix_ok = hash.size() >= 4 && hash[0] == '$' && hash[1] == '2' &&
                         (hash[2] == 'a' || hash[2] == 'b' || hash[2] == 'y') && hash[3] == '$';
  if (!prefix_ok) {
    return "expected a bcrypt hash starting with $2y$, $2b$ or $2a$ (plain-text passwords are "
           "not accepted; make one with htpasswd -nBC 10 USER)";
  }
  if (hash.size() != 60) {
    return fmt::format("a bcrypt hash has 60 characters, this one has {}", hash.size());
  }
  const bool cost_digits = hash[4] >= '0' && hash[4] <= '9' && hash[5] >= '0' && hash[5] <= '9';
  const int cost = cost_digits ? (hash[4] - '0') * 10 + (hash[5] - '0') : -1;
  if (!cost_digits || hash[6] != '$' || cost < 4 || cost > 31) {
    return "the bcrypt cost (after $2y$) must be two digits from 04 to 31";
  }
  for (std::size_t i = 7; i < hash.size(); ++i) {
    if (!IsBcryptAlphabet(hash[i])) {
      return fmt::format("character {} is not in bcrypt's alphabet [./A-Za-z0-9]", i + 1);
    }
  }
  return std::nullopt;
}

class Parser {
 public:
  Parser(WebConfig& config, Diagnostics& diagnostics, std::string base_dir)
      : config_(config), diagnostics_(diagnostics), base_dir_(std::move(base_dir)) {}

  void ParseDocument(const YAML::Node& root) {
    if (!root.IsDefined() || root.IsNull()) return;  // an empty file: plain HTTP, no auth
    const Position pos = MarkPosition(root.Mark()).value_or(Position{});
    if (!root.IsMap()) {
      diagnostics_.Add(pos, fmt::format("expected a mapping with keys {}, found {}",
                                        JoinNames(kTopLevelKeys), NodeKind(root)));
      return;
    }
    ForEachKey(root, "", kTopLevelKeys, kUnsupportedTopLevelKeys,
               [&](std::string_view key, const YAML::Node& value, Position key_pos) {
                 if (key == "tls_server_config") ParseTls(value, key_pos);
                 if (key == "basic_auth_users") ParseUsers(value, key_pos);
               });
  }

 private:
  // Calls fn for every known key of a mapping; reports unknown, unsupported,
  // duplicate and non-scalar keys.
  template <std::size_t N, std::size_t M, typename Fn>
  void ForEachKey(const YAML::Node& map, std::string_view where,
                  const std::array<std::string_view, N>& known,
                  const std::array<std::string_view, M>& unsupported, Fn&& fn) {
    std::set<std::string, std::less<>> seen;
    const std::string in = where.empty() ? "" : fmt::format(" in {}", where);
    for (const auto& entry : map) {
      // Copies: yaml-cpp's iterator hands out temporaries.
      const YAML::Node key_node = entry.first;
      const YAML::Node value = entry.second;
      const Position key_pos =
          MarkPosition(key_node.Mark()).value_or(MarkPosition(map.Mark()).value_or(Position{}));
      if (!key_node.IsScalar()) {
        diagnostics_.Add(key_pos,
                         fmt::format("expected a key name{}, found {}", in, NodeKind(key_node)));
        continue;
      }
      const std::string key = key_node.Scalar();
      if (!seen.insert(key).second) {
        diagnostics_.Add(key_pos, fmt::format("duplicate key {}{}", Quoted(key), in));
        continue;
      }
      if (Contains(unsupported, key)) {
        diagnostics_.Add(key_pos,
                         fmt::format("{}{} is an exporter-toolkit setting that socket_exporter "
                                     "does not support (supported: {})",
                                     key, in, JoinNames(known)));
        continue;
      }
      if (!Contains(known, key)) {
        diagnostics_.Add(key_pos, fmt::format("unknown key {}{} (expected one of: {})", Quoted(key),
                                              in, JoinNames(known)));
        continue;
      }
      fn(key, value, key_pos);
    }
  }

  // A non-empty scalar, or an error naming what was expected.
  std::optional<std::string> Scalar(const YAML::Node& value, Position key_pos, std::string_view key,
                                    std::string_view expected) {
    if (!value.IsScalar() || value.Scalar().empty()) {
      diagnostics_.Add(ValuePosition(value, key_pos),
                       fmt::format("{}: expected {}, found {}", key, expected,
                                   value.IsScalar() ? "an empty string" : NodeKind(value)));
      return std::nullopt;
    }
    return value.Scalar();
  }

  std::optional<std::string> ReadableFile(const YAML::Node& value, Position key_pos,
                                          std::string_view key) {
    auto path = Scalar(value, key_pos, key, "a file path");
    if (!path) return std::nullopt;
    std::string resolved = ResolvePath(base_dir_, *path);
    if (auto problem = CheckReadableFile(resolved)) {
      diagnostics_.Add(
          ValuePosition(value, key_pos),
          fmt::format("{} {}: {}", key, yaml::Quote(resolved, kMaxQuotedPath, '"'), *problem));
      return std::nullopt;
    }
    return resolved;
  }

  void ParseTls(const YAML::Node& node, Position key_pos) {
    if (!node.IsMap()) {
      diagnostics_.Add(ValuePosition(node, key_pos),
                       fmt::format("tls_server_config: expected a mapping with cert_file and "
                                   "key_file, found {}",
                                   NodeKind(node)));
      return;
    }
    TlsServerConfig tls;
    bool ok = true;
    bool have_cert = false;
    bool have_key = false;
    std::optional<Position> auth_pos;
    std::optional<Position> ca_pos;
    std::optional<Position> max_pos;
    ForEachKey(node, "tls_server_config", kTlsKeys, kUnsupportedTlsKeys,
               [&](std::string_view key, const YAML::Node& value, Position pos) {
                 if (key == "cert_file" || key == "key_file" || key == "client_ca_file") {
                   auto path = ReadableFile(value, pos, key);
                   if (key == "cert_file") have_cert = true;
                   if (key == "key_file") have_key = true;
                   if (key == "client_ca_file") ca_pos = ValuePosition(value, pos);
                   if (!path) {
                     ok = false;
                   } else if (key == "cert_file") {
                     tls.cert_file = *path;
                   } else if (key == "key_file") {
                     tls.key_file = *path;
                   } else {
                     tls.client_ca_file = *path;
                   }
                 } else if (key == "client_auth_type") {
                   auth_pos = ValuePosition(value, pos);
                   auto text = Scalar(value, pos, key, "a client auth type");
                   auto auth = text ? ParseClientAuth(*text) : std::nullopt;
                   if (text && !auth) {
                     diagnostics_.Add(*auth_pos,
                                      fmt::format("client_auth_type {}: expected one of "
                                                  "NoClientCert, RequestClientCert, "
                                                  "RequireAnyClientCert, VerifyClientCertIfGiven, "
                                                  "RequireAndVerifyClientCert",
                                                  Quoted(*text)));
                   }
                   if (auth) tls.client_auth = *auth;
                   ok = ok && auth.has_value();
                 } else {  // min_version, max_version
                   auto text = Scalar(value, pos, key, "a TLS version");
                   auto version = text ? ParseTlsVersion(*text) : std::nullopt;
                   if (text && !version) {
                     diagnostics_.Add(ValuePosition(value, pos),
                                      fmt::format("{} {}: expected one of TLS10, TLS11, TLS12, "
                                                  "TLS13",
                                                  key, Quoted(*text)));
                   }
                   if (version && key == "min_version") tls.min_version = *version;
                   if (version && key == "max_version") {
                     tls.max_version = *version;
                     max_pos = ValuePosition(value, pos);
                   }
                   ok = ok && version.has_value();
                 }
               });
    const Position section = ValuePosition(node, key_pos);
    if (!have_cert) diagnostics_.Add(section, "tls_server_config: cert_file is required");
    if (!have_key) diagnostics_.Add(section, "tls_server_config: key_file is required");
    const bool verifies = tls.client_auth == ClientAuth::kVerifyClientCertIfGiven ||
                          tls.client_auth == ClientAuth::kRequireAndVerifyClientCert;
    if (verifies && !ca_pos) {
      diagnostics_.Add(auth_pos.value_or(section),
                       fmt::format("client_auth_type {} needs client_ca_file: the CA "
                                   "certificates that client certificates are verified against",
                                   ClientAuthName(tls.client_auth)));
      ok = false;
    }
    if (ca_pos && !auth_pos) {
      diagnostics_.Add(*ca_pos,
                       "client_ca_file is set but client_auth_type is not, so no client "
                       "certificate would be asked for; set client_auth_type: "
                       "RequireAndVerifyClientCert (or VerifyClientCertIfGiven)");
      ok = false;
    } else if (ca_pos && tls.client_auth == ClientAuth::kNoClientCert) {
      diagnostics_.Add(*ca_pos,
                       "client_ca_file is set but client_auth_type is NoClientCert; set "
                       "client_auth_type: RequireAndVerifyClientCert (or VerifyClientCertIfGiven)");
      ok = false;
    }
    if (tls.max_version && *tls.max_version < tls.min_version) {
      diagnostics_.Add(
          *max_pos, fmt::format("max_version {} is older than min_version {}",
                                TlsVersionName(*tls.max_version), TlsVersionName(tls.min_version)));
      ok = false;
    }
    if (ok && have_cert && have_key) config_.tls = std::move(tls);
  }

  void ParseUsers(const YAML::Node& node, Position key_pos) {
    if (!node.IsMap() || node.size() == 0) {
      // An empty list must not silently mean "no authentication".
      diagnostics_.Add(ValuePosition(node, key_pos),
                       fmt::format("basic_auth_users: expected a mapping of user name to bcrypt "
                                   "hash, found {}; remove the key to turn authentication off",
                                   node.IsMap() ? "an empty mapping" : NodeKind(node)));
      return;
    }
    std::set<std::string, std::less<>> seen;
    for (const auto& entry : node) {
      const YAML::Node user_node = entry.first;
      const YAML::Node hash_node = entry.second;
      const Position user_pos = MarkPosition(user_node.Mark()).value_or(key_pos);
      if (!user_node.IsScalar() || user_node.Scalar().empty()) {
        diagnostics_.Add(user_pos, "basic_auth_users: expected a user name");
        continue;
      }
      const std::string user = user_node.Scalar();
      if (!seen.insert(user).second) {
        diagnostics_.Add(user_pos,
                         fmt::format("basic_auth_users: duplicate user {}", Quoted(user)));
        continue;
      }
      if (user.find(':') != std::string::npos) {
        // Basic auth sends "user:password"; the first colon ends the name.
        diagnostics_.Add(user_pos, fmt::format("basic_auth_users: user name {} contains ':', "
                                               "which basic auth cannot carry",
                                               Quoted(user)));
        continue;
      }
      if (!hash_node.IsScalar()) {
        diagnostics_.Add(ValuePosition(hash_node, user_pos),
                         fmt::format("basic_auth_users.{}: expected a bcrypt hash, found {}",
                                     yaml::Sanitize(user), NodeKind(hash_node)));
        continue;
      }
      if (auto problem = BcryptHashProblem(hash_node.Scalar())) {
        diagnostics_.Add(ValuePosition(hash_node, user_pos),
                         fmt::format("basic_auth_users.{}: {}", yaml::Sanitize(user), *problem));
        continue;
      }
      config_.basic_auth_users.emplace(user, hash_node.Scalar());
    }
  }

  WebConfig& config_;
  Diagnostics& diagnostics_;
  const std::string base_dir_;
};

}  // namespace

std::string_view ClientAuthName(ClientAuth auth) {
  switch (auth) {
    case ClientAuth::kNoClientCert:
      return "NoClientCert";
    case ClientAuth::kRequestClientCert:
      return "RequestClientCert";
    case ClientAuth::kRequireAnyClientCert:
      return "RequireAnyClientCert";
    case ClientAuth::kVerifyClientCertIfGiven:
      return "VerifyClientCertIfGiven";
    case ClientAuth::kRequireAndVerifyClientCert:
      return "RequireAndVerifyClientCert";
  }
  return "?";
}

std::string_view TlsVersionName(TlsVersion version) {
  switch (version) {
    case TlsVersion::kTls10:
      return "TLS10";
    case TlsVersion::kTls11:
      return "TLS11";
    case TlsVersion::kTls12:
      return "TLS12";
    case TlsVersion::kTls13:
      return "TLS13";
  }
  return "?";
}

Result<WebConfig> ParseWebConfig(std::string_view yaml_text, const std::string& source_name,
                                 const std::string& base_dir) {
  if (yaml_text.size() > kMaxWebConfigBytes) {
    return Fail(fmt::format("{}: {} bytes; a web config file is at most {} bytes (wrong file?)",
                            source_name, yaml_text.size(), kMaxWebConfigBytes));
  }
  TRY_ASSIGN(const YAML::Node root, yaml::LoadDocument(std::string(yaml_text), source_name));
  WebConfig config;
  config.source = source_name;
  Diagnostics diagnostics(kMaxReportedErrors);
  try {
    Parser(config, diagnostics, base_dir).ParseDocument(root);
  } catch (const YAML::Exception& e) {  // yaml-cpp throws on some malformed trees
    diagnostics.Add(MarkPosition(e.mark).value_or(Position{}),
                    fmt::format("invalid YAML: {}", yaml::Sanitize(e.msg)));
  }
  if (!diagnostics.empty()) return Fail(diagnostics.Format(source_name));
  return config;
}

Result<WebConfig> LoadWebConfigFile(const std::string& path) {
  // One byte past the limit, so that ParseWebConfig reports the size.
  TRY_ASSIGN(const yaml::CappedFile file,
             yaml::ReadCappedFile(path, kMaxWebConfigBytes + 1, "web config file"));
  const std::string base_dir = std::filesystem::path(path).parent_path().string();
  return ParseWebConfig(file.text, path, base_dir);
}

std::string DescribeWebConfig(const WebConfig& config) {
  std::string out;
  if (config.tls) {
    out = fmt::format("TLS (min {}, client auth {})", TlsVersionName(config.tls->min_version),
                      ClientAuthName(config.tls->client_auth));
  } else {
    out = "no TLS";
  }
  if (config.basic_auth_users.empty()) {
    out += ", no basic auth";
  } else {
    out += fmt::format(", basic auth for {} user{}", config.basic_auth_users.size(),
                       config.basic_auth_users.size() == 1 ? "" : "s");
  }
  return out;
}

}  // namespace socket_exporter
