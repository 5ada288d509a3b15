// An HTTP/1.x request line (RFC 9112 3), read one way for every request wsbridge takes: the recv
// guard checks each head lws is about to parse with it, and the reverse proxy each head it relays.
// libwebsockets 4.1.6 alone answers the malformed ones unevenly (an encoded NUL closes without a
// word, CONNECT turns the connection raw and leaves it hanging, an unknown method or a target
// that is not a path gets an HTML "403 Forbidden"): each gets its status and reason here instead.
// Pure: no I/O, no allocation.
#pragma once

#include <cstddef>
#include <string_view>
#include <variant>

namespace wsbridge {

// What a caller holds a request line to beyond the grammar.
struct RequestLineRules {
  // Only the methods libwebsockets 4.1.6 parses (others: 501; lws would answer 403).
  bool known_methods_only = false;
  // 414 beyond. (The guard leaves the length to its bound on the whole head, which admits
  // 8 KiB tokens in a query.)
  std::size_t max_target_bytes = 8192;
};

struct RequestLine {
  std::string_view method;     // a token, as sent (methods are case-sensitive)
  std::string_view target;     // origin-form: "/path?query", as sent
  unsigned minor_version = 1;  // HTTP/1.<minor>: 0 or 1
};

struct RequestLineError {
  unsigned status = 400;    // 400, 414, 501 or 505
  std::string_view reason;  // a static text, for the answer's body and the log
};

// `line` without its line end. Refused: anything but "method SP target SP HTTP/1.x"; CONNECT
// (501: wsbridge is no forward proxy); a method outside the rules (501); a target longer than
// they allow (414), not origin-form, or carrying whitespace, a control character, '#', a
// malformed percent-encoding, an encoded NUL ("%00"), CR or LF ("%0D", "%0A": lws decodes them
// and ends its request line there); a version other than HTTP/1.0 or 1.1 (505 when well-formed).
std::variant<RequestLine, RequestLineError> parse_request_line(std::string_view line,
                                                               const RequestLineRules& rules);

// The reason phrase of the statuses above, of 431, and of 503 and 504 (upgrade_hold's).
std::string_view request_refusal_phrase(unsigned status);

// A whole refusal written below lws, before any answer of its: `status` and `phrase`, `line` and
// a newline as a text/plain body, "Connection: close" (the sender closes after it), and
// `extra_headers` (whole lines with their CRLF: the listener's HSTS, which lws adds to its own).
std::string closing_text_reply(unsigned status, std::string_view phrase, std::string_view line,
                               std::string_view extra_headers = {});

}  // namespace wsbridge
