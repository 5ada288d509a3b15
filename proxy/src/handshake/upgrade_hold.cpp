#include "handshake/upgrade_hold.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "handshake/request_line.hpp"
#include "server/event_loop.hpp"
#include "tls/session_handover.hpp"

namespace wsbridge::upgrade_hold {

std::optional<int> detach_socket(int fd) {
  const int kept = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (kept < 0) return std::nullopt;
  // A placeholder under lws' number: its shutdown() and close() must not reach the client.
  const int placeholder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (placeholder >= 0) forget_descriptor(fd);  // the loop's epoll entry follows the socket
  if (placeholder < 0 || dup3(placeholder, fd, O_CLOEXEC) < 0) {
    if (placeholder >= 0) close(placeholder);
    close(kept);
    return std::nullopt;
  }
  close(placeholder);
  return kept;
}

HttpHeaders parse_request_headers(std::string_view request) {
  HttpHeaders headers;
  const auto head_end = request.find("\r\n\r\n");
  std::string_view head = request.substr(0, head_end);
  const auto first_line_end = head.find("\r\n");
  if (first_line_end == std::string_view::npos) return headers;
  head.remove_prefix(first_line_end + 2);
  while (!head.empty()) {
    const auto eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    head = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    headers.push_back({std::string(line.substr(0, colon)), std::string(value)});
  }
  return headers;
}

void reply_and_close(int fd, unsigned status, std::string_view reason, SSL* ssl,
                     std::string_view extra_headers) {
  const std::string reply =
      closing_text_reply(status, request_refusal_phrase(status), reason, extra_headers);
  // Non-blocking and small: it fits an idle socket's send buffer; if not, the client gets less.
  if (ssl != nullptr) {
    tls::reply_and_free(ssl, fd, reply);
  } else {
    (void)send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  close(fd);
}

}  // namespace wsbridge::upgrade_hold
