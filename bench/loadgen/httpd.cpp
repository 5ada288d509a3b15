// httpd: a keep-alive HTTP/1.1 backend answering every request with the same small JSON body (the
// same backend for every bridge the rpc mode measures).
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <string>

#include "httpd.hpp"

namespace bench {

int run_httpd(const Options& o) {
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(o.http_port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(lfd, 4096) != 0) {
    die("httpd: cannot listen");
  }
  socklen_t alen = sizeof addr;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &alen);
  std::printf("{\"event\":\"listening\",\"port\":%u}\n", ntohs(addr.sin_port));
  std::fflush(stdout);

  std::string body = R"({"ok":true,"data":")";
  body += std::string(o.http_body > 24 ? o.http_body - 24 : 0, 'x');
  body += "\"}";
  const std::string response =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;

  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  struct Peer {
    std::string in;
    std::string out;
  };
  std::map<int, Peer> peers;
  std::vector<char> buf(65536);
  epoll_event events[256];
  auto drop = [&](int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    peers.erase(fd);
  };
  // Writes what it can; the rest waits for EPOLLOUT. False when the peer is gone.
  auto flush = [&](int fd, Peer& p) {
    while (!p.out.empty()) {
      const ssize_t n = ::send(fd, p.out.data(), p.out.size(), MSG_NOSIGNAL);
      if (n > 0) {
        p.out.erase(0, static_cast<std::size_t>(n));
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        break;
      } else {
        return false;
      }
    }
    epoll_event pev{};
    pev.events = EPOLLIN | (p.out.empty() ? 0u : static_cast<std::uint32_t>(EPOLLOUT));
    pev.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &pev);
    return true;
  };
  while (true) {
    const int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == lfd) {
        while (true) {
          const int cfd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (cfd < 0) break;
          setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event cev{};
          cev.events = EPOLLIN;
          cev.data.fd = cfd;
          epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
          peers[cfd];
        }
        continue;
      }
      auto it = peers.find(fd);
      if (it == peers.end()) continue;
      Peer& p = it->second;
      if (events[i].events & EPOLLOUT) {
        if (!flush(fd, p)) {
          drop(fd);
          continue;
        }
      }
      if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
      const ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
      if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        drop(fd);
        continue;
      }
      p.in.append(buf.data(), static_cast<std::size_t>(r));
      while (true) {  // every complete request (pipelined ones too) gets the same answer
        const std::size_t end = p.in.find("\r\n\r\n");
        if (end == std::string::npos) break;
        std::size_t content_length = 0;
        const std::string head = p.in.substr(0, end);
        for (std::size_t q = head.find("\r\n"); q != std::string::npos;
             q = head.find("\r\n", q + 2)) {
          if (strncasecmp(head.c_str() + q + 2, "content-length:", 15) == 0) {
            content_length = std::strtoul(head.c_str() + q + 17, nullptr, 10);
          }
        }
        if (p.in.size() < end + 4 + content_length) break;
        p.in.erase(0, end + 4 + content_length);
        p.out += response;
      }
      if (!flush(fd, p)) drop(fd);
    }
  }
}

}  // namespace bench
