// Which path a relayed request is for. Prefixes and routes are matched on the path's decoded,
// merged form, because that is the path most backends serve: "/%61dmin/x", "//admin/x" and
// "/admin%2Fx" are "/admin/x" to them, so they must be "/admin/x" to the prefix that guards
// "/admin" too, or a request could pass a public prefix's checks and reach a guarded one's pages.
// The backend still gets the target as the client sent it (strip_prefix cuts the sent bytes that
// spell the prefix). Pure: unit-tested.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace wsbridge::reverse_proxy {

// The path every %XX decoded ("%2F" too), each run of '/' merged into one, each segment's
// ";parameters" left out (a literal ';' to the segment's end: Java servers drop them), and each
// segment's trailing dots and spaces left out unless it has nothing else (Windows servers drop
// them: "/admin./x" is IIS's "/admin/x").
std::string matching_path(std::string_view raw_path);

// Where, in `raw_path`, the bytes that spell `prefix` (a [[proxy]] path other than "/") end when
// the path is under it (its matching path equals the prefix or continues with '/'), with what
// the matching path leaves out of the prefix's last segment; npos when it is not under it.
std::size_t raw_prefix_end(std::string_view raw_path, std::string_view prefix);

// Why a relayed request's path is refused (400), or nullopt: a backslash, literal or encoded
// (Windows backends take it for '/'); an encoded NUL; an overlong UTF-8 form; a character that
// Unicode normalisation turns into '.', '/', '\', ';' or '%'; or a segment of the matching path
// made of dots and spaces only ("..", "/..;/" too, which Java servers resolve as "..", and
// "...", which Windows does) or of spaces only.
std::optional<std::string> unsafe_path(std::string_view raw_path);

}  // namespace wsbridge::reverse_proxy
