#include "server/listen_share.hpp"
#include "wsbridge/text.hpp"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <utility>

namespace wsbridge::listen_share {

namespace {
thread_local bool g_active = false;
}  // namespace

Scope::Scope(bool enabled) : previous_(g_active) {
  g_active = enabled;
}
Scope::~Scope() {
  g_active = previous_;
}

bool active() {
  return g_active;
}

namespace {

std::string claim(const std::string& address, std::uint16_t port, PortClaim& held) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return text::errno_text(errno);
  sockaddr_un name{};
  name.sun_family = AF_UNIX;
  const std::string id = "wsbridge-listen " + address + " " + std::to_string(port);
  std::memcpy(name.sun_path + 1, id.data(), std::min(id.size(), sizeof name.sun_path - 1));
  const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 +
                                             std::min(id.size(), sizeof name.sun_path - 1));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&name), length) != 0) {
    const int error = errno;
    ::close(fd);
    return error == EADDRINUSE ? "address in use by another wsbridge" : text::errno_text(error);
  }
  held = PortClaim(fd);
  return "";
}

}  // namespace

PortClaim& PortClaim::operator=(PortClaim&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

PortClaim::~PortClaim() {
  if (fd_ >= 0) ::close(fd_);
}

std::string probe_exclusive(const std::string& address, std::uint16_t port, PortClaim& claimed) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_INET;
  if (address.find(':') != std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&storage);
    a->sin6_family = family = AF_INET6;
    a->sin6_port = htons(port);
    if (inet_pton(AF_INET6, address.c_str(), &a->sin6_addr) != 1) return "not an IPv6 address";
    length = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&storage);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    if (inet_pton(AF_INET, address.c_str(), &a->sin_addr) != 1) return "not an IPv4 address";
    length = sizeof *a;
  }
  // The probe and the bind that follows are not one step: two wsbridges starting at once on the
  // same port would both find it free and both bind with SO_REUSEPORT, splitting its connections
  // between them without a word. So the port is also claimed under an abstract Unix socket name
  // (one per network namespace, released when the process ends), which only one can hold.
  if (auto why = claim(address, port, claimed); !why.empty()) return why;
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return text::errno_text(errno);
  const int one = 1;
  // As lws binds (SO_REUSEADDR, V6ONLY for IPv6), minus SO_REUSEPORT: a port held by any listener,
  // a reusing one included, refuses this bind.
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  std::string problem;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&storage), length) != 0) {
    problem = errno == EADDRINUSE ? "address in use" : text::errno_text(errno);
  }
  ::close(fd);
  return problem;
}

}  // namespace wsbridge::listen_share

// The interposed setsockopt(): the executable's definition comes first in symbol lookup, so
// libwebsockets' calls land here; everything passes through to the C library's, and a listening
// socket made inside a Scope also gets SO_REUSEPORT.
extern "C" int setsockopt(int fd, int level, int name, const void* value,
                          socklen_t length) noexcept {
  using Raw = int (*)(int, int, int, const void*, socklen_t);
  static const auto real = reinterpret_cast<Raw>(dlsym(RTLD_NEXT, "setsockopt"));
  const int result = real(fd, level, name, value, length);
  if (result == 0 && level == SOL_SOCKET && name == SO_REUSEADDR &&
      wsbridge::listen_share::active()) {
    const int one = 1;
    if (real(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) return -1;
  }
  return result;
}
