#include "fallback/fallback_transport.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "fallback/records.hpp"
#include "fallback/sse_events.hpp"

namespace wsbridge::fallback {

namespace {

// tick() comes about once a second, never exactly: a heartbeat due within this is sent now, not
// a whole tick late.
constexpr auto kTickSlack = std::chrono::milliseconds(250);
// What an SSE event or a long-polling record adds to a message's payload, about ("id: N\n",
// "data:" lines, the blank line; a record's type and length).
constexpr std::size_t kEventOverhead = 48;

}  // namespace

FallbackTransport::FallbackTransport(FallbackHost& host, std::uint64_t connection, std::string peer,
                                     std::string token, const Settings& settings, CarrierKind kind)
    : host_(host),
      connection_(connection),
      peer_(std::move(peer)),
      token_(std::move(token)),
      settings_(settings),
      sent_(settings.resume_buffer_bytes),
      carrier_kind_(kind),
      token_expires_at_(
          SteadyClock::now() + settings.token_lifetime -
          std::min<std::chrono::seconds>(settings.token_lifetime / 2, std::chrono::seconds(5))) {}

FallbackTransport::~FallbackTransport() {
  end_carrier();
  // POSTs still held when the session ends with no close decided (nothing carried it within
  // reconnect_window): the client is gone, as a WebSocket peer that went away.
  answer_held_posts(410, close_control(1001, "the session ended"));
}

void FallbackTransport::answer_held_posts(unsigned status, const std::string& json) {
  for (HeldPost& post : held_posts_) post.reply->answer(status, "application/json", json);
  held_posts_.clear();
}

void FallbackTransport::drop_abandoned_posts() {
  std::erase_if(held_posts_, [](const HeldPost& post) { return post.reply->abandoned(); });
}

std::string_view FallbackTransport::kind() const {
  return carrier_kind_ == CarrierKind::kStream ? "sse" : "polling";
}

void FallbackTransport::want_write() {
  // (Also for held POSTs: a close decided meanwhile answers them at once, see run_fallback_turns.)
  if ((carrier_ != nullptr && carrier_->has_room()) || !held_posts_.empty()) {
    host_.schedule_turn(connection_);
  }
}

void FallbackTransport::set_reading(bool on) {
  reading_ = on;
  if (on && !held_posts_.empty()) host_.schedule_turn(connection_);
}

std::string FallbackTransport::welcome_json() const {
  return nlohmann::json{{"type", "welcome"},
                        {"session", token_},
                        {"conn", connection_},
                        {"transport", carrier_kind_ == CarrierKind::kStream ? "sse" : "polling"},
                        {"last", sent_.last_id()},
                        {"heartbeat", settings_.heartbeat.count()},
                        {"poll_timeout", settings_.poll_timeout.count()},
                        {"max_post_bytes", settings_.max_post_bytes}}
      .dump();
}

void FallbackTransport::append_control(std::string& out, const std::string& json) const {
  if (carrier_kind_ == CarrierKind::kStream) {
    append_control_event(out, written_id_, json);
  } else {
    append_record(out, 'c', json);
  }
}

void FallbackTransport::append_message(std::string& out, std::uint64_t id, const Frame& frame) {
  written_id_ = id;
  if (carrier_kind_ == CarrierKind::kStream) {
    // The event's body is built once per message, whatever the number of sessions it goes to.
    append_event_id(out, id);
    out.append(sse_event_body(frame));
  } else {
    append_record(out, frame.is_binary() ? 'b' : 't', frame.payload());
  }
}

void FallbackTransport::attach(std::shared_ptr<ResponseChannel> channel, CarrierKind kind,
                               std::uint64_t last, bool opened) {
  end_carrier();
  carrier_ = std::move(channel);
  carrier_kind_ = kind;
  carried_since_ = last_heartbeat_ = SteadyClock::now();
  stream_bytes_ = 0;
  if (closed_) {  // (never: a closed session ends in its turn)
    end_carrier();
    return;
  }
  // A client cannot have what was never sent: an id past the last is the last.
  last = std::min(last, sent_.last_id());
  acknowledged_ = std::max(acknowledged_, last);
  sent_.acknowledge(last);  // the client has them all: none to keep
  std::uint64_t next = last + 1;
  // The welcome's (and a lost notice's) event id is where the client stands, not the last id sent:
  // an EventSource that breaks right after it resumes from there and misses nothing.
  written_id_ = last;
  std::string out;
  if (kind == CarrierKind::kPoll) append_first_line(out, std::max(next, sent_.first_kept()));
  if (kind == CarrierKind::kStream || opened) append_control(out, welcome_json());
  const bool lost = next < sent_.first_kept();
  if (lost) {
    written_id_ = sent_.first_kept() - 1;  // told lost: resuming after it is past them
    append_control(
        out,
        nlohmann::json{{"type", "lost"}, {"from", next}, {"to", sent_.first_kept() - 1}}.dump());
    next = sent_.first_kept();
  }
  bool replayed = false;
  for (; next <= sent_.last_id(); ++next) {
    append_message(out, next, *sent_.find(next));
    replayed = true;
  }
  deliver(out, replayed || opened || lost);
}

void FallbackTransport::deliver(std::string& out, bool wrote_message) {
  if (carrier_ == nullptr) return;
  stream_bytes_ += out.size();
  if (carrier_kind_ == CarrierKind::kPoll) {
    if (!wrote_message) {
      carrier_->append(out);  // (held until the answer ends: its first line)
      return;
    }
    carrier_->append(out);
    carrier_->end(200, "application/octet-stream");
    carrier_.reset();
    uncarried_since_ = SteadyClock::now();
    return;
  }
  if (stream_bytes_ >= settings_.sse_byte_limit) {
    append_control(out, R"({"type":"reconnect"})");
    carrier_->append(out);
    end_carrier();
    return;
  }
  if (!out.empty() && !carrier_->append(out)) carrier_gone(carrier_.get());
}

WriteTurn FallbackTransport::write(FrameQueue& queue, std::size_t budget) {
  WriteTurn turn;
  if (carrier_ == nullptr || !carrier_->has_room()) return turn;
  std::string out;
  // (Sized for the frames at hand, as the first one is, so that it is not copied as it grows.)
  if (!queue.empty()) {
    out.reserve(std::min(queue.size() * (queue.front().size() + kEventOverhead), kChannelCapacity));
  }
  std::size_t taken = 0;
  // A stream takes no more than its byte limit allows: the rest waits for the next stream.
  const bool stream = carrier_kind_ == CarrierKind::kStream;
  while (!queue.empty() && taken < budget && out.size() < kChannelCapacity &&
         (!stream || stream_bytes_ + out.size() < settings_.sse_byte_limit)) {
    Frame frame = std::move(queue.front());
    queue.pop_front();
    taken += frame.size();
    turn.payload_done += frame.size();
    ++turn.frames_done;
    const std::uint64_t id = sent_.add(frame);
    append_message(out, id, frame);
  }
  turn.dequeued_bytes = taken;
  turn.peer_took_bytes = turn.frames_done > 0;
  deliver(out, turn.frames_done > 0);
  return turn;
}

void FallbackTransport::close(std::uint16_t code, std::string_view reason) {
  closed_ = true;
  if (carrier_ == nullptr) return;
  close_delivered_ = true;
  std::string out;
  append_control(out, close_control(code, reason));
  carrier_->append(out);
  carrier_->end(200, carrier_kind_ == CarrierKind::kPoll ? "application/octet-stream" : "");
  carrier_.reset();
}

void FallbackTransport::drop_within(std::chrono::seconds grace) {
  const auto at = SteadyClock::now() + grace;
  if (!end_at_ || at < *end_at_) end_at_ = at;
  if (grace.count() == 0) host_.schedule_turn(connection_);
}

void FallbackTransport::end_carrier() {
  if (carrier_ == nullptr) return;
  if (carrier_kind_ == CarrierKind::kPoll) {
    carrier_->end(200, "application/octet-stream");  // (its first line went at attach)
  } else {
    carrier_->end();
  }
  carrier_.reset();
  uncarried_since_ = SteadyClock::now();
}

FallbackTransport::Handover FallbackTransport::hand_over(std::uint64_t last) {
  Handover handover;
  // (A poll may have acknowledged more than the upgrade, sent before its answer came, says.)
  last = std::min(std::max(last, acknowledged_), sent_.last_id());
  std::uint64_t next = last + 1;
  if (next < sent_.first_kept()) {
    handover.lost = std::make_pair(next, sent_.first_kept() - 1);
    next = sent_.first_kept();
  }
  for (; next <= sent_.last_id(); ++next) handover.unsent.push_back(*sent_.find(next));
  handover.last_id = sent_.last_id();
  if (carrier_ != nullptr) {
    std::string out;
    append_control(out, R"({"type":"moved","transport":"websocket"})");
    carrier_->append(out);
  }
  end_carrier();
  return handover;
}

void FallbackTransport::carrier_gone(const ResponseChannel* channel) {
  if (carrier_ == nullptr || carrier_.get() != channel) return;  // (a former carrier's news)
  carrier_.reset();
  uncarried_since_ = SteadyClock::now();
}

bool FallbackTransport::tick(SteadyClock::time_point now) {
  if (end_at_ && now >= *end_at_) return true;
  drop_abandoned_posts();  // (also told by the carrier's wake; this in case none came)
  if (carrier_ == nullptr) return now - uncarried_since_ >= settings_.reconnect_window;
  if (carrier_->abandoned()) {
    carrier_gone(carrier_.get());
    return false;
  }
  if (carrier_kind_ == CarrierKind::kPoll) {
    if (now - carried_since_ >= settings_.poll_timeout) end_carrier();
  } else if (now - last_heartbeat_ + kTickSlack >= settings_.heartbeat) {
    last_heartbeat_ = now;
    stream_bytes_ += kHeartbeat.size();
    if (!carrier_->append(kHeartbeat)) carrier_gone(carrier_.get());
  }
  return false;
}

}  // namespace wsbridge::fallback
