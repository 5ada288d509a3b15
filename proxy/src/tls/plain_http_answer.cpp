#include "tls/plain_http_answer.hpp"

#include <openssl/err.h>
#include <sys/socket.h>

#include <array>
#include <string>

#include "handshake/request_line.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge::tls {
namespace {

// Bounds the bytes read before answering: a request head fits, a flood does not hold the loop.
constexpr std::size_t kMaxDrainBytes = 64 * 1024;

bool failed_on_plain_http() {
  // lws clears the queue before each SSL_accept: what is there is this handshake's.
  const unsigned long e = ERR_peek_last_error();
  if (ERR_GET_LIB(e) != ERR_LIB_SSL) return false;
  const int reason = ERR_GET_REASON(e);
  return reason == SSL_R_HTTP_REQUEST || reason == SSL_R_HTTPS_PROXY_REQUEST;
}

}  // namespace

bool answer_plain_http_request(const SSL* ssl) {
  if (!failed_on_plain_http()) return false;
  const int fd = SSL_get_fd(ssl);
  if (fd < 0) return false;
  // recvfrom(), not recv(): the recv guard interposes recv() and has nothing to say here.
  std::array<char, 4096> discard;
  for (std::size_t drained = 0; drained < kMaxDrainBytes;) {
    const ssize_t n =
        ::recvfrom(fd, discard.data(), discard.size(), MSG_DONTWAIT, nullptr, nullptr);
    if (n <= 0) break;  // EAGAIN: all that came so far
    drained += static_cast<std::size_t>(n);
  }
  static const std::string kAnswer = closing_text_reply(
      400, request_refusal_phrase(400), "this port speaks TLS: use https:// or wss:// URLs here");
  [[maybe_unused]] const ssize_t sent =
      ::send(fd, kAnswer.data(), kAnswer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(fd, SHUT_WR);
  WSB_LOG(kInfo) << "answered a plain HTTP request on a TLS listener with 400";
  return true;
}

}  // namespace wsbridge::tls
