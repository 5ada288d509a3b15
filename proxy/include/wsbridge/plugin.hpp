// The plugin interface: everything an adapter knows about the core. Adapters never see
// libwebsockets; they see connections through `Connection` handles and are built from their
// route's TOML table by their `AdapterKind`.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wsbridge/config_table.hpp"
#include "wsbridge/frame.hpp"
#include "wsbridge/http_client.hpp"
#include "wsbridge/stream_client.hpp"

namespace wsbridge {

// Monotonic per process, never reused: a stale id addresses nothing, so it is safe to keep one
// after the connection closed.
using ConnectionId = std::uint64_t;

// A connection's id as the admin API knows it, unique across the instances behind one balancer:
// "<id>@<[server] instance_id>", e.g. "42@web-1". Give this one to backends: a push or a close
// by it reaches the connection through any instance (docs/DEPLOY.md).
std::string global_connection_id(ConnectionId id);

// WebSocket close codes (RFC 6455 section 7.4) used by wsbridge.
enum class CloseCode : std::uint16_t {
  kNormal = 1000,
  kGoingAway = 1001,  // server shutdown, idle peer
  kProtocolError = 1002,
  kNoStatus = 1005,        // received no code (never sent)
  kAbnormal = 1006,        // connection dropped without a close frame (never sent)
  kInvalidPayload = 1007,  // invalid UTF-8 in a text message
  kPolicyViolation = 1008,
  kMessageTooBig = 1009,
  kInternalError = 1011,
  kServiceRestart = 1012,  // a drain or a shutdown; the reason carries "retry_ms=N"
  kTryAgainLater = 1013,   // overloaded, slow consumer
};

// Topic permissions carried by a credential (an API key's, or a token's ACL claim). Adapters
// that deal in topics allow what both the route's ACL and this one allow.
struct TopicAcl {
  std::vector<std::string> subscribe;
  std::vector<std::string> publish;
};

// Who is on the other end. Filled in by the core before `on_open`; immutable afterwards.
struct Identity {
  std::string user;  // authenticated user ("sub", or the API key's name); empty: anonymous
  nlohmann::json claims = nlohmann::json::object();  // the token's (or the API key's) claims
  std::string auth_method;                           // "jwt", "api_key", or "" (anonymous)
  std::optional<TopicAcl> acl;  // from the credential; nullopt: nothing beyond the route's ACL
  std::string remote_address;   // peer IP as text
  std::string route_path;       // the route's configured path, e.g. "/echo"
  std::string request_uri;      // the request's path (without the query: it may carry a token)
  // The route lets clients bring their credential inside the protocol it speaks (an MQTT CONNECT's
  // password, `[routes.auth] sources = [..., "mqtt_connect"]`) and this upgrade carried none: the
  // adapter must have Connection::authenticate accept one before it serves anything.
  bool credential_pending = false;
};

// What Connection::authenticate says about a credential the adapter received in-band.
struct CredentialCheck {
  bool ok = false;
  std::string reason;  // when refused: for the client and the log (never the credential)
  // When accepted: who it is.
  std::string user;
  nlohmann::json claims = nlohmann::json::object();
  std::string auth_method;  // "jwt" or "api_key"
  std::optional<TopicAcl> acl;
};

// What `Connection::send` says about a frame, judged against the route's outbound limits
// (`max_queued_bytes`, `max_queued_messages`, `queue_high_water_bytes`, `slow_consumer`).
//
// It is a prediction made at the time of the call, from what the connection's queue held then
// plus the frames sent before and not yet taken over by the service thread: a frame handed over
// from another thread is queued (or not) a moment later on the service thread, and meanwhile
// the client may have read (the queue shrank) or other threads may have sent (it grew). Called on
// the service thread (inside on_message) nothing can come in between, except that under
// "drop_oldest" the policy may drop older droppable frames rather than this one. Use it to slow
// down or to count, not as a delivery receipt: kQueued does not mean the client received it.
enum class SendResult {
  kQueued,               // queued, below the route's queue_high_water_bytes
  kQueuedOverHighWater,  // queued, and the queue is now past queue_high_water_bytes: slow down
  // The queue was full (max_queued_bytes or max_queued_messages): the slow-consumer policy
  // dropped a frame. Under "drop_oldest" this one, or older droppable ones to make room for it;
  // under "disconnect" (or a frame that is not droppable) this one, and the connection is closed
  // with 1013 (later sends return kClosed).
  kDropped,
  kClosed,  // not sent: the connection is closed, or its close has been decided
};

// What an adapter holds of a client's input (Connection::hold_inbound).
enum class InboundHold : std::uint8_t {
  // Input gathered across messages and not usable yet (a packet split over several). Refused:
  // close the connection with kTryAgainLater (the core refuses its own unfinished messages so).
  kPartial,
  // Whole messages accepted and waiting for a slow upstream. Refused already past half of the
  // bound, so queues behind a slow upstream leave the other half to messages being received.
  // Refused: keep what was accepted and pause_reading() until a smaller total is granted.
  kWaiting,
};

// A handle on one WebSocket connection. Every method is safe from any thread: calls from foreign
// threads are handed to the service thread through one queue. A handle may outlive its
// connection; then `send` returns kClosed and `close` does nothing. `send` never blocks.
class Connection {
 public:
  virtual ~Connection() = default;
  virtual ConnectionId id() const = 0;
  virtual const Identity& identity() const = 0;
  virtual SendResult send(Frame frame) = 0;
  // Closes with `code` and up to 123 bytes of `reason`, after the frames already queued.
  virtual void close(CloseCode code, std::string_view reason) = 0;
  virtual bool is_open() const = 0;
  // Inbound flow control: while paused, the core stops reading the client's socket (lws rx flow
  // control), so a client sending faster than the adapter's upstream takes is slowed down by TCP
  // instead of being buffered without bound. Safe from any thread; the last call wins.
  virtual void pause_reading(bool paused) = 0;
  // Service thread only. While the core itself is not reading the client (it stopped reading in
  // the middle of a frame the core is writing to it, and nothing more is read from it until that
  // frame is out): the last time the client showed it is alive, by what it sent before or by
  // taking bytes of that frame. What it sends meanwhile waits unread, so an adapter with a
  // keepalive of its own counts that as hearing from it. nullopt while reading is not held.
  virtual std::optional<std::chrono::steady_clock::time_point> heard_while_held() const {
    return std::nullopt;
  }
  // Service thread only. The adapter now holds `bytes` of what this client sent that it cannot
  // pass on yet: counted, with the core's own message reassembly, against [limits]
  // inbound_bytes_in_flight, so many clients each holding up to their per-connection limits
  // cannot exhaust memory together. Call it with the new total of that kind whenever it changes
  // (0 when nothing is held); the connection's count is given back when it closes. false: the
  // server already holds too much (nothing changed); what to do then depends on the kind.
  virtual bool hold_inbound(std::size_t bytes, InboundHold kind = InboundHold::kPartial) {
    (void)bytes;
    (void)kind;
    return true;
  }
  // Service thread only. Checks a credential the client sent inside its protocol (a JWT or an API
  // key), exactly as the upgrade would have under the route's [routes.auth]: keys, expiry, users,
  // required claims. Accepted, it also arms the connection's expiry (closed with 1008 when the
  // token expires). `identity()` keeps what the upgrade established.
  virtual CredentialCheck authenticate(std::string_view credential) {
    (void)credential;
    return CredentialCheck{false, "in-band credentials are not supported here", "", {}, "", {}};
  }
};

struct CloseInfo {
  std::uint16_t code = 1006;  // as sent by whichever side closed first; 1006 when none was
  std::string reason;
  bool by_peer = false;
};

// What a handshake-time admission check sees (Adapter::admit).
struct AdmissionRequest {
  Identity identity;    // as authenticated so far
  HttpHeaders headers;  // the upgrade request's headers (the credential-bearing ones included)
};

// The answer of an admission check. A 2xx status admits the connection; `claims` (an object)
// are merged into the identity's claims. Any other status refuses the upgrade with it.
struct AdmissionResult {
  unsigned status = 200;
  std::string reason;  // sent in the refusal's body
  nlohmann::json claims = nlohmann::json::object();
};
using AdmissionCallback = std::function<void(AdmissionResult)>;

// One adapter instance per route. `on_open`, `on_message` and `on_close` run on the service
// thread of the connection's shard (see current_shard()) and must never block: hand slow work to
// your own threads and answer through `Connection::send`. With several shards they are called
// from several threads at once, for different connections: state shared across connections
// needs a lock or a per-shard copy.
class Adapter {
 public:
  virtual ~Adapter() = default;
  virtual void on_open(const std::shared_ptr<Connection>& connection) { (void)connection; }
  virtual void on_message(const std::shared_ptr<Connection>& connection, Frame message) = 0;
  virtual void on_close(const std::shared_ptr<Connection>& connection, const CloseInfo& info) {
    (void)connection;
    (void)info;
  }
  // Droppable frames were discarded for this slow client (slow_consumer = "drop_oldest"); called
  // once its queue has drained, so the adapter can tell it how many it missed.
  virtual void on_dropped(const std::shared_ptr<Connection>& connection, std::uint64_t count) {
    (void)connection;
    (void)count;
  }
  // A message refused by the route's rate limit (it never reached on_message). Adapters with an
  // error frame of their own tell the client here; sustained excess closes the connection (1008).
  virtual void on_rate_limited(const std::shared_ptr<Connection>& connection,
                               const Frame& message) {
    (void)connection;
    (void)message;
  }
  // The connection's outbound queue went over the route's queue_high_water_bytes (a send said
  // kQueuedOverHighWater) and has now drained below half of it: an adapter that paused its source
  // may resume. Service thread.
  virtual void on_drained(const std::shared_ptr<Connection>& connection) { (void)connection; }
  // WebSocket subprotocols the adapter itself speaks on this route (e.g. "mqtt"): the route
  // accepts them beside its configured `subprotocols`. Asked once, after create_route.
  virtual std::vector<std::string> subprotocols() const { return {}; }
  // Adapters that admit connections themselves (e.g. by asking a backend) return true; the core
  // then holds each upgrade, after its own checks passed, until `admit` answers. `done` must be
  // called exactly once, on the service thread (it may be called later, from an HTTP response).
  virtual bool wants_admission() const { return false; }
  virtual void admit(AdmissionRequest request, AdmissionCallback done) {
    (void)request;
    done(AdmissionResult{});
  }
};

// What a route's adapter is told about its place in the configuration.
struct RouteContext {
  std::string path;                       // the route's path
  std::filesystem::path config_dir;       // for resolving relative file names
  HttpClient* http_client = nullptr;      // the core's asynchronous HTTP client (never null)
  unsigned shards = 1;                    // service threads; current_shard() is below this
  StreamClient* stream_client = nullptr;  // the core's TCP/TLS byte streams (never null)
  // Broker topics wsbridge keeps for itself (the cluster's control messages, [cluster]
  // control_prefix): that topic and everything under it. Adapters that deal in topics never let
  // a client publish or subscribe there, whatever an ACL says.
  std::string reserved_topic_prefix;
};

// The core serves connections on `RouteContext::shards` service threads (shards) at once. An
// adapter's callbacks for one connection always run on that connection's shard, one at a time;
// callbacks for connections of different shards run in parallel. The calling thread's shard, for
// adapters that keep state per shard; 0 on threads that are not a shard's.
unsigned current_shard();

// One instance per adapter name per loaded configuration. It builds the adapter of every route
// that names it, and may own what those routes share (e.g. one broker connection).
class AdapterKind {
 public:
  virtual ~AdapterKind() = default;
  // Reads a top-level section this kind claimed when it was registered (e.g. "upstreams" for
  // mqtt), before any route is built. `top_level` is the whole file: read your section through
  // it (e.g. `top_level.named_tables(section)`), reporting errors with positions.
  virtual void configure_section(ConfigTable& top_level, std::string_view section) {
    (void)top_level;
    (void)section;
  }
  // Builds the adapter of one route. `options` holds the route's table: the core has consumed its
  // own keys; read yours through it (each read marks the key as known) and report bad values with
  // `options.fail_at(key, message)`. Keys left unread are reported as unknown after this returns.
  virtual std::unique_ptr<Adapter> create_route(ConfigTable& options,
                                                const RouteContext& context) = 0;
  // Called once after every route is built and before the first connection; may start threads.
  virtual void start() {}
  // Called once at shutdown, after the last connection closed or the shutdown timeout passed.
  virtual void stop() {}
  // Work accepted from clients and not yet answered by the upstream (QoS 1/2 publishes awaiting
  // the broker's ack, HTTP requests awaiting a response). Any thread. A graceful shutdown stops
  // reading from clients and waits, within a bound, until this is 0 before closing with 1001.
  virtual std::size_t in_flight() const { return 0; }
};

}  // namespace wsbridge
