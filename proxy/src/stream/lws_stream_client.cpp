// LwsStreamClient: endpoints (URL, address, TLS settings), the handle adapters hold, and the lws
// protocol that drives every shard's streams (stream_link.cpp).
#include "stream/lws_stream_client.hpp"

#include <array>
#include <charconv>
#include <filesystem>
#include <stdexcept>

#include <openssl/ssl.h>
#include <unistd.h>

#include "handshake/upgrade_hold.hpp"
#include "recv_hook/mask_guard.hpp"
#include "server/this_shard.hpp"
#include "stream/stream_link.hpp"
#include "support/discard_unread.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge {

using stream::EndpointState;
using stream::ShardStreams;
using stream::StreamLink;

namespace {

// Shards are at most this many (ServerConfig caps `threads` far below it).
constexpr std::size_t kMaxShards = 256;
std::array<ShardStreams, kMaxShards> g_shards;

// tcp://host:port, ssl://host:port (mqtt://, mqtts:// alike); IPv6 literals in brackets.
void parse_stream_url(const std::string& url, EndpointState& out) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) {
    throw std::invalid_argument("stream URL \"" + url + "\" needs a scheme (tcp:// or ssl://)");
  }
  const std::string scheme = url.substr(0, scheme_end);
  if (scheme == "tcp" || scheme == "mqtt") {
    out.tls = false;
  } else if (scheme == "ssl" || scheme == "mqtts" || scheme == "tls") {
    out.tls = true;
  } else {
    throw std::invalid_argument("stream URL \"" + url + "\": scheme must be tcp:// or ssl://");
  }
  std::string rest = url.substr(scheme_end + 3);
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  std::string host;
  std::string port;
  if (rest.starts_with("[")) {
    const auto close = rest.find(']');
    if (close == std::string::npos)
      throw std::invalid_argument("stream URL \"" + url + "\": bad IPv6");
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
  } else {
    const auto colon = rest.rfind(':');
    host = rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (host.empty() || host.find_first_of("/?#@ ") != std::string::npos) {
    throw std::invalid_argument("stream URL \"" + url + "\" needs a host");
  }
  unsigned value = out.tls ? 8883 : 1883;
  if (!port.empty()) {
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      throw std::invalid_argument("stream URL \"" + url + "\": bad port \"" + port + "\"");
    }
  }
  out.host = host;
  out.port = value;
}

class StreamHandle final : public Stream {
 public:
  explicit StreamHandle(std::shared_ptr<StreamLink> link) : link_(std::move(link)) {}
  const std::shared_ptr<StreamLink>& link() const { return link_; }
  ~StreamHandle() override { link_->close_by_owner(); }
  bool write(std::string_view bytes) override { return link_->write(bytes); }
  std::size_t buffered() const override { return link_->buffered(); }
  void pause_reading(bool paused) override { link_->pause(paused); }
  void set_timer(std::chrono::milliseconds delay) override { link_->set_timer(delay); }
  void close() override { link_->close_by_owner(); }

 private:
  std::shared_ptr<StreamLink> link_;
};

class LwsStreamEndpoint final : public StreamEndpoint {
 public:
  explicit LwsStreamEndpoint(std::shared_ptr<const EndpointState> state)
      : state_(std::move(state)) {}
  const std::string& url() const override { return state_->url; }

  std::unique_ptr<Stream> connect(StreamHandler& handler) override {
    auto link = std::make_shared<StreamLink>();
    link->endpoint = state_;
    link->handler = &handler;
    ShardStreams& shard = g_shards[std::min<std::size_t>(this_shard::index(), kMaxShards - 1)];
    link->shard = &shard;
    auto handle = std::make_unique<StreamHandle>(link);
    if (shard.context == nullptr) {
      link->shard = nullptr;  // no loop runs here: nothing could report later
      link->ended = true;
      throw std::logic_error("Stream connect outside a service thread");
    }
    shard.links.insert(link);
    const std::string address = state_->address();
    if (address.empty()) {
      if (state_->resolver) state_->resolver->refresh();
      link->fail("cannot resolve " + state_->host);
      return handle;
    }
    if (state_->tls)
      link->tls = std::make_unique<TlsClientStream>(*state_->tls_context, state_->host);
    lws_client_connect_info i{};
    i.context = shard.context;
    i.vhost = shard.vhost;
    i.address = address.c_str();
    i.port = static_cast<int>(state_->port);
    i.host = state_->host.c_str();
    i.origin = state_->host.c_str();
    i.path = "/";
    i.method = "RAW";
    i.ssl_connection = 0;  // TLS is ours (stream_link.cpp)
    i.protocol = stream::kProtocol;
    i.local_protocol_name = stream::kProtocol;
    i.opaque_user_data = link.get();
    // No i.pwsi: lws writes through it when the connect fails, maybe after the link is gone.
    lws* wsi = lws_client_connect_via_info(&i);
    if (wsi == nullptr) {
      // lws may have reported the error on this stack already (the link then ended).
      link->fail("cannot connect to " + state_->url);
      return handle;
    }
    if (!link->ended) link->wsi = wsi;
    if (!link->ended) {
      lws_sul_schedule(
          shard.context, 0, &link->connect_timer.sul,
          [](lws_sorted_usec_list_t* sul) {
            StreamLink* l = stream::LinkTimer::of(sul);
            l->fail("connecting to " + l->endpoint->url + " timed out");
          },
          std::chrono::duration_cast<std::chrono::microseconds>(state_->connect_timeout).count());
    }
    return handle;
  }

 private:
  const std::shared_ptr<const EndpointState> state_;
};

int stream_protocol_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in,
                             std::size_t len) {
  return LwsStreamClient::lws_callback(wsi, static_cast<int>(reason), user, in, len);
}
const lws_protocols kStreamProtocols[] = {
    {stream::kProtocol, stream_protocol_callback, 0, 0, 0, nullptr, 0},
    {nullptr, nullptr, 0, 0, 0, nullptr, 0},
};

}  // namespace

LwsStreamClient& LwsStreamClient::instance() {
  static LwsStreamClient client;
  return client;
}

std::shared_ptr<StreamEndpoint> LwsStreamClient::endpoint(const StreamOptions& options) {
  auto state = std::make_shared<EndpointState>();
  state->url = options.url;
  state->connect_timeout = options.connect_timeout;
  parse_stream_url(options.url, *state);
  for (const std::string* file : {&options.ca_file, &options.cert_file, &options.key_file}) {
    if (!file->empty() && !std::filesystem::is_regular_file(*file)) {
      throw std::invalid_argument("file " + *file + " does not exist");
    }
  }
  if (state->tls) {
    try {
      state->tls_context = std::make_unique<TlsClientContext>(
          options.ca_file, options.cert_file, options.key_file, options.verify_server);
    } catch (const std::runtime_error& e) {
      throw std::invalid_argument(e.what());
    }
  }
  if (http_pool::is_numeric_address(state->host)) {
    state->first_address = state->host;
  } else {
    std::string error;
    std::string address = http_pool::resolve_host(state->host, error);
    if (address.empty()) {
      WSB_LOG(kWarn) << "cannot resolve " << state->host << " (" << error
                     << "): streams to it fail until it resolves";
    }
    state->resolver = std::make_unique<http_pool::Resolver>(state->host, address);
  }
  return std::make_shared<LwsStreamEndpoint>(std::move(state));
}

std::unique_ptr<Stream> LwsStreamClient::adopt(int fd, SSL* ssl, StreamHandler& handler,
                                               const std::string& name) {
  ShardStreams& shard = g_shards[std::min<std::size_t>(this_shard::index(), kMaxShards - 1)];
  if (shard.context == nullptr) {
    if (ssl != nullptr) SSL_free(ssl);
    ::close(fd);
    return nullptr;
  }
  auto state = std::make_shared<EndpointState>();
  state->url = name;
  auto link = std::make_shared<StreamLink>();
  link->endpoint = std::move(state);
  link->handler = &handler;
  link->shard = &shard;
  link->connected = true;
  link->ready = true;
  link->flush_seconds = stream::kClientFlushOnCloseSeconds;
  if (ssl != nullptr) link->tls = TlsClientStream::adopt_established(ssl);
  mask_guard::forget(fd);  // (as at RAW_CONNECTED: a stream's socket is not the guard's)
  lws_adopt_desc_t desc{};
  desc.vh = shard.vhost;
  desc.type = LWS_ADOPT_SOCKET;
  desc.fd.sockfd = fd;
  desc.vh_prot_name = stream::kProtocol;
  desc.opaque = link.get();
  lws* wsi = lws_adopt_descriptor_vhost_via_info(&desc);
  if (wsi == nullptr) {
    link->ended = true;  // (lws closed the socket)
    return nullptr;
  }
  link->wsi = wsi;
  shard.links.insert(link);
  auto handle = std::make_unique<StreamHandle>(link);
  if (link->tls) {
    // Plaintext OpenSSL decrypted beyond the head lws read waits in the session, and no POLLIN
    // will come for it: read it from the next loop turn (never inside this call).
    lws_sul_schedule(
        shard.context, 0, &link->connect_timer.sul,
        [](lws_sorted_usec_list_t* sul) { stream::LinkTimer::of(sul)->on_rx(nullptr, 0); }, 0);
  }
  return handle;
}

bool LwsStreamClient::releasable_plain(Stream& stream) const {
  auto* handle = dynamic_cast<StreamHandle*>(&stream);
  if (handle == nullptr) return false;
  const StreamLink& link = *handle->link();
  return !link.ended && link.wsi != nullptr && !link.tls && link.ready && link.buffered() == 0 &&
         lws_partial_buffered(link.wsi) == 0;
}

std::optional<LwsStreamClient::Released> LwsStreamClient::release(Stream& stream, bool& busy) {
  busy = false;
  auto* handle = dynamic_cast<StreamHandle*>(&stream);
  if (handle == nullptr) return std::nullopt;
  const std::shared_ptr<StreamLink>& link = handle->link();
  if (link->ended || link->wsi == nullptr) return std::nullopt;
  if (link->buffered() > 0 || lws_partial_buffered(link->wsi) != 0) {
    busy = true;
    return std::nullopt;
  }
  const auto kept = upgrade_hold::detach_socket(lws_get_socket_fd(link->wsi));
  if (!kept) return std::nullopt;
  Released released;
  released.fd = *kept;
  if (link->tls) released.ssl = link->tls->release();
  link->tls.reset();
  link->fail("handed back", true);  // lws closes the placeholder
  return released;
}

void LwsStreamClient::attach(lws_context* context, unsigned shard_index) {
  if (shard_index >= kMaxShards) throw std::runtime_error("too many shards for the stream client");
  ShardStreams& shard = g_shards[shard_index];
  lws_context_creation_info info{};
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = kStreamProtocols;
  info.vhost_name = "stream-client";
  shard.vhost = lws_create_vhost(context, &info);
  if (shard.vhost == nullptr) throw std::runtime_error("cannot set up the stream client");
  shard.context = context;
}

void LwsStreamClient::detach(unsigned shard_index) {
  if (shard_index >= kMaxShards) return;
  ShardStreams& shard = g_shards[shard_index];
  auto links = std::move(shard.links);
  shard.links.clear();
  for (const auto& link : links) {
    link->handler = nullptr;
    if (link->wsi != nullptr) lws_set_opaque_user_data(link->wsi, nullptr);
    link->wsi = nullptr;
    link->ended = true;
    lws_sul_cancel(&link->timer.sul);
    lws_sul_cancel(&link->connect_timer.sul);
  }
  shard.context = nullptr;
  shard.vhost = nullptr;
}

int LwsStreamClient::lws_callback(lws* wsi, int reason_int, void* user, void* in, std::size_t len) {
  (void)user;
  const auto reason = static_cast<lws_callback_reasons>(reason_int);
  // (The DISCONNECT a relay wrote last must reach the broker, not be lost to an RST.)
  if (reason == LWS_CALLBACK_RAW_CLOSE) discard_unread(lws_get_socket_fd(wsi));
  auto* link = static_cast<StreamLink*>(lws_get_opaque_user_data(wsi));
  if (link == nullptr) {
    // A stream let go (closed, failed, or its shard detached): nothing more to do with it.
    return reason == LWS_CALLBACK_RAW_RX || reason == LWS_CALLBACK_RAW_WRITEABLE ? -1 : 0;
  }
  if (link->wsi == nullptr && !link->ended) link->wsi = wsi;
  try {
    switch (reason) {
      case LWS_CALLBACK_RAW_CONNECTED:
        // (Before lws reads it: the guard follows only what this shard accepted, and a watch of
        // a socket that had this number would read the server's bytes as a client's.)
        mask_guard::forget(lws_get_socket_fd(wsi));
        link->on_connected_socket();
        return 0;
      case LWS_CALLBACK_RAW_RX:
        link->on_rx(static_cast<const char*>(in), len);
        return 0;
      case LWS_CALLBACK_RAW_WRITEABLE:
        link->on_writeable();
        return 0;
      case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        lws_set_opaque_user_data(wsi, nullptr);
        const std::string why = in != nullptr ? static_cast<const char*>(in) : "connection failed";
        link->wsi = nullptr;
        link->fail("cannot connect to " + link->endpoint->url + ": " + why);
        return 0;
      }
      case LWS_CALLBACK_RAW_CLOSE:
        lws_set_opaque_user_data(wsi, nullptr);
        link->on_socket_closed(link->connected ? "connection closed by " + link->endpoint->url
                                               : "cannot connect to " + link->endpoint->url);
        return 0;
      default:
        return 0;
    }
  } catch (const std::exception& e) {
    WSB_LOG(kError) << "stream error: " << e.what();
    return -1;
  }
}

}  // namespace wsbridge
