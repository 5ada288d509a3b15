#include "server/session_index.hpp"

#include <algorithm>
#include <memory>

#include "session/session.hpp"
#include "wsbridge/fan_out.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge {

void SessionIndex::add(const Session& session) {
  std::lock_guard lock(mutex_);
  sessions_.emplace(session.id, &session);
}

void SessionIndex::remove(ConnectionId id) {
  std::lock_guard lock(mutex_);
  sessions_.erase(id);
}

std::size_t SessionIndex::size() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

std::vector<SessionInfo> SessionIndex::list_sessions() const {
  std::vector<SessionInfo> list;
  {
    std::lock_guard lock(mutex_);  // (held: a session is deleted only after its removal)
    list.reserve(sessions_.size());
    for (const auto& [id, s] : sessions_) {
      const Identity& who = s->handle->identity();
      list.push_back(
          SessionInfo{id, who.user, who.route_path, who.remote_address,
                      std::chrono::duration<double>(s->opened_wall.time_since_epoch()).count(),
                      s->messages_in.load(std::memory_order_relaxed),
                      s->messages_out.load(std::memory_order_relaxed),
                      s->bytes_in.load(std::memory_order_relaxed),
                      s->bytes_out.load(std::memory_order_relaxed)});
    }
  }
  std::sort(list.begin(), list.end(),
            [](const SessionInfo& a, const SessionInfo& b) { return a.id < b.id; });
  return list;
}

PushOutcome SessionIndex::push(const PushTarget& target, const Frame& frame) {
  std::vector<std::shared_ptr<Connection>> targets;
  {
    std::lock_guard lock(mutex_);
    auto take = [&](const Session& s) {
      if (!s.handle->closing()) targets.push_back(s.handle);
    };
    if (target.kind == PushTarget::Kind::kConnection) {
      if (auto it = sessions_.find(target.connection); it != sessions_.end()) take(*it->second);
    } else {
      for (const auto& [id, s] : sessions_) {
        const Identity& who = s->handle->identity();
        if (target.kind == PushTarget::Kind::kUser ? who.user == target.name
                                                   : who.route_path == target.name) {
          take(*s);
        }
      }
    }
  }
  // Outside the lock. A fan-out like the adapters': one hand-off per shard, and a compressed
  // variant built once for all.
  const FanOutResult result = send_to_all(targets, frame);
  return PushOutcome{result.handed - result.dropped, result.dropped};
}

bool SessionIndex::close_session(ConnectionId id, std::uint16_t code, const std::string& reason) {
  std::shared_ptr<ConnectionHandle> handle;
  {
    std::lock_guard lock(mutex_);
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second->handle->closing()) {
      return false;
    }
    handle = it->second->handle;
  }
  WSB_LOG(kInfo) << "conn " << id << " closed by the admin API with " << code;
  handle->close(static_cast<CloseCode>(code), reason);
  return true;
}

}  // namespace wsbridge
