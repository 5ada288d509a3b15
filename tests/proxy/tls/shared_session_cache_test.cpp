// The process's TLS 1.2 session cache (proxy/src/tls/shared_session_cache.*), driven through the
// callbacks it sets on a context, as OpenSSL calls them. (The cache is the process's: each test
// counts from what it found, and takes out what it put in.) Real resumptions across service
// threads: tests/integration/tls_openssl_test.cpp.
#include "tls/shared_session_cache.hpp"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <ctime>
#include <memory>
#include <string>
#include <vector>

namespace wsbridge {
namespace {

struct CtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};

class SharedSessionCacheTest : public ::testing::Test {
 protected:
  SharedSessionCacheTest() : ctx_(SSL_CTX_new(TLS_server_method())) {
    tls::use_shared_session_cache(ctx_.get());
    before_ = tls::shared_session_count();
  }

  // A session as a full handshake leaves it: an id, a protocol, a start time and a timeout.
  static SSL_SESSION* session(const std::string& id, int version = TLS1_2_VERSION,
                              long started = std::time(nullptr), long timeout = 300) {
    SSL_SESSION* s = SSL_SESSION_new();
    SSL_SESSION_set1_id(s, reinterpret_cast<const unsigned char*>(id.data()),
                        static_cast<unsigned int>(id.size()));
    SSL_SESSION_set_protocol_version(s, version);
    SSL_SESSION_set_time(s, started);
    SSL_SESSION_set_timeout(s, timeout);
    return s;
  }
  // OpenSSL's call after a full handshake: the callback is handed a reference of its own.
  bool offer(SSL_SESSION* s) {
    SSL_SESSION_up_ref(s);
    if (SSL_CTX_sess_get_new_cb(ctx_.get())(nullptr, s) == 1) return true;
    SSL_SESSION_free(s);  // (not taken: OpenSSL frees the reference it gave)
    return false;
  }
  // OpenSSL's lookup of an offered session id: the reference it gets, or null.
  SSL_SESSION* look_up(const std::string& id) {
    int copy = -1;
    SSL_SESSION* found = SSL_CTX_sess_get_get_cb(ctx_.get())(
        nullptr, reinterpret_cast<const unsigned char*>(id.data()), static_cast<int>(id.size()),
        &copy);
    EXPECT_EQ(copy, 0) << "the callback hands over a reference of its own";
    return found;
  }
  void remove(SSL_SESSION* s) { SSL_CTX_sess_get_remove_cb(ctx_.get())(ctx_.get(), s); }
  std::size_t added() const { return tls::shared_session_count() - before_; }

  std::unique_ptr<SSL_CTX, CtxFree> ctx_;
  std::size_t before_ = 0;
};

TEST_F(SharedSessionCacheTest, KeepsTls12SessionsAndHandsOutReferences) {
  SSL_SESSION* s = session(std::string(32, 'a'));
  ASSERT_TRUE(offer(s));
  EXPECT_EQ(added(), 1u);
  SSL_SESSION* found = look_up(std::string(32, 'a'));
  EXPECT_EQ(found, s);
  EXPECT_EQ(look_up(std::string(32, 'b')), nullptr);
  // The reference handed out outlives the cache's: a resumption under way keeps its session.
  remove(s);
  EXPECT_EQ(added(), 0u);
  EXPECT_EQ(look_up(std::string(32, 'a')), nullptr);
  unsigned int length = 0;
  EXPECT_EQ(SSL_SESSION_get_id(found, &length)[0], 'a');
  SSL_SESSION_free(found);
  SSL_SESSION_free(s);
}

TEST_F(SharedSessionCacheTest, Tls13SessionsAreNotKept) {
  SSL_SESSION* s = session(std::string(32, 'c'), TLS1_3_VERSION);
  EXPECT_FALSE(offer(s)) << "a TLS 1.3 session resumes by its ticket";
  EXPECT_EQ(added(), 0u);
  EXPECT_EQ(look_up(std::string(32, 'c')), nullptr);
  SSL_SESSION_free(s);
}

TEST_F(SharedSessionCacheTest, SessionsPastTheirTimeoutAreDroppedOldestFirst) {
  const long now = std::time(nullptr);
  SSL_SESSION* old = session(std::string(32, 'd'), TLS1_2_VERSION, now - 400, 300);
  SSL_SESSION* fresh = session(std::string(32, 'e'));
  ASSERT_TRUE(offer(old));
  ASSERT_TRUE(offer(fresh));  // (the next one in finds the old one expired)
  EXPECT_EQ(look_up(std::string(32, 'd')), nullptr);
  EXPECT_EQ(added(), 1u);
  remove(fresh);
  SSL_SESSION_free(old);
  SSL_SESSION_free(fresh);
}

TEST_F(SharedSessionCacheTest, HoldsAtMostItsBoundTheOldestGoingFirst) {
  std::vector<SSL_SESSION*> made;
  for (std::size_t i = 0; i < tls::kMaxSharedSessions + 10; ++i) {
    std::string id(32, 'f');
    id.replace(0, std::to_string(i).size(), std::to_string(i));
    made.push_back(session(id));
    ASSERT_TRUE(offer(made.back()));
  }
  EXPECT_EQ(tls::shared_session_count(), tls::kMaxSharedSessions);
  for (std::size_t i = 0; i < made.size(); ++i) {
    unsigned int length = 0;
    const unsigned char* id = SSL_SESSION_get_id(made[i], &length);
    SSL_SESSION* found = look_up(std::string(reinterpret_cast<const char*>(id), length));
    // Those others left went first (older), then the first ten of these.
    if (i < 10) {
      EXPECT_EQ(found, nullptr) << i;
    } else {
      EXPECT_EQ(found, made[i]) << i;
    }
    if (found != nullptr) SSL_SESSION_free(found);
    remove(made[i]);
    SSL_SESSION_free(made[i]);
  }
}

}  // namespace
}  // namespace wsbridge
