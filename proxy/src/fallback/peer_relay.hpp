// A fallback request for a session another instance owns (docs/FALLBACK.md, "Several instances"):
// behind a balancer without sticky sessions a poll, a POST or a resumed stream lands on any
// instance, and the one it landed on sends it on to the owner (the token names it) and relays the
// answer into the request's ResponseChannel, as the session's own shard would have written it.
//
// One TCP (or TLS) connection per request, over the core's StreamClient, on the carrier's shard;
// "Connection: close", so the answer ends with the connection. A stream's bytes are relayed as
// they come, and reading from the owner stops while the channel is full.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "fallback/response_channel.hpp"
#include "wsbridge/stream_client.hpp"

namespace wsbridge::fallback {

class PeerRelay final : public StreamHandler {
 public:
  // `request`: the whole HTTP/1.1 request to send to the owner. `silence_limit`: how long the
  // owner has for a whole answer (it answers a poll by poll_timeout), and for each stretch of a
  // stream while the relay reads (it writes a heartbeat every heartbeat); an owner slower than
  // that is stopped or broken: 504, or the end of the stream (its client reconnects).
  PeerRelay(std::shared_ptr<ResponseChannel> channel, std::string request,
            std::chrono::milliseconds silence_limit);
  ~PeerRelay() override;

  void start(StreamEndpoint& endpoint);
  // The carrier wrote (room again) or went away.
  void on_channel_news();
  // Finished (answered, failed, or its carrier left): the owner may drop it.
  bool done() const { return done_; }

  void on_connected() override;
  void on_data(std::string_view bytes) override;
  void on_closed(std::string_view reason) override;
  void on_timer() override;

 private:
  void fail(unsigned status, std::string_view message);
  bool parse_head();
  void finish();

  std::shared_ptr<ResponseChannel> channel_;
  std::string request_;
  std::chrono::milliseconds silence_limit_;
  std::unique_ptr<Stream> stream_;
  std::string head_;  // the owner's answer's head, until it is complete
  bool head_done_ = false;
  bool streaming_ = false;  // an event stream: relayed as it comes
  unsigned status_ = 0;
  std::string content_type_;
  std::optional<std::size_t> content_length_;
  std::string body_;  // a whole answer, until complete
  bool done_ = false;
};

}  // namespace wsbridge::fallback
