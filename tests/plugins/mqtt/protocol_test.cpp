// The mqtt adapter's JSON protocol codec (plugins/mqtt/protocol.cpp), without a broker.
#include <gtest/gtest.h>

#include "protocol.hpp"

namespace wsbridge::mqtt {
namespace {

using nlohmann::json;

Request ok(std::string_view text) {
  auto r = parse_request(text);
  if (auto* e = std::get_if<RequestError>(&r)) {
    ADD_FAILURE() << "refused: " << e->message;
    return {};
  }
  return std::get<Request>(r);
}

RequestError refused(std::string_view text) {
  auto r = parse_request(text);
  if (auto* e = std::get_if<RequestError>(&r)) return *e;
  ADD_FAILURE() << "accepted: " << text;
  return {};
}

TEST(MqttProtocolTest, ParsesEachRequestType) {
  Request s = ok(R"({"type":"subscribe","topic":"sensors/+/temp","qos":1,"id":"a1"})");
  EXPECT_EQ(s.type, RequestType::kSubscribe);
  EXPECT_EQ(s.topic, "sensors/+/temp");
  EXPECT_EQ(s.qos, 1);
  EXPECT_EQ(*s.id, "a1");
  Request u = ok(R"({"type":"unsubscribe","topic":"a/#","id":7})");
  EXPECT_EQ(u.type, RequestType::kUnsubscribe);
  EXPECT_EQ(*u.id, 7);
  Request p =
      ok(R"({"type":"publish","topic":"cmd/lamp","payload":{"on":true},"qos":2,"retain":true})");
  EXPECT_EQ(p.type, RequestType::kPublish);
  EXPECT_EQ(p.payload, R"({"on":true})");
  EXPECT_EQ(p.qos, 2);
  EXPECT_TRUE(p.retain);
  EXPECT_FALSE(p.id);
  EXPECT_EQ(ok(R"({"type":"ping"})").type, RequestType::kPing);
}

TEST(MqttProtocolTest, PayloadForms) {
  EXPECT_EQ(ok(R"({"type":"publish","topic":"t","payload":"text"})").payload, "text");
  EXPECT_EQ(ok(R"({"type":"publish","topic":"t","payload":21.5})").payload, "21.5");
  EXPECT_EQ(ok(R"({"type":"publish","topic":"t","payload":null})").payload, "null");
  EXPECT_EQ(ok(R"({"type":"publish","topic":"t","payload_b64":"AP8="})").payload,
            std::string("\x00\xff", 2));
  EXPECT_EQ(ok(R"({"type":"publish","topic":"t"})").payload, "");
}

TEST(MqttProtocolTest, RefusesWithBadRequestAndKeepsTheId) {
  EXPECT_EQ(refused("{").code, "bad_request");
  EXPECT_FALSE(refused("{").id);
  EXPECT_EQ(refused("3").message, "a request must be a JSON object");
  EXPECT_EQ(*refused(R"({"id":"x"})").id, "x");
  EXPECT_EQ(refused(R"({"type":"fly","id":1})").message,
            "unknown type \"fly\" (subscribe, unsubscribe, publish or ping)");
  const std::string bad_id =
      "'id' must be a string or an integer (of at most 64 bits, without a fraction or exponent)";
  EXPECT_EQ(refused(R"({"type":"ping","id":{"a":1}})").message, bad_id);
  // Numbers that would come back in another spelling, which the client could not match.
  EXPECT_EQ(refused(R"({"type":"ping","id":123456789012345678901234567890})").message, bad_id);
  EXPECT_EQ(refused(R"({"type":"ping","id":1E2})").message, bad_id);
  EXPECT_EQ(refused(R"({"type":"ping","id":1.5})").message, bad_id);
  for (const char* good :
       {R"({"type":"ping","id":18446744073709551615})",
        R"({"type":"ping","id":-9223372036854775808})", R"({"type":"ping","id":7})"}) {
    const auto r = parse_request(good);
    ASSERT_TRUE(std::holds_alternative<Request>(r)) << good;
    EXPECT_EQ(std::get<Request>(r).id->dump(), json::parse(good)["id"].dump());
  }
  EXPECT_EQ(refused(R"({"type":"publish","topic":"a/+"})").message,
            "topic must not contain wildcards ('+' or '#')");
  EXPECT_EQ(refused(R"({"type":"subscribe","topic":"a#"})").message,
            "topic filter may use '#' only as the whole last level");
  EXPECT_EQ(refused(R"({"type":"subscribe","topic":""})").message,
            "topic filter must not be empty");
  EXPECT_EQ(refused(R"({"type":"subscribe","topic":"a","qos":1.5})").message,
            "'qos' must be 0, 1 or 2");
  EXPECT_EQ(refused(R"({"type":"publish","topic":"a","retain":"yes"})").message,
            "'retain' must be true or false");
  EXPECT_EQ(refused(R"({"type":"publish","topic":"a","payload_b64":"A"})").message,
            "'payload_b64' is not valid base64");
  // A payload nested half a million levels deep crashed the process when it was dumped.
  const std::string deep = std::string(500'000, '[') + std::string(500'000, ']');
  EXPECT_EQ(refused(R"({"type":"publish","topic":"a","payload":)" + deep + "}").message,
            "the JSON nests deeper than 128 levels");
  const std::string fine = std::string(100, '[') + std::string(100, ']');
  const auto parsed = parse_request(R"({"type":"publish","topic":"a","payload":)" + fine + "}");
  ASSERT_TRUE(std::holds_alternative<Request>(parsed));
  EXPECT_EQ(std::get<Request>(parsed).payload, fine);
}

TEST(MqttProtocolTest, MessageFramesEmbedJsonStringsOrBase64) {
  auto parse = [](const Frame& f) { return json::parse(f.payload()); };
  json j = parse(message_frame("s/k1/temp", "21.5", 1, false));
  EXPECT_EQ(j,
            json::parse(
                R"({"type":"message","topic":"s/k1/temp","payload":21.5,"qos":1,"retain":false})"));
  j = parse(message_frame("t", "not \"json\"\n", 0, true));
  EXPECT_EQ(j["payload"], "not \"json\"\n");
  EXPECT_EQ(j["retain"], true);
  j = parse(message_frame("t", std::string("\x80\x81", 2), 2, false));
  EXPECT_EQ(j["payload_b64"], "gIE=");
  EXPECT_FALSE(j.contains("payload"));
  j = parse(message_frame("t", "", 0, false));
  EXPECT_EQ(j["payload"], "");
  // Found by fuzz_protocol: payloads that accept() takes for JSON but that cannot be embedded.
  j = parse(message_frame("t", std::string("1\0x", 3), 0, false));
  EXPECT_EQ(j["payload"], std::string("1\0x", 3));
  j = parse(message_frame("t", "\xEF\xBB\xBF[1]", 0, false));
  EXPECT_EQ(j["payload"], "\xEF\xBB\xBF[1]");
  // Nested deeper than a request may be: a string, which every client's parser can read.
  const std::string deep = std::string(200, '[') + std::string(200, ']');
  j = parse(message_frame("t", deep, 0, false));
  EXPECT_EQ(j["payload"], deep);
  j = parse(message_frame("quote\"topic", "{\"a\":1}", 0, false));
  EXPECT_EQ(j["topic"], "quote\"topic");
  EXPECT_EQ(j["payload"]["a"], 1);
}

TEST(MqttProtocolTest, ReplyFrames) {
  EXPECT_EQ(json::parse(ack_frame("a1").payload()), json::parse(R"({"type":"ack","id":"a1"})"));
  EXPECT_EQ(json::parse(error_frame(json(3), "forbidden", "no").payload()),
            json::parse(R"({"type":"error","id":3,"code":"forbidden","message":"no"})"));
  EXPECT_FALSE(json::parse(error_frame(std::nullopt, "bad_request", "x").payload()).contains("id"));
  EXPECT_EQ(json::parse(pong_frame(json("p")).payload()),
            json::parse(R"({"type":"pong","id":"p"})"));
  EXPECT_EQ(json::parse(status_frame(false).payload()),
            json::parse(R"({"type":"status","upstream":"down"})"));
}

}  // namespace
}  // namespace wsbridge::mqtt
