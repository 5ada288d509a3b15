// ConfigTable::one_of and each_one_of (proxy/src/config/config_choice.cpp): the one enum reader
// every configuration key with a fixed set of names goes through, and its one error message.
#include <gtest/gtest.h>

#include "config/server_config.hpp"
#include "wsbridge/adapter_registry.hpp"
#include "wsbridge/config_table.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge {
namespace {

enum class Colour { kRed, kGreen, kBlue };

// The error text of `read` on the table parsed from `text`, or "" when it did not fail.
template <class Read>
std::string error_of(std::string_view text, Read read) {
  auto root = toml::parse(text);
  ConfigTable t(root, "c.toml", "[t]");
  try {
    read(t);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// A whole configuration's error ("accepted" when there is none).
std::string error(const std::string& text) {
  AdapterRegistry registry;
  register_builtin_adapters(registry);
  try {
    parse_config(text, "w.toml", registry);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "accepted";
}

std::optional<Colour> colour(ConfigTable& t) {
  return t.one_of<Colour>("c", {{"red", Colour::kRed}, {"green", Colour::kGreen}});
}

TEST(ConfigChoiceTest, ReadsTheValuePairedWithTheName) {
  auto root = toml::parse("c = \"green\"\nl = \"debug\"\n");
  ConfigTable t(root, "c.toml", "[t]");
  EXPECT_EQ(colour(t), Colour::kGreen);
  EXPECT_EQ(t.one_of("l", kLogLevelNames), LogLevel::kDebug);  // a named table
  EXPECT_EQ(t.one_of<Colour>("missing", {{"red", Colour::kRed}}), std::nullopt);
  EXPECT_NO_THROW(t.reject_unknown_keys());  // read means consumed
}

TEST(ConfigChoiceTest, AnOtherNameFailsAtTheValueWithTheChoices) {
  EXPECT_EQ(error_of("c = \"blue\"\n", colour),
            "c.toml:1:5: 'c' in [t] must be \"red\" or \"green\", not \"blue\"");
  // Three or more are "one of"; names are case-sensitive, and a near miss is suggested.
  EXPECT_EQ(error_of("\n  l = \"Debug\"\n", [](ConfigTable& t) { t.one_of("l", kLogLevelNames); }),
            "c.toml:2:7: 'l' in [t] must be one of \"error\", \"warn\", \"info\", \"debug\", not "
            "\"Debug\"; did you mean \"debug\"?");
  EXPECT_EQ(error_of("c = \"gren\"\n", colour),
            "c.toml:1:5: 'c' in [t] must be \"red\" or \"green\", not \"gren\"; did you mean "
            "\"green\"?");
  EXPECT_EQ(error_of("c = 3\n", colour), "c.toml:1:5: 'c' in [t] must be a string, not an integer");
  EXPECT_EQ(error_of("c = \"\"\n", colour),
            "c.toml:1:5: 'c' in [t] must be \"red\" or \"green\", not \"\"");
}

TEST(ConfigChoiceTest, EachElementOfAnArrayIsOneOfTheChoices) {
  auto read = [](ConfigTable& t) {
    return t.each_one_of<Colour>(
        "cs", {{"red", Colour::kRed}, {"green", Colour::kGreen}, {"blue", Colour::kBlue}});
  };
  auto root = toml::parse("cs = [\"blue\", \"red\", \"blue\"]\nnone = []\n");
  ConfigTable t(root, "c.toml", "[t]");
  EXPECT_EQ(read(t), (std::vector<Colour>{Colour::kBlue, Colour::kRed, Colour::kBlue}));
  EXPECT_EQ(t.each_one_of<Colour>("none", {{"red", Colour::kRed}}), std::vector<Colour>{});
  EXPECT_EQ(t.each_one_of<Colour>("missing", {{"red", Colour::kRed}}), std::nullopt);
  // The error points at the element.
  EXPECT_EQ(error_of("cs = [\"red\", \"bleu\"]\n", read),
            "c.toml:1:14: each of 'cs' in [t] must be one of \"red\", \"green\", \"blue\", not "
            "\"bleu\"; did you mean \"blue\"?");
  EXPECT_EQ(error_of("cs = \"red\"\n", read),
            "c.toml:1:6: 'cs' in [t] must be an array of strings, not a string");
}

// The keys that read through it say the same thing, with their table's name.
TEST(ConfigChoiceTest, ConfigurationKeysUseIt) {
  const std::string listener = "[[listeners]]\nport = 8080\n";
  EXPECT_EQ(error("[server]\nlog_format = \"JSON\"\n" + listener),
            "w.toml:2:14: 'log_format' in [server] must be \"text\" or \"json\", not \"JSON\"; did "
            "you mean \"json\"?");
  EXPECT_EQ(
      error(listener + "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\nslow_consumer = \"drop\"\n"),
      "w.toml:6:17: 'slow_consumer' in [[routes]] #1 must be \"disconnect\" or "
      "\"drop_oldest\", not \"drop\"");
  EXPECT_NE(error(listener + "[[routes]]\npath = \"/h\"\nadapter = \"http\"\nmode = \"rcp\"\n"
                             "backend = \"http://127.0.0.1:1/\"\n")
                .find("w.toml:6:8: 'mode' in "),
            std::string::npos);
  EXPECT_NE(error(listener + "[[routes]]\npath = \"/h\"\nadapter = \"http\"\nmode = \"rcp\"\n"
                             "backend = \"http://127.0.0.1:1/\"\n")
                .find(" must be \"message\" or \"rpc\", not \"rcp\"; did you mean \"rpc\"?"),
            std::string::npos);
  const std::string secret = "[jwt.main]\nsecret = \"0123456789abcdef0123456789abcdef\"\n";
  EXPECT_EQ(error(listener + secret + "algorithms = [\"HS256\", \"hs512\"]\n"),
            "w.toml:5:24: each of 'algorithms' in [jwt.main] must be one of \"HS256\", \"HS384\", "
            "\"HS512\", \"RS256\", \"RS384\", \"RS512\", \"PS256\", \"PS384\", \"PS512\", "
            "\"ES256\", \"ES384\", \"EdDSA\", not \"hs512\"; did you mean \"HS512\"?");
  EXPECT_EQ(
      error(listener + "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\n[routes.auth]\n"
                       "credentials = [\"header\", \"cookies\"]\n"),
      "w.toml:7:26: each of 'credentials' in 'auth' of [[routes]] #1 must be one of "
      "\"header\", \"query\", \"cookie\", \"subprotocol\", \"mqtt_connect\", not \"cookies\"; "
      "did you mean "
      "\"cookie\"?");
}

// Configurations that refused every client without a word: an algorithm list none of whose
// algorithms a key verifies, and a route that verifies credentials from no source.
TEST(ConfigChoiceTest, ChoicesThatLockEveryoneOutAreRefused) {
  const std::string listener = "[[listeners]]\nport = 8080\n";
  const std::string secret = "[jwt.main]\nsecret = \"0123456789abcdef0123456789abcdef\"\n";
  EXPECT_EQ(error(listener + secret + "algorithms = [\"RS256\", \"ES256\"]\n"),
            "w.toml:5:14: no key of [jwt.main] verifies any of its 'algorithms': HS* need "
            "'secret', the others a public key or JWKS of their type");
  EXPECT_EQ(error(listener + secret + "algorithms = [\"RS256\", \"HS256\"]\n"), "accepted");
  EXPECT_EQ(error(listener + secret +
                  "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\n[routes.auth]\njwt = \"main\"\n"
                  "credentials = []\n"),
            "w.toml:10:15: 'credentials' is empty: no client could present a credential");
}

}  // namespace
}  // namespace wsbridge
