#include "support/http_backend.hpp"

#include <signal.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <thread>

#include "support/ws_test_client.hpp"

namespace wsbridge::testing {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kPython = "/usr/bin/python3";  // Debian's; the one on PATH may differ

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return std::string(s);
}

void add_header(std::map<std::string, std::string>& headers, std::string_view name,
                std::string value) {
  auto [it, inserted] = headers.try_emplace(lower(name), value);
  if (!inserted) it->second += ", " + value;
}

std::chrono::milliseconds remaining(Clock::time_point deadline) {
  return std::max(1ms, std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()));
}

// For HEAD: the response head only ("HTTP/1.1 200 OK\r\nName: value\r\n...").
HttpResult parse_head(std::string_view head) {
  HttpResult r;
  const size_t eol = head.find("\r\n");
  const std::string_view status_line = head.substr(0, eol);
  if (status_line.substr(0, 5) != "HTTP/" || status_line.size() < 12) {
    throw std::runtime_error("http_request: malformed status line: " + std::string(status_line));
  }
  r.status = std::stoi(std::string(status_line.substr(9, 3)));
  size_t pos = eol == std::string_view::npos ? head.size() : eol + 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string_view::npos) end = head.size();
    const std::string_view line = head.substr(pos, end - pos);
    if (const size_t colon = line.find(':'); colon != std::string_view::npos) {
      add_header(r.headers, trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
    }
    pos = end + 2;
  }
  return r;
}

// The script sits next to this source file, in the source tree CMake names (not __FILE__, which
// a compiler cache may have made relative); WSBRIDGE_HTTP_BACKEND overrides it.
std::string script_path() {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): nothing in the tests calls setenv concurrently
  if (const char* env = std::getenv("WSBRIDGE_HTTP_BACKEND"); env != nullptr && *env != '\0') {
    return env;
  }
  return std::string(WSBRIDGE_TEST_SUPPORT_DIR) + "/http_backend.py";
}

// The number after `prefix` on its (complete) line of `text`, or nullopt.
std::optional<uint16_t> port_after(const std::string& text, std::string_view prefix) {
  const size_t at = text.find(prefix);
  if (at == std::string::npos) return std::nullopt;
  const size_t begin = at + prefix.size();
  const size_t nl = text.find('\n', begin);
  if (nl == std::string::npos) return std::nullopt;  // line not complete yet
  const std::string digits = trim(std::string_view(text).substr(begin, nl - begin));
  if (digits.empty() || digits.size() > 5 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const unsigned long v = std::stoul(digits);
  if (v == 0 || v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

struct GeneratedTls {
  std::string ca;
  std::string cert;
  std::string key;
};

// A throwaway CA and a server certificate for 127.0.0.1 / localhost (EC keys: fast), made once
// per test process in temp_dir().
const GeneratedTls& generated_tls() {
  static std::mutex mu;
  static std::optional<GeneratedTls> tls;
  std::lock_guard<std::mutex> lock(mu);
  if (tls) return *tls;
  const std::string dir = temp_dir() + "/http-backend-tls";
  std::filesystem::create_directories(dir);
  const std::string script =
      "set -e; cd '" + dir +
      "'\n"
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-keyout ca.key -out ca.crt -days 2 -subj '/CN=wsbridge http backend test CA' "
      "-addext keyUsage=critical,keyCertSign,cRLSign\n"
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-keyout server.key -out server.csr -subj '/CN=127.0.0.1'\n"
      "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n"
      "keyUsage=critical,digitalSignature\\nextendedKeyUsage=serverAuth\\n' > server.ext\n"
      "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
      "-out server.crt -days 2 -extfile server.ext\n";
  ChildProcess gen = ChildProcess::spawn({"/bin/sh", "-c", script});
  const auto rc = gen.wait_exit(30s);
  if (rc != 0) {
    throw std::runtime_error("HttpBackend: generating a test certificate failed: " + gen.output());
  }
  tls = GeneratedTls{dir + "/ca.crt", dir + "/server.crt", dir + "/server.key"};
  return *tls;
}

HttpResult control_call(uint16_t port, const std::string& method, const std::string& path,
                        const std::string& body, int expected_status) {
  if (port == 0) throw std::runtime_error("HttpBackend: not running");
  std::vector<std::pair<std::string, std::string>> headers;
  if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
  HttpResult r = http_request(port, method, path, body, headers);
  if (r.status != expected_status) {
    throw std::runtime_error("HttpBackend: " + method + " " + path + " answered " +
                             std::to_string(r.status) + ": " + r.body);
  }
  return r;
}

}  // namespace

HttpResult http_request(uint16_t port, const std::string& method, const std::string& path,
                        const std::string& body,
                        const std::vector<std::pair<std::string, std::string>>& headers,
                        std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto has = [&](std::string_view name) {
    return std::any_of(headers.begin(), headers.end(),
                       [&](const auto& h) { return lower(h.first) == lower(name); });
  };
  const std::string m = lower(method);
  std::string req = method + " " + path + " HTTP/1.1\r\n";
  if (!has("Host")) req += "Host: 127.0.0.1:" + std::to_string(port) + "\r\n";
  if (!has("Connection")) req += "Connection: close\r\n";
  if (!has("Content-Length") && !has("Transfer-Encoding") &&
      (!body.empty() || m == "post" || m == "put" || m == "patch")) {
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  for (const auto& [name, value] : headers)
    req.append(name).append(": ").append(value).append("\r\n");
  req += "\r\n";
  req += body;

  TcpConn conn = TcpConn::connect("127.0.0.1", port, timeout);
  conn.send_all(req, remaining(deadline));

  if (m == "head") {
    // read_http_response() would wait for a Content-Length body that never comes.
    size_t end;
    while ((end = conn.buffer().find("\r\n\r\n")) == std::string::npos) {
      const auto st = conn.read_some(deadline);
      if (st != TcpConn::ReadStatus::kData) {
        throw std::runtime_error(std::string("http_request: ") +
                                 (st == TcpConn::ReadStatus::kEof ? "EOF" : "timeout") +
                                 " before the end of the HEAD response head");
      }
    }
    return parse_head(std::string_view(conn.buffer()).substr(0, end));
  }

  for (;;) {
    HttpResponse resp = conn.read_http_response(remaining(deadline));
    if (resp.status >= 100 && resp.status < 200 && resp.status != 101) continue;  // interim
    HttpResult r;
    r.status = resp.status;
    for (auto& [name, value] : resp.headers) add_header(r.headers, name, std::move(value));
    r.body = std::move(resp.body);
    return r;
  }
}

HttpBackend::HttpBackend() : HttpBackend(false) {}

HttpBackend::HttpBackend(bool tls, std::string cert, std::string key)
    : tls_(tls), cert_(std::move(cert)), key_(std::move(key)) {
  if (tls_) {
    if (cert_.empty() != key_.empty()) {
      throw std::invalid_argument("HttpBackend: give both a certificate and a key, or neither");
    }
    if (cert_.empty()) {
      const GeneratedTls& g = generated_tls();
      cert_ = g.cert;
      key_ = g.key;
      ca_file_ = g.ca;
    } else {
      ca_file_ = cert_;
    }
  }
  start();
}

HttpBackend::~HttpBackend() = default;  // ChildProcess's destructor SIGKILLs and reaps

void HttpBackend::start() {
  if (process_ && process_->running()) throw std::runtime_error("HttpBackend: already running");
  if (process_) {
    past_output_ += process_->output();
    process_.reset();
  }
  std::vector<std::string> argv = {kPython, script_path(), "--port", std::to_string(port_)};
  if (tls_) {
    argv.insert(argv.end(), {"--tls-cert", cert_, "--tls-key", key_});
  }
  process_.emplace(ChildProcess::spawn(argv));

  const auto deadline = Clock::now() + 10s;
  std::optional<uint16_t> port;
  std::optional<uint16_t> control;
  for (;;) {
    const std::string out = process_->output();
    port = port_after(out, "listening on 127.0.0.1:");
    control = port_after(out, "control on 127.0.0.1:");
    if (port && control) break;
    if (Clock::now() >= deadline || !process_->running()) {
      const std::string why =
          process_->running() ? "did not report listening within 10 s" : "exited before listening";
      process_->wait_exit(200ms);  // collect a crash's last words
      const std::string output = process_->output();
      process_.reset();  // SIGKILLs a hanging one
      std::string message = "HttpBackend: " + script_path();
      message.append(" ").append(why).append("; output:\n").append(output);
      throw std::runtime_error(message);
    }
    std::this_thread::sleep_for(5ms);
  }
  port_ = *port;
  control_port_ = *control;
}

std::string HttpBackend::base_url() const {
  return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
}

nlohmann::json HttpBackend::stats() {
  return nlohmann::json::parse(control_call(control_port_, "GET", "/_stats", {}, 200).body);
}

nlohmann::json HttpBackend::requests() {
  return nlohmann::json::parse(control_call(control_port_, "GET", "/_requests", {}, 200).body);
}

void HttpBackend::reset() {
  control_call(control_port_, "POST", "/_reset", {}, 204);
}

void HttpBackend::configure(const nlohmann::json& config) {
  control_call(control_port_, "POST", "/_config", config.dump(), 200);
}

bool HttpBackend::wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (stats()["requests"].get<std::size_t>() >= n) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

void HttpBackend::kill() {
  if (!process_) return;
  process_->signal(SIGKILL);
  process_->wait_exit(5s);
}

std::optional<int> HttpBackend::stop(std::chrono::milliseconds timeout) {
  if (!process_) return std::nullopt;
  process_->signal(SIGTERM);
  return process_->wait_exit(timeout);
}

bool HttpBackend::running() {
  return process_ && process_->running();
}

std::string HttpBackend::output() const {
  return past_output_ + (process_ ? process_->output() : std::string());
}

}  // namespace wsbridge::testing
