// Every open session of every shard, for the admin API (which one shard serves): listed, pushed
// to and closed by id, user or route from whichever thread asks. A session is added by its shard
// when it opens and removed when it closes, under one mutex; what is read of it from another
// thread is either immutable once added (its handle, identity, route, start time) or atomic (its
// counters and closing flag). Pushes and closes travel to the owning shard through the session's
// handle, so no shard ever touches another's sessions.
#pragma once

#include <cstddef>
#include <mutex>
#include <unordered_map>

#include "admin/admin_api.hpp"

namespace wsbridge {

struct Session;

class SessionIndex final : public SessionDirectory {
 public:
  // The owning shard's thread.
  void add(const Session& session);
  void remove(ConnectionId id);

  // Any thread.
  std::size_t size() const;
  std::vector<SessionInfo> list_sessions() const override;
  PushOutcome push(const PushTarget& target, const Frame& frame) override;
  bool close_session(ConnectionId id, std::uint16_t code, const std::string& reason) override;

 private:
  mutable std::mutex mutex_;
  std::unordered_map<ConnectionId, const Session*> sessions_;
};

}  // namespace wsbridge
