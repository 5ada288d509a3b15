// bounded_json: JSON parsed with a bound on its nesting (copying or dumping a deeper value
// recursed once per level and overflowed the stack).
#include "wsbridge/bounded_json.hpp"

#include <gtest/gtest.h>

#include <string>

namespace wsbridge {
namespace {

std::string nested(std::size_t levels, char open = '[', char close = ']') {
  return std::string(levels, open) + std::string(levels, close);
}

TEST(BoundedJson, NestingIsCountedOutsideStringsOnly) {
  EXPECT_TRUE(bounded_json::nesting_within(nested(128)));
  EXPECT_FALSE(bounded_json::nesting_within(nested(129)));
  EXPECT_TRUE(bounded_json::nesting_within(R"({"a":[1,{"b":2}]})", 3));
  EXPECT_FALSE(bounded_json::nesting_within(R"({"a":[1,{"b":2}]})", 2));
  // Brackets in strings, escaped quotes and backslashes included, are text.
  EXPECT_TRUE(bounded_json::nesting_within("[\"" + nested(500) + "\"]", 1));
  EXPECT_TRUE(bounded_json::nesting_within(R"(["\"[[[", "\\"])", 1));
  EXPECT_FALSE(bounded_json::nesting_within(R"(["\\", [[]]])", 2));
  // Siblings do not add up; closers beyond the openers do not go below zero.
  EXPECT_TRUE(bounded_json::nesting_within("[[],[],[[]]]", 3));
  EXPECT_FALSE(bounded_json::nesting_within("]]][[[[", 3));
}

TEST(BoundedJson, TooDeepIsDiscardedAndSaidSo) {
  bool too_deep = true;
  auto ok = bounded_json::parse(nested(128), &too_deep);
  EXPECT_FALSE(ok.is_discarded());
  EXPECT_FALSE(too_deep);
  EXPECT_EQ(ok.dump().size(), 256u);

  const std::string deep = R"({"type":"publish","payload":)" + nested(500'000, '{', '}') + "}";
  auto refused = bounded_json::parse(deep, &too_deep);
  EXPECT_TRUE(refused.is_discarded());
  EXPECT_TRUE(too_deep);

  auto invalid = bounded_json::parse("{nope", &too_deep);
  EXPECT_TRUE(invalid.is_discarded());
  EXPECT_FALSE(too_deep);  // not valid JSON, but not too deep either
}

// nlohmann's lexer ends the input at a NUL byte: "{...}\0junk" parsed as the object (a hostile
// probe: a ping with junk behind a NUL got its pong, an admin push body its 200). JSON has no NUL.
TEST(BoundedJson, ANulByteAnywhereIsNotJson) {
  using namespace std::string_literals;
  for (const std::string& text :
       {R"({"type":"ping","id":1})"s + '\0' + "garbage", R"({"type":"ping","id":1})"s + '\0',
        R"({"a":")"s + '\0' + R"("})", "\0"s, "[1,\0 2]"s}) {
    bool too_deep = true;
    EXPECT_TRUE(bounded_json::parse(text, &too_deep).is_discarded()) << text.size();
    EXPECT_FALSE(too_deep);
  }
  EXPECT_EQ(bounded_json::parse(R"({"a":"\u0000"})")["a"], std::string(1, '\0'));  // escaped: fine
}

}  // namespace
}  // namespace wsbridge
