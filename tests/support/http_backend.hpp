// A real, controllable HTTP/1.1 backend for the HTTP adapter's tests (tests/support/
// http_backend.py, run with /usr/bin/python3), plus a tiny blocking HTTP client that tests can
// also use against wsbridge's own admin REST API.
//
// The backend listens on a free loopback port chosen by the kernel (port 0, then the printed
// port is parsed: no free_tcp_port() race) and on a second, plain-HTTP control port that serves
// the same handlers but is not counted, so stats() / requests() never disturb what they measure
// and also work for a TLS backend. See the script's docstring for the endpoints (/echo, /json/,
// /status/<code>, /slow/<ms>, /hang, /die, /die/rst, /big/<n>, /chunked/<n>, /hook/connect,
// /hook/disconnect) and the exact meaning of the statistics:
//   stats() = {"requests": recorded requests, "connections": connections that carried at least
//              one recorded request, "accepted": TCP accepts, "open": currently open}
//   all since the last reset() (except "open"); control calls (/_stats, /_requests, /_reset,
//   /_config) are never recorded or counted.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/process.hpp"

namespace wsbridge::testing {

struct HttpResult {
  int status = 0;
  // Names lower-cased; a repeated header's values are joined with ", ".
  std::map<std::string, std::string> headers;
  std::string body;  // de-chunked
};

// One blocking request to 127.0.0.1:port over a fresh plain-TCP connection with
// "Connection: close". Adds Host, Connection and (when there is a body, or for POST/PUT/PATCH)
// Content-Length; a header in `headers` with the same (case-insensitive) name replaces the
// default one (a Transfer-Encoding header suppresses the default Content-Length: the body is
// then sent as given). Interim 1xx responses other than 101 are skipped. A HEAD response has no
// body. Throws std::runtime_error if the connection fails, on timeout, or if the response is
// cut short (e.g. /die).
HttpResult http_request(uint16_t port, const std::string& method, const std::string& path,
                        const std::string& body = {},
                        const std::vector<std::pair<std::string, std::string>>& headers = {},
                        std::chrono::milliseconds timeout = std::chrono::seconds(10));

class HttpBackend {
 public:
  // Starts a plain-HTTP backend. Throws std::runtime_error (with the script's output) if it does
  // not report "listening" within 10 s.
  HttpBackend();
  // tls=true: HTTPS on port(). With empty cert/key, a throwaway CA and a server certificate for
  // 127.0.0.1 / localhost are generated once per test process (openssl CLI); ca_file() is then
  // the CA to trust. With a given cert/key, ca_file() returns `cert` (right for self-signed).
  explicit HttpBackend(bool tls, std::string cert = {}, std::string key = {});
  ~HttpBackend();  // SIGKILL (fast; use stop() to test a graceful exit)
  HttpBackend(const HttpBackend&) = delete;
  HttpBackend& operator=(const HttpBackend&) = delete;

  uint16_t port() const { return port_; }
  uint16_t control_port() const { return control_port_; }
  bool tls() const { return tls_; }
  const std::string& ca_file() const { return ca_file_; }
  std::string base_url() const;  // "http://127.0.0.1:<port>" (https when tls)

  nlohmann::json stats();     // GET /_stats (via the control port)
  nlohmann::json requests();  // GET /_requests: list of recorded requests, oldest first
  void reset();               // POST /_reset: records and counters (not configure()'s settings)
  // POST /_config; merges keys: connect_status, connect_body (null = empty body, a string is
  // sent verbatim as text/plain), connect_delay_ms, and the same three for disconnect_.
  void configure(const nlohmann::json& config);
  // Polls stats() until at least n requests were recorded; false on timeout.
  bool wait_for_requests(std::size_t n,
                         std::chrono::milliseconds timeout = std::chrono::seconds(5));

  void kill();  // SIGKILL and reap (for outage tests); no-op if not running
  // SIGTERM and wait; returns the exit status (0 = clean), std::nullopt if it did not exit.
  std::optional<int> stop(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // (Re)starts after kill()/stop() on the same port (records and counters start empty; the
  // control port may change). Throws if already running.
  void start();
  bool running();
  // Everything the script printed, across restarts.
  std::string output() const;

 private:
  bool tls_ = false;
  std::string cert_;
  std::string key_;
  std::string ca_file_;
  uint16_t port_ = 0;  // 0 until the first start
  uint16_t control_port_ = 0;
  std::optional<ChildProcess> process_;
  std::string past_output_;  // output of previous runs
};

}  // namespace wsbridge::testing
