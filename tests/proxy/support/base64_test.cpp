// The one base64 (proxy/src/support/base64.cpp), both alphabets: RFC 4648 vectors, padding, strict
// decoding (one accepted encoding per byte string), and agreement with OpenSSL's encoder.
#include <gtest/gtest.h>

#include <openssl/evp.h>

#include <string>
#include <vector>

#include "wsbridge/base64.hpp"

namespace wsbridge {
namespace {

using namespace std::string_literals;

// OpenSSL's standard base64, and base64url by an alphabet swap: an encoder not under test.
std::string openssl_base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}
std::string openssl_base64url(std::string_view bytes) {
  std::string out = openssl_base64(bytes);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

// ---- standard alphabet -------------------------------------------------------------------------

TEST(Base64Test, Rfc4648Vectors) {
  // RFC 4648 section 10.
  const std::vector<std::pair<std::string, std::string>> vectors = {{"", ""},
                                                                    {"f", "Zg=="},
                                                                    {"fo", "Zm8="},
                                                                    {"foo", "Zm9v"},
                                                                    {"foob", "Zm9vYg=="},
                                                                    {"fooba", "Zm9vYmE="},
                                                                    {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    EXPECT_EQ(base64_decode(encoded), plain) << encoded;
  }
}

TEST(Base64Test, DecodesWithoutPadding) {
  EXPECT_EQ(base64_decode("Zg"), "f");
  EXPECT_EQ(base64_decode("Zm8"), "fo");
  EXPECT_EQ(base64_decode("Zm9vYg"), "foob");
  EXPECT_EQ(base64_decode("Zm9vYmE"), "fooba");
  EXPECT_EQ(base64_decode(""), "");  // present and empty, not nullopt
  EXPECT_TRUE(base64_decode("").has_value());
}

TEST(Base64Test, UsesTheStandardAlphabet) {
  EXPECT_EQ(base64_encode("\xfb\xef\xbe"), "++++");
  EXPECT_EQ(base64_encode("\xff\xff\xff"), "////");
  EXPECT_EQ(base64_encode("\xfb\xff"), "+/8=");
  EXPECT_EQ(base64_encode("\0"s), "AA==");
  EXPECT_EQ(base64_encode("\0\0\0"s), "AAAA");
  EXPECT_EQ(base64_decode("+/8="), "\xfb\xff");
  EXPECT_EQ(base64_decode("AAAA"), "\0\0\0"s);
}

TEST(Base64Test, RoundTripsEveryByteAndLength) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_EQ(base64_decode(base64_encode(all)), all);
  for (std::size_t length = 0; length <= 300; ++length) {
    std::string bytes;
    for (std::size_t i = 0; i < length; ++i)
      bytes.push_back(static_cast<char>((i * 37 + 11) & 0xFF));
    const std::string encoded = base64_encode(bytes);
    EXPECT_EQ(encoded.size(), (length + 2) / 3 * 4);
    EXPECT_EQ(base64_decode(encoded), bytes) << length;
    std::string unpadded = encoded;
    while (!unpadded.empty() && unpadded.back() == '=') unpadded.pop_back();
    EXPECT_EQ(base64_decode(unpadded), bytes) << length;
  }
}

TEST(Base64Test, RejectsInvalidInput) {
  for (const std::string& bad : {
           "Z"s,         // one character: not even a byte
           "Zm9vY"s,     // 4n + 1 characters
           "Zg="s,       // padding that does not complete the group
           "Zg==="s,     // too much padding
           "Zm9v="s,     // padding after a full group
           "Zm9v===="s,  // a group of padding only
           "="s,        "=="s,           "==="s,         "===="s,
           "Zm8=Zm8="s,  // padding in the middle
           "Zg=a"s,      // '=' inside
           "Zm 9v"s,     // whitespace
           "Zm9v\n"s,    // trailing newline
           " Zm9v"s,    "Zm9v\r\nYmFy"s,
           "Zm-_"s,  // URL-safe alphabet
           "Zm9*"s,     "Zm\0v"s,        "Zm\xc3\xa9v"s,
           "Zh=="s,  // non-zero bits after the last byte ("Zg==" is canonical)
           "Zm9="s,  // likewise ("Zm8=")
       }) {
    EXPECT_EQ(base64_decode(bad), std::nullopt) << ::testing::PrintToString(bad);
  }
}

TEST(Base64Test, AgreesWithOpenSsl) {
  std::string bytes;
  for (int i = 0; i < 300; ++i) {
    bytes.push_back(static_cast<char>((i * 151 + 7) & 0xFF));
    EXPECT_EQ(base64_encode(bytes), openssl_base64(bytes)) << i;
  }
}

// The admin API and the http adapter's bodies once decoded with OpenSSL's EVP_DecodeBlock, which
// required padding yet skipped whitespace and took any leftover bits: now one rule everywhere.
TEST(Base64Test, TheCoreDecoderIsTheStrictOne) {
  EXPECT_EQ(base64_decode("Zm9vYg"), "foob");
  EXPECT_EQ(base64_decode(" Zm9v"), std::nullopt);
  EXPECT_EQ(base64_decode("Zm9v\n"), std::nullopt);
  EXPECT_EQ(base64_decode("Zh=="), std::nullopt);
}

// ---- the two alphabets --------------------------------------------------------------------------

TEST(Base64AlphabetsTest, DoNotMix) {
  const std::string bytes = "\xfb\xff\xfe\x3e\x3f"s;
  EXPECT_EQ(base64_encode(bytes), "+//+Pj8=");
  EXPECT_EQ(base64url_encode(bytes), "-__-Pj8");
  EXPECT_EQ(base64_decode("+//+Pj8="), bytes);
  EXPECT_EQ(base64url_decode("-__-Pj8"), bytes);
  EXPECT_EQ(base64_decode("-__-Pj8"), std::nullopt);      // URL-safe characters in standard
  EXPECT_EQ(base64url_decode("+//+Pj8"), std::nullopt);   // standard characters in URL-safe
  EXPECT_EQ(base64url_decode("-__-Pj8="), std::nullopt);  // padding in URL-safe
  EXPECT_EQ(base64_decode("+//+Pj8"), bytes);             // unpadded standard is fine
}

// ---- URL-safe alphabet -------------------------------------------------------------------------

TEST(Base64UrlTest, EncodesRfc4648Vectors) {
  EXPECT_EQ(base64url_encode(""), "");
  EXPECT_EQ(base64url_encode("f"), "Zg");
  EXPECT_EQ(base64url_encode("fo"), "Zm8");
  EXPECT_EQ(base64url_encode("foo"), "Zm9v");
  EXPECT_EQ(base64url_encode("foob"), "Zm9vYg");
  EXPECT_EQ(base64url_encode("fooba"), "Zm9vYmE");
  EXPECT_EQ(base64url_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64url_encode("\xfb\xff\xfe"s), "-__-");  // the URL-safe alphabet
}

TEST(Base64UrlTest, RoundTripsEveryLengthAndByte) {
  std::string bytes;
  for (int i = 0; i < 300; ++i) {
    bytes.push_back(static_cast<char>((i * 151 + 7) & 0xFF));
    const std::string encoded = base64url_encode(bytes);
    EXPECT_EQ(encoded, openssl_base64url(bytes));  // agrees with OpenSSL's encoder
    const auto decoded = base64url_decode(encoded);
    ASSERT_TRUE(decoded.has_value()) << i;
    EXPECT_EQ(*decoded, bytes);
  }
}

TEST(Base64UrlTest, DecodesStrictly) {
  EXPECT_EQ(base64url_decode(""), "");
  EXPECT_EQ(base64url_decode("Zm9vYmFy"), "foobar");
  EXPECT_EQ(base64url_decode("-__-"), "\xfb\xff\xfe"s);
  for (const std::string& bad :
       {"Zg=="s, "Zg="s, "Zm9v="s, "="s, "+__-"s, "/__-"s, "Zm 9v"s, "Zm9v\n"s, " Zm9v"s, "Zm9v\0"s,
        "Zm.9"s, "Zm9\xc3\xa9"s,
        // a length no byte string encodes to
        "Z"s, "Zm9vY"s, "Zm9vYmFyZ"s,
        // non-canonical: the unused low bits of the last character must be zero
        "Zh"s, "Zm9"s, "Zm9vYh"s}) {
    EXPECT_EQ(base64url_decode(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace wsbridge
