// Host names of HTTP backends, resolved off the service thread: once at configuration time, then
// kept fresh by a small thread per named backend.
#pragma once

#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>

namespace wsbridge::http_pool {

// True for an IPv4 or IPv6 literal (nothing to resolve).
bool is_numeric_address(const std::string& host);

// getaddrinfo() for the first stream address, as numeric text; "" and `error` when none.
std::string resolve_host(const std::string& host, std::string& error);

// Keeps a named backend's address fresh without ever resolving on the service thread: resolves
// once a minute, or soon after a failed connect, on its own thread.
class Resolver {
 public:
  Resolver(std::string host, std::string first_address)
      : host_(std::move(host)), address_(std::move(first_address)) {
    thread_ = std::jthread([this](const std::stop_token& stop) { loop(stop); });
  }
  std::string address() const {
    std::lock_guard lock(mutex_);
    return address_;
  }
  void refresh() {
    {
      std::lock_guard lock(mutex_);
      wanted_ = true;
    }
    wake_.notify_all();
  }

 private:
  void loop(const std::stop_token& stop);

  const std::string host_;
  mutable std::mutex mutex_;
  std::condition_variable_any wake_;
  std::string address_;
  bool wanted_ = false;
  std::jthread thread_;  // last: stopped and joined before the members it uses go
};

}  // namespace wsbridge::http_pool
