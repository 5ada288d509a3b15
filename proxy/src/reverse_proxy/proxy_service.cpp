// The proxy's connections and backend pools on one shard, and their deferred destruction.
#include "reverse_proxy/proxy_service.hpp"

#include <libwebsockets.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include "reverse_proxy/client_connection.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge::reverse_proxy {

std::string_view request_path_of(std::string_view head, std::string_view lws_path) {
  return head.empty() ? lws_path : request_path_of(head);
}

std::string_view request_path_of(std::string_view head) {
  const auto line_end = head.find("\r\n");
  const std::string_view line = head.substr(0, line_end);
  const auto first = line.find(' ');
  if (first == std::string_view::npos) return {};
  const auto second = line.find(' ', first + 1);
  if (second == std::string_view::npos) return {};
  const std::string_view target = line.substr(first + 1, second - first - 1);
  return target.substr(0, target.find('?'));
}

struct ProxyService::SweepTimer {
  lws_sorted_usec_list_t sul{};  // first: the callback casts back
  ProxyService* service = nullptr;
  bool scheduled = false;
};

ProxyService::ProxyService(ProxyHost& host) : host_(host) {}

ProxyService::~ProxyService() {
  if (sweep_timer_ && sweep_timer_->scheduled) lws_sul_cancel(&sweep_timer_->sul);
  retired_.clear();
  connections_.clear();  // before the pools their backend connections come from
  pools_.clear();
}

void ProxyService::take_over(Takeover takeover) {
  auto connection = std::make_unique<ClientConnection>(*this, std::move(takeover));
  ClientConnection* raw = connection.get();
  connections_.emplace(raw, std::move(connection));
  if (!raw->start()) {
    WSB_LOG(kWarn) << "proxy: cannot take a connection over from lws: closed";
    retire(raw);
  }
}

std::size_t ProxyService::exchanges_in_flight() const {
  std::size_t n = 0;
  for (const auto& [raw, owned] : connections_) n += raw->relaying() ? 1 : 0;
  return n;
}

void ProxyService::shutdown() {
  std::vector<ClientConnection*> all;
  all.reserve(connections_.size());
  for (const auto& [raw, owned] : connections_) all.push_back(raw);
  for (ClientConnection* c : all) c->abort();
  retired_.clear();
  connections_.clear();
  pools_.clear();
}

BackendPool& ProxyService::pool_for(const ProxyRoute& route) {
  const std::size_t shards = std::max<std::size_t>(host_.current_config()->effective_threads(), 1);
  const std::size_t share = std::max<std::size_t>((route.max_connections + shards - 1) / shards, 1);
  auto& pool = pools_[route.pool_key];
  if (!pool) {
    pool = std::make_unique<BackendPool>(route.endpoint, share, route.keepalive_timeout);
  } else {
    pool->update(route.endpoint, share, route.keepalive_timeout);
  }
  return *pool;
}

void ProxyService::retire(ClientConnection* connection) {
  auto it = connections_.find(connection);
  if (it == connections_.end()) return;
  retired_.push_back(std::move(it->second));
  connections_.erase(it);
  if (!sweep_timer_) {
    sweep_timer_ = std::make_unique<SweepTimer>();
    sweep_timer_->service = this;
  }
  if (!sweep_timer_->scheduled && host_.loop() != nullptr) {
    sweep_timer_->scheduled = true;
    lws_sul_schedule(host_.loop(), 0, &sweep_timer_->sul, &ProxyService::sweep, 0);
  }
}

void ProxyService::sweep(::lws_sorted_usec_list* sul) {
  auto* timer = reinterpret_cast<SweepTimer*>(sul);
  timer->scheduled = false;
  // (Destroying one may retire none: each was already taken out of connections_.)
  auto retired = std::move(timer->service->retired_);
  timer->service->retired_.clear();
  retired.clear();
}

}  // namespace wsbridge::reverse_proxy
