// One stream's life on its shard: connecting, TLS, buffered writes with a high-water mark, reads
// (paused on request), the owner's timer, and closing (flushing first when the owner asks).
#include "stream/stream_link.hpp"
#include "wsbridge/text.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace wsbridge::stream {

StreamLink::~StreamLink() {
  // A link can die on another thread only after its shard detached (context cleared).
  if (shard != nullptr && shard->context != nullptr) {
    lws_sul_cancel(&timer.sul);
    lws_sul_cancel(&connect_timer.sul);
  }
}

void StreamLink::forget() {
  ended = true;
  if (wsi != nullptr) {
    lws_set_opaque_user_data(wsi, nullptr);
    lws_set_timeout(wsi, static_cast<pending_timeout>(PENDING_TIMEOUT_USER_OK), LWS_TO_KILL_ASYNC);
    wsi = nullptr;
  }
  if (shard != nullptr && shard->context != nullptr) {
    lws_sul_cancel(&timer.sul);
    lws_sul_cancel(&connect_timer.sul);
  }
  if (shard != nullptr) shard->links.erase(shared_from_this());
}

void StreamLink::fail(const std::string& why, bool silently) {
  if (ended) return;
  auto self = shared_from_this();
  forget();
  if (silently || handler == nullptr || shard == nullptr || shard->context == nullptr) {
    handler = nullptr;
    return;
  }
  // Reported from the next loop turn: fail() may run inside one of the owner's calls. The
  // pending report keeps the link alive (a captured owner would be a cycle: the sul holds none,
  // so the shard set keeps it until then).
  failure = why;
  shard->links.insert(self);
  lws_sul_schedule(
      shard->context, 0, &connect_timer.sul,
      [](lws_sorted_usec_list_t* sul) {
        auto* link = LinkTimer::of(sul);
        link->report_failure();
      },
      0);
}

void StreamLink::report_failure() {
  auto self = shared_from_this();
  if (shard != nullptr) shard->links.erase(self);
  StreamHandler* h = std::exchange(handler, nullptr);
  if (h != nullptr) h->on_closed(failure);
}

void StreamLink::request_write() {
  if (wsi != nullptr && connected && out.size() > out_offset) lws_callback_on_writable(wsi);
}

void StreamLink::on_connected_socket() {
  connected = true;
  if (tls) {
    if (tls->advance() == TlsClientStream::State::kFailed) return fail(tls->error());
    out += tls->take_output();  // the ClientHello
    request_write();
    return;
  }
  ready = true;
  lws_sul_cancel(&connect_timer.sul);
  request_write();  // what the owner wrote while connecting
  if (flushing_close) return start_flush();
  auto self = shared_from_this();
  if (handler != nullptr) handler->on_connected();
}

void StreamLink::on_rx(const char* data, std::size_t len) {
  if (lingering) return;  // (read only to see the peer close; nobody wants it)
  auto self = shared_from_this();
  if (!tls) {
    if (handler != nullptr) handler->on_data(std::string_view(data, len));
    return;
  }
  tls->feed(data, len);
  const bool was_ready = ready;
  const auto state = tls->advance();
  std::string plain;
  if (state == TlsClientStream::State::kFailed || !tls->read(plain)) return fail(tls->error());
  if (state == TlsClientStream::State::kReady && !was_ready) {
    ready = true;
    lws_sul_cancel(&connect_timer.sul);
    if (!early.empty() && !tls->write(early)) return fail(tls->error());
    early.clear();
  }
  out += tls->take_output();
  request_write();
  if (ready && !was_ready && flushing_close) return start_flush();
  if (ready && !was_ready && handler != nullptr) handler->on_connected();
  if (!plain.empty() && handler != nullptr && !ended) handler->on_data(plain);
}

void StreamLink::on_writeable() {
  if (lingering) return;
  if (out_offset >= out.size()) {
    // A WRITEABLE comes only once lws sent what the kernel had not taken of our last write:
    // now a flushing close may close.
    if (flushing_close) linger();
    return;
  }
  const std::size_t n = std::min(kWriteChunkBytes, out.size() - out_offset);
  // lws wants LWS_PRE bytes of headroom before what it writes.
  std::string chunk(LWS_PRE, '\0');
  chunk.append(out, out_offset, n);
  // lws keeps what the kernel does not take and sends it before the next WRITEABLE.
  if (lws_write(wsi, reinterpret_cast<unsigned char*>(chunk.data()) + LWS_PRE, n, LWS_WRITE_RAW) <
      static_cast<int>(n)) {
    return fail("write to " + endpoint->url + " failed");
  }
  out_offset += n;
  if (out_offset == out.size()) {
    // Idle streams keep no large buffer (a relayed WebSocket may idle for hours after a burst).
    if (out.capacity() > kWriteChunkBytes) {
      std::string().swap(out);
    } else {
      out.clear();
    }
    out_offset = 0;
  } else if (out_offset > kHighWaterBytes) {
    out.erase(0, out_offset);  // keep the front of the buffer from growing without bound
    out_offset = 0;
  }
  if (flushing_close && buffered() == 0) {
    // lws may still hold part of that write (the kernel took less): closing now would lose it.
    lws_callback_on_writable(wsi);
    return;
  }
  request_write();
  if (want_drained && buffered() <= kHighWaterBytes / 2) {
    want_drained = false;
    auto self = shared_from_this();
    if (handler != nullptr) handler->on_drained();
  }
}

void StreamLink::on_socket_closed(const std::string& why) {
  auto self = shared_from_this();
  wsi = nullptr;  // lws is freeing it
  ended = true;
  if (shard != nullptr) {
    if (shard->context != nullptr) {
      lws_sul_cancel(&timer.sul);
      lws_sul_cancel(&connect_timer.sul);
    }
    shard->links.erase(self);
  }
  StreamHandler* h = std::exchange(handler, nullptr);
  if (h != nullptr) h->on_closed(why);
}

// With nothing waiting (ours or lws'), bytes go to the socket at once: waiting for a WRITEABLE
// costs a poll round per message, as much CPU as relaying it (a proxied WebSocket echo measured
// it). What the kernel does not take waits in `out` for WRITEABLE, in order.
bool StreamLink::send_now(std::string_view& bytes) {
  if (bytes.empty() || out_offset < out.size() || !connected || wsi == nullptr ||
      lws_partial_buffered(wsi) != 0) {
    return true;
  }
  const ssize_t n =
      ::send(lws_get_socket_fd(wsi), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n > 0) {
    bytes.remove_prefix(static_cast<std::size_t>(n));
  } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    fail("write to " + endpoint->url + " failed: " + text::errno_text(errno));
    return false;
  }
  return true;
}

bool StreamLink::write(std::string_view bytes) {
  if (ended || flushing_close) return false;
  if (tls && !ready) {
    early.append(bytes);
  } else if (tls) {
    if (!tls->write(bytes)) {
      fail(tls->error());
      return false;
    }
    const std::string cipher = tls->take_output();
    std::string_view rest(cipher);
    if (!send_now(rest)) return false;
    out.append(rest);
  } else {
    if (!send_now(bytes)) return false;
    out.append(bytes);
  }
  request_write();
  if (buffered() > kHighWaterBytes) {
    want_drained = true;
    return false;
  }
  return true;
}

void StreamLink::pause(bool on) {
  paused = on;
  if (wsi != nullptr) lws_rx_flow_control(wsi, on ? 0 : 1);
}

void StreamLink::set_timer(std::chrono::milliseconds delay) {
  if (ended || shard == nullptr || shard->context == nullptr) return;
  if (delay.count() <= 0) {
    lws_sul_cancel(&timer.sul);
    return;
  }
  lws_sul_schedule(
      shard->context, 0, &timer.sul,
      [](lws_sorted_usec_list_t* sul) {
        auto* link = LinkTimer::of(sul);
        auto self = link->shared_from_this();
        if (link->handler != nullptr && !link->ended) link->handler->on_timer();
      },
      std::chrono::duration_cast<std::chrono::microseconds>(delay).count());
}

void StreamLink::close_by_owner() {
  handler = nullptr;
  if (ended) return;
  const bool unsent = buffered() > 0 || (wsi != nullptr && lws_partial_buffered(wsi) != 0);
  if (!ready || wsi == nullptr) {
    if (!unsent || wsi == nullptr) return fail("closed", true);  // (nothing was sent yet)
  } else if (!unsent) {
    flushing_close = true;  // (no more writes)
    return linger();
  }
  // Send what the owner wrote last (e.g. a DISCONNECT), within a bound. Still connecting, that is
  // everything it wrote (an MQTT client's CONNECT, PUBLISH and DISCONNECT in one message): it
  // goes once the link is up, the connect timeout bounding the wait.
  flushing_close = true;
  lws_sul_cancel(&timer.sul);
  if (ready) start_flush();
}

// Closing outright, with the peer's answers to what we sent still coming (an MQTT broker's
// PUBACKs to the publishes before a DISCONNECT), made the kernel answer them with a reset: the
// peer's next write failed and it dropped the connection before reading the rest of what we
// had sent. mosquitto then never read the DISCONNECT, published the client's will, and lost the
// packets before it. Half-closed, the peer reads everything up to our end, then closes its own.
void StreamLink::linger() {
  if (wsi == nullptr || !connected) return fail("closed", true);
  lingering = true;
  lws_sul_cancel(&timer.sul);
  if (::shutdown(lws_get_socket_fd(wsi), SHUT_WR) != 0) return fail("closed", true);
  if (paused) lws_rx_flow_control(wsi, 1);  // (its close is read like the rest)
  lws_set_timeout(wsi, static_cast<pending_timeout>(PENDING_TIMEOUT_USER_OK),
                  static_cast<int>(kLingerSeconds));
}

void StreamLink::start_flush() {
  if (buffered() == 0) lws_callback_on_writable(wsi);  // (only lws' own remainder is left)
  lws_set_timeout(wsi, static_cast<pending_timeout>(PENDING_TIMEOUT_USER_OK),
                  static_cast<int>(flush_seconds));
}

}  // namespace wsbridge::stream
