// ACL patterns (plugins/mqtt/acl.cpp): placeholders, expansion with the user and claims,
// and the subscribe/publish checks.
#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "acl.hpp"

namespace wsbridge::mqtt {
namespace {

using nlohmann::json;
using namespace std::string_literals;

// ---- ACL patterns -----------------------------------------------------------------------------

TEST(AclPatternTest, AcceptsPlaceholders) {
  for (const std::string& pattern :
       {"#"s, "public/+"s, "{user}/#"s, "users/{user}/+"s, "org/{claim.org_id}/#"s,
        "{claim.a-b.c_D9}"s, "pre-{user}-post/x"s, "$SYS/{user}"s, "{user}{claim.x}"s,
        "{claim.tenant}/{user}/#"s}) {
    EXPECT_EQ(acl_pattern_problem(pattern), std::nullopt) << pattern;
  }
}

TEST(AclPatternTest, RejectsUnknownOrUnbalancedPlaceholders) {
  for (const std::string& pattern :
       {"{unknown}/#"s, "{users}"s, "{User}"s, "{claim.}"s, "{claim}"s, "{claim.a b}"s,
        "{claim.a/b}"s, "{claim.a+}"s, "{}"s, "{{user}}"s, "{user"s, "user}"s, "a/{user/b}"s,
        "{claim.x"s, "}{user}"s, "{user}}"s, "{ user}"s}) {
    EXPECT_NE(acl_pattern_problem(pattern), std::nullopt) << pattern;
  }
  EXPECT_EQ(acl_pattern_problem("{nope}"),
            "has an unknown placeholder {nope} (use {user} or {claim.NAME}; NAME: letters, "
            "digits, '_', '-', '.')");
  EXPECT_EQ(acl_pattern_problem("a/{user"), "has a '{' without a matching '}'");
  EXPECT_EQ(acl_pattern_problem("a/user}"), "has a '}' without a matching '{'");
}

TEST(AclPatternTest, RejectsPatternsThatAreNoFilter) {
  EXPECT_EQ(acl_pattern_problem(""), "is not a valid topic filter: it must not be empty");
  EXPECT_EQ(acl_pattern_problem("a/#/{user}"),
            "is not a valid topic filter: it may use '#' only as the whole last level");
  EXPECT_EQ(acl_pattern_problem("+{user}/x"),
            "is not a valid topic filter: it may use '+' only as a whole level");
  EXPECT_EQ(acl_pattern_problem("{user}#"),
            "is not a valid topic filter: it may use '#' only as the whole last level");
  EXPECT_NE(acl_pattern_problem("a\0/{user}"s), std::nullopt);
}

TEST(ExpandAclTest, FillsUserAndClaims) {
  const json claims = {{"org", "acme"}, {"room", 42}, {"neg", -7}, {"a.b", "dotted"}};
  EXPECT_EQ(expand_acl({"users/{user}/#", "org/{claim.org}/rooms/{claim.room}", "public/+",
                        "n/{claim.neg}", "{claim.a.b}/x", "id-{user}-{claim.org}"},
                       "alice", claims),
            (std::vector<std::string>{"users/alice/#", "org/acme/rooms/42", "public/+", "n/-7",
                                      "dotted/x", "id-alice-acme"}));
}

TEST(ExpandAclTest, LargeUnsignedClaimsKeepTheirValue) {
  const json claims = {{"big", std::uint64_t{18446744073709551615u}},
                       {"min", std::int64_t{-9223372036854775807 - 1}}};
  EXPECT_EQ(expand_acl({"b/{claim.big}", "m/{claim.min}"}, "u", claims),
            (std::vector<std::string>{"b/18446744073709551615", "m/-9223372036854775808"}));
}

TEST(ExpandAclTest, AnonymousUserDropsUserPatterns) {
  EXPECT_EQ(expand_acl({"users/{user}/#", "public/#"}, "", json::object()),
            (std::vector<std::string>{"public/#"}));
}

TEST(ExpandAclTest, ValuesCannotInjectWildcardsOrLevels) {
  const std::vector<std::string> patterns = {"users/{user}/#", "public/#"};
  for (const std::string& user :
       {"+"s, "#"s, "a+"s, "a#b"s, "a/b"s, "/"s, ".."s + "/x"s, "a\0b"s, "\0"s, "\xff"s}) {
    EXPECT_EQ(expand_acl(patterns, user, json::object()), (std::vector<std::string>{"public/#"}))
        << testing::PrintToString(user);
  }
  // Claims too, and a value that makes the filter too long.
  const json claims = {{"plus", "+"},    {"hash", "#"}, {"slash", "x/y"},
                       {"nul", "a\0b"s}, {"empty", ""}, {"long", std::string(70000, 'x')},
                       {"ok", "fine"}};
  EXPECT_EQ(expand_acl({"c/{claim.plus}", "c/{claim.hash}", "c/{claim.slash}", "c/{claim.nul}",
                        "c/{claim.empty}", "c/{claim.long}", "c/{claim.ok}"},
                       "u", claims),
            (std::vector<std::string>{"c/fine"}));
}

TEST(ExpandAclTest, OnlyStringAndIntegerClaimsCount) {
  const json claims = {{"t", true},
                       {"f", 1.5},
                       {"whole_float", 2.0},
                       {"null", nullptr},
                       {"arr", json::array({"a"})},
                       {"obj", {{"k", "v"}}},
                       {"s", "v"}};
  EXPECT_EQ(
      expand_acl({"{claim.t}", "{claim.f}", "{claim.whole_float}", "{claim.null}", "{claim.arr}",
                  "{claim.obj}", "{claim.missing}", "{claim.obj.k}", "{claim.s}"},
                 "u", claims),
      (std::vector<std::string>{"v"}));
  // Claims that are not an object at all: only the claim patterns go.
  for (const json& odd : {json(), json::array({"x"}), json("x"), json(3)}) {
    EXPECT_EQ(expand_acl({"{claim.x}/#", "{user}/#"}, "u", odd), (std::vector<std::string>{"u/#"}))
        << odd.dump();
  }
}

TEST(ExpandAclTest, ValuesCannotReachDollarTopics) {
  // A user named "$SYS" must not turn "{user}/#" into "$SYS/#"; further in, '$' is plain.
  EXPECT_EQ(expand_acl({"{user}/#", "users/{user}/#"}, "$SYS", json::object()),
            (std::vector<std::string>{"users/$SYS/#"}));
  EXPECT_EQ(expand_acl({"{claim.t}/x"}, "u", json{{"t", "$share"}}), std::vector<std::string>{});
}

// A value MQTT strings may not hold (a certificate CN with U+0085) fills no pattern: the filter
// would be one the broker drops the client for.
TEST(ExpandAclTest, ValuesWithControlCharactersFillNothing) {
  EXPECT_EQ(expand_acl({"devices/{user}/#", "all/#"}, "bob\xc2\x85", json::object()),
            (std::vector<std::string>{"all/#"}));
  EXPECT_EQ(expand_acl({"t/{claim.t}/#"}, "u", json{{"t", "a\x01"}}), std::vector<std::string>{});
}

TEST(ExpandAclTest, InvalidPatternsAreDropped) {
  EXPECT_EQ(expand_acl({"{nope}/x", "a/#/b", "", "ok/{user}"}, "u", json::object()),
            (std::vector<std::string>{"ok/u"}));
}

TEST(AclCheckTest, SubscribeNeedsACoveringPattern) {
  const auto acl =
      expand_acl({"users/{user}/#", "public/+", "$SYS/broker/+"}, "alice", json::object());
  EXPECT_TRUE(subscribe_allowed(acl, "users/alice"));
  EXPECT_TRUE(subscribe_allowed(acl, "users/alice/inbox"));
  EXPECT_TRUE(subscribe_allowed(acl, "users/alice/#"));
  EXPECT_TRUE(subscribe_allowed(acl, "users/alice/+/x"));
  EXPECT_FALSE(subscribe_allowed(acl, "users/bob/inbox"));
  EXPECT_FALSE(subscribe_allowed(acl, "users/+/inbox"));
  EXPECT_FALSE(subscribe_allowed(acl, "users/#"));
  EXPECT_FALSE(subscribe_allowed(acl, "#"));
  EXPECT_FALSE(subscribe_allowed(acl, "+/alice/inbox"));
  EXPECT_TRUE(subscribe_allowed(acl, "public/news"));
  EXPECT_TRUE(subscribe_allowed(acl, "public/+"));
  EXPECT_FALSE(subscribe_allowed(acl, "public/#"));
  EXPECT_FALSE(subscribe_allowed(acl, "public"));
  EXPECT_FALSE(subscribe_allowed(acl, "public/news/x"));
  EXPECT_TRUE(subscribe_allowed(acl, "$SYS/broker/load"));
  EXPECT_FALSE(subscribe_allowed(acl, "$SYS/#"));
  EXPECT_FALSE(subscribe_allowed({}, "a"));
}

TEST(AclCheckTest, LeadingWildcardPatternsDoNotGrantDollarTopics) {
  const std::vector<std::string> acl = {"#", "+/x"};
  EXPECT_TRUE(subscribe_allowed(acl, "anything/at/all"));
  EXPECT_FALSE(subscribe_allowed(acl, "$SYS/#"));
  EXPECT_FALSE(subscribe_allowed(acl, "$SYS/x"));
  EXPECT_FALSE(publish_allowed(acl, "$SYS/x"));
  EXPECT_TRUE(publish_allowed(acl, "a/$SYS"));
}

TEST(AclCheckTest, PublishNeedsAMatchingPattern) {
  const auto acl = expand_acl({"users/{user}/#", "public/+"}, "alice", json::object());
  EXPECT_TRUE(publish_allowed(acl, "users/alice"));
  EXPECT_TRUE(publish_allowed(acl, "users/alice/x/y"));
  EXPECT_FALSE(publish_allowed(acl, "users/bob/x"));
  EXPECT_FALSE(publish_allowed(acl, "users"));
  EXPECT_TRUE(publish_allowed(acl, "public/x"));
  EXPECT_TRUE(publish_allowed(acl, "public/"));
  EXPECT_FALSE(publish_allowed(acl, "public/x/y"));
  EXPECT_FALSE(publish_allowed({}, "public/x"));
}

// What a broker may deliver to a pass-through client (a persistent session keeps subscriptions
// an earlier, wider ACL allowed): what some allowed subscription would receive.
TEST(AclCheckTest, DeliveryNeedsAnAllowedSubscriptionThatReceivesIt) {
  const auto acl = expand_acl({"users/{user}/#", "public/+", "$share/workers/jobs/#",
                               "$share/+/tasks/+", "$SYS/broker/load/#"},
                              "alice", json::object());
  EXPECT_TRUE(delivery_allowed(acl, "users/alice/x"));
  EXPECT_FALSE(delivery_allowed(acl, "users/bob/x"));
  EXPECT_TRUE(delivery_allowed(acl, "public/x"));
  EXPECT_FALSE(delivery_allowed(acl, "public/x/y"));
  // Shared subscriptions deliver under the topic itself.
  EXPECT_TRUE(delivery_allowed(acl, "jobs/a/b"));
  EXPECT_TRUE(delivery_allowed(acl, "tasks/t1"));
  EXPECT_FALSE(delivery_allowed(acl, "tasks/t1/x"));
  // '$' topics only where a pattern names them.
  EXPECT_TRUE(delivery_allowed(acl, "$SYS/broker/load/1min"));
  EXPECT_FALSE(delivery_allowed(acl, "$SYS/broker/clients"));
  EXPECT_FALSE(delivery_allowed(expand_acl({"#", "+/x"}, "", json::object()), "$SYS/x"));
  EXPECT_TRUE(delivery_allowed(expand_acl({"$share/#"}, "", json::object()), "$SYS/x"))
      << "as SUBSCRIBE allows $share/g/$SYS/x under $share/#";
  EXPECT_FALSE(delivery_allowed({}, "public/x"));
}

TEST(AclCheckTest, InjectedUserGetsNothing) {
  const auto acl = expand_acl({"users/{user}/#"}, "+", json::object());
  EXPECT_TRUE(acl.empty());
  EXPECT_FALSE(subscribe_allowed(acl, "users/bob/x"));
  EXPECT_FALSE(publish_allowed(acl, "users/+"));
}

TEST(ReservedTopicsTest, PatternsReachingThePrefixAreFound) {
  for (const char* reaching :
       {"$wsbridge", "$wsbridge/#", "$wsbridge/+", "$wsbridge/v1/x", "$wsbridge/+/to/{user}",
        "$share/g/$wsbridge/#", "$share/+/#", "$share/#", "$share/g/+/v1"}) {
    EXPECT_TRUE(reaches_prefix(reaching, "$wsbridge")) << reaching;
  }
  for (const char* apart : {"#", "+", "+/v1/#", "$SYS/#", "$wsbridgex/#", "a/$wsbridge/#",
                            "{user}/#", "$share/g/a/#", "$share/g"}) {
    EXPECT_FALSE(reaches_prefix(apart, "$wsbridge")) << apart;
  }
  // A prefix of several levels: an ancestor of it names no topic under it.
  EXPECT_TRUE(reaches_prefix("$corp/#", "$corp/wsb"));
  EXPECT_TRUE(reaches_prefix("$corp/+/v1", "$corp/wsb"));
  EXPECT_FALSE(reaches_prefix("$corp", "$corp/wsb"));
  EXPECT_FALSE(reaches_prefix("$corp/other/#", "$corp/wsb"));
  EXPECT_FALSE(reaches_prefix("#", ""));
}

TEST(ReservedTopicsTest, ExpandAclDropsWhatReachesThem) {
  // A credential's ACL (a token's claim) cannot open the control topics either.
  EXPECT_EQ(expand_acl({"$wsbridge/#", "users/{user}/#", "$share/g/#", "#"}, "alice",
                       json::object(), "$wsbridge"),
            (std::vector<std::string>{"users/alice/#", "#"}));
  EXPECT_EQ(expand_acl({"$wsbridge/#"}, "alice", json::object()),
            std::vector<std::string>{"$wsbridge/#"});  // (nothing reserved: kept)
}

TEST(SharedAclTest, PatternsWithoutPlaceholdersAreExpandedOnceForEveryone) {
  const std::vector<std::string> fixed = {"bench/#", "$wsbridge/#", "public/+/x"};
  const SharedAcl everyone = expand_acl_for_everyone(fixed, "$wsbridge");
  ASSERT_NE(everyone, nullptr);
  EXPECT_EQ(*everyone, (std::vector<std::string>{"bench/#", "public/+/x"}));  // reserved dropped
  // Every identity gets that one list, the same as its own expansion would be.
  for (const char* user : {"alice", "", "$SYS"}) {
    const SharedAcl mine =
        expand_acl_shared(everyone, fixed, user, json{{"org", "o"}}, "$wsbridge");
    EXPECT_EQ(mine, everyone);
    EXPECT_EQ(*mine, expand_acl(fixed, user, json{{"org", "o"}}, "$wsbridge"));
  }
}

TEST(SharedAclTest, OnePlaceholderMakesTheListPersonal) {
  // Shared, "{user}/#" would give every user the first one's topics, or nobody any.
  for (const std::vector<std::string>& patterns : {std::vector<std::string>{"public/#", "{user}/#"},
                                                   std::vector<std::string>{"org/{claim.org}/+"}}) {
    const SharedAcl everyone = expand_acl_for_everyone(patterns);
    EXPECT_EQ(everyone, nullptr);
    const SharedAcl alice = expand_acl_shared(everyone, patterns, "alice", json{{"org", "a"}});
    const SharedAcl bob = expand_acl_shared(everyone, patterns, "bob", json{{"org", "b"}});
    ASSERT_TRUE(alice && bob);
    EXPECT_EQ(*alice, expand_acl(patterns, "alice", json{{"org", "a"}}));
    EXPECT_EQ(*bob, expand_acl(patterns, "bob", json{{"org", "b"}}));
    EXPECT_NE(*alice, *bob);
  }
}

TEST(SharedAclTest, NoPatternsShareAnEmptyList) {
  const SharedAcl everyone = expand_acl_for_everyone({});
  ASSERT_NE(everyone, nullptr);
  EXPECT_TRUE(everyone->empty());
  EXPECT_FALSE(subscribe_allowed(*everyone, "a"));
}

}  // namespace
}  // namespace wsbridge::mqtt
