// The load generator's WebSocket client, receive side: connect completion, the upgrade response
// (Sec-WebSocket-Accept checked, permessage-deflate read), and frames from the server (fragments,
// compressed messages, ping/pong, close).
#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ws_client.hpp"

namespace bench {

namespace {

bool ieq_prefix(std::string_view line, std::string_view name) {
  if (line.size() < name.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char a = line[i];
    char b = name[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

}  // namespace

void Loop::on_ws_event(Conn& c, std::uint32_t events) {
  if (c.state == State::kConnecting) {
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        fail(c, false);
        return;
      }
      if (c.ssl != nullptr) {
        c.state = State::kTls;
        drive_tls(c);
        return;
      }
      c.state = State::kHandshaking;
      flush(c);
    }
    return;
  }
  if (c.state == State::kTls) {
    drive_tls(c);
    return;
  }
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
    on_readable(c);
    if (c.fd < 0) return;
  }
  if (events & EPOLLOUT) flush(c);
}

void Loop::on_readable(Conn& c) {
  const ssize_t n = recv_some(c, rbuf_.data(), rbuf_.size());
  if (n == 0) {
    fail(c, c.state == State::kOpen);
    return;
  }
  if (n < 0) return;
  const std::uint64_t t = now_ns();
  const auto len = static_cast<std::size_t>(n);
  if (c.state == State::kHandshaking) {
    c.in.append(rbuf_.data(), len);
    if (!parse_handshake(c)) return;
    if (c.in.empty()) return;
    const std::string rest = std::move(c.in);
    c.in.clear();
    const std::size_t used = parse_frames(c, rest.data(), rest.size(), t);
    if (used == SIZE_MAX || c.fd < 0) return;
    c.in.assign(rest, used);
    return;
  }
  if (c.in.empty()) {
    const std::size_t used = parse_frames(c, rbuf_.data(), len, t);
    if (used == SIZE_MAX || c.fd < 0) return;
    if (used < len) c.in.assign(rbuf_.data() + used, len - used);
  } else {
    c.in.append(rbuf_.data(), len);
    const std::size_t used = parse_frames(c, c.in.data(), c.in.size(), t);
    if (used == SIZE_MAX || c.fd < 0) return;
    c.in.erase(0, used);
  }
}

// True when the upgrade completed (c.in then holds what followed the response head).
bool Loop::parse_handshake(Conn& c) {
  const std::size_t end = c.in.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (c.in.size() > 16384) fail(c, false);
    return false;
  }
  const std::string_view head(c.in.data(), end + 2);
  bool ok = head.starts_with("HTTP/1.1 101");
  bool accept_ok = false;
  Deflate deflate = Deflate::kNone;
  std::size_t pos = head.find("\r\n");
  while (ok && pos != std::string_view::npos && pos + 2 < head.size()) {
    const std::size_t next = head.find("\r\n", pos + 2);
    const std::string_view line = head.substr(pos + 2, next - pos - 2);
    if (ieq_prefix(line, "sec-websocket-accept:")) {
      std::string_view v = line.substr(21);
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
      accept_ok = v == c.accept;
    } else if (ieq_prefix(line, "sec-websocket-extensions:")) {
      // Only what we offered may come back (RFC 7692 section 5); the parameters that matter to
      // a receiver are whether the server keeps its context between messages.
      if (!offer_deflate_ || line.find("permessage-deflate") == std::string_view::npos) {
        ok = false;
      } else {
        deflate = line.find("server_no_context_takeover") != std::string_view::npos
                      ? Deflate::kNoContext
                      : Deflate::kContext;
      }
    }
    pos = next;
  }
  if (!ok || !accept_ok) {
    fail(c, false);
    return false;
  }
  c.in.erase(0, end + 4);
  c.accept.clear();
  c.accept.shrink_to_fit();
  c.state = State::kOpen;
  c.deflate = deflate;
  if (deflate != Deflate::kNone) {
    ++deflate_conns;
    if (deflate == Deflate::kNoContext) ++deflate_no_context;
  }
  handler_.on_open(c);
  return c.fd >= 0;
}

std::size_t Loop::parse_frames(Conn& c, const char* data, std::size_t len, std::uint64_t t) {
  std::size_t pos = 0;
  while (len - pos >= 2) {
    const auto b0 = static_cast<std::uint8_t>(data[pos]);
    const auto b1 = static_cast<std::uint8_t>(data[pos + 1]);
    const bool fin = (b0 & 0x80) != 0;
    const std::uint8_t op = b0 & 0x0F;
    const bool masked = (b1 & 0x80) != 0;
    std::uint64_t plen = b1 & 0x7F;
    std::size_t hlen = 2;
    if (plen == 126) {
      if (len - pos < 4) break;
      plen = (std::uint64_t{static_cast<std::uint8_t>(data[pos + 2])} << 8) |
             static_cast<std::uint8_t>(data[pos + 3]);
      hlen = 4;
    } else if (plen == 127) {
      if (len - pos < 10) break;
      plen = 0;
      for (int i = 0; i < 8; ++i) plen = (plen << 8) | static_cast<std::uint8_t>(data[pos + 2 + i]);
      hlen = 10;
    }
    if (masked) hlen += 4;
    // RSV1 marks a compressed message: on its first frame only, when permessage-deflate was
    // negotiated; any other reserved bit is a protocol error.
    const std::uint8_t rsv = b0 & 0x70;
    const bool compressed = rsv == 0x40 && c.deflate != Deflate::kNone && (op == 0x1 || op == 0x2);
    if ((rsv != 0 && !compressed) || plen > (64u << 20)) {
      ++errors.protocol;
      fail(c, true);
      return SIZE_MAX;
    }
    if (len - pos < hlen + plen) break;
    const char* payload = data + pos + hlen;
    std::string unmasked;
    if (masked) {  // servers must not mask, but be lenient
      unmasked.assign(payload, plen);
      const char* key = data + pos + hlen - 4;
      for (std::size_t i = 0; i < plen; ++i)
        unmasked[i] = static_cast<char>(unmasked[i] ^ key[i & 3]);
      payload = unmasked.data();
    }
    pos += hlen + plen;
    switch (op) {
      case 0x0:  // continuation
        c.frag.append(payload, plen);
        if (fin) {
          ++messages_in;
          const char* text = c.frag.data();
          std::size_t text_len = c.frag.size();
          if (c.frag_compressed) {
            if (!inflate(c, text, text_len)) return SIZE_MAX;
            text = inflated_.data();
            text_len = inflated_.size();
          }
          if (c.frag_op == 0x1) {
            handler_.on_text(c, text, text_len, t);
          } else {
            handler_.on_binary(c, text, text_len, t);
          }
          c.frag.clear();
        }
        break;
      case 0x1:
      case 0x2:
        if (!fin) {
          c.frag_op = op;
          c.frag_compressed = compressed;
          c.frag.assign(payload, plen);
        } else {
          ++messages_in;
          const char* text = payload;
          std::size_t text_len = plen;
          if (compressed) {
            if (!inflate(c, text, text_len)) return SIZE_MAX;
            text = inflated_.data();
            text_len = inflated_.size();
          }
          if (op == 0x1) {
            handler_.on_text(c, text, text_len, t);
          } else {
            handler_.on_binary(c, text, text_len, t);
          }
        }
        break;
      case 0x8: {  // close
        int code = 1005;
        if (plen >= 2) {
          code =
              (static_cast<std::uint8_t>(payload[0]) << 8) | static_cast<std::uint8_t>(payload[1]);
        }
        if (!shutting_down && !c.we_closed) ++errors.close_codes[code];
        if (!c.close_sent) {
          queue_frame(c, 0x8, std::string_view(payload, plen >= 2 ? 2 : 0));
          c.close_sent = true;
          flush(c);
        }
        if (c.fd >= 0) fail(c, true);
        return SIZE_MAX;
      }
      case 0x9:  // ping
        queue_frame(c, 0xA, std::string_view(payload, plen));
        if (!flush(c)) return SIZE_MAX;
        break;
      case 0xA:  // pong
        break;
      default:
        ++errors.protocol;
        fail(c, true);
        return SIZE_MAX;
    }
    if (c.fd < 0) return SIZE_MAX;
  }
  return pos;
}

bool Loop::inflate(Conn& c, const char* data, std::size_t len) {
  const std::string_view in(data, len);
  const bool memo = c.deflate == Deflate::kNoContext && memo_on_;
  if (memo) {
    if (const auto it = memo_.find(in); it != memo_.end()) {
      inflated_ = it->second;
      ++memo_hits;
      ++compressed_in;
      compressed_wire_bytes += len;
      compressed_plain_bytes += inflated_.size();
      return true;
    }
  }
  Inflater* z = nullptr;
  if (c.deflate == Deflate::kNoContext) {
    if (!shared_inflater_) shared_inflater_ = std::make_unique<Inflater>();
    z = shared_inflater_.get();
  } else {
    if (!c.inflater) c.inflater = std::make_unique<Inflater>();
    z = c.inflater.get();
  }
  if (!z->inflate_message(in, inflated_, c.deflate == Deflate::kNoContext, 64u << 20)) {
    ++errors.protocol;
    fail(c, true);
    return false;
  }
  if (memo) {
    if (memo_.size() >= kMemoMax) memo_.clear();
    memo_.emplace(std::string(in), inflated_);
  }
  ++compressed_in;
  compressed_wire_bytes += len;
  compressed_plain_bytes += inflated_.size();
  return true;
}

}  // namespace bench
