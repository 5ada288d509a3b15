// The mask guard's HTTP phase (mask_guard_watch.hpp): following request heads as lws is handed
// them, the 400 / 431 it answers itself, and where the frames of an upgrade begin.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

#include "handshake/request_line.hpp"
#include "recv_hook/mask_guard_watch.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge::mask_guard::detail {

namespace {

// What a complete head (as lws is to get it) is refused for, if anything: lws 4.1.6 answers these
// unevenly or not at all (request_line.hpp); RFC 9112 3.2 asks for 400 on a missing or repeated
// Host (the reverse proxy refuses the same heads: one reading of a request for every path).
Refusal refusal_of(const HeadSummary& s, std::string_view head) {
  std::string_view line = head.substr(0, head.find('\n'));
  if (line.ends_with('\r')) line.remove_suffix(1);
  const auto parsed =
      parse_request_line(line, {.known_methods_only = true, .max_target_bytes = line.size()});
  if (const auto* error = std::get_if<RequestLineError>(&parsed)) {
    return Refusal{error->status, error->reason};
  }
  if (s.hosts > 1) return Refusal{400, "more than one Host header"};
  if (!s.repeated_header.empty()) return Refusal{400, s.repeated_header};
  if (s.hosts == 0 && std::get<RequestLine>(parsed).minor_version == 1) {
    return Refusal{400, "no Host header in an HTTP/1.1 request"};
  }
  // lws' file mounts leave such a body to be parsed as the next request, where we would read it
  // as a body: the two would disagree on where requests begin.
  if (s.get_or_head && s.body_length.value_or(0) > 0 && !s.upgrade) {
    return Refusal{400, "a GET or HEAD request has no body here"};
  }
  return {};
}

// A head has ended: refused, or followed on.
Refusal end_of_head(Watch& w) {
  const HeadSummary& s = w.http->head.summary();
  if (const Refusal refusal = refusal_of(s, w.http->head_out)) return refusal;
  ++w.http->requests;
  const bool websocket = s.upgrade;
  if (websocket) {
    w.phase = Phase::kAwaiting;
    w.http->last_head = std::move(w.http->head_out);
    w.http->bearer = s.bearer;
    w.http->sec_websocket_origin = s.sec_websocket_origin;
  } else if (w.plain_heads.size() >= kMaxHeadsAhead) {
    // More heads ahead of lws than are kept (a long pipeline handed back at once, or read while
    // lws sent a file): which one lws reports next is no longer known here, so none is given.
    w.plain_heads.clear();
    lose(w);
    return {};
  } else {
    w.plain_heads.push_back(std::move(w.http->head_out));
  }
  if (!websocket && s.has_body && !s.body_length) {
    // A body without a plain length lws delimits its own way (a POST without Content-Length runs
    // 100 MiB; the shard refuses Transfer-Encoding and a doubtful Content-Length): stop following.
    lose(w);
    return {};
  }
  if (!websocket && s.has_body) {
    // Followed to its end, and no read goes past it (guarded_recv_step): lws 4.1.6 never finds a
    // request behind a body in its own buffer, where it loops forever on the next one that has a
    // body (a transaction completed inside its buffered bytes: "keeping ah as pipeline", then
    // LRS_DEFERRING_ACTION without end).
    w.phase = Phase::kBody;
    w.http->body_left = *s.body_length;
    w.http->body_given = false;
  }
  w.http->head.reset();
  w.http->head_out.clear();
  w.http->head_read_before = false;
  return {};
}

// Follows HTTP-phase bytes and appends to `out` what lws is to get. A refused head stops there
// (out holds what came before it). With `used`, stops at the end of the first head and sets how
// many bytes that took.
Refusal follow_http(Watch& w, const char* data, std::size_t len, std::string& out,
                    std::size_t* used = nullptr) {
  std::size_t i = 0;
  while (i < len) {
    // Bytes right behind an upgrade head reach lws before it decides only when they were handed
    // to it some other way (after_recv): where frames would start is then not known for sure.
    if (w.phase == Phase::kAwaiting) lose(w);
    if (w.phase == Phase::kBody) {
      const std::size_t taken = take_body(w, len - i);
      out.append(data + i, taken);
      i += taken;
      continue;
    }
    if (w.phase != Phase::kHead) {
      out.append(data + i, len - i);
      break;
    }
    std::size_t consumed = 0;
    const std::size_t before = out.size();
    const auto r = w.http->head.feed(data + i, len - i, &out, consumed);
    w.http->head_out.append(out, before);
    i += consumed;
    switch (r) {
      case RequestHeadFilter::Result::kMore:
        break;
      case RequestHeadFilter::Result::kEnd: {
        const Refusal refusal = end_of_head(w);
        if (refusal) {
          out.resize(before);
          if (used != nullptr) *used = i;
          return refusal;
        }
        if (used != nullptr) {
          *used = i;
          return {};
        }
        break;
      }
      case RequestHeadFilter::Result::kTooLarge:
      case RequestHeadFilter::Result::kTooManyFields:
      case RequestHeadFilter::Result::kMalformed:
        out.resize(before);
        if (used != nullptr) *used = i;
        static_assert(kMaxRequestHeadBytes == 16 * 1024, "the 431's reason names the bound");
        static_assert(RequestHeadFilter::kMaxFieldsAndArguments == 88, "... and this one");
        if (r == RequestHeadFilter::Result::kTooLarge) {
          return Refusal{431, "the request head is over 16 KiB (or as much in lws' own form)"};
        }
        if (r == RequestHeadFilter::Result::kTooManyFields) {
          return Refusal{431, "over 88 header lines and query arguments together"};
        }
        return Refusal{400, "a malformed request head"};
    }
  }
  if (used != nullptr) *used = len;
  return {};
}

// Answers a head lws must not see with `status` and closes our side; the client's FIN (or the
// handshake timeout) ends the connection, so the answer is not lost to a reset.
void reject(int fd, Watch& w, const Refusal& refusal) {
  const std::string reply =
      closing_text_reply(refusal.status, request_refusal_phrase(refusal.status), refusal.reason,
                         w.answer_headers != nullptr ? *w.answer_headers : std::string_view());
  WSB_LOG(kInfo) << "refused a request from " << peer_of(fd) << " with " << refusal.status << ": "
                 << refusal.reason;
  if (t_reply_send != nullptr) {
    t_reply_send(fd, reply);
  } else {
    [[maybe_unused]] const ssize_t sent =
        ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  ::shutdown(fd, SHUT_WR);
  lose(w);
  w.phase = Phase::kRejected;
}

}  // namespace

std::size_t take_body(Watch& w, std::size_t available) {
  const auto taken =
      static_cast<std::size_t>(std::min<std::uint64_t>(w.http->body_left, available));
  w.http->body_left -= taken;
  w.http->body_given = w.http->body_given || taken > 0;
  if (w.http->body_left == 0) w.phase = Phase::kHead;
  return taken;
}

std::string peer_of(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  char text[INET6_ADDRSTRLEN] = "?";
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    if (addr.ss_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr, text, sizeof text);
    } else if (addr.ss_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr, text, sizeof text);
    }
  }
  return text;
}

// The upgrade head was answered with a status and lws reads on: a request head comes next.
void resume_http(Watch& w) {
  w.http->last_head.clear();
  w.http->bearer.reset();
  w.phase = Phase::kHead;
}

// HTTP-phase bytes in `buffer` (room for `capacity`): rewrites them for lws. With `raw`, the
// bytes were only peeked at: the ones up to the end of the head are read now and the rest stay
// in the socket, so that lws never holds bytes from behind an upgrade head before it decides on
// it (lws 4.1.6 also overwrites such bytes with its 101 answer: its serv_buf is the scratch).
long http_read(int fd, Watch& w, void* buffer, std::size_t received, std::size_t capacity,
               RawRecv raw, int flags) {
  std::string out;
  out.reserve(received + RequestHeadFilter::kMaxHeldBytes);
  std::size_t used = received;
  const Refusal refusal = follow_http(w, static_cast<const char*>(buffer), received, out,
                                      raw != nullptr ? &used : nullptr);
  if (refusal) {
    // Safe to answer when lws has written nothing for an earlier request that may still be
    // going out: this is the first request, or lws has parsed part of this head already (lws
    // reads again only once it has used what it read, and parses a head only after finishing
    // the previous response).
    if (w.http->requests == 0 || w.http->head_read_before) {
      reject(fd, w, refusal);
      errno = EAGAIN;
      return -1;
    }
    WSB_LOG(kInfo) << "closed the connection of " << peer_of(fd) << ": a pipelined request with "
                   << refusal.reason;
    lose(w);
    return 0;  // lws sees the end of the stream and closes
  }
  if (raw != nullptr && raw(fd, buffer, used, flags) != static_cast<ssize_t>(used)) {
    lose(w);  // cannot happen: this thread alone reads the socket
    return 0;
  }
  if (w.phase == Phase::kHead) w.http->head_read_before = w.http->head.bytes_in() > 0;
  if (out.size() > capacity) {  // cannot happen: the filter never puts out more than it held
    lose(w);
    return 0;
  }
  std::memcpy(buffer, out.data(), out.size());
  if (out.empty()) {
    errno = EAGAIN;  // all of it held back until the line goes on
    return -1;
  }
  return static_cast<long>(out.size());
}

}  // namespace wsbridge::mask_guard::detail
