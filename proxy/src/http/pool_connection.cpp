// One pooled connection to a backend: connecting, TLS, writing the request, parsing the response,
// and closing (with the one retry of an idempotent request on a stale keep-alive connection).
#include "http/pooled_backend.hpp"

#include "recv_hook/mask_guard.hpp"

namespace wsbridge::http_pool {

bool PooledBackend::connect(PendingRequest* p) {
  auto owned = std::make_unique<PoolConnection>();
  PoolConnection* c = owned.get();
  c->backend = this;
  connections_list_.push_back(std::move(owned));
  metrics_.connections->add(1);
  metrics_.connects->inc();
  assign(c, p);
  const std::string address = resolver_ ? resolver_->address() : url_.host;
  if (address.empty()) {
    remove_connection(c);
    fail_unavailable(p, "cannot resolve " + url_.host);
    return true;
  }
  lws_client_connect_info i{};
  i.context = context_;
  i.vhost = vhost_;
  i.address = address.c_str();
  i.port = url_.port;
  i.host = url_.host.c_str();  // TLS: SNI and the certificate's name
  i.origin = url_.host.c_str();
  i.path = "/";
  i.method = "RAW";
  i.ssl_connection = 0;  // TLS is ours (tls_client_stream.hpp)
  i.protocol = kClientProtocol;
  i.local_protocol_name = kClientProtocol;
  i.opaque_user_data = c;
  // No i.pwsi: lws writes through it when the connection fails, possibly after we let go of
  // the PoolConnection. Callbacks bring the wsi instead.
  connecting_ = c;
  lws* wsi = lws_client_connect_via_info(&i);
  connecting_ = nullptr;
  if (wsi != nullptr && owns(c)) c->wsi = wsi;
  if (wsi == nullptr) {
    // lws may already have reported the error (and forgotten the connection) on this stack.
    if (owns(c)) {
      remove_connection(c);
      fail_unavailable(p, "cannot connect to " + options_.url);
    }
    return true;
  }
  return true;
}

void PooledBackend::send_request(PoolConnection* c) {
  PendingRequest* p = c->current;
  if (p == nullptr || p->wire.size() <= LWS_PRE || c->closing) return;
  if (c->tls && c->tls->advance() != TlsClientStream::State::kReady) return;  // after it
  const std::string_view plain = std::string_view(p->wire).substr(LWS_PRE);
  if (c->tls) {
    if (!c->tls->write(plain)) return;
    c->out += c->tls->take_output();
  } else {
    c->out += plain;
  }
  // Kept while the request may have to go again on a new connection (may_retry), else freed:
  // the retry found it empty and sent nothing, and the request waited for its whole timeout.
  if (!may_retry(c, p)) release_wire(p);
  if (c->wsi != nullptr) lws_callback_on_writable(c->wsi);
}

bool PooledBackend::may_retry(const PoolConnection* c, const PendingRequest* p) {
  return c->reused && !c->received_bytes && !p->retried && p->repeatable;
}

void PooledBackend::release_wire(PendingRequest* p) {
  p->wire.clear();
  p->wire.shrink_to_fit();
}

void PooledBackend::on_plain_bytes(PoolConnection* c, const char* data, std::size_t len) {
  PendingRequest* p = c->current;
  if (p == nullptr || !c->parser) {
    // Bytes nobody asked for (or after a timeout): this connection is not reusable.
    close_connection(c);
    return;
  }
  if (!c->received_bytes) release_wire(p);  // answered: it will not be sent again
  c->received_bytes = true;
  const auto state = c->parser->feed(data, len);
  if (state == http1::ResponseParser::State::kComplete) {
    complete_response(c);
    pump();
  } else if (state == http1::ResponseParser::State::kError) {
    const bool too_large = c->parser->too_large();
    const std::string why = c->parser->error();
    close_connection(c);
    finish(p, HttpResult{too_large ? HttpFailure::kTooLarge : HttpFailure::kBadResponse,
                         options_.url + ": " + why,
                         {}});
    pump();
  }
}

void PooledBackend::fail_tls(PoolConnection* c) {
  const std::string why = c->tls->error();
  PendingRequest* p = c->current;
  close_connection(c);
  if (p != nullptr) {
    p->connection = nullptr;
    c->current = nullptr;
    fail_unavailable(p, options_.url + ": " + why);
  }
}

bool PooledBackend::owns(const PoolConnection* c) const {
  for (const auto& owned : connections_list_) {
    if (owned.get() == c) return true;
  }
  return false;
}

void PooledBackend::close_connection(PoolConnection* c) {
  if (c->closing) return;
  c->closing = true;
  if (c->wsi != nullptr) {
    lws_set_timeout(c->wsi, static_cast<pending_timeout>(PENDING_TIMEOUT_USER_OK),
                    LWS_TO_KILL_ASYNC);
  }
}

void PooledBackend::remove_connection(PoolConnection* c) {
  if (c->wsi != nullptr) lws_set_opaque_user_data(c->wsi, nullptr);
  if (c->current != nullptr) {
    c->current->connection = nullptr;
    c->current = nullptr;
  }
  for (auto it = connections_list_.begin(); it != connections_list_.end(); ++it) {
    if (it->get() == c) {
      connections_list_.erase(it);
      metrics_.connections->add(-1);
      return;
    }
  }
}

void PooledBackend::complete_response(PoolConnection* c) {
  PendingRequest* p = c->current;
  const bool keep = c->parser->keep_alive() && !c->closing;
  HttpResult result;
  result.response = c->parser->take();
  c->parser.reset();
  c->reused = true;
  c->idle_since = Clock::now();
  if (!keep) close_connection(c);
  finish(p, std::move(result));
}

int PooledBackend::on_event(lws* wsi, PoolConnection* c, int reason_int, void* in,
                            std::size_t len) {
  (void)len;
  switch (static_cast<lws_callback_reasons>(reason_int)) {
    case LWS_CALLBACK_RAW_CONNECTED:
      // (Before lws reads it: a guard's watch of a socket that had this number must not read
      // the backend's answers as a client's requests. stream/lws_stream_client.cpp does so too.)
      mask_guard::forget(lws_get_socket_fd(wsi));
      c->connected = true;
      c->idle_since = Clock::now();
      if (tls_context_) {
        c->tls = std::make_unique<TlsClientStream>(*tls_context_, url_.host);
        if (c->tls->advance() == TlsClientStream::State::kFailed) {
          fail_tls(c);
          return 0;
        }
        c->out += c->tls->take_output();  // the ClientHello
        lws_callback_on_writable(wsi);
      } else if (c->current != nullptr) {
        send_request(c);
      }
      if (c->current == nullptr) pump();  // its request timed out while connecting
      return 0;
    case LWS_CALLBACK_RAW_WRITEABLE: {
      if (c->out.empty() || c->closing) return 0;
      std::string buffer(LWS_PRE, '\0');
      buffer += c->out;
      c->out.clear();
      const std::size_t size = buffer.size() - LWS_PRE;
      // lws keeps whatever the kernel does not take and sends it before the next WRITEABLE.
      if (lws_write(wsi, reinterpret_cast<unsigned char*>(buffer.data()) + LWS_PRE, size,
                    LWS_WRITE_RAW) < static_cast<int>(size)) {
        return -1;
      }
      return 0;
    }
    case LWS_CALLBACK_RAW_RX: {
      if (!c->tls) {
        on_plain_bytes(c, static_cast<const char*>(in), len);
        return 0;
      }
      c->tls->feed(static_cast<const char*>(in), len);
      const bool ready = c->tls->advance() == TlsClientStream::State::kReady;
      std::string plain;
      if (c->tls->advance() == TlsClientStream::State::kFailed || !c->tls->read(plain)) {
        fail_tls(c);
        return 0;
      }
      c->out += c->tls->take_output();
      if (!c->out.empty()) lws_callback_on_writable(wsi);
      if (ready && c->current != nullptr) send_request(c);  // e.g. right after the handshake
      if (!plain.empty()) on_plain_bytes(c, plain.data(), plain.size());
      return 0;
    }
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
      const std::string why = in != nullptr ? static_cast<const char*>(in) : "connection failed";
      PendingRequest* p = c->current;
      lws_set_opaque_user_data(wsi, nullptr);
      c->wsi = nullptr;
      remove_connection(c);
      if (p != nullptr) {
        p->connection = nullptr;
        fail_unavailable(p, "cannot connect to " + options_.url + ": " + why);
      }
      if (connecting_ == nullptr) pump();
      return 0;
    }
    case LWS_CALLBACK_RAW_CLOSE: {
      PendingRequest* p = c->current;
      lws_set_opaque_user_data(wsi, nullptr);
      c->wsi = nullptr;
      if (p != nullptr) {
        p->connection = nullptr;
        c->current = nullptr;
        auto state = c->parser ? c->parser->finish() : http1::ResponseParser::State::kError;
        if (state == http1::ResponseParser::State::kComplete) {
          HttpResult result;
          result.response = c->parser->take();
          finish(p, std::move(result));
        } else if (!c->connected) {
          fail_unavailable(p, "cannot connect to " + options_.url);
        } else if (may_retry(c, p)) {
          // The backend closed an idle keep-alive connection just as it was reused: try an
          // idempotent request once more on a fresh connection.
          p->retried = true;
          waiting_.push_front(p);
        } else {
          finish(p, HttpResult{HttpFailure::kBadResponse,
                               options_.url + ": " +
                                   (c->parser ? c->parser->error() : "connection closed"),
                               {}});
        }
      }
      remove_connection(c);
      pump();
      return 0;
    }
    default:
      return 0;
  }
}

}  // namespace wsbridge::http_pool
