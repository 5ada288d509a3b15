// The payloads the load generator publishes, and the check that what a subscriber receives is
// what was published (a payload is a function of its sequence number and timestamp, so every
// process can rebuild it, whichever process published it).
#include <algorithm>
#include <cstdio>
#include <string>

#include "child.hpp"

namespace bench {

namespace {

// splitmix64: the reading values of a message, from its sequence number.
std::uint64_t next_random(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct Kind {
  const char* name;
  const char* unit;
  unsigned base;    // in hundredths
  unsigned spread;  // in hundredths, either side of base
  bool decimal;
};

constexpr Kind kKinds[] = {
    {"temperature", "C", 2100, 400, true},  {"humidity", "RH", 4500, 1000, true},
    {"pressure", "hPa", 101300, 800, true}, {"co2", "ppm", 60000, 20000, false},
    {"voc", "ppb", 12000, 6000, false},     {"pm2_5", "ug/m3", 800, 500, true},
    {"noise", "dBA", 4200, 1000, true},     {"light", "lux", 35000, 15000, false},
    {"vibration", "mm/s", 150, 100, true},  {"power", "W", 23000, 4000, true},
};

// A positive value with two decimals whose last digit is not 0, or a whole number: printed the
// way JSON.stringify prints the parsed number, since the Node bridge re-serializes payloads and
// the check below compares text.
void append_value(std::string& out, const Kind& k, std::uint64_t r) {
  const auto span = 2ull * k.spread + 1;
  std::uint64_t centi = k.base - k.spread + r % span;
  char buf[32];
  if (!k.decimal) {
    std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(centi / 100));
  } else {
    if (centi % 10 == 0) ++centi;
    std::snprintf(buf, sizeof buf, "%llu.%02llu", static_cast<unsigned long long>(centi / 100),
                  static_cast<unsigned long long>(centi % 100));
  }
  out += buf;
}

}  // namespace

std::string Child::make_payload(std::uint64_t seq, std::uint64_t t) {
  if (o_.telemetry) return make_telemetry(seq, t);
  char head[64];
  const int n =
      std::snprintf(head, sizeof head, R"({"s":%llu,"t":%llu,"p":")",
                    static_cast<unsigned long long>(seq), static_cast<unsigned long long>(t));
  // Padded to exactly --payload bytes (when it is larger than the head).
  const auto used = static_cast<std::size_t>(n) + 2;
  const std::size_t pad = o_.payload > used ? o_.payload - used : 1;
  std::string p;
  p.reserve(used + pad);
  p.append(head, static_cast<std::size_t>(n));
  p.append(padding_, 0, std::min(pad, padding_.size()));
  p += "\"}";
  return p;
}

// A sensor's report as IoT dashboards receive it: the same keys, units and device name in every
// message (what deflate finds to squeeze), values that change from message to message. Readings
// are added while the payload stays within --payload bytes (at least one).
std::string Child::make_telemetry(std::uint64_t seq, std::uint64_t t) {
  std::uint64_t rng = seq;
  char head[256];
  const int n = std::snprintf(
      head, sizeof head,
      R"({"s":%llu,"t":%llu,"device":"plant-07/line-3/sensor-0415","fw":"2.14.3","status":"ok",)"
      R"("uptime_s":%llu,"battery_pct":%u,"rssi_dbm":-%u,"readings":[)",
      static_cast<unsigned long long>(seq), static_cast<unsigned long long>(t),
      static_cast<unsigned long long>(86400 + seq), 60 + static_cast<unsigned>(seq / 1000 % 40),
      55 + static_cast<unsigned>(next_random(rng) % 30));
  std::string p(head, static_cast<std::size_t>(n));
  std::string reading;
  for (std::size_t i = 0;; ++i) {
    const Kind& k = kKinds[i % std::size(kKinds)];
    reading.assign(i == 0 ? R"({"name":")" : R"(,{"name":")");
    reading += k.name;
    if (i >= std::size(kKinds)) reading += "_" + std::to_string(i / std::size(kKinds) + 1);
    reading += R"(","value":)";
    append_value(reading, k, next_random(rng));
    reading += R"(,"unit":")";
    reading += k.unit;
    reading += "\"}";
    if (i > 0 && p.size() + reading.size() + 2 > o_.payload) break;
    p += reading;
  }
  p += "]}";
  return p;
}

const std::string& Child::expected_payload(std::uint64_t seq, std::uint64_t t) {
  Expected& e = expected_[seq % expected_.size()];
  if (e.seq != seq || e.t != t || e.text.empty()) {
    e.seq = seq;
    e.t = t;
    e.text = make_payload(seq, t);
  }
  return e.text;
}

bool Child::payload_ok(std::string_view frame, std::size_t at, std::uint64_t seq, std::uint64_t t) {
  // {"type":"message","topic":...,"payload":<payload>,"qos":...}: both bridges write the
  // payload as it came when it is JSON, and "qos" after it.
  constexpr std::string_view kKey = R"("payload":)";
  const std::size_t end = frame.rfind(R"(,"qos":)");
  if (frame.compare(at, kKey.size(), kKey) != 0 || end == std::string_view::npos ||
      end < at + kKey.size()) {
    return false;
  }
  return frame.substr(at + kKey.size(), end - at - kKey.size()) == expected_payload(seq, t);
}

}  // namespace bench
