// The request head as it passes below libwebsockets (mask_guard's recv() hook feeds it here).
//
// Browsers cannot set headers on a WebSocket, so a token may ride in Sec-WebSocket-Protocol as
// "bearer.<token>" beside a real subprotocol. libwebsockets 4.1.6 refuses protocol names over
// 64 bytes and lists over 128 ("pcol name too long"), which every real JWT exceeds, so the token
// is taken out of the head before lws parses it and handed to the authenticator separately. The
// head arrives in reads of any size, so the filter works byte by byte and keeps back at most
// kMaxHeldBytes (a header name that may still turn out to be Sec-WebSocket-Protocol, the start of
// a list entry that may still turn out to be "bearer.", an Upgrade line until its value is
// known).
//
// Upgrade lines go the same way unless they offer "websocket" (RFC 9110 7.8 lets a server ignore
// an upgrade): lws 4.1.6 would switch to HTTP/2 on "h2c" or drop the connection, and answer any
// other value with a 403. A list naming "websocket" among others reaches lws as "websocket"
// alone; any Upgrade in an HTTP/1.0 request goes (RFC 9110 7.8: ignored there).
//
// The same pass measures the head (an over-long one gets 431 from mask_guard, where lws would drop
// it silently) and reads what the unmasked-frame guard must know to follow the byte stream exactly
// as lws does: where the head ends, whether lws may switch to WebSocket after it, and whether a
// body follows. Header lines are held to RFC 9112's grammar (a token name, then ':'), which is
// where lws 4.1.6 and a plain line reader agree on where lines and heads end; anything else is
// refused as malformed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wsbridge {

struct BearerExtraction {
  std::string token;         // the first bearer.<token> value
  bool only_bearer = false;  // the head offered no real subprotocol beside it
};

// What a complete head says about the bytes that follow it.
struct HeadSummary {
  bool upgrade = false;    // it has a non-empty Upgrade header: lws may switch protocols after it
  bool http_1_0 = false;   // the request line ends "HTTP/1.0" (its Upgrade lines are dropped)
  std::uint8_t hosts = 0;  // Host lines (counted to 255)
  // Why the head is refused when a header that may appear once came twice ("more than one
  // Origin header": static text, the first such header), or a bearer token did, or empty: lws
  // joins or keeps the first of repeated lines, where every other reader may take another.
  std::string_view repeated_header;
  bool has_body = false;  // a body follows (Content-Length > 0, Transfer-Encoding, or a POST,
                          // PUT or PATCH without Content-Length, which lws reads as 100 MiB)
  // Its length where the head says it plainly (one Content-Length, a number, no
  // Transfer-Encoding): where the next request begins, for lws as for us.
  std::optional<std::uint64_t> body_length;
  bool get_or_head = false;  // GET or HEAD, whose body lws' file mounts leave unread
  std::optional<BearerExtraction> bearer;
  // A Sec-WebSocket-Origin header (hybi drafts): lws 4.1.6 files it under Origin, so an upgrade
  // carrying it cannot be told from one with that Origin.
  bool sec_websocket_origin = false;
};

class RequestHeadFilter {
 public:
  static constexpr std::size_t kMaxHeldBytes = 40;

  // lws 4.1.6 keeps each header line it knows and each query argument in one of a fixed number
  // of slots (WSI_TOKEN_COUNT, 95 in Debian's build; shard/lifecycle.cpp checks) and drops the
  // connection without an answer when they run out: a head with more lines and arguments than
  // this gets kTooManyFields (431) instead.
  static constexpr std::size_t kMaxFieldsAndArguments = 88;

  enum class Result : std::uint8_t { kMore, kEnd, kMalformed, kTooLarge, kTooManyFields };

  // `max_bytes`: the head as sent; `max_lws_bytes`: a bound on what lws 4.1.6 stores of what it
  // gets (the bytes plus up to 10 per line: custom-header records, terminators).
  RequestHeadFilter(std::size_t max_bytes, std::size_t max_lws_bytes)
      : max_bytes_(max_bytes), max_lws_bytes_(max_lws_bytes) {}

  // Takes bytes of the head from `data` and stops at its end (consumed = bytes taken). Appends
  // to `out` what lws is to get: what came in minus the bearer entries, plus bytes held back by
  // earlier calls; never more than held() before the call plus `consumed`. After kEnd, summary()
  // is complete; after kMalformed or kTooLarge, reset() first.
  Result feed(const char* data, std::size_t len, std::string* out, std::size_t& consumed);
  // Bytes taken in but not put out yet, or owed: a ',' or '\r' dropped for now that comes back
  // as the separator before the next kept entry or the line's "\r\n".
  std::size_t held() const {
    const bool in_protocol = state_ == State::kProtocol;
    return held_name_.size() + held_item_.size() + (space_held_ ? 1 : 0) +
           (in_protocol && kept_in_line_ > 0 && item_ != Item::kKept ? 1 : 0) +
           (in_protocol && line_cr_ ? 1 : 0);
  }
  std::size_t bytes_in() const { return bytes_in_; }
  const HeadSummary& summary() const { return summary_; }
  // True once the filter is past every Sec-WebSocket-Protocol line it has seen.
  bool protocol_lines_complete() const { return state_ != State::kProtocol; }
  void reset() { *this = RequestHeadFilter(max_bytes_, max_lws_bytes_); }

 private:
  enum class State : std::uint8_t {
    kRequestLine,
    kLineStart,
    kLineStartCR,
    kName,
    kValue,
    kProtocol,
    kUpgrade,  // an Upgrade value, held to its end: does it offer "websocket"?
    kDropLine  // a line lws does not get, to its end
  };
  // Position inside a Sec-WebSocket-Protocol value.
  enum class Item : std::uint8_t { kSeparator, kPrefix, kKept, kBearer, kSkip };

  Result step(char c, std::string* out);
  void emit(std::string* out, std::string_view bytes);
  void keep_value_byte(char c);
  void upgrade_byte(char c, std::string* out);
  void end_value_line();
  void protocol_byte(char c, std::string* out);
  void start_kept_item(std::string* out);
  void end_protocol_line(std::string* out);

  std::size_t max_bytes_;
  std::size_t max_lws_bytes_;
  State state_ = State::kRequestLine;
  std::size_t bytes_in_ = 0;
  std::size_t bytes_out_ = 0;
  std::size_t lines_ = 0;
  std::size_t fields_and_arguments_ = 0;  // header lines and query arguments ('?', '&') so far
  bool after_cr_ = false;                 // the last byte was a CR: only a LF may follow
  std::uint16_t singletons_seen_ = 0;     // bit i: kSingletonHeaders[i] came
  std::size_t line_length_ = 0;         // bytes of the current line before its '\n', '\r' excepted
  std::string method_;                  // the request line up to its first space (first 16 bytes)
  std::array<char, 8> version_tail_{};  // the request line's last 8 bytes: its HTTP version
  std::string name_;                    // lower-cased header name (first 32 bytes)
  std::string value_;                   // header value (first 40 bytes, leading blanks skipped)
  bool value_long_ = false;
  // Each Content-Length value as sent, read at the head's end as the framing rule reads them
  // (agreed_content_length); one over value_'s 40 bytes leaves the body's length unknown.
  std::vector<std::string> content_lengths_;
  bool content_length_long_ = false;
  bool transfer_encoding_ = false;
  // Sec-WebSocket-Protocol lines.
  std::string held_name_;    // the header name and ':' as sent, until a kept entry needs them
  std::string held_item_;    // the start of an entry, while it may still be "bearer."
  bool space_held_ = false;  // a blank inside a kept entry, put out if the entry goes on
  Item item_ = Item::kSeparator;
  bool line_cr_ = false;  // this line's value ended at a '\r' (lws skips the rest)
  std::size_t kept_in_line_ = 0;
  bool bearer_in_line_ = false;
  bool capturing_ = false;  // this bearer entry is the head's first: its bytes are the token
  bool any_kept_ = false;
  HeadSummary summary_;
};

// One-shot form for a buffer holding a whole head: when it carries a bearer entry in a complete
// Sec-WebSocket-Protocol line, rewrites `data[0..len)` in place without it (shrinking `len`) and
// returns the token. nullopt (and no change) otherwise, or when the head is malformed.
std::optional<BearerExtraction> extract_bearer_subprotocol(char* data, std::size_t& len);

}  // namespace wsbridge
