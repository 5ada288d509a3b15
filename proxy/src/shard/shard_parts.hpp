// What the parts of a Shard (proxy/src/shard/*.cpp) share: its constants, the per-route
// metrics, the lws tables and timer it owns, and the small steps several parts take. Private to
// the server.
#pragma once

#include <libwebsockets.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fallback/response_channel.hpp"
#include "http/http_reply.hpp"
#include "metrics/core_metrics.hpp"
#include "session/session.hpp"
#include "shard/lws_request.hpp"
#include "shard/shard.hpp"
#include "wsbridge/log.hpp"

static_assert(LWS_PRE <= wsbridge::kFrameHeadroom, "Frame headroom must fit LWS_PRE");

namespace wsbridge {

using namespace std::chrono_literals;

inline constexpr const char* kProtocolName = "wsbridge";
// lws reads at most this much per RECEIVE callback and allocates it for every connection (its
// rx_ubuf): 512 B instead of 4 KiB saves 3.5 KiB per idle connection, the largest share of what
// one costs. Messages are reassembled by us up to the route's max_message_bytes; larger ones
// only take more callbacks.
inline constexpr std::size_t kRxChunkBytes = 512;
// lws 4.1.6 caps each send() at the protocol's tx_packet_size, or at rx_buffer_size when that is
// 0 (512 bytes here): this is what one lws_write of a permessage-deflate connection can send.
inline constexpr std::size_t kTxChunkBytes = 64 * 1024;
// What a transport sends to one connection per write turn at most, so a client taking 1 MiB
// frames as fast as loopback allows cannot hold the loop from the others for long (the kernel
// also stops at the socket's send buffer).
inline constexpr std::size_t kWriteBudgetBytes = 1024 * 1024;
// Connections are refused right after accept() when fewer descriptors than this are left, so
// accept() itself never fails with EMFILE (lws 4.1.6 then spins on its listening socket, a core
// at 100% logging "accept: errno 24", while the client waits in the backlog).
inline constexpr int kSpareDescriptors = 64;
// How long a decided close may take before the timer drops the connection outright: enough to
// send the close frame and read the peer's answer, or to flush the frames queued before a
// graceful close to a client that still reads.
inline constexpr auto kImmediateCloseGrace = std::chrono::seconds(5);
// Every client's close at a drain or a shutdown: "service restart" (RFC 6455 registry), with a
// retry hint in the reason (Shard::restart_reason).
inline constexpr std::uint16_t kServiceRestart = 1012;
inline constexpr auto kQueuedCloseGrace = std::chrono::seconds(30);

struct Shard::LwsTables {
  // protocols[0] takes HTTP and connections without a subprotocol; one more entry per
  // subprotocol a route accepts (same callback), so lws can select it; then the terminator.
  std::vector<lws_protocols> protocols;
  std::deque<std::string> protocol_names;
  // Whether lws knows a subprotocol of this name (what it selects from an offer), as a predicate.
  std::function<bool(std::string_view)> knows_subprotocol() const {
    return [this](std::string_view name) {
      return std::find(protocol_names.begin(), protocol_names.end(), name) != protocol_names.end();
    };
  }
  lws_http_mount health_mount{};
  lws_http_mount fallback_mount{};  // /_wsbridge: the HTTP fallback transports
  lws_http_mount files_mount{};
  std::string static_origin;
  std::deque<std::string> vhost_names;  // a deque never moves its elements
  // Per listener (index in config order): its current certificates (tls.hpp), and its HSTS
  // header for lws to add to every HTTP answer (TLS listeners with `hsts` only).
  std::deque<tls::TlsSlot> tls_slots;
  std::deque<lws_protocol_vhost_options> hsts_headers;
  std::deque<std::string> own_answer_headers;  // every listener's (Shard::own_answer_headers)
};

struct Shard::Timer {
  lws_sorted_usec_list_t sul;  // first member: the callback casts back from it
  Shard* shard = nullptr;
  // The connections whose next request is due, oldest first (each is appended when it becomes
  // due, and the timeout is the same for all): the timer drops from the head while late.
  lws_dll2_owner_t awaiting_request{};
};

// A connection's place in Timer::awaiting_request. Standard layout with the link first, so the
// list's node converts back to it.
struct RequestDeadline {
  lws_dll2_t link{};
  lws* wsi = nullptr;  // the connection, which the timer drops when it is late
  SteadyClock::time_point since{};
};

// Whether a connection's next request may wait where no POLLIN tells of it: decrypted in
// OpenSSL's buffer (TLS), or in the recv guard's replay (mask_guard::replay_first).
bool input_waits_unseen(lws* wsi);

// What wsbridge's answers written below lws carry on `listener`: its HSTS header line, if any
// (https_redirect.cpp; Shard::own_answer_headers).
std::string own_answer_lines(const ListenerConfig& listener);

// A session holding queued output nobody reads now (Shard::gather_unread_output).
struct Shard::UnreadOutput {
  std::size_t bytes;
  ConnectionId id;
};

// A connection's place in Shard::keep_alive_resumes_ (keep_alive.cpp). Link first, as above.
struct KeepAliveResume {
  lws_dll2_t link{};
  lws* wsi = nullptr;
};

// What a shard keeps for one of its lws connections, from accept to WSI_DESTROY. It is the
// connection's lws user data (lws_set_wsi_user at SERVER_NEW_CLIENT_INSTANTIATED), so lws hands
// it to every callback of the connection. Being ours, it outlives lws' protocol binds: lws frees
// and reallocates only user data it allocated itself, at the upgrade (between CONFIRM_UPGRADE and
// ESTABLISHED) and after each keep-alive request, which would lose what was decided before.
struct Shard::ConnectionData {
  explicit ConnectionData(lws* wsi) : fd(lws_get_socket_fd(wsi)) {
    deadline.wsi = wsi;
    resume.wsi = wsi;
  }
  ~ConnectionData() {
    lws_dll2_remove(&deadline.link);
    lws_dll2_remove(&resume.link);
  }
  ConnectionData(const ConnectionData&) = delete;
  ConnectionData& operator=(const ConnectionData&) = delete;

  static ConnectionData* of(lws* wsi) { return static_cast<ConnectionData*>(lws_wsi_user(wsi)); }

  const int fd;  // (lws no longer tells it at WSI_DESTROY: Shard::watch_adopted)

  // The states before the upgrade are allocated only while they exist: inline (std::optional)
  // they made every open connection carry about 700 bytes it no longer needed.
  RequestDeadline deadline;                     // linked while a request is due
  KeepAliveResume resume;                       // linked from an answer to the loop turn's end
  std::unique_ptr<Admitted> admitted;           // a held upgrade's verdict, until CONFIRM_UPGRADE
  std::unique_ptr<PendingUpgrade> pending;      // decided at CONFIRM_UPGRADE, taken at ESTABLISHED
  std::unique_ptr<AdminRequest> admin_request;  // an admin API request whose body is arriving
  std::unique_ptr<FallbackCarrier> carrier;     // a fallback request it carries (its response)
  Session* session = nullptr;                   // from ESTABLISHED to CLOSED
  // Its place under max_http_connections_per_ip until it carries a WebSocket (or leaves lws).
  std::unique_ptr<ConnectionSlots::Slot> http_slot;
  // Its socket (and TLS session), bound for shard `moving_to`: sent at WSI_DESTROY.
  std::shared_ptr<HandedSocket> moving;
  unsigned moving_to = 0;
};

// A POST's claim on the POST limits: its body's bytes from arrival to answer, on its shard's
// share (Shard::post_bytes_in_flight_), and one of its session's places (counted across the
// shards). Given back when its carrier goes, however it goes (answered, refused, or the
// connection closed).
struct PostClaim {
  std::size_t* shard_bytes = nullptr;
  SessionPostCounts* session_posts = nullptr;  // set once the place is claimed
  SessionPostCounts::SessionKey session;
  std::size_t bytes = 0;

  PostClaim() = default;
  PostClaim(const PostClaim&) = delete;
  PostClaim& operator=(const PostClaim&) = delete;
  ~PostClaim() {
    release_bytes();
    if (session_posts != nullptr) session_posts->release(session);
  }
  void add_bytes(std::size_t n) {
    bytes += n;
    *shard_bytes += n;
  }
  void release_bytes() {
    if (shard_bytes != nullptr) *shard_bytes -= bytes;
    bytes = 0;
  }
};

// A fallback request (docs/FALLBACK.md) on one of this shard's connections: its response comes
// through `channel` from the session's shard, or a POST's body is arriving first.
struct Shard::FallbackCarrier {
  std::uint64_t key = 0;  // in carriers_, for the owner's wake-ups
  std::shared_ptr<fallback::ResponseChannel> channel;
  std::string cors_origin;    // echoed in Access-Control-Allow-Origin (empty: none)
  bool headers_sent = false;  // a stream's
  // A stream in chunks (an HTTP/1.1 request that keeps its connection): when it ends, at
  // sse_byte_limit, its client's next stream comes on the same connection, where a stream
  // delimited by the connection's close needed a new TCP (and TLS) handshake each time.
  bool chunked = false;
  bool write_soon = false;  // in carriers_soon_
  bool done = false;        // the response is complete
  bool ending = false;      // its owner ended it: the rest has a deadline (want_carrier_write)
  // A POST whose body is arriving.
  std::uint64_t target = 0;
  std::string body;
  std::size_t max_body = 0;
  bool too_large = false;
  std::shared_ptr<const fallback::Peer> peer;  // the owner is this instance (forward the POST)
  PostClaim claim;                             // a POST's (from its head to its answer)
};

// The headers every answer of the fallback endpoints carries: never cached, and readable by an
// allowed origin (`cors_origin`; empty: none). (fallback_carrier.cpp)
HeaderList fallback_answer_headers(const std::string& cors_origin);

// "1.234s", for the log.
std::string format_seconds(SteadyClock::duration d);

// Closes from inside the session's own callback: records how it ended, hands lws the close
// frame's code and reason, and returns the -1 the callback must return.
int close_now(Session& s, std::uint16_t code, const std::string& reason);

}  // namespace wsbridge
