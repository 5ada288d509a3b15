// One shard of the front end: a libwebsockets context and its service thread, with the listeners,
// the HTTP endpoints, the WebSocket upgrade checks and the sessions of the connections it accepted.
#pragma once

#include <libwebsockets.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "admin/admin_api.hpp"
#include "auth/authenticator.hpp"
#include "compression/negotiation.hpp"
#include "config/server_config.hpp"
#include "fallback/fallback_transport.hpp"
#include "fallback/peer_relay.hpp"
#include "recv_hook/mask_guard.hpp"
#include "reverse_proxy/proxy_service.hpp"
#include "server/connection_slots.hpp"
#include "server/event_loop.hpp"
#include "server/listen_share.hpp"
#include "server/service_inbox.hpp"
#include "server/shard_shared.hpp"
#include "session/session.hpp"
#include "shard/lingering_close.hpp"
#include "shard/socket_writer.hpp"
#include "shard/upgrade_states.hpp"
#include "support/log_throttle.hpp"

struct lws;
struct lws_context;
struct lws_vhost;
struct lws_sorted_usec_list;

namespace wsbridge {

namespace fallback {
struct SessionRequest;
}

class Shard final : private InboxDispatcher,
                    private UnmaskedFrameSink,
                    private fallback::FallbackHost,
                    private reverse_proxy::ProxyHost,
                    private SessionHost {
 public:
  // Shard number `index` of `shared.count`; its connection ids are index + 1, index + 1 + count,
  // ...: an id names its shard ((id - 1) % count), and with one shard they are 1, 2, 3, ...
  Shard(std::shared_ptr<ServerConfig> config, ShardShared& shared, unsigned index);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // Creates the lws context and opens the listeners (every listener on every shard, shared with
  // SO_REUSEPORT when there is more than one; the admin listener on shard 0 only). Throws
  // std::runtime_error when one cannot be opened. Any one thread, before serve().
  void open();
  // Serves on the calling thread (this shard's service thread from now on) until a shutdown
  // completes, then tears the context down. The adapters were started by the Server.
  void serve();

  // Any thread (not async-signal-safe): drain (below), then stop accepting, close every client
  // with 1012 after its queued frames, and return from run() once all are closed or the
  // shutdown timeout passed.
  void request_shutdown();
  // Any thread: /healthz says 503 and new clients are refused at once; after [server]
  // drain_delay every client is closed with 1012 and a jittered retry hint (shard/drain.cpp).
  void request_drain(bool then_stop);

  // Any thread: replace the configuration (SIGHUP). New connections get the new routes, keys,
  // ACLs and limits; existing ones keep the configuration they were admitted under until they
  // close. Refused (logged, counted, the current one kept) when it changes what only a restart
  // can: listeners, the admin listener, static files, or subprotocols lws does not know yet.
  void request_reload(std::shared_ptr<ServerConfig> config);

  // Any thread: the path into this shard's service thread.
  const std::shared_ptr<ServiceInbox>& inbox() const { return inbox_; }

  // Any thread: true once this shard serves.
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  // After serve() returned: the configuration in force at the end.
  const std::shared_ptr<const ServerConfig>& config() const { return config_; }

  static int lws_callback(lws* wsi, int reason, void* user, void* in, std::size_t len);

 private:
  struct LwsTables;
  struct Timer;
  struct ConnectionData;   // shard_parts.hpp: what lws holds for us per connection
  struct FallbackCarrier;  // shard_parts.hpp: a fallback request this shard's connection carries
  // Upgrades and fallback opens on their way to a session (shard/upgrade_states.hpp).
  using HeldUpgrade = upgrade_states::HeldUpgrade;
  using Admitted = upgrade_states::Admitted;
  using PendingUpgrade = upgrade_states::PendingUpgrade;
  using HeldOpen = upgrade_states::HeldOpen;
  struct AdminRequest {
    std::string method, target, body;
    bool too_large = false;
  };

  void dispatch(InboxCommand&& command) override;
  void on_unmasked_frame(int fd) override;
  void on_plaintext_waiting(int fd) override;
  void on_request_waiting(int fd) override;
  void pause_waiting_requests();   // outside lws callbacks
  void serve_waiting_plaintext();  // outside lws callbacks
  void close_unmasked_senders();
  void drain_inbox();
  void begin_shutdown();
  void begin_drain(bool then_stop);
  void close_for_restart_if_due(SteadyClock::time_point now);
  // "service restart; retry_ms=N", N random in [reconnect_spread / 10, reconnect_spread].
  std::string restart_reason();
  // The client's address: the TCP peer, or behind a trusted proxy what its X-Forwarded-For says
  // (handshake/trusted_proxies.hpp). While the request's headers are there.
  std::string client_address(lws* wsi) const;
  std::string tcp_peer(lws* wsi) const;  // the TCP peer's address
  // New clients get 503: shutting down, or draining before it.
  bool refusing_new() const { return stopping_ || shared_.going_away.load(); }
  void refuse_for_descriptors();
  // A place under max_http_connections_per_ip for the connection just accepted on `fd`, kept
  // until lws adopts it; false when its address has none left (logged, counted; lws closes it).
  bool admit_http_connection(lws* listener, int fd);
  // The adopted connection's place (the one found at accept, or a new one), kept in `data`;
  // false when refused (the caller fails the adoption).
  bool take_http_slot(lws* wsi, ConnectionData& data);
  void watch_adopted(int fd, const lws_vhost* vhost);  // the guard follows it (accepted or back)
  // Header lines for answers written below lws on `vhost` (its HSTS); lives as long as the shard.
  const std::string& own_answer_headers(const lws_vhost* vhost) const;
  // A connection lws gave up on while adopting it (before NEW_CLIENT_INSTANTIATED): lets go of
  // the place admit_http_connection took for it, and of the guard's watch.
  void adoption_failed(int fd);
  std::optional<std::optional<ConnectionSlots::Slot>> http_slot_for(const std::string& peer);
  // [limits] inbound_bytes_in_flight spent: the session other than `asker` holding the most
  // unfinished input, if more than `asking`; and closing it (1013) to make room.
  Session* largest_unfinished_input(const Session& asker, std::size_t asking);
  void close_for_input(Session& victim, const Session& asker);
  // A place under max_connections and max_connections_per_ip for a session or a relayed
  // WebSocket from `client`, or the limit that refuses it.
  std::optional<ConnectionSlots::Slot> take_session_slot(const std::string& client,
                                                         ConnectionSlots::Refusal& refusal);
  // Shutdown, step 2: once no adapter has work in flight (or the drain time is up), close every
  // session with 1012.
  void finish_draining();
  std::chrono::milliseconds until_deadline(SteadyClock::time_point now) const;  // while stopping
  // Shard 0 decides a reload and starts the new adapters; the other shards follow its decision.
  void apply_reload(std::shared_ptr<ServerConfig> next);
  void follow_reload(std::shared_ptr<ServerConfig> next);
  void swap_config(std::shared_ptr<ServerConfig> next);
  std::string restart_needed_for(const ServerConfig& next) const;
  void adopt_config_tables();  // route metrics, sweep period, listener map of config_
  void release_retired_configs(bool at_exit);
  std::size_t work_in_flight() const;
  int hold_upgrade(lws* wsi, const RouteConfig& route, auth::AuthDecision decision,
                   ConnectionSlots::Slot slot);
  void release_held_upgrades();  // outside lws callbacks: adopting re-enters lws
  bool admin_authorized(lws* wsi) const;
  int serve_admin_api(lws* wsi, const AdminRequest& request);
  void on_timer();
  void schedule_timer(std::chrono::milliseconds delay);

  int confirm_upgrade(lws* wsi);
  int refuse_upgrade(lws* wsi, unsigned status, std::string_view code, const std::string& reason,
                     bool challenge = false);
  bool handle_auth_message(Session& s, const Frame& message);
  // SessionHost. Connection::authenticate for session `id`: a credential sent in-band (an MQTT
  // CONNECT's). Connection::hold_inbound: what its adapter holds of the client's input.
  CredentialCheck authenticate_in_band(ConnectionId id, std::string_view credential) override;
  bool hold_inbound(ConnectionId id, std::size_t bytes, InboundHold kind) override;
  std::optional<SteadyClock::time_point> heard_while_held(ConnectionId id) const override;
  bool within_rate(Session& s);
  // The route's own auth table, else its listener's, else the route's default (anonymous).
  const auth::RouteAuth& auth_policy(lws* wsi, const RouteConfig& route) const;
  // What this upgrade gets of the route's (and listener's) compression.
  NegotiatedCompression compression_for(lws* wsi, const RouteConfig& route) const;
  // The same, for a session: by the index of its listener, in the configuration in force now.
  const auth::RouteAuth& auth_policy(std::size_t listener, const RouteConfig& route) const;
  int serve_http(lws* wsi, std::string_view uri);
  // A plain listener with redirect_to_https: 301 to the same path on https (https_redirect.cpp).
  int redirect_to_https(lws* wsi, std::uint16_t https_port);
  // The listener a connection came in on, and its index in the config (none: the admin one).
  const ListenerConfig* listener_of(lws* wsi) const;
  std::optional<std::size_t> listener_index(const lws_vhost* vhost) const;
  int on_established(lws* wsi, ConnectionData& data);
  // A new session on `route`, admitted with `d` and carried by what `make_transport` makes for
  // its id: registered, counted, logged, and opened to its adapter. `welcome`: its first message
  // is wsbridge's welcome (docs/FALLBACK.md).
  using TransportFactory = std::function<std::unique_ptr<Transport>(ConnectionId)>;
  Session* admit_session(const RouteConfig& route, std::size_t listener, auth::AuthDecision d,
                         std::optional<ConnectionSlots::Slot> slot, const std::string& uri,
                         const TransportFactory& make_transport,
                         std::optional<std::string> mqtt_refusal,
                         const shared_deflate::WireFormat& format, bool welcome);
  // The connection's next request is due within the handshake timeout (from accept, and after
  // each keep-alive answer), or no longer (it arrived).
  void expect_request(ConnectionData& data);
  // Ends the HTTP transaction of a connection: 0 to go on, -1 for lws to close it. On keep-alive,
  // what lws would spend on it is saved (keep_alive.cpp): its keep-alive timeout, and the wait for
  // a POLLOUT it asks before reading the next request, done at the end of the loop turn instead.
  int complete_http_transaction(lws* wsi);
  void resume_keep_alive_connections();  // outside lws callbacks: lws_service_fd re-enters lws
  static void request_arrived(ConnectionData& data);
  void drop_late_requests(SteadyClock::time_point now);
  // A fragment of a message from the session's transport: reassembled within the route's limits,
  // then given to the adapter.
  void on_fragment(Session& s, const InboundFragment& fragment);
  void refuse_mqtt(Session& s, std::string_view connect);
  void refuse_message(Session& s, std::uint16_t code, const std::string& reason);
  // What `part` of the session's held input is becomes `bytes`, within this shard's share of
  // [limits] inbound_bytes_in_flight (half of it for what waits for an upstream); false (logged,
  // nothing changed) when that is spent.
  bool hold_input(Session& s, HeldBytes::Part part, std::size_t bytes, std::size_t frame_rest = 0);
  // [limits] unread_output_bytes: each timer tick gathers the sessions holding output nobody
  // reads now (paused for not reading it, stopped inside a frame, or fallback sessions no request
  // carries), then closes those holding the most until what they hold fits this shard's share.
  // `progressed`: the peer took bytes since the last tick (peer_took_queued_bytes).
  void gather_unread_output(Session& s, bool progressed);
  // While a session's reading is paused or held: whether the peer took bytes of the kernel's
  // send queue since the last tick, which no write turn may show (unread_output.cpp).
  bool peer_took_queued_bytes(Session& s);
  void bound_unread_output();
  bool uncarried_fallback(const Session& s) const;
  // 1013 "not reading" (the bound above, the timer's rule for paused clients), counted as a queue
  // overflow; dropped soon after, unless no request carries it (told by its next one).
  void close_not_reading(Session& s);
  // This shard's part of a process-wide byte bound, split evenly among the shards, never below
  // `at_least` (so one unit of the largest size can always pass alone).
  std::size_t share_of(std::size_t total, std::size_t at_least) const {
    return std::max(total / shared_.count, at_least);
  }
  bool inflate_message(Session& s);
  int on_writeable(Session& s);
  int write_queued(Session& s);
  // After a write: asks for the next WRITEABLE if more (or a close) waits; reports drops.
  void after_write(Session& s);
  // Frames queued for a session: written at the end of this loop turn when its transport can
  // (write_soon), else in the write turn the transport asks for. write_soon says whether lws has
  // work of its own from it (a connection dropped, reading resumed): serve() then wakes the loop.
  void want_write_soon(Session& s);
  bool write_soon();
  void on_peer_close(Session& s, const void* in, std::size_t len);

  // The HTTP fallback transports (docs/FALLBACK.md). Carrier side (fallback_carrier.cpp): the
  // requests under /_wsbridge/ that this shard's connections bring, and their responses.
  int serve_fallback(lws* wsi, std::string_view uri);
  int open_fallback_session(lws* wsi, const RouteConfig& route, fallback::CarrierKind kind,
                            const std::string& cors_origin);
  // Hands `request` to the session's shard; the carrier waits for `channel` to have bytes.
  int carry(lws* wsi, fallback::SessionRequest request, const std::string& cors_origin);
  // The connection now carries a fallback request: its response comes through the channel.
  std::shared_ptr<fallback::ResponseChannel> attach_carrier(lws* wsi, bool stream,
                                                            const std::string& cors_origin);
  // The carrier tells session `connection` (on whichever shard) when it wrote or went away.
  void wake_owner_of(fallback::ResponseChannel& channel, std::uint64_t connection);
  // The client certificate's fingerprint a fallback request's token is checked with.
  std::string request_client_cert(lws* wsi, std::string_view token, bool forwarded);
  // At start and at each reload: [fallback] peers given by an address that trusted_proxies does
  // not list, and public [[proxy]] prefixes that tunnel to a guarded prefix's backend.
  void warn_of_config_risks() const;
  void open_listeners(const lws_http_mount& health_mount);  // open()'s vhosts (listener_vhosts.cpp)
  // A request for a session of another instance `peer`: sent on to it (fallback/peer_relay.hpp).
  int forward_to_peer(lws* wsi, const fallback::Peer& peer, bool stream,
                      const std::string& cors_origin, const std::string& body,
                      std::optional<std::uint64_t> resume_from = std::nullopt);
  int fallback_body(lws* wsi, const void* in, std::size_t len);
  int fallback_body_done(lws* wsi);
  void carrier_closed(ConnectionData& data);
  // Writing the responses (carrier_write.cpp). `finished`: where an answer written whole goes
  // to be completed after the turn's other answers (else completed now).
  int write_fallback(lws* wsi, std::vector<lws*>* finished = nullptr);
  int finish_carrier(lws* wsi);  // its response is out: the transaction completes
  // A carrier's channel has bytes (kCarrierWake): written at the end of the loop turn.
  void want_carrier_write(std::uint64_t key);
  // Those writes; true when lws has work from them (a connection to kill).
  bool write_carriers_soon();
  // One carrier's bytes outside lws' write turn when it can take them there (else false;
  // `failed`: the connection is to be closed).
  bool write_carrier_now(lws* wsi, FallbackCarrier& carrier, std::vector<lws*>& finished,
                         bool& failed);
  // Session side (fallback_sessions.cpp): write turns due, run at the end of the loop turn.
  void schedule_turn(std::uint64_t connection) override;
  void run_fallback_turns();
  void on_fallback_request(fallback::SessionRequest& request);
  void apply_post(Session& s, fallback::FallbackTransport& transport, const std::string& body,
                  fallback::ResponseChannel& reply);
  void end_fallback_session(Session& s);
  // Opens the session once the request's checks passed (and its admission check, if any).
  void start_fallback_session(HeldOpen open);
  // The route's admission check first: the open waits for its verdict (fallback_admission.cpp).
  int hold_fallback_open(lws* wsi, HeldOpen open, const std::string& cors_origin);
  void on_fallback_admitted(fallback::SessionRequest& request);
  void expire_fallback_opens(SteadyClock::time_point now, bool all);
  // A WebSocket upgrade that resumes a fallback session (fallback_resume.cpp): checked here, or
  // handed to the session's shard (the socket moves: the upgrade is read again there).
  int confirm_resume(lws* wsi, const RouteConfig& route, ConnectionData& data);
  // A resume's socket bound for its session's shard, posted there once lws let go of it here.
  void send_socket_on(lws* wsi, ConnectionData& data);
  void adopt_handed_sockets();  // outside lws callbacks: adopting re-enters lws
  int resume_on_websocket(lws* wsi, ConnectionData& data, PendingUpgrade& upgrade);
  // A request of a session that is gone: its undelivered close, else 404.
  void answer_ended_session(fallback::SessionRequest& request);
  void tick_fallback_sessions(SteadyClock::time_point now);
  void close_sessions_of_withdrawn_fallbacks();  // after a reload
  void on_closed(Session* s);

  // The reverse proxy (docs/PROXY.md; proxy_takeover.cpp): a request for a [[proxy]] prefix
  // takes the socket out of lws' hands, with `head` (the request head lws read) and `bearer`
  // (an upgrade's bearer.<token> subprotocol token, for [proxy.auth]).
  int take_over_for_proxy(lws* wsi, std::string head, std::optional<std::string> bearer = {});
  void take_over_sockets();  // outside lws callbacks: adopting re-enters lws
  const std::shared_ptr<const ServerConfig>& current_config() const override { return config_; }
  bool refusing_new_connections() const override { return refusing_new(); }
  std::optional<ConnectionSlots::Slot> take_tunnel_slot(const std::string& ip,
                                                        std::string& why) override;
  void hand_back(int fd, SSL* ssl, std::string bytes, std::size_t listener) override;
  lws_context* loop() const override { return context_; }

  void enqueue(Session& s, Frame frame);
  void request_close(Session& s, std::uint16_t code, std::string reason, bool after_queue);

  std::shared_ptr<const ServerConfig> config_;
  // Replaced configurations still used by open connections (each session holds its own), kept
  // until the last of them closed and their adapters have nothing in flight.
  std::vector<std::shared_ptr<const ServerConfig>> retired_configs_;
  std::vector<lws_vhost*> listener_vhosts_;           // in config order
  std::vector<listen_share::PortClaim> port_claims_;  // shard 0, shared ports: ours alone
  std::vector<ConnectionId> writes_soon_;  // sessions with frames to write at the turn's end
  SocketWriter socket_writer_;             // its transports' iovec and header scratch
  int fd_limit_ = 0;                       // RLIMIT_NOFILE (soft) when the server started
  // Warnings about refusals, at most one every 5 s each.
  LogThrottle fd_warnings_{std::chrono::seconds(5)};
  LogThrottle http_cap_warnings_{std::chrono::seconds(5)};
  LogThrottle inbound_warnings_{std::chrono::seconds(5)};
  LogThrottle unread_output_warnings_{std::chrono::seconds(5)};
  struct UnreadOutput;                       // shard_parts.hpp
  std::vector<UnreadOutput> unread_output_;  // gathered this timer tick
  // The place admit_http_connection took for the socket lws is adopting now (by descriptor).
  std::optional<std::pair<int, ConnectionSlots::Slot>> pending_http_slot_;
  std::shared_ptr<ServiceInbox> inbox_ = std::make_shared<ServiceInbox>();
  EventLoop event_loop_;             // (declared before the context, which must go first)
  LingeringCloses lingering_{4096};  // sockets of closes we sent, kept a moment (on event_loop_)
  lws_context* context_ = nullptr;
  lws_vhost* admin_vhost_ = nullptr;
  std::unique_ptr<LwsTables> lws_tables_;
  std::unique_ptr<Timer> timer_;
  std::unordered_map<ConnectionId, Session*> sessions_;
  // The fallback sessions among them, and the requests this shard's connections carry (by key).
  std::unordered_map<ConnectionId, fallback::FallbackTransport*> fallback_sessions_;
  std::unordered_map<std::uint64_t, lws*> carriers_;
  // What the POSTs of this shard's connections hold (PostClaim): their bodies' bytes, against its
  // share of [fallback] post_bytes_in_flight; how many each session has in flight is counted
  // across the shards (ShardShared::session_posts), against this limit.
  static constexpr unsigned kPostsInFlightPerSession = 4;
  std::size_t post_bytes_in_flight_ = 0;
  // What this shard's sessions hold of their clients' input (Session::held_input).
  std::size_t inbound_bytes_in_flight_ = 0;
  std::vector<std::uint64_t> carriers_soon_;  // keys of carriers to write at the turn's end
  lws_dll2_owner_t keep_alive_resumes_{};     // connections to resume at the turn's end
  std::uint64_t next_carrier_key_ = 1;
  std::vector<ConnectionId> fallback_turns_due_;  // write turns run at the loop turn's end
  // Fallback sessions that ended with a close no request was there to carry: told to the next
  // request of their client, within the reconnect window.
  struct EndedFallback {
    std::uint16_t code = 1006;
    std::string reason;
    SteadyClock::time_point until;
  };
  std::unordered_map<ConnectionId, EndedFallback> ended_fallback_;
  // Fallback opens waiting for their route's admission check (Adapter::admit), by hold id.
  std::unordered_map<std::uint64_t, HeldOpen> held_opens_;
  std::vector<HandedSocket> handed_sockets_;        // to adopt from the loop (adopt_handed_sockets)
  std::vector<reverse_proxy::Takeover> takeovers_;  // for the proxy, from the loop
  std::unique_ptr<reverse_proxy::ProxyService> proxy_;
  // Requests forwarded to their session's instance, by carrier key (dropped once done).
  std::unordered_map<std::uint64_t, std::shared_ptr<fallback::PeerRelay>> relays_;
  std::vector<int> unmasked_senders_;   // sockets that sent an unmasked frame, to close with 1002
  std::vector<int> plaintext_waiting_;  // TLS sockets with plaintext lws has not read
  std::vector<int> requests_waiting_;   // sockets with a request behind a held one
  std::unordered_map<const RouteConfig*, std::unique_ptr<RouteMetrics>>
      route_metrics_;  // accepted, not yet served
  std::unordered_map<lws_vhost*, const ListenerConfig*> listener_of_vhost_;
  std::unordered_map<std::uint64_t, HeldUpgrade> held_;
  std::uint64_t next_hold_id_ = 1;
  bool holds_answered_ = false;  // some held upgrade has its verdict: release it from run()
  int adopting_fd_ = -1;         // the held socket being handed back to lws now
  int unadopted_watch_fd_ = -1;  // watch_adopted's socket, until NEW_CLIENT_INSTANTIATED
  tls::TlsSlot* configuring_tls_ = nullptr;  // the TLS listener whose vhost lws is creating
  std::optional<Admitted> adopting_;
  ShardShared& shared_;
  const unsigned index_;
  std::uint64_t next_sequence_ = 1;  // ids: (sequence - 1) * shard count + index + 1
  SteadyClock::time_point started_at_ = SteadyClock::now();
  std::chrono::milliseconds sweep_period_{1000};

  std::atomic<bool> ready_{false};
  std::atomic<bool> shutdown_requested_{false};
  bool stopping_ = false;  // service thread
  bool draining_ = false;  // stopping, waiting for in-flight work before closing sessions
  SteadyClock::time_point drain_deadline_{};
  bool destroying_ = false;  // service thread: context teardown, no more writes
  // A drain's closing time, and whether the shutdown follows it (service thread).
  std::optional<SteadyClock::time_point> restart_close_at_;
  bool stop_after_restart_close_ = false;
  bool drained_ = false;  // a drain without stop closed every client
  std::minstd_rand restart_jitter_{std::random_device{}()};
  SteadyClock::time_point shutdown_deadline_{};
};

}  // namespace wsbridge
