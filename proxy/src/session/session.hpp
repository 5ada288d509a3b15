// One WebSocket connection as its shard's service thread sees it. Owned by the Shard, touched only
// on its thread, except what SessionIndex reads for the admin API (the atomics, and what is set
// before the session is added there); adapters reach it through its ConnectionHandle.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "config/server_config.hpp"
#include "server/connection_slots.hpp"
#include "session/connection_handle.hpp"
#include "session/frame_queue.hpp"
#include "session/held_bytes.hpp"
#include "session/transport.hpp"
#include "wsbridge/utf8.hpp"

struct lws;

namespace wsbridge {

using SteadyClock = std::chrono::steady_clock;

struct PendingClose {
  std::uint16_t code = 1000;
  std::string reason;
};

// The metrics of one route, looked up once.
struct RouteMetrics;

struct Session {
  RouteMetrics* metrics = nullptr;
  ConnectionId id = 0;
  std::unique_ptr<Transport> transport;        // what carries it (transport.hpp)
  std::size_t listener = 0;                    // the index of the listener it came in on
  std::shared_ptr<const ServerConfig> config;  // keeps `route` alive across reloads
  const RouteConfig* route = nullptr;
  std::shared_ptr<ConnectionHandle> handle;
  std::optional<ConnectionSlots::Slot> slot;  // its place under the connection limits
  // An MQTT client on a route that does not speak MQTT: never reaches the adapter, is answered
  // with a refusing CONNACK and closed with this reason (mqtt_refusal.hpp).
  std::optional<std::string> mqtt_refusal;
  std::string mqtt_connect;  // its CONNECT so far (refuse_mqtt)

  // Outbound: frames waiting for the write turn (a frame the transport started is its own).
  // `queued_bytes` counts the outbox.
  FrameQueue outbox;
  std::size_t queued_bytes = 0;

  // Inbound reassembly: kFrameHeadroom bytes, then the message so far.
  std::string rx_buffer;
  bool rx_binary = false;
  bool rx_compressed = false;  // permessage-deflate: inflated once whole (Shard::on_fragment)
  Utf8Validator rx_utf8;       // text messages, across their fragments
  // What of the client's input is held here, against [limits] inbound_bytes_in_flight: the
  // message being reassembled, and what the adapter holds (Connection::hold_inbound, by kind).
  HeldBytes held_input;

  SteadyClock::time_point opened_at;
  SteadyClock::time_point last_rx;
  SteadyClock::time_point last_ping;
  bool ping_due = false;
  bool write_soon = false;  // in the shard's writes_soon_: written at the end of this loop turn
  std::optional<PendingClose> close_after_queue;  // close once the outbox is empty
  CloseInfo close_info;                           // how it ended, for on_close and the log
  bool close_sent = false;
  // Set when a close is decided: past it the timer drops the connection whatever state lws is in
  // (a close decided inside a permessage-deflate drain, a peer that never reads or answers).
  std::optional<SteadyClock::time_point> close_deadline;

  const auth::RouteAuth* auth = nullptr;  // the policy it was admitted under (route or listener)
  // Credentials: when the token expires the connection closes (1008) unless refreshed.
  std::optional<std::chrono::system_clock::time_point> expires_at;
  // Rate limit (token bucket of the route's rate/burst).
  double rate_tokens = 0;
  SteadyClock::time_point rate_refilled_at;
  unsigned rate_strikes = 0;    // messages refused in a row
  bool reading_paused = false;  // Connection::pause_reading: lws rx flow control is off
  // While reading is paused: since when something has waited to be written (the pause, or the
  // first frame queued after it). A paused client that takes none of it for idle_timeout is gone.
  SteadyClock::time_point stalled_since;
  // What the transport had not sent of a frame it started, at the last timer tick: the same
  // non-zero count a tick later means the peer took none of it meanwhile
  // (Shard::gather_unread_output).
  std::size_t unsent_at_last_tick = 0;
  // What the kernel held of the session's output (SIOCOUTQ) at the last tick, while reading was
  // paused or held; -1 otherwise (Shard::peer_took_queued_bytes).
  int kernel_queued_at_last_tick = -1;
  std::uint64_t dropped = 0;        // droppable frames discarded since the client last caught up
  bool drained_notice_due = false;  // the queue went over the high-water mark (Adapter::on_drained)
  // Read by the admin API from another shard's thread, hence atomic (relaxed: statistics).
  std::atomic<std::uint64_t> messages_in{0};
  std::atomic<std::uint64_t> messages_out{0};
  std::atomic<std::uint64_t> bytes_in{0};
  std::atomic<std::uint64_t> bytes_out{0};
  std::chrono::system_clock::time_point opened_wall;  // for the admin API's "since"

  // Something waits to be written: queued frames, or the rest of one the socket took part of.
  bool output_waiting() const { return !outbox.empty() || transport->mid_frame(); }
  // A close has been decided: nothing more from this client reaches the adapter.
  bool closing() const { return close_sent || close_after_queue.has_value(); }
  // The close decided for it, sent or still waiting for its queue; none while it is open.
  std::optional<PendingClose> decided_close() const {
    if (close_sent) return PendingClose{close_info.code, close_info.reason};
    return close_after_queue;
  }
  // After the outbox changed: the handle's mirror, which Connection::send judges frames by.
  void outbox_changed() { handle->set_queued(queued_bytes, outbox.size()); }
};

}  // namespace wsbridge
