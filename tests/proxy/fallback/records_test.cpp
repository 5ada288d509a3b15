#include "fallback/records.hpp"

#include <gtest/gtest.h>

namespace wsbridge::fallback {
namespace {

const BodyLimits kLimits{100, 4, false};

std::optional<ParsedBody> parse(std::string_view body, BodyError* error = nullptr,
                                const BodyLimits& limits = kLimits) {
  BodyError e = BodyError::kNone;
  std::string message;
  auto parsed = parse_body(body, limits, e, message);
  if (error != nullptr) *error = e;
  if (!parsed) {
    EXPECT_FALSE(message.empty());
  }
  return parsed;
}

TEST(FallbackRecords, ParsesTextAndBinaryRecordsWithAnyBytes) {
  const std::string body = std::string("7\nt5:hellob3:") + std::string("\0\n:", 3) + "t0:";
  const auto parsed = parse(body);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->first, 7u);
  ASSERT_EQ(parsed->records.size(), 3u);
  EXPECT_EQ(parsed->records[0].kind, 't');
  EXPECT_EQ(parsed->records[0].payload, "hello");
  EXPECT_EQ(parsed->records[1].kind, 'b');
  EXPECT_EQ(parsed->records[1].payload, std::string_view("\0\n:", 3));
  EXPECT_EQ(parsed->records[2].payload, "");
}

TEST(FallbackRecords, RefusesMalformedBodies) {
  for (const std::string_view bad : {"",
                                     "\n",
                                     "x\n",
                                     "1",
                                     "1\nx1:a",
                                     "1\nt",
                                     "1\nt:",
                                     "1\nt5:abc",
                                     "1\nt-1:a",
                                     "1\nt+1:a",
                                     "1\nt 1:a",
                                     "1\nc1:a",
                                     "01234567890123456789\n",
                                     "1\nt00000000000000000001:a",
                                     "0\n",
                                     "0\nt1:a",
                                     "01\nt1:a",
                                     "1\nt02:ab",
                                     "1\nt00:",
                                     "1\nb01:a"}) {
    BodyError error = BodyError::kNone;
    EXPECT_FALSE(parse(bad, &error)) << bad;
    EXPECT_EQ(error, BodyError::kMalformed) << bad;
  }
}

// One spelling per number (leading zeros were read as the number), as a token's fields have.
TEST(FallbackRecords, DecimalsHaveOneSpelling) {
  EXPECT_EQ(parse_decimal("0"), 0u);
  EXPECT_EQ(parse_decimal("10"), 10u);
  EXPECT_EQ(parse_decimal("18446744073709551615").value_or(0), 0u);  // 20 digits: too long
  for (const std::string_view bad : {"00", "007", "0x1", "", " 1", "1 ", "+1", "-0"}) {
    EXPECT_FALSE(parse_decimal(bad)) << bad;
  }
}

TEST(FallbackRecords, RefusesTooLargeRecordsAndTooManyRecords) {
  BodyError error = BodyError::kNone;
  EXPECT_FALSE(parse("1\nt101:" + std::string(101, 'x'), &error));
  EXPECT_EQ(error, BodyError::kTooLarge);
  // A length past the limit is refused before the bytes are looked for.
  EXPECT_FALSE(parse("1\nt999999:x", &error));
  EXPECT_EQ(error, BodyError::kTooLarge);
  EXPECT_TRUE(parse("1\nt1:at1:bt1:ct1:d"));
  EXPECT_FALSE(parse("1\nt1:at1:bt1:ct1:dt1:e", &error));
  EXPECT_EQ(error, BodyError::kTooLarge);
}

TEST(FallbackRecords, ControlRecordsOnlyWhereAllowed) {
  EXPECT_FALSE(parse("1\nc2:{}"));
  EXPECT_TRUE(parse("1\nc2:{}", nullptr, BodyLimits{100, 4, true}));
}

TEST(FallbackRecords, EncodingRoundTrips) {
  std::string out;
  append_first_line(out, 42);
  append_record(out, 't', "a:b\n");
  append_record(out, 'b', std::string_view("\0\xff", 2));
  append_record(out, 'c', R"({"type":"close"})");
  const auto parsed = parse(out, nullptr, BodyLimits{100, 10, true});
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->first, 42u);
  ASSERT_EQ(parsed->records.size(), 3u);
  EXPECT_EQ(parsed->records[0].payload, "a:b\n");
  EXPECT_EQ(parsed->records[1].payload, std::string_view("\0\xff", 2));
  EXPECT_EQ(parsed->records[2].kind, 'c');
}

}  // namespace
}  // namespace wsbridge::fallback
