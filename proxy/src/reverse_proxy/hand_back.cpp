// Handing a connection back to lws when a request on it is not the proxy's (a route, /healthz,
// a fallback transport), with every byte the proxy read that is not its own: the shard has lws
// read them through the recv guard as if they came from the socket (mask_guard::replay_first),
// so lws 4.1.6 reads them as any client's: one head at a time, bodies too, and the rest of a head
// TCP cut short from the socket.
#include "reverse_proxy/client_connection.hpp"

#include "stream/lws_stream_client.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge::reverse_proxy {

void ClientConnection::hand_back() {
  if (!client_) return;
  const auto now = std::chrono::steady_clock::now();
  if (phase_ != Phase::kHandingBack) {
    phase_ = Phase::kHandingBack;
    phase_since_ = now;
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
