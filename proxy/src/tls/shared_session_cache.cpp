// The process's TLS 1.2 session cache (shared_session_cache.hpp), behind OpenSSL's external
// cache callbacks on every vhost context.
#include "tls/shared_session_cache.hpp"

#include <openssl/ssl.h>

#include <ctime>
#include <iterator>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace wsbridge::tls {

namespace {

class SessionCache {
 public:
  SessionCache() = default;
  SessionCache(const SessionCache&) = delete;
  SessionCache& operator=(const SessionCache&) = delete;
  // (A function's static: destroyed at exit before OpenSSL's own cleanup, registered earlier.)
  ~SessionCache() {
    for (auto& [id, entry] : by_id_) SSL_SESSION_free(entry.session);
  }

  // Keeps `session`, taking over the reference the caller holds.
  void add(SSL_SESSION* session) {
    std::string id = id_of(session);
    std::lock_guard lock(mutex_);
    drop_expired(std::time(nullptr));
    if (const auto it = by_id_.find(id); it != by_id_.end()) erase(it);
    while (by_id_.size() >= kMaxSharedSessions) erase(by_id_.find(order_.front()));
    order_.push_back(id);
    by_id_.emplace(std::move(id), Entry{session, std::prev(order_.end())});
  }

  // A new reference to the session with this id, or null. (Taken under the lock: another thread
  // may remove and free the cache's own reference right after.)
  SSL_SESSION* find(std::string_view id) {
    std::lock_guard lock(mutex_);
    const auto it = by_id_.find(std::string(id));
    if (it == by_id_.end()) return nullptr;
    SSL_SESSION_up_ref(it->second.session);
    return it->second.session;
  }

  void remove(SSL_SESSION* session) {
    std::lock_guard lock(mutex_);
    const auto it = by_id_.find(id_of(session));
    if (it != by_id_.end() && it->second.session == session) erase(it);
  }

  std::size_t size() {
    std::lock_guard lock(mutex_);
    return by_id_.size();
  }

 private:
  struct Entry {
    SSL_SESSION* session = nullptr;
    std::list<std::string>::iterator place;  // in order_
  };
  using Map = std::unordered_map<std::string, Entry>;

  static std::string id_of(const SSL_SESSION* session) {
    unsigned int length = 0;
    const unsigned char* id = SSL_SESSION_get_id(session, &length);
    return {reinterpret_cast<const char*>(id), length};
  }

  void erase(Map::iterator it) {
    SSL_SESSION_free(it->second.session);
    order_.erase(it->second.place);
    by_id_.erase(it);
  }

  // The oldest first, while they are past their timeout (OpenSSL would not resume them): the
  // cache does not fill with sessions nobody can use.
  void drop_expired(std::time_t now) {
    while (!order_.empty()) {
      const auto it = by_id_.find(order_.front());
      const SSL_SESSION* s = it->second.session;
      if (SSL_SESSION_get_time(s) + SSL_SESSION_get_timeout(s) >= now) break;
      erase(it);
    }
  }

  std::mutex mutex_;
  Map by_id_;
  std::list<std::string> order_;  // ids, oldest first
};

SessionCache& cache() {
  static SessionCache instance;
  return instance;
}

// A server session OpenSSL would have cached (a full TLS 1.2 handshake): 1 when it is kept.
int on_new_session(SSL* /*ssl*/, SSL_SESSION* session) {
  unsigned int length = 0;
  SSL_SESSION_get_id(session, &length);
  // TLS 1.3 resumes by ticket, which carries the session; 0: OpenSSL frees its reference.
  if (SSL_SESSION_get_protocol_version(session) >= TLS1_3_VERSION || length == 0) return 0;
  cache().add(session);
  return 1;
}

SSL_SESSION* on_get_session(SSL* /*ssl*/, const unsigned char* id, int length, int* copy) {
  *copy = 0;  // (find() took the reference OpenSSL is handed)
  return cache().find(
      std::string_view(reinterpret_cast<const char*>(id), static_cast<std::size_t>(length)));
}

// Timed out when offered, or the connection that used it failed: not to be resumed.
void on_remove_session(SSL_CTX* /*ctx*/, SSL_SESSION* session) {
  cache().remove(session);
}

}  // namespace

void use_shared_session_cache(SSL_CTX* ctx) {
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
  SSL_CTX_sess_set_new_cb(ctx, on_new_session);
  SSL_CTX_sess_set_get_cb(ctx, on_get_session);
  SSL_CTX_sess_set_remove_cb(ctx, on_remove_session);
}

std::size_t shared_session_count() {
  return cache().size();
}

}  // namespace wsbridge::tls
