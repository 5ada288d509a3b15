// Parses the load generator's command line into Options.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "options.hpp"

namespace bench {

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "wsbridge-loadgen: %s\n", message.c_str());
  std::exit(2);
}

namespace {

void usage() {
  std::fputs(
      "usage: wsbridge-loadgen MODE [options]\n"
      "  fanout --url ws://127.0.0.1:8080/mqtt --subscribers N [--topic T]\n"
      "         [--publisher ws|mqtt://127.0.0.1:1883] [--rate MSGS_PER_S | 0 (closed loop)]\n"
      "         [--window W] [--duration S] [--warmup S] [--payload BYTES] [--telemetry]\n"
      "  idle   --url URL --connections N [--steps N1,N2,...] [--topic T] [--topics K]\n"
      "         [--hold S] [--messages K --publisher mqtt://127.0.0.1:1883 (K messages to\n"
      "         every connection after each step)] [--telemetry]\n"
      "  rpc    --url ws://127.0.0.1:8080/rpc --connections N [--depth D] [--duration S]\n"
      "         [--warmup S] [--path /x] [--method GET]\n"
      "  publish --url ws://127.0.0.1:8080/mqtt --mqtt --connections N --broker mqtt://H:P\n"
      "         [--qos 0|1] [--rate MSGS_PER_S | 0 (closed loop)] [--window W] [--duration S]\n"
      "         N MQTT-over-WebSocket clients publish (round robin); one MQTT subscriber on the\n"
      "         broker over TCP counts and times what arrives (one process: --procs 1)\n"
      "  handshake --url wss://127.0.0.1:8443/mqtt --connections N [--duration S] [--warmup S]\n"
      "         N clients in a loop: connect, TLS handshake (full, no resumption), upgrade,\n"
      "         close frame, wait for the server's close; reports handshakes/s\n"
      "  echo   --url ws://127.0.0.1:8080/echo --connections N [--window W] [--payload BYTES]\n"
      "         [--duration S] [--warmup S]: text messages to an echo server (closed loop, W in\n"
      "         flight per connection); reports echoed messages/s and the round trip\n"
      "  http   --url http://127.0.0.1:8080/x --connections N [--depth D] [--duration S]\n"
      "         [--warmup S]: keep-alive HTTP/1.1 GET requests (closed loop, D in flight per\n"
      "         connection, pipelined above 1); reports responses/s and latency\n"
      "  httpd  [--port P] [--body-bytes N]\n"
      "common: --procs P (child processes, each with its own fd limit), --concurrency C (upgrades\n"
      "  in flight), --url wss://... (TLS), --source-ips K (bind to 127.0.0.1..K), --wait-stdin "
      "(wait for a line after\n"
      "  each ready event and after the result), --connect-timeout S, --deflate (offer\n"
      "  permessage-deflate; client_max_window_bits and inflate compressed messages),\n"
      "  --inflate-memo (with server_no_context_takeover: inflate the same bytes once per "
      "process),\n"
      "  --mqtt (fanout, idle, publish: MQTT 3.1.1 packets in binary frames instead of the JSON\n"
      "  protocol), --subprotocol NAME (offered in the upgrade, e.g. mqtt), --keepalive S\n"
      "  --transport ws|sse|poll|sio (fanout, idle): WebSocket (default); wsbridge's SSE or\n"
      "  long-polling fallback on the route --url names (POST up); Socket.IO's polling transport\n"
      "  (Engine.IO 4) at --url's path, e.g. ws://127.0.0.1:8084/socket.io/\n"
      "  --echo (idle): ready once a message sent came back (an echo server), not subscribed\n",
      stderr);
}

}  // namespace

Options parse_options(int argc, char** argv) {
  if (argc < 2) {
    usage();
    std::exit(2);
  }
  Options o;
  o.mode = argv[1];
  if (o.mode != "fanout" && o.mode != "idle" && o.mode != "rpc" && o.mode != "httpd" &&
      o.mode != "handshake" && o.mode != "publish" && o.mode != "echo" && o.mode != "http") {
    usage();
    std::exit(2);
  }
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value for " + a);
      return argv[++i];
    };
    auto num = [&]() { return std::strtod(next().c_str(), nullptr); };
    auto unum = [&]() { return static_cast<unsigned>(std::strtoul(next().c_str(), nullptr, 10)); };
    if (a == "--url") {
      const std::string text = next();
      if (!Url::parse(text, "ws", o.url) && !Url::parse(text, "http", o.url)) {
        die("bad --url (ws://host:port/path, wss://..., or http://... for http)");
      }
    } else if (a == "--broker") {
      if (!Url::parse(next(), "mqtt", o.mqtt_url)) die("bad --broker (mqtt://host:port)");
    } else if (a == "--echo") {
      o.echo = true;
    } else if (a == "--mqtt") {
      o.mqtt = true;
    } else if (a == "--subprotocol") {
      o.subprotocol = next();
    } else if (a == "--qos") {
      o.qos = unum();
      if (o.qos > 1) die("--qos: 0 or 1");
    } else if (a == "--transport") {
      o.transport = next();
      if (o.transport != "ws" && o.transport != "sse" && o.transport != "poll" &&
          o.transport != "sio") {
        die("--transport: ws, sse, poll or sio");
      }
    } else if (a == "--keepalive") {
      o.keepalive = std::clamp(unum(), 2u, 65535u);
    } else if (a == "--publisher") {
      o.publisher = next();
      if (o.publisher != "ws" && !Url::parse(o.publisher, "mqtt", o.mqtt_url)) {
        die("bad --publisher (ws or mqtt://host:port)");
      }
    } else if (a == "--subscribers" || a == "--connections") {
      o.connections = unum();
    } else if (a == "--topic") {
      o.topic = next();
    } else if (a == "--topics") {
      o.topics = std::max(1u, unum());
    } else if (a == "--rate") {
      o.rate = num();
    } else if (a == "--window") {
      o.window = std::max(1u, unum());
    } else if (a == "--duration") {
      o.duration = num();
    } else if (a == "--warmup") {
      o.warmup = num();
    } else if (a == "--settle") {
      o.settle = num();
    } else if (a == "--payload") {
      o.payload = unum();
    } else if (a == "--procs") {
      o.procs = std::max(1u, unum());
    } else if (a == "--concurrency") {
      o.concurrency = std::max(1u, unum());
    } else if (a == "--source-ips") {
      o.source_ips = unum();
    } else if (a == "--steps") {
      const std::string s = next();
      std::size_t pos = 0;
      while (pos < s.size()) {
        const std::size_t comma = s.find(',', pos);
        o.steps.push_back(
            static_cast<unsigned>(std::strtoul(s.substr(pos, comma - pos).c_str(), nullptr, 10)));
        if (comma == std::string::npos) break;
        pos = comma + 1;
      }
    } else if (a == "--wait-stdin") {
      o.wait_stdin = true;
    } else if (a == "--hold") {
      o.hold = num();
    } else if (a == "--depth") {
      o.depth = std::max(1u, unum());
    } else if (a == "--path") {
      o.path = next();
    } else if (a == "--method") {
      o.method = next();
    } else if (a == "--drain-quiet") {
      o.drain_quiet = num();
    } else if (a == "--drain-max") {
      o.drain_max = num();
    } else if (a == "--connect-timeout") {
      o.connect_timeout = num();
    } else if (a == "--port") {
      o.http_port = unum();
    } else if (a == "--body-bytes") {
      o.http_body = unum();
    } else if (a == "--deflate") {
      o.deflate = true;
    } else if (a == "--inflate-memo") {
      o.inflate_memo = true;
    } else if (a == "--telemetry") {
      o.telemetry = true;
    } else if (a == "--messages") {
      o.messages = unum();
    } else if (a == "-h" || a == "--help") {
      usage();
      std::exit(0);
    } else {
      die("unknown option " + a);
    }
  }
  if (o.mode != "httpd" && o.url.port == 0) die("--url is required");
  if (o.steps.empty()) o.steps.push_back(o.connections);
  if (o.mode == "idle") o.connections = *std::max_element(o.steps.begin(), o.steps.end());
  if (o.mode == "idle" && o.messages > 0 && o.publisher == "ws") {
    die("idle --messages needs --publisher mqtt://host:port");
  }
  if (o.mode == "publish") {
    if (!o.mqtt) die("publish needs --mqtt");
    if (o.mqtt_url.port == 0)
      die("publish needs --broker mqtt://host:port (the counting subscriber)");
    o.procs = 1;  // the closed loop counts deliveries in the publishers' process
  }
  if (o.mode == "http" && o.url.tls) die("http: http:// only");
  if (o.echo && o.mode != "idle") die("--echo: idle (the echo mode echoes anyway)");
  if ((o.mode == "echo" || o.echo) && (o.mqtt || o.transport != "ws")) {
    die("echo, idle --echo: not with --mqtt or --transport");
  }
  if (o.transport != "ws") {
    if (o.mode != "fanout" && o.mode != "idle") die("--transport sse|poll|sio: fanout or idle");
    if (o.mqtt || o.url.tls || o.deflate)
      die("--transport sse|poll|sio: not with --mqtt, wss:// or --deflate");
    if (o.publisher == "ws") die("--transport sse|poll|sio needs --publisher mqtt://host:port");
  }
  if (o.mqtt && (o.mode == "rpc" || o.mode == "handshake")) die("--mqtt: fanout, idle or publish");
  if (o.mqtt && o.mode == "fanout" && o.publisher == "ws") {
    die("fanout --mqtt needs --publisher mqtt://host:port");
  }
  if (o.procs > o.connections && o.connections > 0) o.procs = o.connections;
  if (o.warmup >= o.duration) o.warmup = 0;
  return o;
}

}  // namespace bench
