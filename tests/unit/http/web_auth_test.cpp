// Tests of basic auth: header parsing, bcrypt verification against hashes
// made by an independent implementation (Python's bcrypt package, OpenBSD
// code), and the cache of successful verifications.
#include "exporter/http/web_auth.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>

namespace socket_exporter {
namespace {

// Made with python3-bcrypt 3.2.2 (hashpw, gensalt(rounds=4 or 5)).
constexpr char kCorrectHorse[] = "$2b$04$Bt/6YMDc4QwMQJiJxT9O1eFUwZv9K6b73UtcI61pidx82OGQ8XqVG";
constexpr char kUtf8WithColon[] = "$2b$04$iNMJEE3pBVLZpNE6iloPtOIGRu4yySvzGlrqygVy/LBAPzJ4sKD8u";
constexpr char kTwoA[] = "$2a$05$PVt5yZUbeFd/vkE/JBayS.tNQ6bKJw4JFeYQQzh59LrQhdr3Q0QHK";

using Users = std::map<std::string, std::string, std::less<>>;

std::string Base64(const std::string& in) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == in.size()) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const unsigned v =
        (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string Header(const std::string& user, const std::string& password) {
  return "Basic " + Base64(user + ":" + password);
}

TEST(BasicAuthorizationTest, ParsesTheHeader) {
  auto credentials = ParseBasicAuthorization(Header("alice", "pa:ss word"));
  ASSERT_TRUE(credentials);
  EXPECT_EQ(credentials->user, "alice");
  EXPECT_EQ(credentials->password, "pa:ss word");  // only the first colon splits
  credentials = ParseBasicAuthorization("  bAsIc   " + Base64("u:") + " ");
  ASSERT_TRUE(credentials);
  EXPECT_EQ(credentials->user, "u");
  EXPECT_EQ(credentials->password, "");
  credentials = ParseBasicAuthorization(Header("", "x"));
  ASSERT_TRUE(credentials);
  EXPECT_EQ(credentials->user, "");
}

TEST(BasicAuthorizationTest, RejectsMalformedHeaders) {
  for (const std::string& header :
       {std::string(""), std::string("Basic"), std::string("Bearer ") + Base64("a:b"),
        std::string("Basic ") + Base64("no colon"), std::string("Basic YWJj"),  // "abc"
        std::string("Basic YWI6Yw"),                                            // unpadded
        std::string("Basic YWI6==Yw"),                                          // '=' inside
        std::string("Basic YWI6Y=Q="),                                          // data after '='
        std::string("Basic YWI6Yx=="),                                          // non-canonical
        std::string("Basic YW*6Yw==")}) {
    EXPECT_FALSE(ParseBasicAuthorization(header)) << header;
  }
  // "ab:c" is YWI6Yw==, one '=' fewer would be wrong: check the right one works.
  EXPECT_TRUE(ParseBasicAuthorization("Basic " + Base64("ab:c")));
}

TEST(BcryptTest, VerifiesHashesFromAnotherImplementation) {
  EXPECT_TRUE(VerifyBcrypt("correct horse", kCorrectHorse));
  EXPECT_TRUE(VerifyBcrypt("p\xc3\xa4ss:word", kUtf8WithColon));
  EXPECT_TRUE(VerifyBcrypt("y-variant", kTwoA));
  // $2y$ (PHP, htpasswd) is the same algorithm as $2b$.
  std::string two_y = kCorrectHorse;
  two_y[2] = 'y';
  EXPECT_TRUE(VerifyBcrypt("correct horse", two_y));

  EXPECT_FALSE(VerifyBcrypt("correct horsE", kCorrectHorse));
  EXPECT_FALSE(VerifyBcrypt("", kCorrectHorse));
  EXPECT_FALSE(VerifyBcrypt(std::string("correct horse\0x", 15), kCorrectHorse));
  EXPECT_FALSE(VerifyBcrypt("correct horse", "$2b$04$short"));
  EXPECT_FALSE(VerifyBcrypt("correct horse", ""));
}

TEST(BasicAuthenticatorTest, OffWithoutUsers) {
  BasicAuthenticator auth(Users{});
  EXPECT_FALSE(auth.enabled());
  EXPECT_TRUE(auth.Check(nullptr));
  EXPECT_TRUE(auth.Check("Basic garbage"));
}

TEST(BasicAuthenticatorTest, ChecksCredentialsAndCachesOnlySuccesses) {
  BasicAuthenticator auth(Users{{"alice", kCorrectHorse}, {"bob", kTwoA}});
  EXPECT_TRUE(auth.enabled());
  EXPECT_FALSE(auth.Check(nullptr));
  EXPECT_FALSE(auth.Check(""));
  EXPECT_FALSE(auth.Check(Header("alice", "wrong").c_str()));
  EXPECT_FALSE(auth.Check(Header("mallory", "correct horse").c_str()));
  EXPECT_FALSE(auth.Check(Header("bob", "correct horse").c_str()));  // alice's password
  EXPECT_EQ(auth.CachedEntries(), 0u);

  EXPECT_TRUE(auth.Check(Header("alice", "correct horse").c_str()));
  EXPECT_EQ(auth.CachedEntries(), 1u);
  EXPECT_TRUE(auth.Check(Header("alice", "correct horse").c_str()));
  EXPECT_EQ(auth.CachedEntries(), 1u);
  EXPECT_TRUE(auth.Check(Header("bob", "y-variant").c_str()));
  EXPECT_EQ(auth.CachedEntries(), 2u);
  // A cached success does not leak to other passwords or users.
  EXPECT_FALSE(auth.Check(Header("alice", "correct horse ").c_str()));
  EXPECT_FALSE(auth.Check(Header("bob", "correct horse").c_str()));
}

TEST(BasicAuthenticatorTest, CachedChecksSkipBcrypt) {
  // Cost 12 takes hundreds of milliseconds: a cached check must not.
  // Password "slow"; made with Python's crypt module.
  constexpr char kCost12[] = "$2b$12$ZqQ6aiPXZ.sUewgyZr5nJ.4.rxYupZgnUp6lpHI/3QO0q.nn7wDLS";
  BasicAuthenticator auth(Users{{"p", kCost12}});
  const std::string header = Header("p", "slow");
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(auth.Check(header.c_str()));
  const auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(auth.Check(header.c_str()));
  const auto t2 = std::chrono::steady_clock::now();
  EXPECT_LT((t2 - t1) / 100, (t1 - t0) / 20) << "cached checks are not much cheaper than bcrypt";
}

}  // namespace
}  // namespace socket_exporter
