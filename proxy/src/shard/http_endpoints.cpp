// HTTP on the listeners: /healthz, and on the admin listener /metrics and the REST API (with
// its guard; the sessions it serves are every shard's, in ShardShared::sessions).
#include "shard/shard_parts.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <nlohmann/json.hpp>

#include "admin/admin_guard.hpp"
#include "http/http_reply.hpp"
#include "version.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge {

bool Shard::admin_authorized(lws* wsi) const {
  const auto& token = config_->admin->token;
  if (!token) return true;
  const std::string presented = header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
  // The scheme's name in any case (RFC 9110 11.1), as on the public listeners.
  return presented.size() == 7 + token->size() &&
         text::iequals(std::string_view(presented).substr(0, 7), "Bearer ") &&
         CRYPTO_memcmp(presented.data() + 7, token->data(), token->size()) == 0;
}

int Shard::serve_admin_api(lws* wsi, const AdminRequest& request) {
  AdminReply reply;
  if (request.too_large) {
    reply =
        AdminReply{413, "{\"error\":\"too_large\",\"message\":\"the body is over 1 MiB\"}\n", {}};
  } else {
    const AdminContext context{shared_.sessions, shared_.instance_id, shared_.cluster.get(),
                               [this] {
                                 for (Shard* shard : shared_.shards) shard->request_drain(false);
                               }};
    reply = handle_admin_api(request.method, request.target, request.body, context);
  }
  if (reply.later) {
    // (A cluster-wide list: the answer comes from the broker's thread, through a channel that
    // this connection writes when it is complete.)
    WSB_LOG(kInfo) << "admin API " << request.method << " " << request.target
                   << ": gathering the other instances' answers";
    auto channel = attach_carrier(wsi, false, {});
    reply.later([channel](AdminReply answer) {
      channel->answer(answer.status, "application/json", answer.body);
    });
    return 0;
  }
  WSB_LOG(kInfo) << "admin API " << request.method << " " << request.target << ": " << reply.status;
  write_http_reply(wsi, reply.status, "application/json", reply.body,
                   {{"Cache-Control:", "no-store"}});
  return complete_http_transaction(wsi);
}

int Shard::serve_http(lws* wsi, std::string_view uri) {
  const bool admin = admin_vhost_ != nullptr && lws_get_vhost(wsi) == admin_vhost_;
  if (admin) {
    AdminRequestHead head;
    head.api = uri.starts_with(kAdminApiPrefix);
    // (The length as lws reads it: "00" or "0, 0" is no body, where a string test saw one.)
    head.has_body = content_length(wsi).value_or(0) > 0 ||
                    lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
    head.host = header_if_present(wsi, WSI_TOKEN_HOST);
    head.origin = header_if_present(wsi, WSI_TOKEN_ORIGIN);
    head.sec_fetch_site = custom_header(wsi, "sec-fetch-site:");
    head.content_type = header_if_present(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE);
    if (auto refusal = check_admin_request(*config_->admin, head)) {
      WSB_LOG(kInfo) << "admin request to " << uri << " refused: " << refusal->status << " "
                     << refusal->message;
      const nlohmann::json body = {{"error", refusal->code}, {"message", refusal->message}};
      write_http_reply(wsi, refusal->status, "application/json", body.dump() + "\n");
      return complete_http_transaction(wsi);
    }
  }
  if (admin && uri.starts_with(kAdminApiPrefix)) {
    if (!admin_authorized(wsi)) {
      write_http_reply(wsi, 401, "application/json",
                       "{\"error\":\"unauthorized\",\"message\":\"a valid admin bearer token is "
                       "required\"}\n",
                       {{"WWW-Authenticate:", "Bearer realm=\"wsbridge-admin\""}});
      return complete_http_transaction(wsi);
    }
    char* uri_ptr = nullptr;
    int uri_len = 0;
    const int method = lws_http_get_uri_and_method(wsi, &uri_ptr, &uri_len);
    AdminRequest request;
    request.method = method >= 0 && method < static_cast<int>(std::size(kLwsMethodNames))
                         ? kLwsMethodNames[method]
                         : "UNKNOWN";
    request.target = std::string(uri);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) > 0) {
      std::string query;
      for (const std::string& arg : query_arguments(wsi)) {
        query += (query.empty() ? "" : "&") + arg;
      }
      request.target += "?" + query;
    }
    const unsigned long long length = content_length(wsi).value_or(0);
    if (length > kMaxAdminBodyBytes) {
      // Refused before it comes (and before a "100 Continue" asks for it), with "Connection:
      // close"; lws then reads and drops what the client already sends, as for a fallback POST
      // over its limit. (Closing at once reset the connection under a client still sending,
      // which then lost the answer: CI, HttpAdapterTest.PushApiDeliversListsAndCloses.)
      write_http_reply(wsi, 413, "application/json",
                       "{\"error\":\"too_large\",\"message\":\"the body is over 1 MiB\"}\n",
                       {{"Connection:", "close"}});
      return complete_http_transaction(wsi);
    }
    if (length > 0) {
      // The body comes in LWS_CALLBACK_HTTP_BODY; the reply goes out at its completion.
      ConnectionData* data = ConnectionData::of(wsi);
      if (data == nullptr) return -1;  // not accepted by this shard (never happens)
      data->admin_request = std::make_unique<AdminRequest>(std::move(request));
      continue_if_expected(wsi);
      return 0;
    }
    return serve_admin_api(wsi, request);
  }
  // HEAD too: health checkers and scrapers use it (write_http_reply leaves the body out).
  const bool get_or_head = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0 ||
                           lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
  if (admin && uri == "/metrics") {
    if (!admin_authorized(wsi)) {
      write_http_reply(wsi, 401, "text/plain", "a valid admin bearer token is required\n",
                       {{"WWW-Authenticate:", "Bearer realm=\"wsbridge-admin\""}});
    } else if (!get_or_head) {
      write_http_reply(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, "text/plain", "use GET or HEAD\n",
                       {{"Allow:", "GET, HEAD"}});
    } else {
      write_http_reply(wsi, HTTP_STATUS_OK, "text/plain; version=0.0.4",
                       metrics::Registry::global().render());
    }
    return complete_http_transaction(wsi);
  }
  if (uri == kHealthPath) {
    if (!get_or_head) {
      write_http_reply(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, "text/plain", "use GET or HEAD\n",
                       {{"Allow:", "GET, HEAD"}});
    } else {
      // In milliseconds: a double's shortest form ran to 17 digits ("0.7343425830000001"), so
      // two answers a moment apart differed in length by up to 8 bytes.
      const double uptime =
          std::round(std::chrono::duration<double>(SteadyClock::now() - started_at_).count() *
                     1000.0) /
          1000.0;
      // Unhealthy from the moment a drain begins: the balancer's check takes this instance out
      // before it closes its clients (docs/DEPLOY.md).
      const bool leaving = refusing_new();
      const nlohmann::json body = {{"status", stopping_ ? "stopping"
                                              : leaving ? "draining"
                                                        : "ok"},
                                   {"instance", shared_.instance_id},
                                   {"version", kVersion},
                                   {"uptime_seconds", uptime},
                                   {"connections", shared_.sessions.size()}};
      write_http_reply(wsi, leaving ? 503 : HTTP_STATUS_OK, "application/json", body.dump() + "\n",
                       {{"Cache-Control:", "no-store"}});
    }
  } else {
    write_http_reply(wsi, HTTP_STATUS_NOT_FOUND, "text/plain", "not found\n");
  }
  return complete_http_transaction(wsi);
}

}  // namespace wsbridge
