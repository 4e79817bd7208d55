// The web config file (--web.config.file): TLS and basic auth, in the
// exporter-toolkit format node_exporter uses, so one file serves both:
//
//   tls_server_config:
//     cert_file: server.crt          # relative paths: to the file's directory
//     key_file: server.key
//     client_auth_type: RequireAndVerifyClientCert
//     client_ca_file: ca.crt
//     min_version: TLS12
//   basic_auth_users:
//     prometheus: $2y$10$...          # bcrypt hash
//
// Parsing is strict: unknown keys, wrong types and impossible combinations
// are errors, every one reported at once as "file:line:column: message".
// Files named in the config must exist and be readable; whether they hold a
// usable certificate is checked when the TLS context is built (front_end.h).
//
// Thread safety: free functions without shared state; a WebConfig is an
// immutable value once built and may be shared between threads.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace socket_exporter {

// The names and meanings of Go's tls.ClientAuthType, as exporter-toolkit
// spells them.
enum class ClientAuth {
  kNoClientCert,                // no certificate asked for
  kRequestClientCert,           // asked for, not required, not verified
  kRequireAnyClientCert,        // required, not verified
  kVerifyClientCertIfGiven,     // not required; verified against client_ca_file if sent
  kRequireAndVerifyClientCert,  // required and verified against client_ca_file
};

enum class TlsVersion { kTls10, kTls11, kTls12, kTls13 };

std::string_view ClientAuthName(ClientAuth auth);
std::string_view TlsVersionName(TlsVersion version);

struct TlsServerConfig {
  // Paths as the program opens them: relative ones were resolved against the
  // web config file's directory.
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;  // empty: none
  ClientAuth client_auth = ClientAuth::kNoClientCert;
  TlsVersion min_version = TlsVersion::kTls12;  // exporter-toolkit's default
  std::optional<TlsVersion> max_version;        // none: the newest OpenSSL has
};

struct WebConfig {
  std::string source;  // the file's path; empty when no file was given
  std::optional<TlsServerConfig> tls;
  // User name -> bcrypt hash ($2a$, $2b$ or $2y$). Empty: no authentication.
  std::map<std::string, std::string, std::less<>> basic_auth_users;
};

// Web config files are a few hundred bytes; anything past this is a wrong path.
inline constexpr std::size_t kMaxWebConfigBytes = std::size_t{1} << 20;

// Parses and validates YAML text. source_name prefixes every message;
// relative file paths are resolved against base_dir (empty: the current
// directory). Checks that the files named exist and can be read.
Result<WebConfig> ParseWebConfig(std::string_view yaml_text, const std::string& source_name,
                                 const std::string& base_dir);

// Reads the file and parses it with its own directory as base_dir.
Result<WebConfig> LoadWebConfigFile(const std::string& path);

// One line for the startup log, e.g. "TLS (min TLS12, client auth
// RequireAndVerifyClientCert), basic auth for 2 users".
std::string DescribeWebConfig(const WebConfig& config);

}  // namespace socket_exporter
