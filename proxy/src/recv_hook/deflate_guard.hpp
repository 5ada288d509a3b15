// permessage-deflate as lws 4.1.6 implements it, with its failures turned into closes.
//
// lws inflates a compressed message in rx-buffer-sized pieces and hands the rest of it over later
// from its "RX EXT DRAINING" path (rops_handle_POLLIN_ws), which ignores what the RX state
// machine returns. An inflate error met there (a corrupt or hostile stream) left the connection
// open, unread and never timed out (issue #13.1's twin). The core registers this callback instead
// of lws' own: it calls lws' and, when inflating fails, fails the connection itself (RFC 7692
// 8.1 says so) with a kill that does not depend on that return value.
#pragma once

#include <libwebsockets.h>

#include <cstddef>

namespace wsbridge::deflate_guard {

// The lws_extension callback to register for "permessage-deflate" in place of
// lws_extension_callback_pm_deflate.
int callback(lws_context* context, const lws_extension* ext, lws* wsi,
             lws_extension_callback_reasons reason, void* user, void* in, std::size_t len);

}  // namespace wsbridge::deflate_guard
