// The reverse proxy on one shard (docs/PROXY.md). lws 4.1.6 has no reverse proxy of its own
// (Debian builds it without LWS_WITH_HTTP_PROXY), cannot list a request's unknown headers, and
// delimits request bodies its own way; so for a request the proxy relays, the shard takes the
// browser's socket out of lws' hands (as it does for a held upgrade, upgrade_hold.hpp), with
// the head the recv hook saw (mask_guard::take_head_bytes) and, on TLS, the session, and this
// service drives it from then on as a byte stream (LwsStreamClient::adopt): it parses every
// later request on that connection itself, relays bodies in pieces both ways, and gives the
// connection back to lws when a request comes that is not the proxy's.
#pragma once

#include <lws_config.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/server_config.hpp"
#include "reverse_proxy/backend_pool.hpp"
#include "server/connection_slots.hpp"

struct lws_vhost;
struct lws_context;
struct ssl_st;
struct lws_sorted_usec_list;

namespace wsbridge::reverse_proxy {

class ClientConnection;

// The path of `head`'s request line (its target up to '?'), as sent: the shard decides on it
// whether the proxy takes a request, exactly as the proxy will (a decoded or normalized path
// could differ, and pass a connection back and forth). Empty when the line is malformed.
std::string_view request_path_of(std::string_view head);
// The same, or `lws_path` (lws' reading of it) when the head is not known as it came (empty: the
// recv guard lost track): the proxy then closes the connection of a request that is its own.
std::string_view request_path_of(std::string_view head, std::string_view lws_path);

// What the shard gives the proxy.
class ProxyHost {
 public:
  virtual const std::shared_ptr<const ServerConfig>& current_config() const = 0;
  virtual bool refusing_new_connections() const = 0;
  // A place among max_connections / max_connections_per_ip for a relayed WebSocket; nullopt
  // with the refusal's reason when there is none.
  virtual std::optional<ConnectionSlots::Slot> take_tunnel_slot(const std::string& ip,
                                                                std::string& why) = 0;
  // lws is to serve the connection again from `bytes` (a request head that is not the
  // proxy's, and whatever followed it): socket `fd`, `ssl` or null, on listener `listener`.
  // From the next loop turn (adopting re-enters lws).
  virtual void hand_back(int fd, ssl_st* ssl, std::string bytes, std::size_t listener) = 0;
  virtual lws_context* loop() const = 0;

 protected:
  ~ProxyHost() = default;
};

// A browser connection the shard took from lws for the proxy.
struct Takeover {
  int fd = -1;
  ssl_st* ssl = nullptr;  // the TLS session (its reference), or null
  std::string head;       // the request head lws read, as it came
  // An upgrade's bearer.<token> subprotocol entry, which the recv guard took out of the head:
  // a credential for [proxy.auth] (the backend gets the head without it).
  std::optional<std::string> bearer;
  std::size_t listener = 0;  // the listener's index in the configuration
  std::string peer;          // the TCP peer's address
  // Its place under max_http_connections_per_ip, kept while it carries HTTP (given up when it
  // becomes a relayed WebSocket, which counts under max_connections_per_ip instead).
  std::optional<ConnectionSlots::Slot> http_slot;
};

class ProxyService {
 public:
  explicit ProxyService(ProxyHost& host);
  ~ProxyService();
  ProxyService(const ProxyService&) = delete;
  ProxyService& operator=(const ProxyService&) = delete;

  // Service thread. Drives the connection from now on (or closes it when it cannot).
  void take_over(Takeover takeover);
  // Every connection closed at once (the shard is stopping).
  void shutdown();

  ProxyHost& host() { return host_; }
  // The pool of this shard for `route`'s backend (shared by prefixes with the same backend).
  BackendPool& pool_for(const ProxyRoute& route);
  // `connection` is finished: destroyed from the next loop turn (never inside its own call).
  void retire(ClientConnection* connection);
  std::size_t open_connections() const { return connections_.size(); }
  // Requests relayed now (waiting for a backend connection or under way): a shutdown lets them
  // finish, within its drain time.
  std::size_t exchanges_in_flight() const;

 private:
  static void sweep(::lws_sorted_usec_list* sul);

  ProxyHost& host_;
  std::unordered_map<ClientConnection*, std::unique_ptr<ClientConnection>> connections_;
  std::vector<std::unique_ptr<ClientConnection>> retired_;
  std::unordered_map<std::string, std::unique_ptr<BackendPool>> pools_;
  struct SweepTimer;
  std::unique_ptr<SweepTimer> sweep_timer_;
};

}  // namespace wsbridge::reverse_proxy
