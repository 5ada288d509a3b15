#include "recv_hook/deflate_guard.hpp"

#include "session/session.hpp"
#include "shard/shard.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge::deflate_guard {

int callback(lws_context* context, const lws_extension* ext, lws* wsi,
             lws_extension_callback_reasons reason, void* user, void* in, std::size_t len) {
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
