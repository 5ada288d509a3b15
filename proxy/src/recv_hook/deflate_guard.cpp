#include "recv_hook/deflate_guard.hpp"

#include "session/session.hpp"
#include "shard/shard.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge::deflate_guard {

namespace {

// lws' private enum pmd_return: "nothing done here", the payload goes out as it is.
constexpr int kPmdrDidNothing = 1;

// A whole data message of no bytes, on its way out (`len` carries lws_write's flags, `in` starts
// with the payload's lws_tokens).
bool empty_message_out(void* in, std::size_t flags) {
  const std::size_t kind = flags & 0xf;
  return in != nullptr && (kind == LWS_WRITE_TEXT || kind == LWS_WRITE_BINARY) &&
         (flags & LWS_WRITE_NO_FIN) == 0 && static_cast<const lws_tokens*>(in)->len == 0;
}

}  // namespace

int callback(lws_context* context, const lws_extension* ext, lws* wsi,
             lws_extension_callback_reasons reason, void* user, void* in, std::size_t len) {
  // lws 4.1.6 asserts, aborting the whole process, when it deflates an empty message on a stream
  // that already carried one: zlib's second flush in a row adds nothing, not even the 4 bytes
  // lws trims off. Any client could do it with an empty message to an echo. Such a message goes
  // out uncompressed instead (RSV1 clear: RFC 7692 lets a sender leave any message so).
  if (reason == LWS_EXT_CB_PAYLOAD_TX && empty_message_out(in, len)) return kPmdrDidNothing;
  const int n = lws_extension_callback_pm_deflate(context, ext, wsi, reason, user, in, len);
  if (reason != LWS_EXT_CB_PAYLOAD_RX || n >= 0) return n;
  Session* s = Shard::session_of(wsi);
  if (s != nullptr && !s->close_sent) {
    WSB_LOG(kInfo) << "conn " << s->id << " sent data that does not inflate: dropping it";
    // RFC 7692 8.1: _Fail the WebSocket Connection_; the log line says 1007 (invalid data).
    s->close_info = CloseInfo{1007, "invalid compressed data", false};
    s->close_sent = true;
  }
  lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
  return n;
}

}  // namespace wsbridge::deflate_guard
