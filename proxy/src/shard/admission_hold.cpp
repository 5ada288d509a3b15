// Upgrades held while their route's adapter decides (upgrade_hold.hpp says how and why).
#include "shard/shard_parts.hpp"

#include "handshake/upgrade_hold.hpp"
#include "recv_hook/mask_guard.hpp"
#include "tls/session_handover.hpp"

namespace wsbridge {

int Shard::hold_upgrade(lws* wsi, const RouteConfig& route, auth::AuthDecision decision,
                        ConnectionSlots::Slot slot) {
  const int fd = lws_get_socket_fd(wsi);
  std::string bytes = mask_guard::take_request_bytes(fd);
  if (bytes.empty()) {
    return refuse_upgrade(wsi, 500, "admission",
                          "this request cannot be held for its route's admission check");
  }
  AdmissionRequest request;
  request.identity.user = decision.user;
  request.identity.claims = decision.claims;
  request.identity.auth_method = decision.method;
  request.identity.acl = decision.acl;
  request.identity.remote_address = client_address(wsi);
  request.identity.route_path = route.path;
  request.identity.request_uri = header(wsi, WSI_TOKEN_GET_URI);
  request.headers = upgrade_hold::parse_request_headers(bytes);
  const auto kept = upgrade_hold::detach_socket(fd);
  if (!kept) return refuse_upgrade(wsi, 503, "max_connections", "out of file descriptors");
  mask_guard::forget(fd);
  const std::uint64_t id = next_hold_id_++;
  HeldUpgrade& held = held_[id];
  held.fd = *kept;
  held.request_bytes = std::move(bytes);
  held.vhost = lws_get_vhost(wsi);
  held.since = SteadyClock::now();
  held.decision = std::move(decision);
  held.slot = std::move(slot);
  // lws closes its connection (and its SSL) when this returns: the session stays with the hold.
  if (lws_is_ssl(wsi) != 0) held.ssl = tls::keep_session(lws_get_ssl(wsi));
  WSB_LOG(kDebug) << "holding an upgrade to " << route.path << " for its admission check";
  route.adapter->admit(std::move(request), [this, id](AdmissionResult verdict) {
    auto it = held_.find(id);
    if (it == held_.end()) return;  // timed out, or shutting down: already answered
    it->second.verdict = std::move(verdict);
    holds_answered_ = true;
    lws_cancel_service(context_);  // run() hands it back to lws, outside any lws callback
  });
  // lws closes its side of the connection now: the placeholder socket, not the client's.
  return -1;
}

void Shard::release_held_upgrades() {
  holds_answered_ = false;
  std::vector<HeldUpgrade> answered;
  for (auto it = held_.begin(); it != held_.end();) {
    if (it->second.verdict) {
      answered.push_back(std::move(it->second));
      it = held_.erase(it);
    } else {
      ++it;
    }
  }
  for (HeldUpgrade& held : answered) {
    if (refusing_new()) {
      upgrade_hold::reply_and_close(held.fd, 503, "shutting down", held.ssl,
                                    own_answer_headers(held.vhost));
      continue;
    }
    // The bytes go to lws from its buffer, not through recv(): let the guard see them too.
    watch_adopted(held.fd, held.vhost);
    std::string copy = held.request_bytes;
    mask_guard::after_recv(held.fd, copy.data(), static_cast<long>(copy.size()));
    adopting_fd_ = held.fd;
    adopting_ = Admitted{std::move(*held.verdict), std::move(held.decision), std::move(held.slot)};
    // lws parses the request again (inside this call when it can) and asks confirm_upgrade,
    // which answers from the verdict that NEW_CLIENT_INSTANTIATED bound to the new wsi. On
    // failure lws closes the socket itself.
    if (held.ssl != nullptr) tls::hand_over_on_next_new(held.ssl);
    lws_adopt_socket_vhost_readbuf(held.vhost, held.fd, held.request_bytes.data(),
                                   held.request_bytes.size());
    tls::end_hand_over();
    adopting_fd_ = -1;
    adopting_.reset();
  }
}

}  // namespace wsbridge
