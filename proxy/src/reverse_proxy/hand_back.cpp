// Handing a connection back to lws when a request on it is not the proxy's (a route, /healthz,
// a fallback transport): what lws 4.1.6 can be given of the bytes the proxy read, and the
// hand-over itself (docs/PROXY.md, "One limit of lws 4.1.6").
#include "reverse_proxy/client_connection.hpp"

#include <cstdint>

#include "stream/lws_stream_client.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge::reverse_proxy {
namespace {

// As lws reads a request: a body when the head frames one, and for a POST, PUT or PATCH without
// Content-Length (lws 4.1.6 reads up to 100 MiB there).
bool may_have_body(const RequestHead& head) {
  if (head.body == BodyFraming::kChunked) return true;
  if (head.body == BodyFraming::kLength) return head.content_length > 0;
  return head.method == "POST" || head.method == "PUT" || head.method == "PATCH";
}

enum class LwsTake : std::uint8_t { kYes, kNo, kHeadCutShort };

// Whether lws 4.1.6 can be given `bytes` read from a client as the start of its connection:
// whole heads of requests without a body. A request with a body whose head lws reads from such
// bytes it answers, and then spins in its service loop, the shard lost (whether the body came
// with them or later). kHeadCutShort: so far, but the last head has not all come (TCP cut it):
// it may be one with a body. `tail` is set to where it begins.
LwsTake lws_can_take(std::string_view bytes, std::size_t& tail) {
  tail = 0;
  while (tail < bytes.size()) {
    const std::string_view rest = bytes.substr(tail);
    const std::size_t end = find_head_end(rest);
    if (end == std::string_view::npos) {
      return has_bare_line_feed(rest) ? LwsTake::kNo : LwsTake::kHeadCutShort;
    }
    const auto parsed = parse_request_head(rest.substr(0, end));
    const auto* head = std::get_if<RequestHead>(&parsed);
    if (head == nullptr || may_have_body(*head)) return LwsTake::kNo;
    tail += end;
  }
  return LwsTake::kYes;
}

}  // namespace

void ClientConnection::hand_back() {
  if (!client_) return;
  const auto now = std::chrono::steady_clock::now();
  if (phase_ != Phase::kHandingBack) {
    phase_ = Phase::kHandingBack;
    phase_since_ = now;
  }
  std::size_t tail = 0;
  const LwsTake take = lws_can_take(in_, tail);
  if (take == LwsTake::kHeadCutShort && in_.size() - tail <= kMaxHeadBytes &&
      now - phase_since_ < config_timeout()) {
    // Read on until the last head has all come, as lws itself would (on_data comes back here).
    awaiting_head_tail_ = true;
    if (client_paused_) {
      client_->pause_reading(false);
      client_paused_ = false;
    }
    return arm_timer();
  }
  awaiting_head_tail_ = false;
  if (take != LwsTake::kYes) {
    // Closed unanswered once the last answer has left: a keep-alive race to browsers, which send
    // the request again on a new connection (docs/PROXY.md, "One limit of lws 4.1.6").
    WSB_LOG(kInfo) << "proxy: " << takeover_.peer
                   << " sent a request with a body (or a head that never ended) for wsbridge "
                      "after a proxied one: closing its connection";
    request_done_ = true;
    return finish(false);
  }
  if (!client_paused_) {
    client_->pause_reading(true);  // what comes next waits in the socket for lws
    client_paused_ = true;
  }
  if (now - phase_since_ > kHandBackMax) {
    WSB_LOG(kInfo) << "proxy: " << takeover_.peer << " does not read its last response: closing";
    return close_now();
  }
  bool busy = false;
  auto released = LwsStreamClient::instance().release(*client_, busy);
  if (!released) {
    if (busy) return arm_timer();  // the last response is still leaving: again in a moment
    WSB_LOG(kWarn) << "proxy: cannot hand the connection of " << takeover_.peer
                   << " back: closing it";
    return finish(false);
  }
  client_.reset();
  takeover_.http_slot.reset();  // (lws takes the connection back, and counts it anew)
  service_.host().hand_back(released->fd, released->ssl, std::move(in_), takeover_.listener);
  in_.clear();
  phase_ = Phase::kClosing;
  service_.retire(this);
}

}  // namespace wsbridge::reverse_proxy
