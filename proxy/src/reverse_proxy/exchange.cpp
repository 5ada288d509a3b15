// The backend's side of a relayed request: a connection from the pool, the request head and
// its body in pieces (pausing the browser while the backend is slow), the response head and its
// body back the same way (pausing the backend while the browser is slow), and failures answered
// 502 / 503 / 504. The WebSocket tunnel after a 101: client_tunnel.cpp.
#include "reverse_proxy/client_connection.hpp"

#include <libwebsockets.h>

#include <algorithm>

#include "reverse_proxy/forward_headers.hpp"
#include "reverse_proxy/proxy_metrics.hpp"
#include "reverse_proxy/websocket_handshake.hpp"
#include "stream/lws_stream_client.hpp"
#include "wsbridge/header_rules.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge::reverse_proxy {

namespace {
// A response head (interim ones included) from the backend may be this long.
constexpr std::size_t kMaxResponseHeadBytes = 64 * 1024;
// Interim (1xx) heads before the final one: 100 Continue, 103 Early Hints (and a 102 or two).
constexpr unsigned kMaxInterimResponses = 8;
}  // namespace

void ClientConnection::acquire_backend() {
  phase_ = Phase::kWaiting;
  sent_at_ = std::chrono::steady_clock::now();
  BackendPool& pool = service_.pool_for(*route_);
  backend_ = pool.acquire(*this);
  if (!backend_) {
    if (!pool.wait(*this)) {
      return backend_failed(503, "busy", "too many requests wait for this backend");
    }
    waiting_in_ = &pool;
    arm_timer();
    return;
  }
  phase_ = Phase::kExchange;
  arm_timer();
  if (backend_->connected()) send_request_head();
}

void ClientConnection::backend_available() {
  waiting_in_ = nullptr;
  if (phase_ == Phase::kWaiting) acquire_backend();
}

void ClientConnection::backend_connected() {
  if (phase_ == Phase::kExchange) send_request_head();
}

void ClientConnection::send_request_head() {
  backend_full_ = !backend_->stream().write(backend_head_);
  sent_at_ = std::chrono::steady_clock::now();  // (the response timer starts once it is all out)
  pump_request_body();
}

// Moves what the browser sent of the body to the backend, as far as the backend takes it.
void ClientConnection::pump_request_body() {
  if (phase_ == Phase::kExchange && backend_ && backend_->connected() && !request_done_) {
    while (!in_.empty() && !backend_full_ && !request_done_) {
      const auto step = request_body_.feed(in_.data(), in_.size());
      if (step.error && !request_body_.over_limit()) {
        return refuse(400, "malformed chunked request body: " + request_body_.error());
      }
      if (request_body_.over_limit() || request_body_.payload_bytes() > route_->max_body_bytes) {
        std::string why =
            "the request body is over " + std::to_string(route_->max_body_bytes) + " bytes";
        if (request_body_.over_limit()) why += ": " + request_body_.error();
        return refuse(413, why);
      }
      // An unfinished chunk-size line waits for its end (LineHold): a line the follower then
      // refuses goes nowhere, not even its start.
      std::string first;
      const std::string_view ready = request_lines_.pass(step, in_, first);
      if (!request_dropped_) {
        bool taken = first.empty() || backend_->stream().write(first);
        taken = backend_->stream().write(ready) && taken;
        backend_full_ = !taken;
      }
      in_.erase(0, step.used);
      if (step.done) {
        request_done_ = true;
        sent_at_ = std::chrono::steady_clock::now();
        arm_timer();  // (the response timer starts now)
      }
    }
  }
  // Past the body, or while the backend is slow, the browser waits (TCP holds it back).
  const bool hold = (request_done_ && !in_.empty()) || in_.size() > kReadAheadBytes ||
                    (backend_full_ && !in_.empty());
  if (hold != client_paused_ && client_) {
    client_->pause_reading(hold);
    client_paused_ = hold;
  }
}

void ClientConnection::backend_drained() {
  touch();
  if (phase_ == Phase::kTunnel) {
    if (client_paused_ && client_) {
      client_->pause_reading(false);
      client_paused_ = false;
    }
    return;
  }
  backend_full_ = false;
  pump_request_body();
}

void ClientConnection::backend_data(std::string_view bytes) {
  touch();
  if (phase_ == Phase::kTunnel) {
    tunnel_bytes_down_ += bytes.size();
    if (client_ && !client_->write(bytes)) backend_->stream().pause_reading(true);
    return;
  }
  if (phase_ != Phase::kExchange) return;
  if (response_) return relay_response_body(bytes);
  response_in_.append(bytes);
  if (!read_response_head()) return;
  if (phase_ == Phase::kTunnel) return;
  std::string rest = std::move(response_in_);
  response_in_.clear();
  relay_response_body(rest);  // (with the head, in one write)
}

// Parses response heads from response_in_: interim ones pass to the browser, the final one
// starts the body. True once the final head is in (response_in_ holds what followed it).
bool ClientConnection::read_response_head() {
  while (!response_) {
    const std::size_t end = find_head_end(response_in_);
    if (end == std::string::npos) {
      if (response_in_.size() > kMaxResponseHeadBytes) {
        backend_failed(502, "malformed", "the backend's response head is too large");
      } else if (has_bare_line_feed(response_in_)) {
        // (Heads end at CRLF CRLF here, as requests do: without this the answer waited for
        // response_timeout and got 504, as if the backend had said nothing.)
        backend_failed(502, "malformed",
                       "the backend's response head has a line ending in LF alone (not CRLF)");
      }
      return false;
    }
    std::string error;
    auto head =
        parse_response_head(std::string_view(response_in_).substr(0, end), request_.method, error);
    if (!head) {
      backend_failed(502, "malformed", "the backend's response is malformed: " + error);
      return false;
    }
    response_in_.erase(0, end);
    if (head->status == 101) {
      if (auto problem = websocket_switch_problem(*head, request_)) {
        backend_failed(502, "malformed",
                       "the backend's 101 is not a WebSocket answer: " + *problem);
        return false;
      }
      response_ = std::move(*head);
      start_tunnel();
      return true;
    }
    if (head->status < 200) {
      // A backend that sends interim heads without end (to a browser that reads none of them)
      // filled the process's memory: 100 Continue and 103 Early Hints are one or two each.
      if (++interim_responses_ > kMaxInterimResponses) {
        backend_failed(502, "malformed",
                       "the backend sent more than " + std::to_string(kMaxInterimResponses) +
                           " interim (1xx) responses");
        return false;
      }
      // 100 Continue and friends: the browser may want them; HTTP/1.0 ones cannot read them.
      // (Not "sent anything": a final status, a refusal's included, may still follow it.)
      if (request_.minor_version >= 1) {
        client_->write(client_response_head(*head, true, listener_hsts()));
      }
      continue;
    }
    // RFC 9112 6.1: no chunked framing for an HTTP/1.0 request, which went out as 1.0 (the
    // client could not read it, and the proxy relays bodies as they come).
    if (request_.minor_version == 0 && head->body == BodyFraming::kChunked) {
      backend_failed(502, "malformed", "the backend answered an HTTP/1.0 request in chunks");
      return false;
    }
    // The final response. Sent before the request body was all here: the rest is not sent,
    // and the browser's connection ends with this response (where its body ends is unknown).
    if (!request_done_) {
      request_dropped_ = true;
      keep_alive_ = false;
    }
    if (!head->keep_alive) keep_alive_ = keep_alive_ && head->body != BodyFraming::kUntilClose;
    if (request_.websocket_upgrade) keep_alive_ = false;  // refused: the browser may try again
    response_ = std::move(*head);
    response_body_ = BodyFollower(response_->body, response_->content_length);
    held_lines_ = LineHold{};
    arm_timer();  // from the response timeout to the idle timeout, which may be shorter
    // Written with the first body bytes (relay_response_body): one send for a small response.
    head_out_ = client_response_head(*response_, keep_alive_, listener_hsts());
    sent_anything_ = true;
    count_response(response_->status);
  }
  return true;
}

void ClientConnection::relay_response_body(std::string_view bytes) {
  std::string_view body;  // what of `bytes` belongs to this response, and may go to the browser
  bool error = false;
  if (!response_body_.done()) {
    const auto step = response_body_.feed(bytes.data(), bytes.size());
    // (head_out_: what goes out before these bytes, in the same write.)
    body = held_lines_.pass(step, bytes, head_out_);
    bytes.remove_prefix(step.used);
    error = step.error;
  }
  bool more = true;
  if (!head_out_.empty()) {
    head_out_.append(body);
    more = client_->write(head_out_);
    head_out_.clear();
  } else if (!body.empty()) {
    more = client_->write(body);
  }
  if (!more && backend_) backend_->stream().pause_reading(true);
  if (error) {
    WSB_LOG(kWarn) << "proxy: " << route_->path << ": malformed response body from the backend ("
                   << response_body_.error() << "): closing";
    proxy_metrics::backend_error(route_->path, "malformed");
    return close_now();
  }
  if (!response_body_.done()) return;
  // Bytes past the end of the response: a backend that talks out of turn is not reused.
  if (!bytes.empty()) drop_backend();
  exchange_done();
}

void ClientConnection::exchange_done() {
  // (A request that asked the backend to close leaves its connection unused, whatever the
  // backend answers: backend_asked_to_close.)
  const bool reusable = backend_ && response_ && response_->keep_alive && request_done_ &&
                        !request_dropped_ && response_->body != BodyFraming::kUntilClose &&
                        !backend_asked_to_close(request_);
  if (reusable) {
    BackendPool& pool = backend_->pool();
    pool.give_back(std::move(backend_));
  }
  finish(keep_alive_);
}

void ClientConnection::backend_closed(std::string_view reason) {
  const bool reused = backend_ && backend_->reused();
  const bool connected = backend_ && backend_->connected();
  backend_.reset();
  if (phase_ == Phase::kTunnel) {
    tunnel_ended("backend", reason);
    return finish(false);
  }
  if (phase_ != Phase::kExchange) return;
  if (response_) {
    if (response_->body == BodyFraming::kUntilClose) {
      keep_alive_ = false;
      return exchange_done();
    }
    // Cut off in the middle: the browser sees the body end early, as it did.
    WSB_LOG(kInfo) << "proxy: " << route_->path << ": the backend closed mid-response (" << reason
                   << ")";
    proxy_metrics::backend_error(route_->path, "reset");
    return close_now();
  }
  // A kept-alive connection the backend closed as the request went out: once, on a new one,
  // when nothing of the request is lost (no body), nothing answered yet, and the method may be
  // applied twice (RFC 9110 9.2.2: a bodiless POST the backend acted on before it closed must
  // not be sent again, as nginx does not).
  const bool no_body = request_.body == BodyFraming::kNone ||
                       (request_.body == BodyFraming::kLength && request_.content_length == 0);
  const bool overridden =
      std::any_of(request_.headers.begin(), request_.headers.end(),
                  [](const HttpHeader& h) { return http::overrides_method(h.name); });
  if (reused && !retried_ && no_body && response_in_.empty() &&
      http1::is_idempotent_method(request_.method) && !overridden) {
    retried_ = true;
    return acquire_backend();
  }
  const bool connecting = !connected;
  backend_failed(502, connecting ? "connect" : "reset",
                 std::string(connecting ? "cannot reach the backend: " : "the backend closed: ") +
                     std::string(reason));
}

void ClientConnection::backend_failed(unsigned status, std::string_view kind,
                                      std::string_view detail) {
  if (route_ != nullptr) {
    proxy_metrics::backend_error(route_->path, kind);
    WSB_LOG(kWarn) << "proxy: " << request_.method << " " << request_.path() << " -> "
                   << route_->backend_url << ": " << detail << " (" << status << ")";
  }
  if (sent_anything_ && response_) return close_now();
  refuse(status, detail);
}

void ClientConnection::drop_backend() {
  if (waiting_in_ != nullptr) {
    waiting_in_->cancel_wait(*this);
    waiting_in_ = nullptr;
  }
  backend_.reset();
}

}  // namespace wsbridge::reverse_proxy
