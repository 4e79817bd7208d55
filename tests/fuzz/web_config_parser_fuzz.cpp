// libFuzzer target for ParseWebConfig (config/web_config.h): the input bytes
// are the YAML text of a --web.config.file.
//
// Beyond "no crash, no sanitizer report, no hang, no exception escaping":
//  - parsing is deterministic: the same text gives the same result twice;
//  - a rejected file gets a bounded, printable message whose every line is
//    "fuzz.yml:LINE:COLUMN: ..." (at most 51 lines: 50 errors and the "more
//    not shown" line);
//  - an accepted file holds only what the exporter can use: every user has a
//    name without ':' and a 60-character bcrypt hash; TLS names a certificate
//    and a key, and a client CA whenever client certificates are verified;
//    max_version is not older than min_version.
// Relative paths resolve against a directory that does not exist, so no
// file named by the input is ever found (the target reads nothing).
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/web_config.h"
#include "tests/fuzz/fuzz_checks.h"

namespace socket_exporter::fuzz {
namespace {

constexpr const char* kSource = "fuzz.yml";
constexpr const char* kBaseDir = "/nonexistent-socket-exporter-fuzz";

void CheckAccepted(const WebConfig& config) {
  for (const auto& [user, hash] : config.basic_auth_users) {
    FUZZ_CHECK(!user.empty() && user.find(':') == std::string::npos, "bad user '" + user + "'");
    FUZZ_CHECK(hash.size() == 60 && hash.rfind("$2", 0) == 0, "bad hash for " + user);
  }
  if (config.tls) {
    const TlsServerConfig& tls = *config.tls;
    FUZZ_CHECK(!tls.cert_file.empty() && !tls.key_file.empty(), "TLS without cert or key");
    const bool verifies = tls.client_auth == ClientAuth::kVerifyClientCertIfGiven ||
                          tls.client_auth == ClientAuth::kRequireAndVerifyClientCert;
    FUZZ_CHECK(!verifies || !tls.client_ca_file.empty(), "verifying without a client CA");
    FUZZ_CHECK(!tls.max_version || *tls.max_version >= tls.min_version, "max below min");
  }
}

}  // namespace
}  // namespace socket_exporter::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace socket_exporter;
  using namespace socket_exporter::fuzz;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto first = ParseWebConfig(text, kSource, kBaseDir);
  const auto second = ParseWebConfig(text, kSource, kBaseDir);
  FUZZ_CHECK(first.has_value() == second.has_value(), "ParseWebConfig is not deterministic");
  if (!first) {
    FUZZ_CHECK(first.error().message == second.error().message,
               "different messages for the same text");
    CheckPositionedMessage(first.error().message, kSource, 51);
    return 0;
  }
  CheckAccepted(*first);
  FUZZ_CHECK(first->basic_auth_users == second->basic_auth_users &&
                 first->tls.has_value() == second->tls.has_value(),
             "ParseWebConfig is not deterministic");
  return 0;
}
