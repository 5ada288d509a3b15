// wsbridge-loadgen: an epoll load generator for WebSocket bridges that speak wsbridge's JSON
// protocol (docs/PROTOCOL.md). Modes:
//
//   fanout  N subscribers on one topic; a publisher (raw MQTT 3.1.1 QoS 0 to the broker, or a
//           WebSocket "publish" frame) sends payloads carrying a sequence number and a
//           CLOCK_MONOTONIC timestamp, at a fixed rate or as fast as the subscribers keep up
//           (closed loop: at most --window messages per subscriber outstanding). Reports delivered
//           messages/s, one-way latency percentiles, missing and duplicated messages.
//   idle    N connections opened (in --steps) and subscribed, then held: the server's memory is
//           read by the caller at each "ready" event.
//   rpc     N connections sending {"type":"request"} frames (closed loop, --depth in flight each)
//           and timing the {"type":"response"} answers.
//   echo    N connections to an echo server sending text messages (closed loop, --window in
//           flight each) and timing their round trips (child_echo.cpp; through a proxy's
//           WebSocket pass-through in bench/proxy.py).
//   http    N keep-alive HTTP/1.1 connections sending GET requests (closed loop, --depth in
//           flight each) and timing the responses (child_http_load.cpp; through an HTTP reverse
//           proxy in bench/proxy.py).
//   httpd   a tiny keep-alive HTTP/1.1 backend for the rpc and http modes (the same for every
//           bridge or proxy).
//
// The work is split over --procs child processes (each has its own open-file limit); the parent
// coordinates them over socketpairs and prints one JSON object per line on stdout: "ready"
// events (with --wait-stdin it then waits for a line on stdin before going on, so that a driver
// can read the server's CPU and memory at that point) and one final "result".
#include <signal.h>

#include "control.hpp"
#include "httpd.hpp"
#include "options.hpp"
#include "parent.hpp"

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  const bench::Options o = bench::parse_options(argc, argv);
  bench::raise_fd_limit();
  if (o.mode == "httpd") return bench::run_httpd(o);
  return bench::run_parent(o);
}
