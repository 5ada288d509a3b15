// Where a relayed body ends (body_follower.hpp). The chunked grammar of RFC 9112 7.1:
//
//   chunked-body = *chunk last-chunk trailer-section CRLF
//   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//   last-chunk   = 1*("0") [ chunk-ext ] CRLF
//   chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//
// Every line end is CRLF exactly: a bare LF is where readers differ (some accept it), and the
// bytes are forwarded as they are, so the proxy's reading must be the strictest one.
#include "reverse_proxy/body_follower.hpp"

#include <algorithm>
#include <string_view>

#include "reverse_proxy/head_fields.hpp"
#include "wsbridge/http_client.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge::reverse_proxy {

namespace {

// A chunk-size line with its extensions, CRLF included. Extensions carry nothing a proxy needs;
// the bound keeps a peer from making the proxy buffer a line forever.
constexpr std::size_t kMaxSizeLineBytes = 4096;
// Every trailer line and the final empty line together, CRLFs included.
constexpr std::size_t kMaxTrailerBytes = 16 * 1024;
// 16 hex digits hold any 64-bit size; more would be leading zeros or an overflow.
constexpr std::size_t kMaxSizeDigits = 16;

bool is_tchar(char c) {
  return is_http_token(std::string_view(&c, 1));
}

void skip_bws(std::string_view& s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
}

bool take_token(std::string_view& s) {
  std::size_t n = 0;
  while (n < s.size() && is_tchar(s[n])) ++n;
  s.remove_prefix(n);
  return n > 0;
}

// quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE (RFC 9110 5.6.4).
bool take_quoted(std::string_view& s) {
  if (s.empty() || s.front() != '"') return false;
  for (std::size_t i = 1; i < s.size(); ++i) {
    const auto u = static_cast<unsigned char>(s[i]);
    if (s[i] == '"') {
      s.remove_prefix(i + 1);
      return true;
    }
    if (s[i] == '\\') {
      if (++i == s.size()) return false;
      const auto q = static_cast<unsigned char>(s[i]);
      if ((q < 0x20 && s[i] != '\t') || q == 0x7f) return false;
    } else if ((u < 0x20 && s[i] != '\t') || u == 0x7f) {
      return false;
    }
  }
  return false;
}

bool valid_extensions(std::string_view ext) {
  while (!ext.empty()) {
    skip_bws(ext);
    if (ext.empty() || ext.front() != ';') return false;  // "5 " alone is not a size line
    ext.remove_prefix(1);
    skip_bws(ext);
    if (!take_token(ext)) return false;
    skip_bws(ext);
    if (!ext.empty() && ext.front() == '=') {
      ext.remove_prefix(1);
      skip_bws(ext);
      if (!take_quoted(ext) && !take_token(ext)) return false;
    }
  }
  return true;
}

// The chunk size of a size line (without its CRLF), or false with `why`.
bool parse_size_line(std::string_view line, std::uint64_t& size, std::string& why) {
  std::size_t digits = 0;
  size = 0;
  while (digits < line.size() && text::hex_value(line[digits]) >= 0) {
    if (digits == kMaxSizeDigits) {
      why = "a chunk size of more than 16 hex digits";
      return false;
    }
    size = size << 4 | static_cast<std::uint64_t>(text::hex_value(line[digits]));
    ++digits;
  }
  if (digits == 0) {
    why = "a chunk size that is not hex";
    return false;
  }
  if (!valid_extensions(line.substr(digits))) {
    why = "a malformed chunk extension";
    return false;
  }
  return true;
}

}  // namespace

BodyFollower::BodyFollower(BodyFraming framing, std::uint64_t length) : framing_(framing) {
  switch (framing) {
    case BodyFraming::kNone:
      phase_ = Phase::kDone;
      break;
    case BodyFraming::kLength:
      remaining_ = length;
      phase_ = length == 0 ? Phase::kDone : Phase::kData;
      break;
    case BodyFraming::kChunked:
      phase_ = Phase::kSizeLine;
      break;
    case BodyFraming::kUntilClose:
      phase_ = Phase::kData;
      break;
  }
}

bool BodyFollower::done() const {
  return phase_ == Phase::kDone;
}

BodyFollower::Step BodyFollower::fail(std::size_t used, std::string why) {
  error_ = std::move(why);
  // The broken line's bytes in this input (a line ends the input consumed when it breaks), or
  // the one byte where a chunk's CRLF should have been.
  const std::size_t tail = phase_ == Phase::kDataCrlf ? 1 : std::min(line_.size(), used);
  line_.clear();
  return Step{used, false, true, std::min(tail, used)};
}

BodyFollower::Step BodyFollower::feed(const char* data, std::size_t len) {
  if (!error_.empty()) return Step{0, false, true};  // the error sticks
  std::size_t i = 0;
  while (i < len && phase_ != Phase::kDone) {
    switch (phase_) {
      case Phase::kData: {
        if (framing_ == BodyFraming::kUntilClose) {
          payload_ += len - i;
          i = len;
          break;
        }
        const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, len - i));
        payload_ += take;
        remaining_ -= take;
        i += take;
        if (remaining_ == 0) {
          phase_ = framing_ == BodyFraming::kChunked ? Phase::kDataCrlf : Phase::kDone;
        }
        break;
      }
      case Phase::kDataCrlf: {
        const char c = data[i++];
        if (c != (after_cr_ ? '\n' : '\r')) return fail(i, "no CRLF after a chunk's data");
        after_cr_ = !after_cr_;
        if (!after_cr_) phase_ = Phase::kSizeLine;
        break;
      }
      case Phase::kSizeLine:
      case Phase::kTrailerLine: {
        // Up to and including the next LF, but never past the line's bound (+1 to see it broken).
        // Byte by byte, so that a CR without its LF is caught at the same byte however the
        // reads split the line.
        const std::size_t limit =
            phase_ == Phase::kSizeLine ? kMaxSizeLineBytes : kMaxTrailerBytes - trailer_bytes_;
        const std::size_t avail = std::min(len - i, limit + 1 - line_.size());
        char prev = line_.empty() ? '\0' : line_.back();
        std::size_t n = 0;
        bool ended = false;
        bool bare_cr = false;
        while (n < avail && !ended && !bare_cr) {
          const char c = data[i + n++];
          bare_cr = prev == '\r' && c != '\n';
          ended = c == '\n';
          if (!ended) prev = c;
        }
        line_.append(data + i, n);
        i += n;
        if (bare_cr) return fail(i, "a CR without its LF in chunked framing");
        if (line_.size() > limit) {
          return fail(i, phase_ == Phase::kSizeLine ? "a chunk-size line over 4 KiB"
                                                    : "chunked trailers over 16 KiB");
        }
        if (!ended) break;
        if (prev != '\r') return fail(i, "a bare LF in chunked framing");
        const std::string_view line(line_.data(), line_.size() - 2);
        std::string why;
        if (phase_ == Phase::kSizeLine) {
          std::uint64_t size = 0;
          if (!parse_size_line(line, size, why)) return fail(i, why);
          if (guarded_ && line.find(';') != std::string_view::npos) {
            return fail(i, "a chunk extension, which is not relayed");
          }
          if (guarded_ && line.size() > 1 && line.front() == '0') {
            return fail(i, "a chunk size with a leading zero, which is not relayed");
          }
          if (size > max_payload_ - std::min(payload_, max_payload_)) {
            over_limit_ = true;
            return fail(
                i, "a chunk that takes the body over " + std::to_string(max_payload_) + " bytes");
          }
          remaining_ = size;
          phase_ = size == 0 ? Phase::kTrailerLine : Phase::kData;
        } else if (line.empty()) {
          phase_ = Phase::kDone;
        } else if (guarded_) {
          return fail(i, "trailer fields, which are not relayed");
        } else {
          HttpHeader field;
          if (!detail::parse_field_line(line, field, why)) return fail(i, "a trailer with " + why);
          trailer_bytes_ += line_.size();
        }
        line_.clear();
        break;
      }
      case Phase::kDone:
        break;
    }
  }
  // A line not complete yet is the end of the input consumed: line_ holds it (with its bytes
  // from earlier inputs).
  const bool in_line = phase_ == Phase::kSizeLine || phase_ == Phase::kTrailerLine;
  return Step{i, phase_ == Phase::kDone, false, in_line ? std::min(line_.size(), i) : 0};
}

std::string_view LineHold::pass(const BodyFollower::Step& step, std::string_view input,
                                std::string& first) {
  const std::string_view tail = input.substr(step.used - step.line_tail, step.line_tail);
  if (step.line_tail == step.used) {
    // All of it is the held line's: it waits on, or is dropped as malformed.
    if (step.error)
      std::string().swap(held_);
    else
      held_.append(tail);
    return {};
  }
  // The held line ended well within this input: it goes first. The new tail waits, or is the
  // malformed line and is dropped.
  first.append(held_);
  if (step.error)
    std::string().swap(held_);
  else
    held_.assign(tail);
  return input.substr(0, step.used - step.line_tail);
}

}  // namespace wsbridge::reverse_proxy
