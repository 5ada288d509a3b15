// The Transport of a session carried by the HTTP fallbacks (docs/FALLBACK.md): its messages go
// out as SSE events or poll answers through whichever request carries the session now (a
// ResponseChannel, possibly written by another shard), numbered so that a new request resumes
// where the last one broke; its client's messages come in POSTs, numbered so that a retried POST
// is applied once. Between requests nothing carries it: frames wait in the session's queue under
// its usual limits, and after the reconnect window the session ends.
//
// It lives on the session's shard; the shard drives it through FallbackHost (its write turns,
// its end) and tick() (heartbeats, poll timeouts, the reconnect window).
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fallback/fallback_settings.hpp"
#include "fallback/response_channel.hpp"
#include "fallback/resume_buffer.hpp"
#include "session/transport.hpp"

namespace wsbridge::fallback {

using SteadyClock = std::chrono::steady_clock;

// What the owning shard does for its fallback transports.
class FallbackHost {
 public:
  // A write turn for the session soon (from the loop, outside any lws callback of it).
  virtual void schedule_turn(std::uint64_t connection) = 0;

 protected:
  ~FallbackHost() = default;
};

enum class CarrierKind : std::uint8_t { kStream, kPoll };

// A client's POST held while the session's reading is paused.
struct HeldPost {
  std::string body;
  std::shared_ptr<ResponseChannel> reply;
};

class FallbackTransport final : public Transport {
 public:
  // `kind`: what the request that opens it asks for (it attaches right after).
  FallbackTransport(FallbackHost& host, std::uint64_t connection, std::string peer,
                    std::string token, const Settings& settings, CarrierKind kind);
  ~FallbackTransport() override;

  std::string_view kind() const override;
  const std::string& peer_address() const override { return peer_; }
  void want_write() override;
  void set_reading(bool on) override;
  WriteTurn write(FrameQueue& queue, std::size_t budget) override;
  bool mid_frame() const override { return false; }
  bool ping() override { return true; }  // (heartbeats are tick()'s: their own period)
  void close(std::uint16_t code, std::string_view reason) override;
  void drop_within(std::chrono::seconds grace) override;
  int descriptor() const override { return -1; }

  // A request now carries the session, from message `last` + 1; a former one ends. `opened`: the
  // request that opened the session (a poll's answer is then its welcome alone).
  void attach(std::shared_ptr<ResponseChannel> channel, CarrierKind kind, std::uint64_t last,
              bool opened);
  // A WebSocket takes the session over from message `last` + 1: the current carrier is told
  // ({"type":"moved"}) and ends; returned are the messages the client has not had (to go first
  // on the WebSocket), and the ids it lost if the resume buffer no longer has them all.
  struct Handover {
    std::vector<Frame> unsent;
    std::optional<std::pair<std::uint64_t, std::uint64_t>> lost;
    std::uint64_t last_id = 0;  // of the last message sent, the unsent included
  };
  Handover hand_over(std::uint64_t last);

  // The carrier went away (its client, or the channel ended): nothing carries the session now.
  void carrier_gone(const ResponseChannel* channel);

  // Once a second or so. True: end the session (dropped, or nothing carried it for the
  // reconnect window).
  bool tick(SteadyClock::time_point now);
  bool carried() const { return carrier_ != nullptr; }
  // The close went out on a carrier (else the session's shard keeps it for the next request).
  bool close_delivered() const { return close_delivered_; }
  bool reading() const { return reading_; }
  // When the session is to be dropped (drop_within), if it is.
  std::optional<SteadyClock::time_point> end_at() const { return end_at_; }
  // Whether its token is about to expire (token_lifetime), after which no request can name the
  // session: a few seconds before, so that the close still reaches the client (a request with
  // the expired token gets only 404).
  bool token_expired(SteadyClock::time_point now) const { return now >= token_expires_at_; }

  // Upstream sequence numbers: the next one expected.
  std::uint64_t next_sequence() const { return next_sequence_; }
  void advance_sequence(std::uint64_t applied) { next_sequence_ += applied; }
  std::deque<HeldPost>& held_posts() { return held_posts_; }
  // Answers every held POST with `status` and `json`, unapplied, and lets them go.
  void answer_held_posts(unsigned status, const std::string& json);
  // Lets go of held POSTs whose client left (their connection closed): not applied, since no
  // one learns they were, and their bodies no longer counted in post_bytes_in_flight.
  void drop_abandoned_posts();

  bool turn_scheduled = false;  // the host's bookkeeping

 private:
  void append_control(std::string& out, const std::string& json) const;
  void append_message(std::string& out, std::uint64_t id, const Frame& frame);
  // Hands `out` to the carrier; a poll's answer, or a stream past its byte limit, ends there.
  void deliver(std::string& out, bool wrote_message);
  void end_carrier();
  std::string welcome_json() const;

  FallbackHost& host_;
  const std::uint64_t connection_;
  const std::string peer_;
  const std::string token_;
  const Settings& settings_;  // the session's configuration outlives it
  ResumeBuffer sent_;
  std::shared_ptr<ResponseChannel> carrier_;
  CarrierKind carrier_kind_ = CarrierKind::kStream;
  SteadyClock::time_point carried_since_{};
  SteadyClock::time_point last_heartbeat_{};
  SteadyClock::time_point uncarried_since_ = SteadyClock::now();
  // When it is closed for its token's expiry (token_expired).
  SteadyClock::time_point token_expires_at_;
  std::size_t stream_bytes_ = 0;    // written on the current stream
  std::uint64_t acknowledged_ = 0;  // the highest id a request said its client has
  // The last message id this carrier was given (at attach: the client's resume point): the
  // `id:` of an SSE control event, so that resuming from it skips nothing.
  std::uint64_t written_id_ = 0;
  std::uint64_t next_sequence_ = 1;
  bool reading_ = true;
  bool closed_ = false;
  bool close_delivered_ = false;
  std::optional<SteadyClock::time_point> end_at_;
  std::deque<HeldPost> held_posts_;
};

}  // namespace wsbridge::fallback
