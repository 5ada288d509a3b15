// Handing a connection back to lws when a request on it is not the proxy's (a route, /healthz,
// a fallback transport): what lws 4.1.6 can be given of the bytes the proxy read, and the
// hand-over itself (docs/PROXY.md, "One limit of lws 4.1.6").
#include "reverse_proxy/client_connection.hpp"

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

// Whether lws 4.1.6 can be given `bytes` read from a client as the start of its connection:
// whole heads of requests without a body. A request with a body whose head lws reads from such
// bytes it answers, and then spins in its service loop, the shard lost (whether the body came
// with them or later); a head cut short may be one.
bool lws_can_take(std::string_view bytes) {
  while (!bytes.empty()) {
    const std::size_t end = find_head_end(bytes);
    if (end == std::string_view::npos) return false;
    const auto parsed = parse_request_head(bytes.substr(0, end));
    const auto* head = std::get_if<RequestHead>(&parsed);
    if (head == nullptr || may_have_body(*head)) return false;
    bytes.remove_prefix(end);
  }
  return true;
}

}  // namespace

void ClientConnection::hand_back() {
  if (!client_) return;
  if (!lws_can_take(in_)) {
    // Closed unanswered once the last answer has left: a keep-alive race to browsers, which send
    // the request again on a new connection (docs/PROXY.md, "One limit of lws 4.1.6").
    WSB_LOG(kInfo) << "proxy: " << takeover_.peer
                   << " sent a request with a body (or a head cut short) for wsbridge after a "
                      "proxied one: closing its connection";
    request_done_ = true;
    return finish(false);
  }
  if (phase_ != Phase::kHandingBack) {
    phase_ = Phase::kHandingBack;
    phase_since_ = std::chrono::steady_clock::now();
    client_->pause_reading(true);  // what comes next waits in the socket for lws
    client_paused_ = true;
  } else if (std::chrono::steady_clock::now() - phase_since_ > kHandBackMax) {
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
