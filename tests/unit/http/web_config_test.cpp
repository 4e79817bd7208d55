// Tests of --web.config.file parsing (every kind of error, reported at once
// with file:line:column), of --web.listen-address parsing, and of building
// the OpenSSL context from real certificates made here with OpenSSL.
#include "config/web_config.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "exporter/http/tls_front.h"
#include "exporter/http/web.h"

namespace socket_exporter {
namespace {

constexpr char kHash[] = "$2b$04$Bt/6YMDc4QwMQJiJxT9O1eFUwZv9K6b73UtcI61pidx82OGQ8XqVG";

// A temporary directory with PEM files, removed afterwards.
class WebConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("se-webcfg-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& content) {
    const auto path = dir_ / name;
    std::ofstream(path) << content;
    return path.string();
  }

  // A self-signed certificate and its key, as PEM files.
  void MakeCertificate(const std::string& cert_name, const std::string& key_name,
                       bool encrypt_key = false) {
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    ASSERT_NE(key, nullptr);
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    static const unsigned char kCommonName[] = "socket_exporter test";
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, kCommonName, -1, -1, 0);
    X509_set_issuer_name(cert, name);
    ASSERT_GT(X509_sign(cert, key, EVP_sha256()), 0);
    FILE* out = std::fopen((dir_ / cert_name).c_str(), "w");
    PEM_write_X509(out, cert);
    std::fclose(out);
    out = std::fopen((dir_ / key_name).c_str(), "w");
    static unsigned char kPassphrase[] = "secret";
    if (encrypt_key) {
      PEM_write_PrivateKey(out, key, EVP_aes_256_cbc(), kPassphrase, 6, nullptr, nullptr);
    } else {
      PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr);
    }
    std::fclose(out);
    X509_free(cert);
    EVP_PKEY_free(key);
  }

  Result<WebConfig> Parse(const std::string& yaml) {
    return ParseWebConfig(yaml, "web.yml", dir_.string());
  }

  std::string ErrorsOf(const std::string& yaml) {
    auto result = Parse(yaml);
    return result ? "<no error>" : result.error().message;
  }

  std::filesystem::path dir_;
};

TEST_F(WebConfigTest, EmptyFileMeansPlainHttpWithoutAuth) {
  for (const char* yaml : {"", "# nothing\n", "---\n"}) {
    auto config = Parse(yaml);
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_FALSE(config->tls);
    EXPECT_TRUE(config->basic_auth_users.empty());
  }
}

TEST_F(WebConfigTest, FullConfigResolvesRelativePathsAgainstItsDirectory) {
  Write("server.crt", "x");
  Write("server.key", "x");
  Write("ca.crt", "x");
  auto config = Parse(std::string("tls_server_config:\n"
                                  "  cert_file: server.crt\n"
                                  "  key_file: ") +
                      (dir_ / "server.key").string() +
                      "\n"
                      "  client_auth_type: RequireAndVerifyClientCert\n"
                      "  client_ca_file: ./ca.crt\n"
                      "  min_version: TLS13\n"
                      "  max_version: TLS13\n"
                      "basic_auth_users:\n"
                      "  alice: " +
                      kHash + "\n  bob: '" + kHash + "'\n");
  ASSERT_TRUE(config) << config.error().message;
  ASSERT_TRUE(config->tls);
  EXPECT_EQ(config->tls->cert_file, (dir_ / "server.crt").string());
  EXPECT_EQ(config->tls->key_file, (dir_ / "server.key").string());
  EXPECT_EQ(config->tls->client_ca_file, (dir_ / "ca.crt").string());
  EXPECT_EQ(config->tls->client_auth, ClientAuth::kRequireAndVerifyClientCert);
  EXPECT_EQ(config->tls->min_version, TlsVersion::kTls13);
  EXPECT_EQ(config->tls->max_version, TlsVersion::kTls13);
  EXPECT_EQ(config->basic_auth_users.size(), 2u);
  EXPECT_EQ(config->basic_auth_users.at("bob"), kHash);
  EXPECT_EQ(DescribeWebConfig(*config),
            "TLS (min TLS13, client auth RequireAndVerifyClientCert), basic auth for 2 users");
}

TEST_F(WebConfigTest, DefaultsAreToolkitDefaults) {
  Write("c.pem", "x");
  auto config = Parse("tls_server_config: {cert_file: c.pem, key_file: c.pem}\n");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->tls->client_auth, ClientAuth::kNoClientCert);
  EXPECT_EQ(config->tls->min_version, TlsVersion::kTls12);
  EXPECT_FALSE(config->tls->max_version);
}

TEST_F(WebConfigTest, UnknownAndUnsupportedKeysAreErrorsWithPositions) {
  Write("c.pem", "x");
  EXPECT_EQ(ErrorsOf("tls_config:\n  cert_file: c.pem\n"),
            "web.yml:1:1: unknown key \"tls_config\" (expected one of: tls_server_config, "
            "basic_auth_users)");
  EXPECT_EQ(ErrorsOf("tls_server_config:\n  cert_file: c.pem\n  key_file: c.pem\n"
                     "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"),
            "web.yml:4:3: cipher_suites in tls_server_config is an exporter-toolkit setting "
            "that socket_exporter does not support (supported: cert_file, key_file, "
            "client_auth_type, client_ca_file, min_version, max_version)");
  EXPECT_EQ(ErrorsOf("http_server_config:\n  http2: false\n"),
            "web.yml:1:1: http_server_config is an exporter-toolkit setting that socket_exporter "
            "does not support (supported: tls_server_config, basic_auth_users)");
}

TEST_F(WebConfigTest, ReportsEveryErrorAtOnceInFileOrder) {
  const std::string errors = ErrorsOf(
      "tls_server_config:\n"
      "  cert_file: missing.crt\n"
      "  key_file: [a, b]\n"
      "  client_auth_type: RequireSomething\n"
      "  min_version: TLS14\n"
      "basic_auth_users:\n"
      "  alice: hunter2\n"
      "  'b:ob': " +
      std::string(kHash) + "\n");
  EXPECT_EQ(errors,
            "web.yml:2:14: cert_file \"" + (dir_ / "missing.crt").string() +
                "\": No such file or directory\n"
                "web.yml:3:13: key_file: expected a file path, found a list\n"
                "web.yml:4:21: client_auth_type \"RequireSomething\": expected one of "
                "NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, "
                "RequireAndVerifyClientCert\n"
                "web.yml:5:16: min_version \"TLS14\": expected one of TLS10, TLS11, TLS12, TLS13\n"
                "web.yml:7:10: basic_auth_users.alice: expected a bcrypt hash starting with "
                "$2y$, $2b$ or $2a$ (plain-text passwords are not accepted; make one with "
                "htpasswd -nBC 10 USER)\n"
                "web.yml:8:3: basic_auth_users: user name \"b:ob\" contains ':', which basic "
                "auth cannot carry");
}

TEST_F(WebConfigTest, InvalidYamlNamesThePosition) {
  EXPECT_EQ(ErrorsOf("tls_server_config:\n  cert_file: [unclosed\n"),
            "web.yml:3:1: invalid YAML: end of sequence flow not found");
  EXPECT_EQ(ErrorsOf("a: 1\n---\nb: 2\n"), "web.yml:2:1: expected a single YAML document, found 2");
  EXPECT_EQ(ErrorsOf("- tls_server_config\n"),
            "web.yml:1:1: expected a mapping with keys tls_server_config, basic_auth_users, "
            "found a list");
}

TEST_F(WebConfigTest, RequiredAndConflictingTlsSettings) {
  Write("c.pem", "x");
  EXPECT_EQ(ErrorsOf("tls_server_config:\n"),
            "web.yml:1:1: tls_server_config: expected a mapping with cert_file and key_file, "
            "found nothing");
  EXPECT_EQ(ErrorsOf("tls_server_config:\n  min_version: TLS12\n"),
            "web.yml:2:3: tls_server_config: cert_file is required\n"
            "web.yml:2:3: tls_server_config: key_file is required");
  EXPECT_EQ(ErrorsOf("tls_server_config:\n  cert_file: c.pem\n  key_file: c.pem\n"
                     "  client_auth_type: RequireAndVerifyClientCert\n"),
            "web.yml:4:21: client_auth_type RequireAndVerifyClientCert needs client_ca_file: the "
            "CA certificates that client certificates are verified against");
  EXPECT_EQ(ErrorsOf("tls_server_config:\n  cert_file: c.pem\n  key_file: c.pem\n"
                     "  client_ca_file: c.pem\n"),
            "web.yml:4:19: client_ca_file is set but client_auth_type is not, so no client "
            "certificate would be asked for; set client_auth_type: RequireAndVerifyClientCert "
            "(or VerifyClientCertIfGiven)");
  EXPECT_EQ(ErrorsOf("tls_server_config:\n  cert_file: c.pem\n  key_file: c.pem\n"
                     "  client_ca_file: c.pem\n  client_auth_type: NoClientCert\n"),
            "web.yml:4:19: client_ca_file is set but client_auth_type is NoClientCert; set "
            "client_auth_type: RequireAndVerifyClientCert (or VerifyClientCertIfGiven)");
  EXPECT_EQ(ErrorsOf("tls_server_config:\n  cert_file: c.pem\n  key_file: c.pem\n"
                     "  min_version: TLS13\n  max_version: TLS12\n"),
            "web.yml:5:16: max_version TLS12 is older than min_version TLS13");
  // exporter-toolkit's old spelling still works.
  auto config = Parse(
      "tls_server_config:\n  cert_file: c.pem\n  key_file: c.pem\n"
      "  client_auth_type: RequireClientCert\n");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->tls->client_auth, ClientAuth::kRequireAnyClientCert);
}

TEST_F(WebConfigTest, UnusableFilesAreReported) {
  std::filesystem::create_directories(dir_ / "sub");
  Write("empty.pem", "");
  Write("c.pem", "x");
  EXPECT_EQ(ErrorsOf("tls_server_config:\n  cert_file: sub\n  key_file: empty.pem\n"),
            "web.yml:2:14: cert_file \"" + (dir_ / "sub").string() +
                "\": is a directory, expected a PEM file\n"
                "web.yml:3:13: key_file \"" +
                (dir_ / "empty.pem").string() + "\": is empty");
  EXPECT_EQ(ErrorsOf("tls_server_config:\n  cert_file: ''\n  key_file: c.pem\n"),
            "web.yml:2:14: cert_file: expected a file path, found an empty string");
}

TEST_F(WebConfigTest, BasicAuthUsersMustBeRealBcryptHashes) {
  EXPECT_EQ(ErrorsOf("basic_auth_users:\n"),
            "web.yml:1:1: basic_auth_users: expected a mapping of user name to bcrypt hash, "
            "found nothing; remove the key to turn authentication off");
  EXPECT_EQ(ErrorsOf("basic_auth_users: {}\n"),
            "web.yml:1:19: basic_auth_users: expected a mapping of user name to bcrypt hash, "
            "found an empty mapping; remove the key to turn authentication off");
  EXPECT_EQ(ErrorsOf("basic_auth_users:\n  a: $2y$10$tooshort\n"),
            "web.yml:2:6: basic_auth_users.a: a bcrypt hash has 60 characters, this one has 15");
  std::string bad_cost = kHash;
  bad_cost[4] = '3';
  bad_cost[5] = '2';
  EXPECT_EQ(ErrorsOf("basic_auth_users:\n  a: " + bad_cost + "\n"),
            "web.yml:2:6: basic_auth_users.a: the bcrypt cost (after $2y$) must be two digits "
            "from 04 to 31");
  std::string bad_char = kHash;
  bad_char[40] = '!';
  EXPECT_EQ(ErrorsOf("basic_auth_users:\n  a: '" + bad_char + "'\n"),
            "web.yml:2:6: basic_auth_users.a: character 41 is not in bcrypt's alphabet "
            "[./A-Za-z0-9]");
  EXPECT_EQ(ErrorsOf("basic_auth_users:\n  a: " + std::string(kHash) + "\n  a: " + kHash + "\n"),
            "web.yml:3:3: basic_auth_users: duplicate user \"a\"");
  EXPECT_EQ(ErrorsOf("basic_auth_users:\n  a: [x]\n"),
            "web.yml:2:6: basic_auth_users.a: expected a bcrypt hash, found a list");
}

TEST_F(WebConfigTest, DuplicateKeysAreErrors) {
  Write("c.pem", "x");
  EXPECT_EQ(ErrorsOf("tls_server_config:\n  cert_file: c.pem\n  key_file: c.pem\n"
                     "  cert_file: c.pem\n"),
            "web.yml:4:3: duplicate key \"cert_file\" in tls_server_config");
}

// yaml-cpp 0.7's LoadAll loops forever, growing memory, on a stray ',' at
// the top of a document (jbeder/yaml-cpp#1040). The web config shares the
// config file's guarded loader (config/yaml_reader.h), so each of these is
// an error with its position, at once.
TEST_F(WebConfigTest, YamlCppTrapsAreErrorsNotHangs) {
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(ErrorsOf(","), "web.yml:1:1: invalid YAML: unexpected ','");
  EXPECT_EQ(ErrorsOf("&anchor ,\n"), "web.yml:1:9: invalid YAML: unexpected ','");
  EXPECT_EQ(ErrorsOf("basic_auth_users:\n  a: b\n---\n,\n"),
            "web.yml:4:1: invalid YAML: unexpected ','");
  EXPECT_EQ(ErrorsOf(std::string(100, '[')),
            "web.yml:1:65: YAML is nested more than 64 levels deep");
  // Generous: each takes microseconds; the hang it guards against never ends.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST_F(WebConfigTest, HostileInputFailsCleanly) {
  EXPECT_NE(ErrorsOf(std::string(100000, '[')), "<no error>");
  EXPECT_NE(ErrorsOf("a: \"\x01\xff\"\n"), "<no error>");
  const std::string errors = ErrorsOf("\"\x1b[31mred\": 1\n");
  EXPECT_EQ(errors.find('\x1b'), std::string::npos) << errors;
  EXPECT_NE(errors.find("\\x1b"), std::string::npos) << errors;
  EXPECT_EQ(ErrorsOf(std::string(kMaxWebConfigBytes + 1, '#')),
            "web.yml: 1048577 bytes; a web config file is at most 1048576 bytes (wrong file?)");
}

TEST_F(WebConfigTest, LoadFileReadsAndUsesItsDirectory) {
  Write("c.pem", "x");
  const std::string path = Write("web.yml",
                                 "tls_server_config:\n  cert_file: c.pem\n"
                                 "  key_file: c.pem\n");
  auto config = LoadWebConfigFile(path);
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->source, path);
  EXPECT_EQ(config->tls->cert_file, (dir_ / "c.pem").string());
  auto missing = LoadWebConfigFile((dir_ / "nope.yml").string());
  ASSERT_FALSE(missing);
  EXPECT_EQ(
      missing.error().message,
      (dir_ / "nope.yml").string() + ": cannot open web config file: No such file or directory");
}

// ---- TLS context ------------------------------------------------------------

TEST_F(WebConfigTest, TlsContextLoadsAMatchingCertificateAndKey) {
  MakeCertificate("a.crt", "a.key");
  TlsServerConfig config;
  config.cert_file = (dir_ / "a.crt").string();
  config.key_file = (dir_ / "a.key").string();
  config.client_ca_file = config.cert_file;
  config.client_auth = ClientAuth::kRequireAndVerifyClientCert;
  auto ctx = BuildTlsContext(config);
  EXPECT_TRUE(ctx) << ctx.error().message;
}

TEST_F(WebConfigTest, TlsContextRejectsMismatchedEncryptedAndGarbageFiles) {
  MakeCertificate("a.crt", "a.key");
  MakeCertificate("b.crt", "b.key");
  MakeCertificate("c.crt", "c.key", /*encrypt_key=*/true);
  Write("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
  TlsServerConfig config;
  config.cert_file = (dir_ / "a.crt").string();
  config.key_file = (dir_ / "b.key").string();
  auto mismatched = BuildTlsContext(config);
  ASSERT_FALSE(mismatched);
  EXPECT_NE(mismatched.error().message.find("does not belong to cert_file"), std::string::npos)
      << mismatched.error().message;

  // An encrypted key is refused, not prompted for on the terminal.
  config.cert_file = (dir_ / "c.crt").string();
  config.key_file = (dir_ / "c.key").string();
  auto encrypted = BuildTlsContext(config);
  ASSERT_FALSE(encrypted);
  EXPECT_EQ(
      encrypted.error().message.rfind(
          "key_file \"" + config.key_file + "\": cannot load an unencrypted PEM private key", 0),
      0u)
      << encrypted.error().message;

  config.cert_file = (dir_ / "garbage.pem").string();
  auto garbage = BuildTlsContext(config);
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().message.rfind("cert_file \"" + config.cert_file + "\"", 0), 0u)
      << garbage.error().message;

  config.cert_file = (dir_ / "a.crt").string();
  config.key_file = (dir_ / "a.key").string();
  config.client_ca_file = (dir_ / "garbage.pem").string();
  config.client_auth = ClientAuth::kRequireAndVerifyClientCert;
  auto bad_ca = BuildTlsContext(config);
  ASSERT_FALSE(bad_ca);
  EXPECT_EQ(bad_ca.error().message.rfind("client_ca_file", 0), 0u) << bad_ca.error().message;
}

// ---- --web.listen-address -----------------------------------------------------

TEST(ListenAddressTest, ParsesSingleAndSeveral) {
  auto one = ParseListenAddresses(":19375");
  ASSERT_TRUE(one) << one.error().message;
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].host, "");
  EXPECT_EQ((*one)[0].port, 19375);
  EXPECT_FALSE((*one)[0].ipv6);

  auto several = ParseListenAddresses("127.0.0.1:0,[::1]:0,[::]:9,0.0.0.0:10,[fe80::1%lo]:11");
  ASSERT_TRUE(several) << several.error().message;
  ASSERT_EQ(several->size(), 5u);
  EXPECT_EQ((*several)[0].host, "127.0.0.1");
  EXPECT_EQ((*several)[1].host, "::1");
  EXPECT_TRUE((*several)[1].ipv6);
  EXPECT_EQ((*several)[1].text, "[::1]:0");
  EXPECT_EQ((*several)[2].host, "::");
  EXPECT_EQ((*several)[2].port, 9);
  EXPECT_FALSE((*several)[3].ipv6);
  EXPECT_EQ((*several)[4].host, "fe80::1%lo");
}

TEST(ListenAddressTest, ErrorsNameTheEntry) {
  const auto error = [](const char* value) {
    auto result = ParseListenAddresses(value);
    return result ? std::string("<no error>") : result.error().message;
  };
  EXPECT_EQ(error("19375"), "--web.listen-address \"19375\": expected HOST:PORT or :PORT");
  EXPECT_EQ(error("127.0.0.1:99999"),
            "--web.listen-address \"127.0.0.1:99999\": port must be a number 0-65535");
  EXPECT_EQ(error("[::1:80"),
            "--web.listen-address \"[::1:80\": an IPv6 address goes in brackets, e.g. "
            "[::1]:19375");
  EXPECT_EQ(error("[zz::1]:80"),
            "--web.listen-address \"[zz::1]:80\": \"zz::1\" is not an IPv6 "
            "address");
  EXPECT_EQ(error("localhost:80"),
            "--web.listen-address \"localhost:80\": host must be an IP address: IPv4 like "
            "127.0.0.1, or IPv6 in brackets like [::1] ([::] for every IPv6 and IPv4 address)");
  EXPECT_EQ(error("127.0.0.1:80,,[::1]:80"),
            "--web.listen-address \"127.0.0.1:80,,[::1]:80\": empty address in the list");
  EXPECT_EQ(error("127.0.0.1:80,127.0.0.1:80"),
            "--web.listen-address \"127.0.0.1:80\" is given twice");
  EXPECT_EQ(error(""), "--web.listen-address \"\": empty address in the list");
}

}  // namespace
}  // namespace socket_exporter
