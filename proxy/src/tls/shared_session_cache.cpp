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

// Sessions kept as their DER encoding (i2d_SSL_SESSION): the client's certificate without the
// rest of the chain it sent. A live SSL_SESSION keeps every certificate the client sent: a
// device certificate followed by 220 made-up ones held about 1 MB per cached session, and the
// bound was a count.
class SessionCache {
 public:
  // Keeps `session` (copied: the caller keeps its reference).
  void add(const SSL_SESSION* session) {
    const int size = i2d_SSL_SESSION(const_cast<SSL_SESSION*>(session), nullptr);
    if (size <= 0 || static_cast<std::size_t>(size) > kMaxSharedSessionBytes / 64) return;
    std::string der(static_cast<std::size_t>(size), '\0');
    auto* out = reinterpret_cast<unsigned char*>(der.data());
    i2d_SSL_SESSION(const_cast<SSL_SESSION*>(session), &out);
    const std::time_t expires = SSL_SESSION_get_time(session) + SSL_SESSION_get_timeout(session);
    std::string id = id_of(session);
    std::lock_guard lock(mutex_);
    drop_expired(std::time(nullptr));
    if (const auto it = by_id_.find(id); it != by_id_.end()) erase(it);
    while (!order_.empty() &&
           (by_id_.size() >= kMaxSharedSessions || bytes_ + der.size() > kMaxSharedSessionBytes)) {
      erase(by_id_.find(order_.front()));
    }
    bytes_ += der.size();
    order_.push_back(id);
    by_id_.emplace(std::move(id), Entry{std::move(der), expires, std::prev(order_.end())});
  }

  // A new session decoded from the one kept under this id, or null.
  SSL_SESSION* find(std::string_view id) {
    std::string der;
    {
      std::lock_guard lock(mutex_);
      const auto it = by_id_.find(std::string(id));
      if (it == by_id_.end()) return nullptr;
      der = it->second.der;
    }
    const auto* in = reinterpret_cast<const unsigned char*>(der.data());
    return d2i_SSL_SESSION(nullptr, &in, static_cast<long>(der.size()));
  }

  void remove(const SSL_SESSION* session) {
    std::lock_guard lock(mutex_);
    const auto it = by_id_.find(id_of(session));
    if (it != by_id_.end()) erase(it);
  }

  std::size_t size() {
    std::lock_guard lock(mutex_);
    return by_id_.size();
  }
  std::size_t bytes() {
    std::lock_guard lock(mutex_);
    return bytes_;
  }

 private:
  struct Entry {
    std::string der;
    std::time_t expires = 0;
    std::list<std::string>::iterator place;  // in order_
  };
  using Map = std::unordered_map<std::string, Entry>;

  static std::string id_of(const SSL_SESSION* session) {
    unsigned int length = 0;
    const unsigned char* id = SSL_SESSION_get_id(session, &length);
    return {reinterpret_cast<const char*>(id), length};
  }

  void erase(Map::iterator it) {
    bytes_ -= it->second.der.size();
    order_.erase(it->second.place);
    by_id_.erase(it);
  }

  // The oldest first, while they are past their timeout (OpenSSL would not resume them): the
  // cache does not fill with sessions nobody can use.
  void drop_expired(std::time_t now) {
    while (!order_.empty()) {
      const auto it = by_id_.find(order_.front());
      if (it->second.expires >= now) break;
      erase(it);
    }
  }

  std::mutex mutex_;
  Map by_id_;
  std::list<std::string> order_;  // ids, oldest first
  std::size_t bytes_ = 0;         // the encodings' sizes together
};

SessionCache& cache() {
  static SessionCache instance;
  return instance;
}

// A server session OpenSSL would have cached (a full TLS 1.2 handshake). Always 0: the cache
// keeps a copy, and OpenSSL frees the reference it gave.
int on_new_session(SSL* /*ssl*/, SSL_SESSION* session) {
  unsigned int length = 0;
  SSL_SESSION_get_id(session, &length);
  // TLS 1.3 resumes by ticket, which carries the session.
  if (SSL_SESSION_get_protocol_version(session) < TLS1_3_VERSION && length > 0) {
    cache().add(session);
  }
  return 0;
}

SSL_SESSION* on_get_session(SSL* /*ssl*/, const unsigned char* id, int length, int* copy) {
  *copy = 0;  // (a session of its own, decoded for this handshake)
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

std::size_t shared_session_bytes() {
  return cache().bytes();
}

}  // namespace wsbridge::tls
