// The shard's listening vhosts: one per [[listeners]] entry (every shard listens on each port,
// SO_REUSEPORT) and the admin one on shard 0, with what each listener says at start.
#include "shard/shard_parts.hpp"

#include <stdexcept>

#include "server/listen_share.hpp"

namespace wsbridge {

namespace {

// lws' own ping/hangup machinery is parked far away: pings and idle timeouts are per route and
// run by our timer, which counts any frame from the peer (not only PONGs) as a sign of life.
const lws_retry_bo_t kFarAwayValidity = {
    .retry_ms_table = nullptr,
    .retry_ms_table_count = 0,
    .conceal_count = 0,
    .secs_since_valid_ping = 65000,
    .secs_since_valid_hangup = 65535,
    .jitter_percent = 0,
};

// "TLS 1.2+, 3 certificates (SNI), client certificates required", for the start-up log.
std::string tls_summary(const tls::ServerCertificates& certs) {
  const tls::TlsSettings& s = certs.settings();
  std::string out = s.min_version == tls::MinVersion::kTls13 ? "1.3" : "1.2+";
  if (certs.certificate_count() > 1) {
    out += ", " + std::to_string(certs.certificate_count()) + " certificates (SNI)";
  }
  if (s.client_cert == tls::ClientCertMode::kRequired) out += ", client certificates required";
  if (s.client_cert == tls::ClientCertMode::kOptional) out += ", client certificates optional";
  return out;
}

}  // namespace

void Shard::open_listeners(const lws_http_mount& health_mount) {
  auto& protocols = lws_tables_->protocols;
  // What every listener shares: its address family, HTTP/1.1 only (replies are written with
  // their headers in one go), our protocols, lws' own pings parked, no lws extension
  // (permessage-deflate is wsbridge's own: compression/shared_deflate.hpp), and a bind failure
  // is fatal.
  auto open_vhost = [&](const std::string& address, std::uint16_t port, const char* name,
                        std::uint64_t options, const lws_http_mount* mounts,
                        const lws_protocol_vhost_options* headers = nullptr) {
    const bool ipv6 = address.find(':') != std::string::npos;
    lws_context_creation_info vinfo{};
    vinfo.port = port;
    vinfo.iface = address.c_str();
    vinfo.vhost_name = name;
    vinfo.protocols = protocols.data();
    vinfo.mounts = mounts;
    vinfo.headers = headers;
    vinfo.retry_and_idle_policy = &kFarAwayValidity;
    vinfo.alpn = "http/1.1";
    vinfo.options =
        options | LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND |
        (ipv6 ? (LWS_SERVER_OPTION_IPV6_V6ONLY_MODIFY | LWS_SERVER_OPTION_IPV6_V6ONLY_VALUE)
              : LWS_SERVER_OPTION_DISABLE_IPV6);
    lws_vhost* vhost = lws_create_vhost(context_, &vinfo);
    if (vhost == nullptr) {
      throw std::runtime_error("cannot listen on " + address + " port " + std::to_string(port) +
                               " for " + name + " (address in use, or not available on this host)");
    }
    return vhost;
  };
  auto url_host = [](const std::string& address) {
    return address.find(':') != std::string::npos ? "[" + address + "]" : address;
  };

  std::size_t index = 0;
  for (const auto& listener : config_->listeners) {
    const std::string& name =
        lws_tables_->vhost_names.emplace_back("listener-" + std::to_string(index++));
    // Every shard listens on the same port (SO_REUSEPORT, listen_share.hpp): the kernel spreads
    // connections among them. The first makes sure nobody else listens there.
    const bool share = shared_.count > 1;
    if (share && index_ == 0) {
      if (auto why = listen_share::probe_exclusive(listener.address, listener.port,
                                                   port_claims_.emplace_back());
          !why.empty()) {
        throw std::runtime_error("cannot listen on " + listener.address + " port " +
                                 std::to_string(listener.port) + " for " + name + " (" + why + ")");
      }
    }
    listen_share::Scope scope(share);
    // A TLS listener: lws makes the SSL_CTX every connection starts on and hands it to us
    // (LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS, inside lws_create_vhost), where our
    // ClientHello callback takes over choosing the certificate (server_certificates.hpp).
    tls::TlsSlot& slot = lws_tables_->tls_slots.emplace_back();
    slot.current = listener.tls;
    lws_tables_->own_answer_headers.push_back(own_answer_lines(listener));
    const lws_protocol_vhost_options* headers = nullptr;
    if (listener.tls && !listener.tls->settings().hsts.empty()) {
      lws_protocol_vhost_options& hsts = lws_tables_->hsts_headers.emplace_back();
      hsts.name = "Strict-Transport-Security:";
      hsts.value = listener.tls->settings().hsts.c_str();
      headers = &hsts;
    }
    configuring_tls_ = listener.tls ? &slot : nullptr;
    lws_vhost* vhost = open_vhost(
        listener.address, listener.port, name.c_str(),
        listener.tls ? LWS_SERVER_OPTION_CREATE_VHOST_SSL_CTX | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT
                     : 0,
        &health_mount, headers);
    configuring_tls_ = nullptr;
    listener_vhosts_.push_back(vhost);
    listener_of_vhost_[vhost] = &listener;
    if (index_ != 0) continue;
    if (listener.redirect_to_https) {
      WSB_LOG(kInfo) << "listening on http://" << url_host(listener.address) << ":" << listener.port
                     << " (redirecting everything to https, port " << *listener.redirect_to_https
                     << ")";
      continue;
    }
    WSB_LOG(kInfo) << "listening on " << (listener.tls ? "wss://" : "ws://")
                   << url_host(listener.address) << ":" << listener.port << " (compression "
                   << compression_name(listener.compression.mode)
                   << (listener.tls ? ", TLS " + tls_summary(*listener.tls) : std::string()) << ")";
    if (listener.tls) listener.tls->publish_expiry();
    bool per_connection = listener.compression.mode == CompressionMode::kPerConnection;
    for (const auto& route : config_->routes) {
      per_connection |= route.compression.mode == CompressionMode::kPerConnection;
    }
    if (per_connection) {
      WSB_LOG(kWarn) << "compression = \"per_connection\" is served as \"shared\" on "
                     << (listener.tls ? "wss://" : "ws://") << url_host(listener.address) << ":"
                     << listener.port
                     << " (libwebsockets 4.1.6's own permessage-deflate can abort the process)";
    }
  }
  if (index_ == 0) warn_of_config_risks();
  if (config_->admin && index_ == 0) {
    const AdminConfig& admin = *config_->admin;
    admin_vhost_ = open_vhost(admin.address, admin.port, "admin", 0, nullptr);
    WSB_LOG(kInfo) << "admin listener on http://" << url_host(admin.address) << ":" << admin.port
                   << "/metrics"
                   << (admin.token                     ? " (bearer token required)"
                       : admin.allow_api_without_token ? " (no token: the API is open to anyone "
                                                         "who can reach it)"
                                                       : " (no token: the API is disabled)");
  }
}

}  // namespace wsbridge
