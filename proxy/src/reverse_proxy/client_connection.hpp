// One browser connection the reverse proxy drives (proxy_service.hpp says how it got here):
// its requests one at a time, each relayed to the backend with its body in pieces and its
// response back the same way (exchange.cpp); a WebSocket upgrade the backend accepts turns the
// connection into a tunnel of bytes both ways; a request that is not the proxy's hands the
// connection back to lws.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "reverse_proxy/backend_pool.hpp"
#include "reverse_proxy/body_follower.hpp"
#include "reverse_proxy/direct_tunnel.hpp"
#include "reverse_proxy/proxy_service.hpp"
#include "reverse_proxy/request_head.hpp"
#include "reverse_proxy/response_head.hpp"
#include "tls/client_identity.hpp"
#include "wsbridge/plugin.hpp"

namespace wsbridge::reverse_proxy {

// After an answer sent before the request body ended (413, a backend's early refusal), the
// browser's connection is read on and discarded (RFC 9112 9.6: else its close would reset the
// connection under the answer before the browser read it) until it is quiet this long...
inline constexpr std::chrono::seconds kLingerQuiet{2};
// ... or for this long at most.
inline constexpr std::chrono::seconds kLingerMax{10};
// A connection whose last response has not left this long after the next request (not the
// proxy's) came is closed rather than handed back to lws.
inline constexpr std::chrono::seconds kHandBackMax{60};
// Bytes read ahead of where the exchange is (a pipelined request, body not yet taken by the
// backend) past which reading from the browser pauses.
inline constexpr std::size_t kReadAheadBytes = 256 * 1024;

class ClientConnection final : public StreamHandler,
                               BackendUser,
                               BackendWaiter,
                               DirectTunnel::Owner {
 public:
  ClientConnection(ProxyService& service, Takeover takeover);
  ~ClientConnection() override;
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  // Adopts the socket; false when lws could not (it is closed then).
  bool start();
  // The shard is stopping: close at once.
  void abort();
  // A request is relayed now (waiting for a backend connection or under way).
  bool relaying() const { return phase_ == Phase::kWaiting || phase_ == Phase::kExchange; }

  // The browser.
  void on_connected() override {}
  void on_data(std::string_view bytes) override;
  void on_drained() override;
  void on_timer() override;
  void on_closed(std::string_view reason) override;

 private:
  enum class Phase : std::uint8_t {
    kHead,         // waiting for (the rest of) a request head
    kWaiting,      // a request waits for a backend connection
    kExchange,     // a request is relayed
    kTunnel,       // a relayed WebSocket
    kHandingBack,  // waiting for the last response to leave before lws takes over
    kLingering,    // answered before the request body ended: reading on, then closing
    kClosing,      // flushing, then closed
  };

  // client_connection.cpp: heads, checks, refusals, timers, the end.
  void process_input();
  void start_request(RequestHead head, std::size_t head_size);
  void refuse(unsigned status, std::string_view reason, std::string_view extra_headers = {});
  // The Strict-Transport-Security value of the listener the browser came in on (empty: none).
  std::string_view listener_hsts() const;
  void hand_back();
  void finish(bool keep_open);
  void linger();
  void close_now();
  void arm_timer();
  void touch() { last_activity_ = std::chrono::steady_clock::now(); }
  // The whole request went to the backend and no response head came yet (response_timeout).
  bool awaiting_response() const { return !response_ && request_done_ && !request_dropped_; }
  void count_response(unsigned status);
  std::chrono::milliseconds config_timeout() const;  // [limits] handshake_timeout

  // exchange.cpp: the backend side.
  void acquire_backend();
  void backend_available() override;
  void backend_connected() override;
  void backend_data(std::string_view bytes) override;
  void backend_drained() override;
  void backend_closed(std::string_view reason) override;
  void send_request_head();
  void pump_request_body();
  bool read_response_head();
  void relay_response_body(std::string_view bytes);
  void exchange_done();
  void backend_failed(unsigned status, std::string_view kind, std::string_view detail);
  void drop_backend();
  void start_tunnel();
  // Plain TCP both ways: the tunnel's sockets leave lws for a DirectTunnel (false: it stays).
  bool go_direct();
  void direct_tunnel_ended(std::string_view by, std::string_view why) override;
  // The access-log line of a relayed WebSocket's end (once): who ended it and why.
  void tunnel_ended(std::string_view by, std::string_view why);

  ProxyService& service_;
  Takeover takeover_;
  std::unique_ptr<Stream> client_;
  Phase phase_ = Phase::kHead;
  std::string in_;  // from the browser, not yet used
  std::chrono::steady_clock::time_point last_activity_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point phase_since_{};  // kHead, kLingering, kHandingBack
  bool client_paused_ = false;
  bool tls_ = false;
  std::optional<tls::ClientCertificate> client_cert_;  // verified by the listener (mTLS)
  BackendPool* waiting_in_ = nullptr;                  // kWaiting: the pool's queue

  // The exchange under way (reset for each request).
  std::shared_ptr<const ServerConfig> config_;  // as the request found it
  const ProxyRoute* route_ = nullptr;
  RequestHead request_;
  std::string client_address_;  // the client (after the trusted proxies)
  Identity identity_;           // who the request authenticated as
  // When the token it authenticated with expires ("exp"): a relayed WebSocket ends then, as a
  // WebSocket route's connection does.
  std::optional<std::chrono::steady_clock::time_point> token_expires_;
  std::string backend_head_;  // the request head for the backend (kept for a retry)
  BodyFollower request_body_;
  bool request_done_ = false;     // the whole request body went to the backend
  bool request_dropped_ = false;  // the response came first: the rest of the body is not sent
  std::unique_ptr<BackendLink> backend_;
  bool backend_full_ = false;
  bool retried_ = false;
  std::string response_in_;  // backend bytes before the end of the final response head
  std::optional<ResponseHead> response_;
  std::string head_out_;  // the final response head for the browser, sent with the first body
  BodyFollower response_body_;
  LineHold held_lines_;             // the response's unfinished chunk-size or trailer line
  LineHold request_lines_;          // the request body's unfinished chunk-size line
  unsigned interim_responses_ = 0;  // 1xx heads from the backend for this request
  bool sent_anything_ = false;      // bytes of the final response (or a 101) went to the browser
  bool keep_alive_ = true;          // the browser's connection carries another request after this
  // kWaiting: since the request waits; kExchange: since the whole request went to the backend.
  std::chrono::steady_clock::time_point sent_at_{};
  std::optional<ConnectionSlots::Slot> tunnel_slot_;
  std::string tunnel_path_;               // a relayed WebSocket was counted open under this prefix
  std::unique_ptr<DirectTunnel> direct_;  // its sockets, once relayed off lws
  bool tunnel_logged_open_ = false;       // its open line was logged, its close line not yet
  std::chrono::steady_clock::time_point tunnel_opened_at_{};
  std::uint64_t tunnel_bytes_up_ = 0;    // browser -> backend
  std::uint64_t tunnel_bytes_down_ = 0;  // backend -> browser
};

}  // namespace wsbridge::reverse_proxy
