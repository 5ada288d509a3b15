// The admin API (proxy/src/admin/admin_api.cpp) against a fake session directory.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "admin/admin_api.hpp"

namespace wsbridge {
namespace {

class FakeDirectory final : public SessionDirectory {
 public:
  std::vector<SessionInfo> list_sessions() const override { return sessions; }
  std::size_t push(const PushTarget& target, const Frame& frame) override {
    pushes.emplace_back(target, frame);
    if (target.kind == PushTarget::Kind::kConnection) return target.connection == 1 ? 1 : 0;
    return 2;
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
  auto r = handle_admin_api("POST", "/api/v1/push", R"({"user":"alice","data":{"a":1}})", d);
  EXPECT_EQ(r.status, 200);
  ASSERT_EQ(d.pushes.size(), 1u);
  EXPECT_EQ(d.pushes[0].first.kind, PushTarget::Kind::kUser);
  EXPECT_EQ(d.pushes[0].second.payload(), R"({"a":1})");
  EXPECT_EQ(handle_admin_api("POST", "/api/v1/push", R"({"connection":2,"data":"x"})", d).status,
            404);
  EXPECT_EQ(handle_admin_api("POST", "/api/v1/push", "{", d).status, 400);
  EXPECT_EQ(handle_admin_api("POST", "/api/v1/push",
                             R"({"route":"/r","data":"%%%","encoding":"base64"})", d)
                .status,
            400);
  r = handle_admin_api("GET", "/api/v1/connections", "", d);
  EXPECT_EQ(r.status, 200);
  auto list = nlohmann::json::parse(r.body)["connections"];
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["user"], "alice");
  EXPECT_EQ(list[0]["bytes_out"], 4);
  EXPECT_EQ(
      handle_admin_api("DELETE", "/api/v1/connections/1?code=4000&reason=go+away", "", d).status,
      200);
  ASSERT_EQ(d.closes.size(), 1u);
  EXPECT_EQ(d.closes[0].code, 4000);
  EXPECT_EQ(d.closes[0].reason, "go away");
  EXPECT_EQ(handle_admin_api("DELETE", "/api/v1/connections/1?code=1006", "", d).status, 400);
  EXPECT_EQ(handle_admin_api("DELETE", "/api/v1/connections/5", "", d).status, 404);
  EXPECT_EQ(handle_admin_api("PUT", "/api/v1/connections", "", d).status, 405);
  EXPECT_EQ(handle_admin_api("GET", "/api/v1/nothing", "", d).status, 404);
}

}  // namespace
}  // namespace wsbridge
