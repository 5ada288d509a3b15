// Resolves backend host names with getaddrinfo(), on the resolver's own thread (never the service
// thread).
#include "http/backend_resolver.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include "wsbridge/log.hpp"

namespace wsbridge::http_pool {

bool is_numeric_address(const std::string& host) {
  in_addr v4{};
  in6_addr v6{};
  return inet_pton(AF_INET, host.c_str(), &v4) == 1 || inet_pton(AF_INET6, host.c_str(), &v6) == 1;
}

std::string resolve_host(const std::string& host, std::string& error) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found); rc != 0) {
    error = gai_strerror(rc);
    return "";
  }
  std::string address;
  for (const addrinfo* a = found; a != nullptr && address.empty(); a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, nullptr, 0, NI_NUMERICHOST) ==
        0) {
      address = text;
    }
  }
  freeaddrinfo(found);
  if (address.empty()) error = "no usable address";
  return address;
}

void Resolver::loop(const std::stop_token& stop) {
  std::unique_lock lock(mutex_);
  while (!stop.stop_requested()) {
    wake_.wait_for(lock, stop, std::chrono::seconds(60), [this] { return wanted_; });
    if (stop.stop_requested()) break;
    wanted_ = false;
    lock.unlock();
    std::string error;
    std::string address = resolve_host(host_, error);
    lock.lock();
    if (!address.empty()) {
      address_ = std::move(address);
    } else {
      WSB_LOG(kWarn) << "cannot resolve backend host " << host_ << ": " << error;
    }
    // At most one lookup every two seconds, however often connects fail.
    wake_.wait_for(lock, stop, std::chrono::seconds(2), [] { return false; });
  }
}

}  // namespace wsbridge::http_pool
