// Who gets the retained messages a broker sends because of one SUBSCRIBE.
//
// A broker answers every SUBSCRIBE with its SUBACK followed by the filter's retained messages
// (retain=1), also when the subscription already existed (MQTT 3.1.1 3.8.4; MQTT 5 with Retain
// Handling 0). On a broker connection shared by many sessions those copies are meant only for the
// sessions whose subscription caused that SUBSCRIBE: the others already have those values (or
// got them live). A group collects the sessions that wait for the copies of the next SUBACK of a
// broker filter ("pending"); the SUBACK opens it, and it takes copies until no copy came for
// kQuiet. Within a group a session gets each topic at most once, and not at all once it got the
// topic live: a copy can never undo a newer value, nor repeat one.
//
// Worker thread only (the upstream's), like the rest of its state.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "wsbridge/plugin.hpp"

namespace wsbridge::mqtt {

class RetainRounds {
 public:
  using Clock = std::chrono::steady_clock;
  // Copies follow their SUBACK back to back; a gap this long means the broker is done.
  static constexpr std::chrono::milliseconds kQuiet{1000};

  // `id` waits for the copies of the next SUBACK of `filter` (broker filter).
  void wait(const std::string& filter, ConnectionId id);
  // The sessions waiting for the next SUBACK of `filter`.
  std::vector<ConnectionId> waiting(const std::string& filter) const;
  // The SUBACK of `filter` arrived: the sessions waiting for it take its copies from now on.
  void acked(const std::string& filter, Clock::time_point now);
  // The sessions waiting for the next SUBACK of `filter`, which will bring no copies (an MQTT 5
  // SUBSCRIBE with Retain Handling 1): they leave, and the caller serves them otherwise.
  std::vector<ConnectionId> take_waiting(const std::string& filter);
  // `id` joins the copies of `filter` still arriving (if any), having `had` already.
  void join_open(const std::string& filter, ConnectionId id, const std::vector<std::string>& had,
                 Clock::time_point now);
  // Every copy for `filter` has arrived (MQTT 5: its fence was answered).
  void close(const std::string& filter);
  // `id` no longer subscribes `filter`.
  void leave(const std::string& filter, ConnectionId id);
  // A live message on `topic` reached every subscriber: a later copy would be older or the same.
  void live(std::string_view topic);

  struct CopyTargets {
    std::vector<ConnectionId> deliver;  // get the copy (each once)
    // Every session of a group matching the topic, open or waiting for its SUBACK: on MQTT 5
    // (where retain=1 may also be live) the others take the message as live.
    std::vector<ConnectionId> involved;
  };
  // A retained copy on `topic` arrived.
  CopyTargets copy(std::string_view topic, Clock::time_point now);
  // The broker connection is gone: no more copies will come for the open groups.
  void connection_lost();
  bool empty() const { return groups_.empty(); }

 private:
  struct Group {
    std::string filter;
    bool open = false;
    Clock::time_point until;
    // A member has a topic when the topic was marked after the member joined: marks and joins
    // share one counter, so a late joiner does not inherit its group's earlier marks.
    std::unordered_map<ConnectionId, std::uint64_t> members;  // id -> join mark
    std::unordered_map<std::string, std::uint64_t> had;       // topic -> latest mark
  };
  Group* pending(const std::string& filter);
  void prune(Clock::time_point now);

  std::list<Group> groups_;
  std::uint64_t mark_ = 0;
};

}  // namespace wsbridge::mqtt
