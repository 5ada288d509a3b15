#include "upstream_impl.hpp"

namespace wsbridge::mqtt {

// ---- publishing --------------------------------------------------------------------------------

void Upstream::Impl::submit_publish(PendingPublish p) {
  if (link == Link::kUp && p.qos > 0 &&
      (publishing >= config.publish_window || !buffered.empty())) {
    buffered.push_back(std::move(p));  // behind the others, sent as acks free the window
  } else if (link == Link::kUp) {
    do_publish(std::move(p));
  } else if (p.qos == 0) {
    fail_publish(p, "upstream_unavailable", "the broker is unreachable; QoS 0 is not buffered");
  } else if (buffered.size() < config.max_buffered_publishes) {
    buffered.push_back(std::move(p));  // answered once the broker takes it
  } else {
    fail_publish(p, "upstream_unavailable",
                 "the broker is unreachable and the publish buffer (" +
                     std::to_string(config.max_buffered_publishes) + ") is full");
  }
}

void Upstream::Impl::do_publish(PendingPublish p) {
  if (p.qos == 0) {
    try {
      client->publish(p.topic, p.payload.data(), p.payload.size(), 0, p.retain);
      if (p.id) reply(p.session, ack_frame(*p.id));
    } catch (const std::exception& e) {
      fail_publish(p, "upstream_unavailable", std::string("publish failed: ") + e.what());
    }
    return;
  }
  const std::uint64_t seq = next_seq++;
  auto& action = std::get<PublishAction>(
      actions.emplace(seq, PublishAction{std::move(p), generation}).first->second);
  const PendingPublish& q = action.publish;
  ++publishing;
  try {
    client->publish(q.topic, q.payload.data(), q.payload.size(), q.qos, q.retain, seq_context(seq),
                    *this);
  } catch (const std::exception& e) {
    PendingPublish back = std::move(action.publish);
    actions.erase(seq);
    --publishing;
    if (link != Link::kUp) {
      buffered.push_front(std::move(back));
    } else {
      fail_publish(back, "upstream_unavailable", std::string("publish failed: ") + e.what());
    }
  }
}

void Upstream::Impl::fail_publish(const PendingPublish& p, std::string_view code,
                                  const std::string& message) {
  auto it = sessions.find(p.session);
  if (it == sessions.end()) return;
  if (it->second.raw()) {
    // A raw route has no error frames: say it with the close code instead of dropping silently.
    it->second.connection->close(CloseCode::kTryAgainLater, message);
  } else {
    it->second.connection->send(error_frame(p.id, code, message));
  }
}

// (A publish that fails while the link is still up is answered and gone; one that fails because
// it went down is put back in front, and the loop stops.)
void Upstream::Impl::flush_buffered() {
  while (!buffered.empty() && link == Link::kUp &&
         (buffered.front().qos == 0 || publishing < config.publish_window)) {
    do_publish(buffered.pop());
  }
}

}  // namespace wsbridge::mqtt
