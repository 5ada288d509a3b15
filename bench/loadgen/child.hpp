// A child process of the load generator (one per --procs): its connections on one event loop,
// driven by the parent's commands over the control socket (control.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "control.hpp"
#include "histogram.hpp"
#include "options.hpp"
#include "ws_client.hpp"

namespace bench {

// "Not found" of the children's std::string_view searches.
inline constexpr std::size_t npos = std::string_view::npos;

class Child : public Loop::Handler {
 public:
  Child(const Options& o, unsigned index, int control_fd);

  int run();

  // Loop::Handler
  void on_open(Conn& c) override;

  void on_text(Conn& c, const char* data, std::size_t len, std::uint64_t t) override;

  void on_binary(Conn& c, const char* data, std::size_t len, std::uint64_t t) override;

  // A top-level integer member: the first occurrence when the frame's keys are in writing order,
  // the last when they are sorted (nested objects then come before "id" and "status").
  static bool find_key_int(std::string_view text, std::string_view key, std::int64_t& out,
                           bool first);

  void on_closed(Conn& c, bool) override;

  void on_fd(Conn& c, std::uint32_t events) override;

 private:
  static constexpr std::uint32_t kSubscriber = 0;
  static constexpr std::uint32_t kPublisher = 1;
  static constexpr std::uint32_t kFailed = 2;

  unsigned global_index(const Conn& c) const;

  void mark_ready(Conn& c);

  // Starts connections until `target` have been started, keeping at most --concurrency in
  // flight, and waits for them to be ready (or failed). False on timeout.
  bool ramp(std::size_t target);

  // Waits for the parent's next command, serving the connections meanwhile.
  std::string wait_command();

  std::size_t open_count() const;

  Kv base_kv();

  void report(const char* verb, const Kv& kv) { write_all(control_.fd, kv_line(verb, kv)); }

  void finish();

  // ---- idle -----------------------------------------------------------------------------------
  int run_idle();

  // Until every subscribed connection has received --messages more messages (published here).
  void deliver_messages();

  // ---- fanout ---------------------------------------------------------------------------------
  // The raw MQTT connection to the broker: the fan-out's publisher, or (subscribe) the publish
  // mode's counting subscriber on --topic.
  bool connect_mqtt(bool subscribe = false);

  void flush_mqtt();

  // child_payload.cpp: the payload of message `seq` published at `t`, and the check of a
  // received frame's payload (`at`: where "payload": starts) against it.
  std::string make_payload(std::uint64_t seq, std::uint64_t t);
  std::string make_telemetry(std::uint64_t seq, std::uint64_t t);
  const std::string& expected_payload(std::uint64_t seq, std::uint64_t t);
  bool payload_ok(std::string_view frame, std::size_t at, std::uint64_t seq, std::uint64_t t);

  void publish_one();

  std::size_t publisher_backlog() const;

  void flush_publisher();

  void on_message(Conn& c, std::string_view text, std::uint64_t t);

  // A delivered message `seq` (published at `ts`; `ok`: its payload is the one published).
  void count_delivery(Conn& c, std::int64_t seq, std::int64_t ts, bool ok, std::uint64_t t);

  int run_fanout();

  // ---- MQTT over WebSocket (child_mqtt.cpp, --mqtt) ------------------------------------------
  // loop_.poll, plus a PINGREQ on every MQTT connection each keepalive/2.
  void pump(int timeout_ms);

  std::string connect_packet(const std::string& client_id, unsigned keepalive) const;

  std::string publish_packet(std::string_view payload, unsigned qos, std::uint16_t id) const;

  void mqtt_open(Conn& c);

  // Complete MQTT packets out of the bytes of a binary message (or a TCP read from the broker);
  // the rest waits in c.mq.
  void mqtt_feed(Conn& c, const char* data, std::size_t len, std::uint64_t t);

  void on_mqtt_packet(Conn& c, std::uint8_t head, std::string_view body, std::uint64_t t);

  void mqtt_failed(Conn& c);

  // ---- publish (child_mqtt.cpp) ----------------------------------------------------------------
  void publish_from(Conn& c);

  int run_publish();

  // ---- handshake (child_handshake.cpp) ---------------------------------------------------------
  void start_handshake(Conn& c);

  void handshake_done(Conn& c);

  int run_handshake();

  // ---- HTTP transports (child_http.cpp, --transport sse|poll|sio) ------------------------------
  bool http_mode() const { return o_.transport != "ws"; }

  // Opens session c (its first request); false when the connection could not even start.
  bool http_open(Conn& c);

  // Sends `request` on c: on its keep-alive connection when it has one, else on a new one.
  bool http_request(Conn& c, std::string request);

  bool http_connect(Conn& c);

  bool http_flush(Conn& c);

  void http_event(Conn& c, std::uint32_t events);

  // Parses what c.in holds; false when c was closed meanwhile.
  bool http_parse(Conn& c, std::uint64_t t);

  void http_eof(Conn& c, std::uint64_t t);

  // A complete response on c (down: a welcome or messages; up: a POST's answer).
  void http_response(Conn& c, std::string_view body, std::uint64_t t);

  // The events of an SSE stream in c.in; false when c was closed meanwhile.
  bool sse_events(Conn& c, std::string& events, std::uint64_t t);
  // A chunked event stream's bytes in c.in, decoded into c.dechunked; false on a framing error.
  // `ended`: the last chunk came (the stream is over; its connection may carry the next).
  bool dechunk(Conn& c, bool& ended);

  void fallback_control(Conn& c, std::string_view json);

  void fallback_records(Conn& c, std::string_view body, std::uint64_t t);

  void sio_packets(Conn& c, std::string_view body, std::uint64_t t);

  // The session's next long-poll (poll, sio) or its stream again (sse).
  void http_next(Conn& c);

  // Queues one record (wsbridge: kind 't', or 'c' for a close) or packet (Engine.IO) for
  // session c's up connection.
  void http_post(Conn& c, std::string_view record, char kind = 't');

  // The end of the run: every open session closed as its client would (wsbridge's close record,
  // Socket.IO's DISCONNECT and Engine.IO's CLOSE), so that the server drops it at once instead
  // of keeping it for a reconnect; waits up to 3 s for the answers.
  void http_end_sessions();

  void http_send_post(Conn& up);

  void http_close(Conn& c);

  // The session failed: both connections closed, counted as on_closed does.
  void http_fail(Conn& c);

  std::string http_path(const char* kind) const;

  // ---- echo (child_echo.cpp; also the readiness of idle --echo) -------------------------------
  // Queues one message (flush() sends it).
  void echo_send(Conn& c, std::uint64_t t);

  void echo_message(Conn& c, const char* data, std::size_t len, std::uint64_t t);

  int run_echo();

  // ---- http (child_http_load.cpp): keep-alive GET requests in a closed loop -------------------
  // Connects c and queues its first request(s); false when the connection could not even start.
  bool http_load_start(Conn& c);

  void http_load_send(Conn& c, std::uint64_t t);

  void http_load_event(Conn& c, std::uint32_t events);

  void http_load_parse(Conn& c, std::uint64_t t);

  void http_load_response(Conn& c, std::uint64_t t);

  // c's connection ended (error: not by the server's orderly end): opened again when it had
  // answered before and the run goes on.
  void http_load_lost(Conn& c, bool error);

  void http_load_close(Conn& c);

  int run_http_load();

  // ---- rpc ------------------------------------------------------------------------------------
  void send_request(Conn& c, std::uint64_t t);

  void finish_request(Conn& c, std::uint64_t id, std::int64_t status, std::uint64_t t,
                      bool response);

  void on_response(Conn& c, std::string_view text, std::uint64_t t, bool keys_in_order);

  int run_rpc();

  const Options& o_;
  unsigned index_;
  Loop loop_;
  Conn control_;
  Conn publisher_;
  Conn mqtt_;
  std::vector<Conn> conns_;
  std::vector<Conn> ups_;  // --transport sse|poll|sio: each session's POST connection
  std::uint64_t http_requests_ = 0, http_posts_ = 0, http_reconnects_ = 0, http_lost_ = 0;
  std::vector<std::string> commands_;
  std::vector<std::uint32_t> restart_;  // handshake mode: closed connections to start again
  std::string padding_;
  struct Expected {
    std::uint64_t seq = 0;
    std::uint64_t t = 0;
    std::string text;
  };
  std::vector<Expected> expected_ = std::vector<Expected>(256);  // by seq: rebuilt on a miss
  bool ramping_ = false;
  bool publisher_ready_ = false;
  std::size_t next_start_ = 0;
  std::size_t in_progress_ = 0;
  std::size_t ready_count_ = 0;
  std::uint64_t t0_ = 0;
  std::uint64_t window_start_ = 0;
  std::uint64_t pub_end_ = 0;
  std::uint64_t published_ = 0;
  std::uint64_t delivered_ = 0;
  std::uint64_t last_delivery_ = 0;
  std::uint64_t in_window_ = 0;
  std::uint64_t foreign_messages_ = 0;
  std::uint64_t requests_ = 0, responses_ = 0, ok_ = 0, non2xx_ = 0, unmatched_ = 0;
  std::uint64_t acked_ = 0;             // publish --qos 1: PUBACKs received
  std::uint64_t next_ping_ = 0;         // --mqtt: when the next round of PINGREQs is due
  std::string http_request_text_;       // http: the request every connection sends
  std::vector<bool> seen_;              // publish: sequence numbers the counting subscriber got
  std::vector<std::uint32_t> touched_;  // publish: connections with frames queued this turn
  std::vector<char> tcp_buf_;           // reads from the broker connection
  Histogram hist_;
};

}  // namespace bench
