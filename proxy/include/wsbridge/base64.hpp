// The one base64 of the tree (RFC 4648): the standard alphabet with '=' padding for payloads
// carried in JSON (mqtt payload_b64, the http adapter's bodies, the admin API), and the URL-safe
// alphabet without padding for JWTs and JWKs (RFC 7515 section 2). Table-driven, no OpenSSL: the
// test client and the load generator use it too.
//
// Decoding is strict in both alphabets, so that every byte string has exactly one accepted
// encoding (a signature cannot be altered without failing, a payload has one spelling): nullopt
// on any character outside the alphabet (whitespace included), on a length no byte string
// encodes to, and when the unused low bits of the last character are not zero.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace wsbridge {

// Standard alphabet ("+/"), padded to a multiple of four with '='.
std::string base64_encode(std::string_view bytes);
// Standard alphabet. Padding is optional, but when present it completes the last group of four
// (no '=' elsewhere, none after a full group).
std::optional<std::string> base64_decode(std::string_view text);

// URL-safe alphabet ("-_"), never padded.
std::string base64url_encode(std::string_view bytes);
// URL-safe alphabet; '=' is refused (JWS forbids padding).
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace wsbridge
