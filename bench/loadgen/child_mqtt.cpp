// --mqtt: the load generator's clients speak MQTT 3.1.1 over the WebSocket, as mqtt.js does in a
// browser (one packet per binary message out; any split of packets over messages accepted in),
// for bridges that carry MQTT as it is (wsbridge's pass-through mode, websockify in front of a
// broker). The fanout and idle modes then CONNECT and SUBSCRIBE on every connection; the publish
// mode has every connection PUBLISH and one raw MQTT subscriber on the broker count and time
// what arrives.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "child.hpp"

namespace bench {

namespace {

// mq_state: where a WebSocket MQTT session stands.
constexpr std::uint8_t kAwaitConnack = 0;
constexpr std::uint8_t kAwaitSuback = 1;
constexpr std::uint8_t kSession = 2;

void append_remaining_length(std::string& out, std::size_t n) {
  do {
    auto byte = static_cast<unsigned char>(n % 128);
    n /= 128;
    if (n > 0) byte |= 0x80;
    out += static_cast<char>(byte);
  } while (n > 0);
}

void append_string(std::string& out, std::string_view s) {
  out += static_cast<char>(s.size() >> 8);
  out += static_cast<char>(s.size() & 0xFF);
  out += s;
}

std::string packet(std::uint8_t head, const std::string& body) {
  std::string out(1, static_cast<char>(head));
  append_remaining_length(out, body.size());
  out += body;
  return out;
}

std::uint16_t next_id(Conn& c) {
  if (++c.next_packet_id == 0) c.next_packet_id = 1;
  return c.next_packet_id;
}

}  // namespace

std::string Child::connect_packet(const std::string& client_id, unsigned keepalive) const {
  // MQTT 3.1.1, clean session, no will, no credentials.
  std::string body("\x00\x04MQTT\x04\x02", 8);
  body += static_cast<char>(keepalive >> 8);
  body += static_cast<char>(keepalive & 0xFF);
  append_string(body, client_id);
  return packet(0x10, body);
}

std::string Child::publish_packet(std::string_view payload, unsigned qos, std::uint16_t id) const {
  std::string out(1, static_cast<char>(0x30 | (qos << 1)));
  append_remaining_length(out, 2 + o_.topic.size() + (qos > 0 ? 2 : 0) + payload.size());
  append_string(out, o_.topic);
  if (qos > 0) {
    out += static_cast<char>(id >> 8);
    out += static_cast<char>(id & 0xFF);
  }
  out += payload;
  return out;
}

void Child::mqtt_open(Conn& c) {
  c.mq_state = kAwaitConnack;
  // Unique over processes and runs: a broker drops the older of two sessions with one id.
  const std::string id = "lg-" + std::to_string(getpid()) + "-" + std::to_string(c.index);
  loop_.queue_frame(c, 0x2, connect_packet(id, o_.keepalive));
  loop_.flush(c);
}

void Child::on_binary(Conn& c, const char* data, std::size_t len, std::uint64_t t) {
  if (o_.mode == "echo" || o_.echo) {
    echo_message(c, data, len, t);
    return;
  }
  if (o_.mqtt) mqtt_feed(c, data, len, t);
}

void Child::mqtt_feed(Conn& c, const char* data, std::size_t len, std::uint64_t t) {
  std::string_view in(data, len);
  if (!c.mq.empty()) {
    c.mq.append(data, len);
    in = c.mq;
  }
  std::size_t pos = 0;
  while (in.size() - pos >= 2) {
    std::size_t n = 0;
    std::size_t i = pos + 1;
    unsigned shift = 0;
    bool complete = false;
    while (i < in.size() && shift <= 21) {
      const auto b = static_cast<unsigned char>(in[i++]);
      n |= static_cast<std::size_t>(b & 0x7F) << shift;
      shift += 7;
      if ((b & 0x80) == 0) {
        complete = true;
        break;
      }
    }
    if (!complete) {
      if (shift > 21) {  // a remaining length of more than 4 bytes: not MQTT
        ++loop_.errors.protocol;
        mqtt_failed(c);
        return;
      }
      break;
    }
    if (in.size() - i < n) break;
    const auto head = static_cast<std::uint8_t>(in[pos]);
    pos = i + n;
    on_mqtt_packet(c, head, in.substr(i, n), t);
    if (c.fd < 0) return;  // failed: c.mq is gone with it
  }
  if (c.mq.empty()) {
    if (pos < len) c.mq.assign(data + pos, len - pos);
  } else {
    c.mq.erase(0, pos);
  }
}

void Child::on_mqtt_packet(Conn& c, std::uint8_t head, std::string_view body, std::uint64_t t) {
  switch (head >> 4) {
    case 2:  // CONNACK: session present, return code
      if (body.size() < 2 || body[1] != 0) {
        ++loop_.errors.error_frames;
        mqtt_failed(c);
        return;
      }
      if (o_.mode == "publish") {
        c.mq_state = kSession;
        mark_ready(c);
        return;
      }
      {
        // SUBSCRIBE to this connection's topic, QoS 0.
        const std::string topic =
            o_.topics > 1 ? o_.topic + "/" + std::to_string(global_index(c) % o_.topics) : o_.topic;
        std::string sub;
        const std::uint16_t id = next_id(c);
        sub += static_cast<char>(id >> 8);
        sub += static_cast<char>(id & 0xFF);
        append_string(sub, topic);
        sub += '\0';
        c.mq_state = kAwaitSuback;
        loop_.queue_frame(c, 0x2, packet(0x82, sub));
        loop_.flush(c);
      }
      return;
    case 9:  // SUBACK: packet id, one return code
      if (body.size() < 3 || static_cast<unsigned char>(body[2]) == 0x80) {
        ++loop_.errors.error_frames;
        mqtt_failed(c);
        return;
      }
      c.mq_state = kSession;
      if (!c.ready) mark_ready(c);
      return;
    case 3: {  // PUBLISH: topic, packet id when QoS > 0, payload
      const unsigned qos = (head >> 1) & 3;
      if (body.size() < 2) break;
      const std::size_t topic_len =
          (static_cast<std::size_t>(static_cast<unsigned char>(body[0])) << 8) |
          static_cast<unsigned char>(body[1]);
      const std::size_t at = 2 + topic_len + (qos > 0 ? 2 : 0);
      if (body.size() < at) break;
      const std::string_view payload = body.substr(at);
      std::int64_t seq = 0;
      std::int64_t ts = 0;
      if (!find_int(payload, R"("s":)", seq) || !find_int(payload, R"("t":)", ts)) {
        ++foreign_messages_;
        return;
      }
      count_delivery(c, seq, ts,
                     payload == expected_payload(static_cast<std::uint64_t>(seq),
                                                 static_cast<std::uint64_t>(ts)),
                     t);
      return;
    }
    case 4:  // PUBACK
      ++acked_;
      return;
    case 13:  // PINGRESP
      return;
    default:
      return;
  }
  ++loop_.errors.protocol;  // a PUBLISH too short for its own fields
  mqtt_failed(c);
}

void Child::mqtt_failed(Conn& c) {
  if (c.role == Role::kMqtt) {
    ++loop_.errors.closed;
    ::close(c.fd);
    c.fd = -1;
    return;
  }
  if (!c.ready && c.tag != kPublisher) {
    if (ramping_) in_progress_--;
    c.tag = kFailed;
  }
  loop_.close(c, true);
}

void Child::pump(int timeout_ms) {
  loop_.poll(timeout_ms);
  if (!o_.mqtt) return;
  const std::uint64_t now = now_ns();
  if (next_ping_ == 0) next_ping_ = now + o_.keepalive * kSec / 2;
  if (now < next_ping_) return;
  next_ping_ = now + o_.keepalive * kSec / 2;
  static const std::string kPingreq("\xC0\x00", 2);
  for (auto& c : conns_) {
    if (c.fd >= 0 && c.state == State::kOpen && c.mq_state == kSession) {
      loop_.queue_frame(c, 0x2, kPingreq);
      loop_.flush(c);
    }
  }
}

// ---- publish ----------------------------------------------------------------------------------

void Child::publish_from(Conn& c) {
  const std::uint64_t t = now_ns();
  const std::string payload = make_payload(published_, t);
  ++published_;
  loop_.queue_frame(c, 0x2, publish_packet(payload, o_.qos, o_.qos > 0 ? next_id(c) : 0));
  if (touched_.empty() || touched_.back() != c.index) touched_.push_back(c.index);
}

int Child::run_publish() {
  if (!connect_mqtt(true)) {
    die("publish: cannot subscribe at the MQTT broker " + o_.mqtt_url.host_port());
  }
  ramp(conns_.size());
  report("READY", base_kv());
  const std::string go = wait_command();  // GO <t0>
  t0_ = std::strtoull(go.c_str() + 3, nullptr, 10);
  window_start_ = t0_ + static_cast<std::uint64_t>(o_.warmup * kSec);
  pub_end_ = t0_ + static_cast<std::uint64_t>(o_.duration * kSec);
  const std::uint64_t cpu_start = cpu_us();
  std::vector<std::uint32_t> pubs;
  for (const auto& c : conns_) {
    if (c.ready && c.fd >= 0) pubs.push_back(c.index);
  }
  if (pubs.empty()) die("publish: no connection completed its MQTT CONNECT");
  std::size_t rr = 0;
  auto next_publisher = [&]() -> Conn* {
    for (std::size_t k = 0; k < pubs.size(); ++k) {
      Conn& c = conns_[pubs[rr++ % pubs.size()]];
      if (c.fd >= 0 && c.out.size() - c.out_off < (1u << 20)) return &c;
    }
    return nullptr;
  };
  // Closed loop as in the fan-out: at most --window messages per publishing connection that the
  // counting subscriber has not received yet; lost ones are written off after 200 ms of silence.
  std::int64_t credit = 0;
  std::uint64_t progress_at = 0, delivered_then = 0, stalls = 0;
  const auto limit = static_cast<std::int64_t>(o_.window) * static_cast<std::int64_t>(pubs.size());
  auto outstanding = [&] {
    return static_cast<std::int64_t>(published_) - static_cast<std::int64_t>(delivered_) - credit;
  };
  while (true) {
    std::uint64_t now = now_ns();
    if (now >= pub_end_) break;
    int timeout = 1;
    if (now >= t0_) {
      int batch = 0;
      Conn* c = nullptr;
      if (o_.rate > 0) {
        const auto due =
            static_cast<std::uint64_t>(static_cast<double>(now - t0_) * o_.rate / 1e9) + 1;
        while (published_ < due && batch < 256 && (c = next_publisher()) != nullptr) {
          publish_from(*c);
          ++batch;
        }
        const double next_at =
            static_cast<double>(t0_) + static_cast<double>(published_) * 1e9 / o_.rate;
        now = now_ns();
        timeout = next_at > static_cast<double>(now)
                      ? static_cast<int>(std::min(10.0, (next_at - static_cast<double>(now)) / 1e6))
                      : 0;
      } else {
        while (outstanding() < limit && batch < 64 && (c = next_publisher()) != nullptr) {
          publish_from(*c);
          ++batch;
        }
        if (delivered_ != delivered_then) {
          delivered_then = delivered_;
          progress_at = now;
        } else if (progress_at == 0) {
          progress_at = now;
        } else if (now - progress_at > 200 * kMs && outstanding() > 0) {
          credit += outstanding();
          ++stalls;
          progress_at = now;
        }
        timeout = batch > 0 ? 0 : 1;
      }
      for (std::uint32_t i : touched_) loop_.flush(conns_[i]);
      touched_.clear();
    } else {
      timeout = static_cast<int>(std::min<std::uint64_t>((t0_ - now) / kMs, 10));
    }
    pump(timeout);
  }
  const std::uint64_t pub_stop = now_ns();
  const std::uint64_t drain_deadline = pub_stop + static_cast<std::uint64_t>(o_.drain_max * kSec);
  const auto quiet = static_cast<std::uint64_t>(o_.drain_quiet * kSec);
  while (true) {
    pump(5);
    const std::uint64_t now = now_ns();
    if (now > drain_deadline) break;
    if (delivered_ >= published_ && (o_.qos == 0 || acked_ >= published_)) break;
    if (now - std::max(last_delivery_, pub_stop) > quiet) break;
  }
  Kv kv = base_kv();
  kv["published"] = std::to_string(published_);
  kv["pub_start_ns"] = std::to_string(t0_);
  kv["pub_stop_ns"] = std::to_string(pub_stop);
  kv["unique"] = std::to_string(mqtt_.unique);
  kv["dups"] = std::to_string(mqtt_.dups);
  kv["in_window"] = std::to_string(in_window_);
  kv["stalls"] = std::to_string(stalls);
  kv["foreign"] = std::to_string(foreign_messages_);
  kv["acked"] = std::to_string(acked_);
  kv["run_cpu_us"] = std::to_string(cpu_us() - cpu_start);
  kv["subscribed_at_start"] = "1";  // the counting subscriber
  kv["publishers"] = std::to_string(pubs.size());
  kv["hist"] = hist_.serialize();
  report("RESULT", kv);
  finish();
  return 0;
}

}  // namespace bench
