// JSON string escaping for the frames the mqtt adapter writes (plugins/mqtt/codec.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "codec.hpp"

namespace wsbridge::mqtt {
namespace {

using nlohmann::json;
using namespace std::string_literals;

// ---- JSON strings -----------------------------------------------------------------------------

std::string json_string(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

TEST(JsonStringTest, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(json_string(""), R"("")");
  EXPECT_EQ(json_string("plain"), R"("plain")");
  EXPECT_EQ(json_string("say \"hi\""), R"("say \"hi\"")");
  EXPECT_EQ(json_string("C:\\dir\\"), R"("C:\\dir\\")");
  EXPECT_EQ(json_string("\n\r\t\b\f"), R"("\n\r\t\b\f")");
  EXPECT_EQ(json_string("\0"s), R"("\u0000")");
  EXPECT_EQ(json_string("a\x01z"), R"("a\u0001z")");
  EXPECT_EQ(json_string("\x0b\x1b\x1f"), R"("\u000b\u001b\u001f")");
  EXPECT_EQ(json_string("\x7f"), "\"\x7f\"");  // DEL needs no escape in JSON
  EXPECT_EQ(json_string("a/b </script>"), R"("a/b </script>")");
  EXPECT_EQ(json_string("ü 日本 😀"), "\"ü 日本 😀\"");  // UTF-8 copied as it is
  EXPECT_EQ(json_string("\"\""), R"("\"\"")");
}

TEST(JsonStringTest, Appends) {
  std::string out = R"({"topic":)";
  append_json_string(out, "a/\"b\"");
  out += ",\"n\":1}";
  EXPECT_EQ(out, R"({"topic":"a/\"b\"","n":1})");
  const json parsed = json::parse(out);
  EXPECT_EQ(parsed["topic"], "a/\"b\"");
}

TEST(JsonStringTest, RoundTripsThroughAJsonParser) {
  std::string text;
  for (int c = 0; c < 0x80; ++c) text.push_back(static_cast<char>(c));
  text += "\\\"\\\\ ü 日本 😀 \xf4\x8f\xbf\xbf";
  const std::string literal = json_string(text);
  EXPECT_EQ(json::parse(literal).get<std::string>(), text);
  // Every byte below 0x20 went out escaped.
  EXPECT_EQ(std::count_if(literal.begin(), literal.end(),
                          [](char c) { return static_cast<unsigned char>(c) < 0x20; }),
            0);
}

}  // namespace
}  // namespace wsbridge::mqtt
