// The load generator's command line: its options, their parsing, and the way out on a bad one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ws_client.hpp"

namespace bench {

inline constexpr std::uint64_t kMs = 1000000ull;
inline constexpr std::uint64_t kSec = 1000000000ull;

// Prints "wsbridge-loadgen: <message>" on stderr and exits with status 2.
[[noreturn]] void die(const std::string& message);

struct Options {
  std::string mode;
  Url url;
  std::string publisher = "ws";  // "ws" or mqtt://host:port
  Url mqtt_url;
  unsigned connections = 100;  // subscribers / idle connections / rpc connections
  std::string topic = "bench/fanout";
  unsigned topics = 1;
  double rate = 0;  // messages/s published; 0: closed loop, as fast as delivered
  unsigned window = 32;
  double duration = 5;
  double warmup = 1;
  double settle = 0.3;
  unsigned payload = 100;
  unsigned procs = 1;
  unsigned concurrency = 200;
  unsigned source_ips = 0;
  std::vector<unsigned> steps;
  bool wait_stdin = false;
  double hold = 0;
  unsigned depth = 1;
  std::string path = "/x";
  std::string method = "GET";
  double drain_quiet = 0.5;
  double drain_max = 10;
  double connect_timeout = 60;
  unsigned http_port = 0;
  unsigned http_body = 64;
  bool deflate = false;       // offer permessage-deflate, inflate what comes compressed
  bool inflate_memo = false;  // see Loop::set_inflate_memo
  bool telemetry = false;     // payloads like a sensor's JSON reading instead of "xxx..." padding
  unsigned messages = 0;      // idle: messages published to every connection after each step
  // MQTT over the WebSocket (bench/loadgen/child_mqtt.cpp): binary frames carrying MQTT 3.1.1
  // packets (CONNECT, SUBSCRIBE, PUBLISH) instead of wsbridge's JSON protocol.
  bool mqtt = false;
  std::string subprotocol;  // Sec-WebSocket-Protocol offered ("mqtt" as mqtt.js; "": none)
  unsigned qos = 0;         // publish mode: QoS of the PUBLISH packets (0 or 1)
  unsigned keepalive = 60;  // MQTT keepalive (s): a PINGREQ goes out every keepalive/2
  // fanout, idle: how the subscribers reach the server (child_http.cpp). "ws": WebSocket;
  // "sse", "poll": wsbridge's HTTP fallback transports (docs/FALLBACK.md) on the route of
  // --url's path; "sio": Socket.IO's long-polling transport (Engine.IO 4) at --url's path.
  std::string transport = "ws";
  // idle --echo: a connection is ready once a message it sent came back (an echo server behind
  // a WebSocket pass-through, child_echo.cpp), instead of subscribing.
  bool echo = false;
};

// Exits through die() (or with the usage) on anything it cannot read.
Options parse_options(int argc, char** argv);

}  // namespace bench
