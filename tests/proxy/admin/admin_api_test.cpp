// The admin API (proxy/src/admin/admin_api.cpp) against a fake session directory.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "admin/admin_api.hpp"

namespace wsbridge {
namespace {

class FakeDirectory final : public SessionDirectory {
 public:
  std::vector<SessionInfo> list_sessions() const override { return sessions; }
  PushOutcome push(const PushTarget& target, const Frame& frame) override {
    pushes.emplace_back(target, frame);
    if (target.kind == PushTarget::Kind::kConnection) {
      if (target.connection == 3) return {0, 1};  // its queue is full
      return {target.connection == 1 ? 1u : 0u, 0};
    }
    if (target.kind == PushTarget::Kind::kRoute) return {2, 1};
    return {2, 0};
  }
  bool close_session(ConnectionId id, std::uint16_t code, const std::string& reason) override {
    closes.push_back({id, code, reason});
    return id == 1;
  }
  struct Close {
    ConnectionId id;
    std::uint16_t code;
    std::string reason;
  };
  std::vector<SessionInfo> sessions = {{1, "alice", "/r", "127.0.0.1", 1.7e9, 1, 2, 3, 4}};
  std::vector<std::pair<PushTarget, Frame>> pushes;
  std::vector<Close> closes;
};

TEST(AdminApiTest, PushListAndCloseWithErrors) {
  FakeDirectory d;
  const AdminContext ctx{d, "me", nullptr, {}};
  auto r = handle_admin_api("POST", "/api/v1/push", R"({"user":"alice","data":{"a":1}})", ctx);
  EXPECT_EQ(r.status, 200);
  ASSERT_EQ(d.pushes.size(), 1u);
  EXPECT_EQ(d.pushes[0].first.kind, PushTarget::Kind::kUser);
  EXPECT_EQ(d.pushes[0].second.payload(), R"({"a":1})");
  EXPECT_EQ(handle_admin_api("POST", "/api/v1/push", R"({"connection":2,"data":"x"})", ctx).status,
            404);
  // A connection whose queue had no room did not get it: never "delivered".
  r = handle_admin_api("POST", "/api/v1/push", R"({"connection":3,"data":"x"})", ctx);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"], "queue_full");
  r = handle_admin_api("POST", "/api/v1/push", R"({"route":"/r","data":"x"})", ctx);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(nlohmann::json::parse(r.body), (nlohmann::json{{"delivered", 2}, {"queue_full", 1}}));
  EXPECT_EQ(handle_admin_api("POST", "/api/v1/push", "{", ctx).status, 400);
  EXPECT_EQ(handle_admin_api("POST", "/api/v1/push",
                             R"({"route":"/r","data":"%%%","encoding":"base64"})", ctx)
                .status,
            400);
  r = handle_admin_api("GET", "/api/v1/connections", "", ctx);
  EXPECT_EQ(r.status, 200);
  auto list = nlohmann::json::parse(r.body)["connections"];
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["user"], "alice");
  EXPECT_EQ(list[0]["bytes_out"], 4);
  EXPECT_EQ(
      handle_admin_api("DELETE", "/api/v1/connections/1?code=4000&reason=go+away", "", ctx).status,
      200);
  ASSERT_EQ(d.closes.size(), 1u);
  EXPECT_EQ(d.closes[0].code, 4000);
  EXPECT_EQ(d.closes[0].reason, "go away");
  EXPECT_EQ(handle_admin_api("DELETE", "/api/v1/connections/1?code=1006", "", ctx).status, 400);
  // A reason a client would fail the connection on (RFC 6455 8.1) is refused, not sent.
  EXPECT_EQ(handle_admin_api("DELETE", "/api/v1/connections/1?reason=\xff\xfe", "", ctx).status,
            400);
  // (lws decodes the query before this sees it: "%FF%FE" arrives as these bytes.)
  EXPECT_EQ(handle_admin_api("DELETE", "/api/v1/connections/5", "", ctx).status, 404);
  EXPECT_EQ(handle_admin_api("PUT", "/api/v1/connections", "", ctx).status, 405);
  EXPECT_EQ(handle_admin_api("GET", "/api/v1/nothing", "", ctx).status, 404);
}

class FakeCluster final : public ClusterLink {
 public:
  bool push_everywhere(const nlohmann::json& request) override {
    everywhere.push_back(request);
    return up;
  }
  Forwarded push_to(const std::string& instance, const nlohmann::json& request) override {
    if (!up) return Forwarded::kChannelDown;
    if (!instances.contains(instance)) return Forwarded::kNotUp;
    to.emplace_back(instance, request);
    return Forwarded::kSent;
  }
  Forwarded close_on(const std::string& instance, ConnectionId id, std::uint16_t code,
                     const std::string& reason) override {
    if (!up) return Forwarded::kChannelDown;
    if (!instances.contains(instance)) return Forwarded::kNotUp;
    closes.push_back(instance + " " + std::to_string(id) + " " + std::to_string(code) + " " +
                     reason);
    return Forwarded::kSent;
  }
  bool up = true;                        // false: the control channel is down
  std::set<std::string> instances{"b"};  // the other instances up
  bool gather_sessions(std::function<void(ClusterListing)> done) override {
    if (!up) return false;
    pending = std::move(done);
    return true;
  }
  std::vector<nlohmann::json> everywhere;
  std::vector<std::pair<std::string, nlohmann::json>> to;
  std::vector<std::string> closes;
  std::function<void(ClusterListing)> pending;
};

TEST(AdminApiTest, ConnectionIdsNameTheirInstance) {
  EXPECT_EQ(format_connection_id(42, "web-1"), "42@web-1");
  auto id = parse_connection_id("42@web-1:7", "me");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->number, 42u);
  EXPECT_EQ(id->instance, "web-1:7");
  id = parse_connection_id("7", "me");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->instance, "me");
  for (const char* bad : {"", "@me", "0@me", "1@", "1@a/b", "1@a+", "x@me", "1@me@me", "-1",
                          "1 @me", "99999999999999999999@me"}) {
    EXPECT_FALSE(parse_connection_id(bad, "me")) << bad;
  }
  FakeDirectory d;
  const AdminContext ctx{d, "me", nullptr, {}};
  const auto list =
      nlohmann::json::parse(handle_admin_api("GET", "/api/v1/connections", "", ctx).body);
  EXPECT_EQ(list["connections"][0]["id"], "1@me");
  EXPECT_EQ(list["connections"][0]["instance"], "me");
  // This instance's by either form; another's is unknown without [cluster].
  EXPECT_EQ(
      handle_admin_api("POST", "/api/v1/push", R"({"connection":"1@me","data":1})", ctx).status,
      200);
  EXPECT_EQ(
      handle_admin_api("POST", "/api/v1/push", R"({"connection":"1@other","data":1})", ctx).status,
      404);
  EXPECT_EQ(handle_admin_api("DELETE", "/api/v1/connections/1@other", "", ctx).status, 404);
  EXPECT_EQ(handle_admin_api("DELETE", "/api/v1/connections/1@me?code=1012", "", ctx).status, 200);
  EXPECT_EQ(d.closes.back().code, 1012);
  // Alone, a cluster-wide list is this instance's, at once.
  auto r = handle_admin_api("GET", "/api/v1/connections?scope=cluster", "", ctx);
  EXPECT_FALSE(r.later);
  EXPECT_EQ(nlohmann::json::parse(r.body)["instances"]["answered"], nlohmann::json({"me"}));
  EXPECT_EQ(handle_admin_api("GET", "/api/v1/connections?scope=world", "", ctx).status, 400);
  EXPECT_EQ(handle_admin_api("POST", "/api/v1/drain", "", ctx).status, 404);  // not offered
}

TEST(AdminApiTest, WithAClusterPushesAndClosesReachTheOtherInstances) {
  FakeDirectory d;
  FakeCluster cluster;
  int drains = 0;
  const AdminContext ctx{d, "me", &cluster, [&] { ++drains; }};
  auto r = handle_admin_api("POST", "/api/v1/push", R"({"user":"alice","data":"hi"})", ctx);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(nlohmann::json::parse(r.body)["delivered"], 2);  // this instance's
  ASSERT_EQ(cluster.everywhere.size(), 1u);
  EXPECT_EQ(cluster.everywhere[0]["user"], "alice");
  // By id: only the owner hears of it, and this instance delivers nothing.
  r = handle_admin_api("POST", "/api/v1/push", R"({"connection":"5@b","data":"x"})", ctx);
  EXPECT_EQ(r.status, 202);
  ASSERT_EQ(cluster.to.size(), 1u);
  EXPECT_EQ(cluster.to[0].first, "b");
  EXPECT_EQ(d.pushes.size(), 1u);
  EXPECT_EQ(cluster.everywhere.size(), 1u);
  // Refused requests go nowhere.
  EXPECT_EQ(handle_admin_api("POST", "/api/v1/push", R"({"user":"alice"})", ctx).status, 400);
  EXPECT_EQ(cluster.everywhere.size(), 1u);
  EXPECT_EQ(
      handle_admin_api("DELETE", "/api/v1/connections/5@b?code=4001&reason=bye", "", ctx).status,
      202);
  EXPECT_EQ(cluster.closes, std::vector<std::string>{"b 5 4001 bye"});
  // The list waits for the others.
  r = handle_admin_api("GET", "/api/v1/connections?scope=cluster", "", ctx);
  ASSERT_TRUE(r.later);
  std::optional<AdminReply> answer;
  r.later([&](AdminReply a) { answer = std::move(a); });
  EXPECT_FALSE(answer);
  ASSERT_TRUE(cluster.pending);
  ClusterListing others;
  others.connections.push_back({{"id", "9@b"}});
  others.answered = {"b"};
  others.missing = {"c"};
  cluster.pending(std::move(others));
  ASSERT_TRUE(answer);
  const auto doc = nlohmann::json::parse(answer->body);
  ASSERT_EQ(doc["connections"].size(), 2u);
  EXPECT_EQ(doc["connections"][1]["id"], "9@b");
  EXPECT_EQ(doc["instances"]["answered"], nlohmann::json({"me", "b"}));
  EXPECT_EQ(doc["instances"]["missing"], nlohmann::json({"c"}));
  EXPECT_EQ(handle_admin_api("POST", "/api/v1/drain", "", ctx).status, 202);
  EXPECT_EQ(drains, 1);
  EXPECT_EQ(handle_admin_api("GET", "/api/v1/drain", "", ctx).status, 405);
}

// With the control channel down, nothing reaches the other instances, and the answer says so
// (before: 202 "forwarded_to" and "cluster": true, the failure only in the log).
TEST(AdminApiTest, WithTheControlChannelDownForwardingIsReportedFailed) {
  FakeDirectory d;
  FakeCluster cluster;
  cluster.up = false;
  const AdminContext ctx{d, "me", &cluster, nullptr};
  auto r = handle_admin_api("POST", "/api/v1/push", R"({"connection":"5@b","data":"x"})", ctx);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"], "cluster_unavailable");
  EXPECT_EQ(handle_admin_api("DELETE", "/api/v1/connections/5@b", "", ctx).status, 503);
  r = handle_admin_api("POST", "/api/v1/push", R"({"user":"alice","data":"hi"})", ctx);
  EXPECT_EQ(r.status, 200);  // this instance's were delivered
  EXPECT_EQ(nlohmann::json::parse(r.body)["cluster"], false);
  // A cluster-wide list of this instance alone read as a healthy cluster of one.
  r = handle_admin_api("GET", "/api/v1/connections?scope=cluster", "", ctx);
  ASSERT_TRUE(r.later);
  std::optional<AdminReply> answer;
  r.later([&](AdminReply a) { answer = std::move(a); });
  ASSERT_TRUE(answer) << "answered at once";
  EXPECT_EQ(answer->status, 503);
  EXPECT_EQ(nlohmann::json::parse(answer->body)["error"], "cluster_unavailable");
}

// A push to, or a close of, a connection of an instance that is not up: 404, not 202
// "forwarded_to" a name nobody answers to.
TEST(AdminApiTest, RequestsForAnInstanceThatIsNotUpAreNotFound) {
  FakeDirectory d;
  FakeCluster cluster;
  const AdminContext ctx{d, "me", &cluster, nullptr};
  auto r = handle_admin_api("POST", "/api/v1/push", R"({"connection":"5@ghost","data":"x"})", ctx);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"], "not_found");
  EXPECT_NE(r.body.find("5@ghost"), std::string::npos) << r.body;
  EXPECT_EQ(handle_admin_api("DELETE", "/api/v1/connections/5@ghost", "", ctx).status, 404);
  EXPECT_TRUE(cluster.to.empty());
  EXPECT_TRUE(cluster.closes.empty());
}

TEST(AdminApiTest, AForwardedPushIsDeliveredHereOnly) {
  FakeDirectory d;
  apply_forwarded_push(nlohmann::json{{"route", "/r"}, {"data", "x"}}, d, "me");
  apply_forwarded_push(nlohmann::json{{"connection", "1@me"}, {"data", "y"}}, d, "me");
  apply_forwarded_push(nlohmann::json{{"connection", "1@other"}, {"data", "z"}}, d, "me");
  apply_forwarded_push(nlohmann::json{{"user", 5}, {"data", "bad"}}, d, "me");
  ASSERT_EQ(d.pushes.size(), 2u);
  EXPECT_EQ(d.pushes[0].first.kind, PushTarget::Kind::kRoute);
  EXPECT_EQ(d.pushes[1].second.payload(), "y");
}

}  // namespace
}  // namespace wsbridge
