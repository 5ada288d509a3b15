#include "handshake/bearer_subprotocol.hpp"

#include "handshake/request_framing.hpp"
#include "wsbridge/text.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <string_view>
#include <utility>

namespace wsbridge {

namespace {

constexpr std::string_view kProtocolHeader = "sec-websocket-protocol";
constexpr std::string_view kUpgradeHeader = "upgrade";
constexpr std::string_view kBearerPrefix = "bearer.";
constexpr std::size_t kNameKeep = 32;
constexpr std::size_t kValueKeep = 40;
constexpr std::size_t kLwsBytesPerLine = 10;

// RFC 9110 5.6.2 tchar.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != '\0' && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

using text::iequals;

bool blank(char c) {
  return c == ' ' || c == '\t';
}

// A header line held back until it is known whether lws gets it: Sec-WebSocket-Protocol (its
// bearer entries go) and Upgrade (one lws must not act on goes: see kUpgrade).
bool may_be_held(std::string_view lowered_name) {
  return kProtocolHeader.starts_with(lowered_name) || kUpgradeHeader.starts_with(lowered_name);
}

// Also without the CR of a line ending: the filter sees raw header lines.
std::string_view trim_line_blanks(std::string_view s) {
  while (!s.empty() && (blank(s.front()) || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (blank(s.back()) || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Headers a request carries once (RFC 9110 5.3: not lists), read by wsbridge's checks: a second
// one is refused rather than read as lws happens to (joined with ',' or the first alone). By
// lower-case name, with the refusal's reason.
struct SingletonHeader {
  std::string_view name;
  std::string_view repeated_reason;
};
constexpr std::array<SingletonHeader, 8> kSingletonHeaders = {{
    {"origin", "more than one Origin header"},
    {"authorization", "more than one Authorization header"},
    {"content-type", "more than one Content-Type header"},
    {"last-event-id", "more than one Last-Event-ID header"},
    {"sec-fetch-site", "more than one Sec-Fetch-Site header"},
    {"sec-websocket-version", "more than one Sec-WebSocket-Version header"},
    {"sec-websocket-key", "more than one Sec-WebSocket-Key header"},
    {"sec-websocket-origin", "more than one Sec-WebSocket-Origin header"},
}};

// An Upgrade list (RFC 9110 7.8: comma-separated protocols) with "websocket" among them.
bool lists_websocket(std::string_view list) {
  while (!list.empty()) {
    const std::size_t comma = std::min(list.find(','), list.size());
    if (iequals(trim_line_blanks(list.substr(0, comma)), "websocket")) return true;
    list.remove_prefix(std::min(comma + 1, list.size()));
  }
  return false;
}

}  // namespace

void RequestHeadFilter::emit(std::string* out, std::string_view bytes) {
  bytes_out_ += bytes.size();
  if (out != nullptr) out->append(bytes);
}

RequestHeadFilter::Result RequestHeadFilter::feed(const char* data, std::size_t len,
                                                  std::string* out, std::size_t& consumed) {
  consumed = 0;
  while (consumed < len) {
    const char c = data[consumed++];
    if ((c == '\r' || c == '\n') && bytes_in_ == 0) {
      // Empty lines before a request line are ignored (RFC 9112 2.2: a client's CRLF after a
      // body); lws 4.1.6 would take one for a request and drop the connection.
      continue;
    }
    ++bytes_in_;
    // A NUL, or a CR that does not end a line: lws 4.1.6 ends a value at a bare CR (and keeps
    // NULs), so that it and every reader after it would see different fields.
    if (c == '\0' || (after_cr_ && c != '\n')) return Result::kMalformed;
    after_cr_ = c == '\r';
    Result r = step(c, out);
    if (r == Result::kMore &&
        (bytes_in_ > max_bytes_ || bytes_out_ + kLwsBytesPerLine * lines_ > max_lws_bytes_)) {
      r = Result::kTooLarge;
    }
    if (r == Result::kMore && fields_and_arguments_ > kMaxFieldsAndArguments) {
      r = Result::kTooManyFields;
    }
    if (r != Result::kMore) return r;
  }
  return Result::kMore;
}

RequestHeadFilter::Result RequestHeadFilter::step(char c, std::string* out) {
  const bool newline = c == '\n';
  if (newline) {
    ++lines_;
  }
  switch (state_) {
    case State::kRequestLine:
      emit(out, std::string_view(&c, 1));
      if (newline) {
        if (line_length_ == 0) return Result::kEnd;  // (an empty line after a CR: a head ends)
        summary_.http_1_0 =
            std::string_view(version_tail_.data(), version_tail_.size()) == "HTTP/1.0";
        summary_.get_or_head = iequals(method_, "GET") || iequals(method_, "HEAD");
        state_ = State::kLineStart;
        line_length_ = 0;
      } else if (c != '\r') {
        if (c == '?' || c == '&') ++fields_and_arguments_;
        if (line_length_ == method_.size() && c != ' ' && method_.size() < 16) method_ += c;
        ++line_length_;
        std::shift_left(version_tail_.begin(), version_tail_.end(), 1);
        version_tail_.back() = c;
      }
      return Result::kMore;
    case State::kLineStart:
      if (newline || c == '\r') {
        emit(out, std::string_view(&c, 1));
        if (!newline) {
          state_ = State::kLineStartCR;
          return Result::kMore;
        }
        break;  // the empty line: the head ends
      }
      if (!is_tchar(c)) return Result::kMalformed;  // obs-fold, blank before the name, ...
      ++fields_and_arguments_;
      name_.clear();
      value_.clear();
      value_long_ = false;
      held_name_.assign(1, c);  // may be the start of a held line
      name_.push_back(text::ascii_lower(c));
      if (!may_be_held(name_)) emit(out, std::exchange(held_name_, {}));
      state_ = State::kName;
      return Result::kMore;
    case State::kLineStartCR:
      if (!newline) return Result::kMalformed;
      emit(out, std::string_view(&c, 1));
      break;  // "\r\n": the head ends
    case State::kName:
      if (c == ':') {
        if (!held_name_.empty() && name_ == kProtocolHeader) {
          held_name_.push_back(c);
          state_ = State::kProtocol;
          item_ = Item::kSeparator;
          line_cr_ = false;
          kept_in_line_ = 0;
          bearer_in_line_ = false;
          return Result::kMore;
        }
        if (!held_name_.empty() && name_ == kUpgradeHeader) {
          if (summary_.http_1_0) {  // RFC 9110 7.8: a server ignores Upgrade in HTTP/1.0
            held_name_.clear();
            state_ = State::kDropLine;
          } else {
            held_name_.push_back(c);
            state_ = State::kUpgrade;
          }
          return Result::kMore;
        }
        emit(out, std::exchange(held_name_, {}));
        emit(out, std::string_view(&c, 1));
        state_ = State::kValue;
        return Result::kMore;
      }
      if (!is_tchar(c)) return Result::kMalformed;  // includes a line end before any ':'
      if (name_.size() < kNameKeep) name_.push_back(text::ascii_lower(c));
      if (!held_name_.empty()) {
        held_name_.push_back(c);
        if (!may_be_held(name_)) {
          emit(out, std::exchange(held_name_, {}));
        }
      } else {
        emit(out, std::string_view(&c, 1));
      }
      return Result::kMore;
    case State::kValue:
      emit(out, std::string_view(&c, 1));
      if (newline) {
        end_value_line();
        state_ = State::kLineStart;
      } else {
        keep_value_byte(c);
      }
      return Result::kMore;
    case State::kProtocol:
      protocol_byte(c, out);
      if (newline) state_ = State::kLineStart;
      return Result::kMore;
    case State::kUpgrade:
      upgrade_byte(c, out);
      return Result::kMore;
    case State::kDropLine:
      if (newline) state_ = State::kLineStart;
      return Result::kMore;
  }
  // The head is complete.
  // As the shard's framing rule serves it (repeated headers or a list that all say one number);
  // anything it refuses leaves the body's end unknown here.
  const bool length_seen = content_length_long_ || !content_lengths_.empty();
  const std::optional<unsigned long long> length =
      content_length_long_ ? std::nullopt : agreed_content_length(content_lengths_);
  summary_.has_body = transfer_encoding_ || (length_seen && !length) || length.value_or(0) > 0 ||
                      (!length_seen && (iequals(method_, "POST") || iequals(method_, "PUT") ||
                                        iequals(method_, "PATCH")));
  if (length && !transfer_encoding_) summary_.body_length = *length;
  if (summary_.bearer) summary_.bearer->only_bearer = !any_kept_;
  return Result::kEnd;
}

void RequestHeadFilter::keep_value_byte(char c) {
  if (value_.empty() && blank(c)) return;
  if (value_.size() < kValueKeep) {
    value_.push_back(c);
  } else {
    value_long_ = true;
  }
}

// An Upgrade line reaches lws only when it offers "websocket" (in any case), as exactly that value:
// RFC 9110 7.8 lets a server ignore an upgrade it does not do, which serves the request over
// HTTP/1.1. lws 4.1.6 would switch to HTTP/2 on "h2c" (curl --http2, Java's HttpClient on http://
// URLs) or drop the connection, and answer any other value, a list with "websocket" in it included,
// with its HTML 403 (and then go on with the request's header table already given back). A value
// too long to hold is no real client's WebSocket upgrade and goes too.
void RequestHeadFilter::upgrade_byte(char c, std::string* out) {
  if (c != '\n') {
    held_name_.push_back(c);
    keep_value_byte(c);
    if (held_name_.size() >= kMaxHeldBytes) {  // too long to be an upgrade lws does: dropped
      held_name_.clear();
      state_ = State::kDropLine;
    }
    return;
  }
  state_ = State::kLineStart;
  const bool cr = value_.find('\r') != std::string::npos;
  const std::string_view value =
      trim_line_blanks(std::string_view(value_).substr(0, value_.find('\r')));
  if (value == "websocket") {
    held_name_.push_back(c);
    emit(out, std::exchange(held_name_, {}));
    end_value_line();
    return;
  }
  if (!lists_websocket(value)) {
    held_name_.clear();
    return;
  }
  // Written as lws compares it (strcmp: "WebSocket" hung the connection up unanswered), and
  // shorter than what came in when the list held more than "websocket" alone.
  held_name_.resize(held_name_.find(':') + 1);
  held_name_ += cr ? " websocket\r\n" : " websocket\n";
  emit(out, std::exchange(held_name_, {}));
  end_value_line();
}

void RequestHeadFilter::end_value_line() {
  const std::string_view value = trim_line_blanks(value_);
  if (name_ == "content-length") {
    if (value_long_) {
      content_length_long_ = true;
    } else {
      content_lengths_.emplace_back(value);
    }
  } else if (name_ == "transfer-encoding") {
    transfer_encoding_ = true;
  } else if (name_ == "upgrade" && !value.empty()) {
    summary_.upgrade = true;
  } else if (name_ == "sec-websocket-origin") {
    summary_.sec_websocket_origin = true;
  } else if (name_ == "host" && summary_.hosts < 255) {
    ++summary_.hosts;
  }
  for (std::size_t i = 0; i < kSingletonHeaders.size(); ++i) {
    if (name_ != kSingletonHeaders[i].name) continue;
    const auto bit = static_cast<std::uint16_t>(1u << i);
    if ((singletons_seen_ & bit) != 0 && summary_.repeated_header.empty()) {
      summary_.repeated_header = kSingletonHeaders[i].repeated_reason;
    }
    singletons_seen_ |= bit;
  }
}

void RequestHeadFilter::start_kept_item(std::string* out) {
  emit(out, std::exchange(held_name_, {}));  // the header name goes out with the first entry
  if (kept_in_line_ > 0) emit(out, ",");
  ++kept_in_line_;
  any_kept_ = true;
}

void RequestHeadFilter::end_protocol_line(std::string* out) {
  if (item_ == Item::kPrefix) {  // an entry that began like "bearer." but was not one
    start_kept_item(out);
    emit(out, std::exchange(held_item_, {}));
  }
  space_held_ = false;
  if (kept_in_line_ == 0 && bearer_in_line_) {
    held_name_.clear();  // only bearer entries: the line goes entirely
    return;
  }
  emit(out, std::exchange(held_name_, {}));  // an empty list stays an empty header
  emit(out, line_cr_ ? "\r\n" : "\n");
}

void RequestHeadFilter::protocol_byte(char c, std::string* out) {
  if (c == '\n') {
    end_protocol_line(out);
    return;
  }
  if (line_cr_) return;  // lws skips what follows a '\r' on a line
  const bool ends_entry = c == ',' || c == '\r' || blank(c);
  if (c == '\r') line_cr_ = true;
  switch (item_) {
    case Item::kSeparator:
      if (ends_entry) return;
      if (c == kBearerPrefix.front()) {
        held_item_.assign(1, c);
        item_ = Item::kPrefix;
      } else {
        start_kept_item(out);
        emit(out, std::string_view(&c, 1));
        item_ = Item::kKept;
      }
      return;
    case Item::kPrefix:
      if (!ends_entry && held_item_ == kBearerPrefix) {
        // "bearer." and at least one more byte: a credential, never shown to lws.
        held_item_.clear();
        bearer_in_line_ = true;
        capturing_ = !summary_.bearer;
        if (capturing_) summary_.bearer = BearerExtraction{};
        // Two tokens: which one is the client's? A reader that took the other would admit
        // someone else (the upgrade is refused, as for two Authorization headers).
        if (!capturing_ && summary_.repeated_header.empty()) {
          summary_.repeated_header = "more than one bearer token in Sec-WebSocket-Protocol";
        }
        item_ = Item::kBearer;
        if (capturing_) summary_.bearer->token.push_back(c);
        return;
      }
      if (!ends_entry && held_item_.size() < kBearerPrefix.size() &&
          kBearerPrefix[held_item_.size()] == c) {
        held_item_.push_back(c);
        return;
      }
      start_kept_item(out);
      emit(out, std::exchange(held_item_, {}));
      item_ = Item::kKept;
      [[fallthrough]];
    case Item::kKept:
      if (c == ',' || c == '\r') {
        space_held_ = false;
        item_ = Item::kSeparator;
      } else if (blank(c)) {
        space_held_ = true;  // inside the entry if more of it follows, else dropped
      } else {
        if (std::exchange(space_held_, false)) emit(out, " ");
        emit(out, std::string_view(&c, 1));
      }
      return;
    case Item::kBearer:
      if (ends_entry) {
        item_ = c == ',' ? Item::kSeparator : Item::kSkip;
      } else if (capturing_) {
        summary_.bearer->token.push_back(c);
      }
      return;
    case Item::kSkip:
      if (c == ',') item_ = Item::kSeparator;
      return;
  }
}

std::optional<BearerExtraction> extract_bearer_subprotocol(char* data, std::size_t& len) {
  RequestHeadFilter filter(static_cast<std::size_t>(-1) / 2, static_cast<std::size_t>(-1) / 2);
  std::string out;
  std::size_t consumed = 0;
  const auto result = filter.feed(data, len, &out, consumed);
  if (result == RequestHeadFilter::Result::kMalformed ||
      result == RequestHeadFilter::Result::kTooLarge || !filter.summary().bearer ||
      !filter.protocol_lines_complete()) {
    return std::nullopt;
  }
  if (result == RequestHeadFilter::Result::kMore) return std::nullopt;  // not a whole head
  std::optional<BearerExtraction> found = filter.summary().bearer;
  out.append(data + consumed, len - consumed);
  if (out.size() > len) return std::nullopt;  // cannot happen (never grows); never write past it
  std::memcpy(data, out.data(), out.size());
  len = out.size();
  return found;
}

}  // namespace wsbridge
