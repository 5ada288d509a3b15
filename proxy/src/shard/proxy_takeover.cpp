// Requests for [[proxy]] prefixes (docs/PROXY.md): the shard takes the browser's socket out of
// lws' hands (as for a held upgrade: handshake/upgrade_hold.hpp) and gives it to the reverse
// proxy, which drives it from the next loop turn on; and the proxy gives connections back when
// a request comes that is not its own.
#include "shard/shard_parts.hpp"

#include "handshake/upgrade_hold.hpp"
#include "recv_hook/mask_guard.hpp"
#include "tls/session_handover.hpp"

namespace wsbridge {

int Shard::take_over_for_proxy(lws* wsi, std::string head, std::optional<std::string> bearer) {
  const int fd = lws_get_socket_fd(wsi);
  if (head.empty()) {
    // The recv hook stopped following this connection's heads (after an earlier request body
    // lws read, or a pipeline longer than it keeps): the head is not known as it came. Closing
    // before any answer makes a browser send the request again on a new connection (as after a
    // keep-alive race).
    WSB_LOG(kInfo) << "proxy: a request from " << peer_address(wsi)
                   << " whose head is not known as it came (after a request body or a long "
                      "pipeline on the same connection): closing it";
    return -1;
  }
  const auto listener = listener_index(lws_get_vhost(wsi));
  if (!listener) return -1;  // (never: the admin vhost is excluded)
  // Requests pipelined behind this one that lws holds unread (handed back to it together) go
  // with it, or they would be lost with lws' connection.
  const std::optional<std::string> ahead = mask_guard::take_heads_ahead(fd);
  if (!ahead) {
    WSB_LOG(kInfo) << "proxy: " << peer_address(wsi)
                   << " pipelined more behind a request for a proxy prefix than can be taken "
                      "along: closing its connection";
    return -1;  // unanswered: a keep-alive race, which clients send again on a new connection
  }
  std::string peer = tcp_peer(wsi);  // (before the socket leaves its number)
  const auto kept = upgrade_hold::detach_socket(fd);
  if (!kept) {
    WSB_LOG(kWarn) << "proxy: out of file descriptors: closing the connection of " << peer;
    return -1;
  }
  head += *ahead;
  mask_guard::forget(fd);
  reverse_proxy::Takeover takeover;
  takeover.fd = *kept;
  takeover.head = std::move(head);
  takeover.bearer = std::move(bearer);
  takeover.listener = *listener;
  takeover.peer = std::move(peer);
  if (auto* data = ConnectionData::of(wsi); data != nullptr && data->http_slot) {
    takeover.http_slot.emplace(std::move(*data->http_slot));  // (counted on by the proxy)
    data->http_slot.reset();
  }
  // lws closes its connection (and its SSL) when this returns: the session stays with us.
  if (lws_is_ssl(wsi) != 0) takeover.ssl = tls::keep_session(lws_get_ssl(wsi));
  takeovers_.push_back(std::move(takeover));
  return -1;  // lws closes the placeholder left under its descriptor number
}

void Shard::take_over_sockets() {
  std::vector<reverse_proxy::Takeover> takeovers;
  takeovers.swap(takeovers_);
  if (!proxy_) {
    proxy_ = std::make_unique<reverse_proxy::ProxyService>(
        static_cast<reverse_proxy::ProxyHost&>(*this));
  }
  for (reverse_proxy::Takeover& takeover : takeovers) proxy_->take_over(std::move(takeover));
}

std::optional<ConnectionSlots::Slot> Shard::take_tunnel_slot(const std::string& ip,
                                                             std::string& why) {
  ConnectionSlots::Refusal refusal = ConnectionSlots::Refusal::kNone;
  auto slot = take_session_slot(ip, refusal);
  if (!slot) {
    why = refusal == ConnectionSlots::Refusal::kPerIp ? "too many connections from this address"
                                                      : "too many connections";
  }
  return slot;
}

void Shard::hand_back(int fd, SSL* ssl, std::string bytes, std::size_t listener) {
  handed_sockets_.push_back(HandedSocket{fd, std::move(bytes), listener, ssl, true});
}

}  // namespace wsbridge
