// The lws protocol callback: one case per event, each handing over to the part that owns it.
#include "shard/shard_parts.hpp"

#include <cstring>

#include "http/http_reply.hpp"
#include "recv_hook/mask_guard.hpp"
#include "reverse_proxy/request_path.hpp"
#include "shard/websocket_transport.hpp"
#include "support/discard_unread.hpp"

namespace wsbridge {

namespace {

// Appends "Sec-WebSocket-Extensions: <value>\r\n" where lws leaves room for more headers.
int add_extension_header(lws_process_html_args& args, const std::string& value) {
  const std::string line = "Sec-WebSocket-Extensions: " + value + "\r\n";
  if (args.max_len < 0 || line.size() >= static_cast<std::size_t>(args.max_len)) return -1;
  std::memcpy(args.p, line.data(), line.size());
  args.p += line.size();
  args.max_len -= static_cast<int>(line.size());
  return 0;
}

// lws 4.1.6 takes the close codes registered after it was written (1012 service restart, 1013
// try again later, 1014 bad gateway) for invalid, and writes 1002 over them in the payload it is
// about to echo (ops-ws.c): the client's own code goes back in, as the guard read it.
void restore_registered_close_code(int fd, void* in, std::size_t len) {
  auto* code = static_cast<unsigned char*>(in);
  if (code == nullptr || len < 2 || (code[0] << 8 | code[1]) != 1002) return;
  const std::uint16_t sent = mask_guard::peer_close_code(fd);
  if (sent < 1012 || sent > 1014) return;
  code[0] = static_cast<unsigned char>(sent >> 8);
  code[1] = static_cast<unsigned char>(sent & 0xff);
}

}  // namespace

int Shard::lws_callback(lws* wsi, int reason_int, void* user, void* in, std::size_t len) {
  const auto reason = static_cast<lws_callback_reasons>(reason_int);
  if (reason == LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS) {
    // A TLS listener's vhost is being made (lifecycle.cpp): `user` is its SSL_CTX. (The wsi is a
    // stand-in with no protocol: the shard is the context's user.)
    auto* shard = static_cast<Shard*>(lws_context_user(lws_get_context(wsi)));
    if (shard != nullptr && shard->configuring_tls_ != nullptr) {
      tls::prepare_vhost_context(static_cast<SSL_CTX*>(user), shard->configuring_tls_);
    }
    return 0;
  }
  const lws_protocols* protocol = lws_get_protocol(wsi);
  auto* self = protocol != nullptr ? static_cast<Shard*>(protocol->user) : nullptr;
  if (self == nullptr) return lws_callback_http_dummy(wsi, reason, user, in, len);
  // `user` is the connection's ConnectionData in connection callbacks only (FILTER_NETWORK_
  // CONNECTION passes other data in it), so it is read in those cases alone. Null for a
  // connection of ours only before SERVER_NEW_CLIENT_INSTANTIATED gave it one.
  auto* data = static_cast<ConnectionData*>(user);
  auto session_of = [data]() -> Session* { return data != nullptr ? data->session : nullptr; };
  Session* session = nullptr;

  try {
    switch (reason) {
      case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        self->drain_inbox();
        return 0;
      case LWS_CALLBACK_FILTER_NETWORK_CONNECTION: {
        if (self->stopping_) return -1;  // shutting down: accept no more
        const int fd = static_cast<int>(reinterpret_cast<lws_intptr_t>(in));
        // Descriptors are allocated lowest first: a high number means few are left.
        if (self->fd_limit_ > 0 && fd >= self->fd_limit_ - kSpareDescriptors) {
          self->refuse_for_descriptors();
          return -1;
        }
        if (!self->admit_http_connection(wsi, fd)) return -1;  // (lws closes the socket)
        self->watch_adopted(fd, lws_get_vhost(wsi));
        return 0;
      }
      case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        data = new ConnectionData(wsi);
        lws_set_wsi_user(wsi, data);  // freed at WSI_DESTROY, which every connection reaches
        // (The guard's watch is the connection's now: WSI_DESTROY forgets data->fd.)
        if (data->fd == self->unadopted_watch_fd_) self->unadopted_watch_fd_ = -1;
        if (!self->take_http_slot(wsi, *data)) return -1;  // (lws closes it: WSI_DESTROY follows)
        // Slow or silent clients must finish their request within the handshake timeout (lws
        // replaces any timeout set here with its own, so our timer enforces it).
        self->expect_request(*data);
        if (self->adopting_ && lws_get_socket_fd(wsi) == self->adopting_fd_) {
          // A held upgrade handed back (release_held_upgrades): its verdict goes with this wsi.
          data->admitted = std::make_unique<Admitted>(std::move(*self->adopting_));
          self->adopting_.reset();
        }
        return 0;
      case LWS_CALLBACK_FILTER_HTTP_CONNECTION: {
        // A complete request head (every HTTP request but upgrades, static files included).
        if (data != nullptr) request_arrived(*data);
        const ListenerConfig* listener = self->listener_of(wsi);
        if (listener != nullptr && listener->redirect_to_https) {
          return self->redirect_to_https(wsi, *listener->redirect_to_https);
        }
        // (Taken at every head, used or not: mask_guard.hpp says why.) The proxy reads the
        // head itself, framing included (chunked request bodies are relayed).
        std::string head = mask_guard::take_head_bytes(lws_get_socket_fd(wsi));
        const std::string_view path = reverse_proxy::request_path_of(
            head, std::string_view(static_cast<const char*>(in), in != nullptr ? len : 0));
        if (listener != nullptr && !self->config_->proxies.empty() &&
            self->config_->proxy_for(path, false) != nullptr) {
          return self->take_over_for_proxy(wsi, std::move(head));
        }
        // The admin listener answers a POST without a length (`curl -X POST .../drain`) as
        // one with an empty body, and closes after; the public port refuses it (411).
        const bool admin = lws_get_vhost(wsi) == self->admin_vhost_;
        if (auto problem = framing_problem(wsi, false, !admin)) {
          WSB_LOG(kInfo) << "refused a request from " << peer_address(wsi) << ": "
                         << problem->status << " " << problem->reason;
          write_http_reply(wsi, problem->status, "text/plain", problem->reason + "\n",
                           {{"Connection:", "close"}});
          return -1;  // and close: what follows the head cannot be trusted (RFC 9112 6.3)
        }
        // Static files are read, not written: lws 4.1.6 serves the file to a POST as to a GET.
        // (Other methods it answers with 404, reading their bodies, on a connection that stays
        // usable.) On the public listeners, for paths the core leaves to the static directory.
        if (!admin && self->config_->static_dir &&
            !self->config_->serves_itself(reverse_proxy::matching_path(path))) {
          char* uri = nullptr;
          int uri_len = 0;
          if (lws_http_get_uri_and_method(wsi, &uri, &uri_len) == kLwsPost) {
            write_http_reply(wsi, 405, "text/plain", "static files are only read: GET or HEAD\n",
                             {{"Allow:", "GET, HEAD"}, {"Connection:", "close"}});
            return -1;  // (and close: its body, if any, is not read)
          }
        }
        return 0;
      }
      case LWS_CALLBACK_HTTP_BIND_PROTOCOL:
        // Bound at the start of every HTTP transaction, and again when one completes on a
        // keep-alive connection: the next request must come within the handshake timeout too.
        if (data != nullptr) self->expect_request(*data);
        return lws_callback_http_dummy(wsi, reason, user, in, len);
      case LWS_CALLBACK_HTTP_BODY: {
        if (data != nullptr && data->carrier) return self->fallback_body(wsi, in, len);
        if (data == nullptr || !data->admin_request) return 0;
        AdminRequest& r = *data->admin_request;
        if (r.body.size() + len > kMaxAdminBodyBytes) {
          r.too_large = true;
          r.body.clear();
        } else if (!r.too_large) {
          r.body.append(static_cast<const char*>(in), len);
        }
        return 0;
      }
      case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
        if (data != nullptr && data->carrier) return self->fallback_body_done(wsi);
        if (data == nullptr || !data->admin_request) {
          return lws_callback_http_dummy(wsi, reason, user, in, len);
        }
        AdminRequest request = std::move(*data->admin_request);
        data->admin_request.reset();
        return self->serve_admin_api(wsi, request);
      }
      case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        if (std::strcmp(static_cast<const char*>(in), "websocket") != 0) return -1;
        return self->confirm_upgrade(wsi);
      case LWS_CALLBACK_HTTP: {
        if (data != nullptr) request_arrived(*data);
        // The path whatever the method (lws passes "" as `in` for a POST: it got 404 on
        // /healthz, where the other methods get 405).
        char* any_uri = nullptr;
        int any_uri_len = 0;
        const std::string_view uri =
            lws_http_get_uri_and_method(wsi, &any_uri, &any_uri_len) >= 0
                ? std::string_view(any_uri, static_cast<std::size_t>(any_uri_len))
                : std::string_view(static_cast<const char*>(in), len);
        if (uri.starts_with(kFallbackPrefix) && lws_get_vhost(wsi) != self->admin_vhost_) {
          return self->serve_fallback(wsi, uri);
        }
        return self->serve_http(wsi, uri);
      }
      case LWS_CALLBACK_ADD_HEADERS:
        // Called for the 101 too, after lws' own headers: the shared mode's agreement.
        if (data != nullptr && data->pending && !data->pending->compression.response.empty()) {
          return add_extension_header(*static_cast<lws_process_html_args*>(in),
                                      data->pending->compression.response);
        }
        return 0;
      case LWS_CALLBACK_ESTABLISHED:
        if (data == nullptr) return -1;  // not accepted by this shard: never checked
        request_arrived(*data);          // upgraded in time
        data->http_slot.reset();         // a WebSocket now: its session's slot counts it
        mask_guard::start_websocket(lws_get_socket_fd(wsi));
        return self->on_established(wsi, *data);
      case LWS_CALLBACK_RECEIVE:
        session = session_of();
        if (session == nullptr) return -1;
        // (Never -1 from here: lws ignores it inside a permessage-deflate drain; receive.cpp.)
        // (lws calls back only for its own connections: this session's transport is lws'.)
        self->on_fragment(*session,
                          static_cast<WebSocketTransport&>(*session->transport).fragment(in, len));
        return 0;
      case LWS_CALLBACK_RECEIVE_PONG:
        session = session_of();
        if (session != nullptr) session->last_rx = SteadyClock::now();
        return 0;
      case LWS_CALLBACK_SERVER_WRITEABLE:
        session = session_of();
        if (session == nullptr) return 0;
        session->transport->write_turn_began();
        return self->on_writeable(*session);
      case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        restore_registered_close_code(lws_get_socket_fd(wsi), in, len);
        session = session_of();
        if (session != nullptr) self->on_peer_close(*session, in, len);
        return 0;
      case LWS_CALLBACK_CLOSED:
        session = session_of();
        mask_guard::forget(lws_get_socket_fd(wsi));
        discard_unread(lws_get_socket_fd(wsi));
        // Our close frame is out and the client may still be sending: its socket lingers,
        // counted as the connection it was (not when descriptors run short).
        if (session != nullptr && session->close_sent && !session->close_info.by_peer &&
            (self->fd_limit_ <= 0 ||
             lws_get_socket_fd(wsi) < self->fd_limit_ - 4 * kSpareDescriptors)) {
          self->lingering_.take(lws_get_socket_fd(wsi), std::exchange(session->slot, std::nullopt));
        }
        self->on_closed(session);
        if (data != nullptr) data->session = nullptr;
        return 0;
      case LWS_CALLBACK_HTTP_WRITEABLE:
        if (data != nullptr && data->carrier) return self->write_fallback(wsi);
        return lws_callback_http_dummy(wsi, reason, user, in, len);
      case LWS_CALLBACK_HTTP_FILE_COMPLETION:
        // A static file sent (lws' dummy callback completes the transaction and no more): the
        // keep-alive path of our own answers, which also looks for a request waiting decrypted
        // in OpenSSL's buffer, where no POLLIN tells of it.
        return self->complete_http_transaction(wsi) < 0 ? -1 : 0;
      case LWS_CALLBACK_CLOSED_HTTP:
        if (data != nullptr) self->carrier_closed(*data);
        mask_guard::forget(lws_get_socket_fd(wsi));
        discard_unread(lws_get_socket_fd(wsi));  // (an error answered while a body still came)
        return lws_callback_http_dummy(wsi, reason, user, in, len);
      case LWS_CALLBACK_WSI_DESTROY:
        // (lws has closed the socket: lws_get_socket_fd says -1 now.)
        if (data != nullptr) {
          self->carrier_closed(*data);
          mask_guard::forget(data->fd);
          self->send_socket_on(wsi, *data);  // (a resume bound for another shard)
        } else {
          self->adoption_failed(-1);  // (never instantiated)
        }
        lws_set_wsi_user(wsi, nullptr);
        delete data;  // (lws calls protocols[0] with the user data still intact; then frees it
                      // only when it allocated it, which it never does: per_session_data_size 0)
        return lws_callback_http_dummy(wsi, reason, nullptr, in, len);
      default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
  } catch (const std::exception& e) {
    // Never let an exception unwind through C code: close this connection as an internal error.
    WSB_LOG(kError) << "error handling lws event " << reason_int << ": " << e.what();
    // The wake-up pipe's own event: -1 would close the pipe that every other thread's
    // lws_cancel_service writes to, and the service thread would never hear from them again.
    if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) return 0;
    if (session != nullptr && !session->close_sent) {
      if (reason == LWS_CALLBACK_SERVER_WRITEABLE) {
        return close_now(*session, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "internal error");
      }
      // Elsewhere (RECEIVE inside a permessage-deflate drain) lws may ignore a -1: close from
      // the next WRITEABLE, backed by the close deadline.
      self->request_close(*session, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "internal error", false);
      return 0;
    }
    return -1;
  }
}

}  // namespace wsbridge
