// The HTTP fallback transports, carrier side: writing a response that comes through a
// ResponseChannel to the connection that carries it (an event stream's bytes as they come, a
// whole answer at once), at the end of the loop turn where lws holds nothing back, else in its
// write turn.
#include <charconv>
#include <cstring>

#include "http/http_reply.hpp"
#include "shard/shard_parts.hpp"

namespace wsbridge {

namespace {
constexpr std::size_t kCarrierWriteBytes = 64 * 1024;  // per write
// A chunk's size line ("10000\r\n" at most) fits in the headroom, which lws_write leaves alone
// on HTTP/1 without lws' own compression (fallback streams never have it).
static_assert(LWS_PRE >= 8);

// Frames the bytes after `headroom` in `bytes` as one chunk of a chunked body (RFC 9112 7.1),
// in place: the size line goes into the headroom's end (returned: its length), the chunk's CRLF
// after the bytes, and after the last the body's end. No bytes, not last: nothing to frame (an
// empty chunk would end the body).
std::size_t frame_chunk(std::string& bytes, std::size_t headroom, bool last) {
  const std::size_t size = bytes.size() - headroom;
  std::size_t line = 0;
  if (size > 0) {
    char digits[24];
    char* end = std::to_chars(digits, digits + sizeof digits - 2, size, 16).ptr;
    *end++ = '\r';
    *end++ = '\n';
    line = static_cast<std::size_t>(end - digits);
    std::memcpy(bytes.data() + headroom - line, digits, line);
    bytes += "\r\n";
  }
  if (last) bytes += "0\r\n\r\n";
  return line;
}
}  // namespace

using fallback::ResponseChannel;
using fallback::ResponseKind;

// As for WebSockets (write_path.cpp): a write turn asked of lws costs two epoll_ctl calls and a
// loop turn more, per carrier and message, where the socket almost always takes the bytes.
void Shard::want_carrier_write(std::uint64_t key) {
  const auto it = carriers_.find(key);
  if (it == carriers_.end()) return;
  ConnectionData* data = ConnectionData::of(it->second);
  if (data == nullptr || !data->carrier) return;
  FallbackCarrier& carrier = *data->carrier;
  if (!carrier.ending && carrier.channel && carrier.channel->ended()) {
    // The session is done with this response: its client has handshake_timeout to take the rest,
    // as it has for sending a request. attach_carrier lifted lws' deadline for the session's
    // sake, and a client that never read would otherwise hold the connection and up to the
    // channel's capacity with it for good. Completing the transaction sets the next deadline.
    carrier.ending = true;
    lws_set_timeout(it->second, static_cast<pending_timeout>(PENDING_TIMEOUT_USER_OK),
                    static_cast<int>(config_->limits.handshake_timeout.count()));
  }
  if (carrier.write_soon) return;
  carrier.write_soon = true;
  carriers_soon_.push_back(key);
}

// A message to many long-polling sessions is as many answers in one turn: each answer goes out
// first, and the transactions complete after the last (lws' keep-alive reset, its header table
// freed, our carrier's end), so the last session's answer does not wait for every completion
// before it; the next polls are read in the next loop turn either way.
bool Shard::write_carriers_soon() {
  bool lws_has_work = false;
  std::vector<std::uint64_t> keys;
  keys.swap(carriers_soon_);
  std::vector<lws*> finished;
  auto kill = [&](lws* wsi) {
    // Not inside a callback that could return -1: lws closes it from its next turn.
    lws_set_timeout(wsi, static_cast<pending_timeout>(PENDING_TIMEOUT_USER_OK), LWS_TO_KILL_ASYNC);
    lws_has_work = true;
  };
  for (const std::uint64_t key : keys) {
    const auto it = carriers_.find(key);
    if (it == carriers_.end()) continue;
    lws* wsi = it->second;
    ConnectionData* data = ConnectionData::of(wsi);
    if (data == nullptr || !data->carrier) continue;
    data->carrier->write_soon = false;
    bool failed = false;
    if (write_carrier_now(wsi, *data->carrier, finished, failed)) continue;
    if (failed) {
      kill(wsi);
      continue;
    }
    lws_callback_on_writable(wsi);
  }
  for (lws* wsi : finished) {
    if (finish_carrier(wsi) < 0) kill(wsi);
  }
  return lws_has_work;
}

// The writer of lws' write turn (write_fallback), run at the end of the loop turn instead, on
// HTTP/1 (an HTTP/2 stream writes in its connection's turns) where lws holds nothing back: a
// poll's answer, an event stream's head, bytes and end, and the transaction's completion, which
// lws defers itself if a partial write is left. Asking lws for a write turn costs a loop turn
// and two epoll_ctl per answer; a long-polling server makes one answer per message and session.
bool Shard::write_carrier_now(lws* wsi, FallbackCarrier& c, std::vector<lws*>& finished,
                              bool& failed) {
  if (!c.channel || lws_get_network_wsi(wsi) != wsi || lws_partial_buffered(wsi) != 0) {
    return false;
  }
  failed = write_fallback(wsi, &finished) < 0;
  return !failed;
}

int Shard::finish_carrier(lws* wsi) {
  ConnectionData* data = ConnectionData::of(wsi);
  if (data != nullptr && data->carrier) {
    carriers_.erase(data->carrier->key);
    data->carrier.reset();
  }
  const int result = complete_http_transaction(wsi);
  const int fd = lws_get_socket_fd(wsi);
  if (result == 0 && fd >= 0 && mask_guard::release_next_request(fd)) {
    // A request came while this one was held: lws reads again, starting with it (for TLS it may
    // wait decrypted in OpenSSL's buffer, where no POLLIN would tell).
    lws_rx_flow_control(wsi, 1);
    on_plaintext_waiting(fd);
  }
  return result;
}

int Shard::write_fallback(lws* wsi, std::vector<lws*>* finished) {
  ConnectionData* data = ConnectionData::of(wsi);
  if (data == nullptr || !data->carrier || !data->carrier->channel) return 0;
  FallbackCarrier& c = *data->carrier;
  ResponseChannel& channel = *c.channel;
  ResponseChannel::Taken taken = channel.take(kCarrierWriteBytes);
  if (taken.room_again && channel.wake_owner) channel.wake_owner();
  auto finish = [&] {
    if (finished == nullptr) return finish_carrier(wsi);
    finished->push_back(wsi);
    return 0;
  };
  if (channel.kind() == ResponseKind::kWhole || (!c.headers_sent && taken.status != 200)) {
    if (!taken.ended) return 0;
    write_http_reply(wsi, taken.status,
                     taken.content_type.empty() ? "application/json" : taken.content_type,
                     taken.body(), fallback_answer_headers(c.cors_origin));
    return finish();
  }
  if (!c.headers_sent) {
    HeaderList headers = fallback_answer_headers(c.cors_origin);
    headers.emplace_back("X-Accel-Buffering:", "no");
    // (Transfer-Encoding, added below, fits in the base.)
    std::string head(LWS_PRE + response_head_room(headers, 512), '\0');
    auto* start = reinterpret_cast<unsigned char*>(head.data()) + LWS_PRE;
    unsigned char* p = start;
    unsigned char* end = reinterpret_cast<unsigned char*>(head.data()) + head.size();
    if (c.chunked) {
      // Not lws_add_http_common_headers: without a length it says "Connection: close".
      static constexpr std::string_view kType = "text/event-stream";
      if (lws_add_http_header_status(wsi, 200, &p, end) != 0 ||
          lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                       reinterpret_cast<const unsigned char*>(kType.data()),
                                       static_cast<int>(kType.size()), &p, end) != 0) {
        return -1;
      }
      headers.emplace_back("Transfer-Encoding:", "chunked");
    } else if (lws_add_http_common_headers(wsi, 200, "text/event-stream",
                                           LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) != 0) {
      return -1;
    }
    for (const auto& [name, value] : headers) {
      const std::string n(name);
      if (lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>(n.c_str()),
                                      reinterpret_cast<const unsigned char*>(value.data()),
                                      static_cast<int>(value.size()), &p, end) != 0) {
        return -1;
      }
    }
    if (lws_finalize_write_http_header(wsi, start, &p, end) != 0) return -1;
    c.headers_sent = true;
  }
  const std::size_t size = taken.body().size();
  if (size > 0 || taken.ended) {
    // (The channel left LWS_PRE bytes in front: written in place, no copy; a chunk's size line
    // goes into them.)
    const std::size_t line = c.chunked ? frame_chunk(taken.bytes, LWS_PRE, taken.ended) : 0;
    auto* out = reinterpret_cast<unsigned char*>(taken.bytes.data()) + LWS_PRE - line;
    const std::size_t length = taken.bytes.size() - (LWS_PRE - line);
    const int n = lws_write(wsi, out, length, taken.ended ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
    if (n < 0) return -1;
  }
  if (taken.ended) return finish();
  if (size == kCarrierWriteBytes) lws_callback_on_writable(wsi);  // more waits
  return 0;
}

}  // namespace wsbridge
