// The HTTP fallback transports, a request for a session another instance owns (docs/FALLBACK.md,
// "Several instances"): relayed to that instance with what it needs to check the request again
// (the token, the client's Origin and address, the certificate this instance saw), and answered
// through the carrier's ResponseChannel as the owner answers. Also the client certificate a
// request presents, here or as a forwarding instance vouches for it.
#include <algorithm>

#include "fallback/peer_relay.hpp"
#include "shard/shard_parts.hpp"
#include "tls/client_identity.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge {

// The client certificate a request presents (its fingerprint, "" for none): its own TLS
// connection's, or for a request another instance forwarded, the one that instance vouches for.
std::string Shard::request_client_cert(lws* wsi, std::string_view token, bool forwarded) {
  if (forwarded) {
    const auto vouch = custom_header(wsi, "x-wsbridge-client-cert:");
    const auto named = vouch ? shared_.tokens->vouched(token, text::trim(*vouch)) : std::nullopt;
    return named.value_or(std::string());
  }
  return lws_is_ssl(wsi) != 0 ? tls::verified_client_fingerprint(lws_get_ssl(wsi)) : std::string();
}

int Shard::forward_to_peer(lws* wsi, const fallback::Peer& peer, bool stream,
                           const std::string& cors_origin, const std::string& body,
                           std::optional<std::uint64_t> resume_from) {
  char* uri_ptr = nullptr;
  int uri_len = 0;
  const int method = lws_http_get_uri_and_method(wsi, &uri_ptr, &uri_len);
  // The request as the owner needs it: the token and the resume point, the client's Origin (it
  // checks it too), and where it came from (it never forwards such a request again).
  std::string request = std::string(method == kLwsPost ? "POST " : "GET ") +
                        std::string(uri_ptr, static_cast<std::size_t>(uri_len)) +
                        "?s=" + query_value(wsi, "s").value_or("");
  // (The resume point as checked here, a number: never the client's text, which the owner's
  // request line would carry as it came.)
  if (resume_from) request += "&last=" + std::to_string(*resume_from);
  request += " HTTP/1.1\r\nHost: " + peer.host + "\r\nConnection: close\r\n";
  request += "X-Wsbridge-Forwarded: " + shared_.tokens->instance() + "\r\n";
  // The client, as this instance knows it, for the owner's logs. (An owner that lists this
  // instance among its trusted_proxies leaves its connections out of the per-address limits:
  // this instance counted the client already.)
  request += "X-Forwarded-For: " + client_address(wsi) + "\r\n";
  // The certificate the token was checked with here, which the owner checks it with again.
  const std::string token = query_value(wsi, "s").value_or("");
  request += "X-Wsbridge-Client-Cert: " +
             shared_.tokens->vouch(token, request_client_cert(wsi, token, false)) + "\r\n";
  if (auto origin = header_if_present(wsi, WSI_TOKEN_ORIGIN))
    request += "Origin: " + *origin + "\r\n";
  if (method == kLwsPost) {
    request +=
        "Content-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n";
  request += body;
  auto channel = attach_carrier(wsi, stream, cors_origin);
  // The owner answers a poll by poll_timeout and writes into a stream every heartbeat; silent
  // longer (stopped, or its machine gone without a FIN), it is not coming back for this request.
  // (Twice this instance's own figures: an owner whose poll_timeout is longer, as during a
  // rolling change of the config, still answers in time; DEPLOY.md asks for the same ones.)
  const auto silence_limit =
      2 * std::max(config_->fallback.poll_timeout, config_->fallback.heartbeat) +
      config_->limits.handshake_timeout;
  auto relay = std::make_shared<fallback::PeerRelay>(
      channel, std::move(request),
      std::chrono::duration_cast<std::chrono::milliseconds>(silence_limit));
  channel->wake_owner = [weak = std::weak_ptr<fallback::PeerRelay>(relay)] {
    if (auto r = weak.lock()) r->on_channel_news();
  };
  relays_[ConnectionData::of(wsi)->carrier->key] = relay;
  relay->start(*peer.endpoint);
  return 0;  // the owner's answer comes through the channel
}

}  // namespace wsbridge
