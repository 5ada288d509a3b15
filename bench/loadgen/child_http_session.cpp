// What each HTTP transport of the fallback phase says on a down connection (child_http.cpp reads
// the HTTP around it): wsbridge's SSE events and its long-polling records and controls
// (docs/FALLBACK.md), and Engine.IO packets for Socket.IO. Each message reaches Child::on_text as
// the same JSON text the WebSocket fan-out receives.
#include <cstdlib>
#include <string>
#include <string_view>

#include "child.hpp"
#include "child_http_state.hpp"

namespace bench {

namespace {

// "key":"value" of a flat JSON object (trusted servers; no escapes in the values read here).
std::string_view json_string(std::string_view json, std::string_view key) {
  std::string k;
  k.reserve(key.size() + 4);
  k += '"';
  k += key;
  k += "\":\"";
  const std::size_t at = json.find(k);
  if (at == npos) return {};
  const std::size_t from = at + k.size();
  const std::size_t end = json.find('"', from);
  return end == npos ? std::string_view{} : json.substr(from, end - from);
}

}  // namespace

bool Child::sse_events(Conn& c, std::string& events, std::uint64_t t) {
  std::size_t pos = 0;
  bool alive = true;
  while (alive) {
    const std::size_t end = events.find("\n\n", pos);
    if (end == npos) break;
    const std::string_view ev(events.data() + pos, end - pos);
    pos = end + 2;
    std::string_view data, event;
    bool has_data = false;
    std::int64_t id = -1;
    std::size_t lp = 0;
    while (lp < ev.size()) {
      std::size_t nl = ev.find('\n', lp);
      if (nl == npos) nl = ev.size();
      const std::string_view line = ev.substr(lp, nl - lp);
      lp = nl + 1;
      if (line.empty() || line[0] == ':') continue;  // ": hb" heartbeats
      const std::size_t colon = line.find(':');
      const std::string_view field = line.substr(0, colon);
      std::string_view value = colon == npos ? std::string_view{} : line.substr(colon + 1);
      if (value.starts_with(' ')) value.remove_prefix(1);
      if (field == "data") {
        if (has_data) ++loop_.errors.protocol;  // multi-line data: no message of this load has any
        data = value;
        has_data = true;
      } else if (field == "id") {
        id = std::strtoll(std::string(value).c_str(), nullptr, 10);
      } else if (field == "event") {
        event = value;
      }
    }
    if (!has_data) continue;
    if (event == "control") {
      fallback_control(c, data);
    } else if (event.empty()) {
      if (id >= 0) c.last_id = static_cast<std::uint64_t>(id);
      ++loop_.messages_in;
      on_text(c, data.data(), data.size(), t);
    } else {
      ++loop_.errors.protocol;  // "frame": base64 messages, which this load never sends
    }
    alive = c.tag != kFailed;
  }
  if (!alive) return false;
  events.erase(0, pos);
  return true;
}

void Child::fallback_control(Conn& c, std::string_view json) {
  const std::string_view type = json_string(json, "type");
  if (type == "welcome") {
    if (!c.token.empty()) return;  // a stream carried again: the same session
    c.token = std::string(json_string(json, "session"));
    if (c.token.empty()) {
      ++loop_.errors.protocol;
      http_fail(c);
      return;
    }
    c.state = State::kOpen;
    c.mq_state = kSessionOpen;
    const std::string topic =
        o_.topics > 1 ? o_.topic + "/" + std::to_string(global_index(c) % o_.topics) : o_.topic;
    http_post(c, R"({"type":"subscribe","topic":")" + topic + R"(","id":1})");
  } else if (type == "lost") {
    ++http_lost_;
  } else if (type == "close") {
    if (!loop_.shutting_down) {
      std::int64_t code = 0;
      find_int(json, R"("code":)", code);
      ++loop_.errors.closed;
      ++loop_.errors.close_codes[static_cast<int>(code)];
    }
    http_fail(c);
  }
  // "reconnect": the stream ends here; http_eof opens it again
}

void Child::fallback_records(Conn& c, std::string_view body, std::uint64_t t) {
  const std::size_t nl = body.find('\n');
  if (nl == npos) {
    ++loop_.errors.protocol;
    http_fail(c);
    return;
  }
  const std::uint64_t first = std::strtoull(std::string(body.substr(0, nl)).c_str(), nullptr, 10);
  std::uint64_t k = 0;
  std::size_t pos = nl + 1;
  while (pos < body.size()) {
    const char kind = body[pos];
    const std::size_t colon = body.find(':', pos);
    if (colon == npos) {
      ++loop_.errors.protocol;
      http_fail(c);
      return;
    }
    const auto len = static_cast<std::size_t>(
        std::strtoull(std::string(body.substr(pos + 1, colon - pos - 1)).c_str(), nullptr, 10));
    if (colon + 1 + len > body.size()) {
      ++loop_.errors.protocol;
      http_fail(c);
      return;
    }
    const std::string_view payload = body.substr(colon + 1, len);
    pos = colon + 1 + len;
    if (kind == 'c') {
      fallback_control(c, payload);
    } else if (kind == 't') {
      c.last_id = first + k++;
      ++loop_.messages_in;
      on_text(c, payload.data(), payload.size(), t);
    } else {
      c.last_id = first + k++;
      ++loop_.errors.protocol;  // binary: never in this load
    }
    if (c.tag == kFailed) return;
  }
}

void Child::sio_packets(Conn& c, std::string_view body, std::uint64_t t) {
  static constexpr std::string_view kEvent = R"(42["message",)";
  std::size_t pos = 0;
  while (pos <= body.size() && c.tag != kFailed) {
    std::size_t end = body.find('\x1e', pos);
    if (end == npos) end = body.size();
    const std::string_view p = body.substr(pos, end - pos);
    pos = end + 1;
    if (p.empty()) continue;
    switch (p[0]) {
      case '0':  // OPEN {"sid":...}
        if (c.token.empty()) {
          c.token = std::string(json_string(p, "sid"));
          if (c.token.empty()) {
            ++loop_.errors.protocol;
            http_fail(c);
            return;
          }
          c.mq_state = kSessionOpen;
          http_post(c, "40");  // CONNECT to the default namespace
        }
        break;
      case '2':  // PING: the client answers PONG within pingTimeout
        http_post(c, "3");
        break;
      case '3':
      case '6':  // PONG, NOOP
        break;
      case '1':  // CLOSE
        if (!loop_.shutting_down) ++loop_.errors.closed;
        http_fail(c);
        return;
      case '4':  // MESSAGE: a Socket.IO packet
        if (p.size() < 2) {
          ++loop_.errors.protocol;
        } else if (p[1] == '2' && p.starts_with(kEvent) && p.back() == ']') {
          const std::string_view inner = p.substr(kEvent.size(), p.size() - kEvent.size() - 1);
          ++loop_.messages_in;
          on_text(c, inner.data(), inner.size(), t);
        } else if (p[1] == '0') {  // CONNECT answered: the namespace is joined
          c.state = State::kOpen;
          const std::string topic =
              o_.topics > 1 ? o_.topic + "/" + std::to_string(global_index(c) % o_.topics)
                            : o_.topic;
          http_post(c, R"(421["subscribe",")" + topic + R"("])");
        } else if (p[1] == '3') {  // ACK of the subscribe
          if (!c.ready) mark_ready(c);
        } else if (p[1] == '1' || p[1] == '4') {  // DISCONNECT, CONNECT_ERROR
          if (!loop_.shutting_down) ++loop_.errors.closed;
          http_fail(c);
          return;
        } else {
          ++foreign_messages_;
        }
        break;
      default:
        ++loop_.errors.protocol;
    }
  }
}

}  // namespace bench
