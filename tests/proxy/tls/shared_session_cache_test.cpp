// The process's TLS 1.2 session cache (proxy/src/tls/shared_session_cache.*), driven through the
// callbacks it sets on a context, as OpenSSL calls them. It keeps copies (DER), so what a lookup
// hands out is a session of its own with the same id. (The cache is the process's: each test
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

  // A session as a full handshake leaves it: an id, a protocol, a cipher, a start time and a
  // timeout; `extra` bytes of it (as its ALPN protocol) stand for a large client certificate.
  SSL_SESSION* session(const std::string& id, int version = TLS1_2_VERSION,
                       long started = std::time(nullptr), long timeout = 300,
                       std::size_t extra = 0) const {
    SSL_SESSION* s = SSL_SESSION_new();
    SSL_SESSION_set1_id(s, reinterpret_cast<const unsigned char*>(id.data()),
                        static_cast<unsigned int>(id.size()));
    SSL_SESSION_set_protocol_version(s, version);
    SSL_SESSION_set_cipher(s, sk_SSL_CIPHER_value(SSL_CTX_get_ciphers(ctx_.get()), 0));
    SSL_SESSION_set_time(s, started);
    SSL_SESSION_set_timeout(s, timeout);
    if (extra > 0) {
      const std::string alpn(extra, 'x');
      SSL_SESSION_set1_alpn_selected(s, reinterpret_cast<const unsigned char*>(alpn.data()),
                                     alpn.size());
    }
    return s;
  }
  // OpenSSL's call after a full handshake, with a reference of the callback's own, which it
  // frees when the callback says 0 (the cache keeps a copy or nothing). Whether it is kept.
  bool offer(SSL_SESSION* s) {
    const std::size_t count = tls::shared_session_count();
    SSL_SESSION_up_ref(s);
    if (SSL_CTX_sess_get_new_cb(ctx_.get())(nullptr, s) == 1) {
      ADD_FAILURE() << "the cache took OpenSSL's reference";
      return true;
    }
    SSL_SESSION_free(s);
    unsigned int length = 0;
    const unsigned char* id = SSL_SESSION_get_id(s, &length);
    SSL_SESSION* kept = look_up(std::string(reinterpret_cast<const char*>(id), length));
    if (kept != nullptr) SSL_SESSION_free(kept);
    return kept != nullptr && tls::shared_session_count() <= count + 1;
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

TEST_F(SharedSessionCacheTest, KeepsTls12SessionsAndHandsOutCopies) {
  SSL_SESSION* s = session(std::string(32, 'a'));
  ASSERT_TRUE(offer(s));
  EXPECT_EQ(added(), 1u);
  SSL_SESSION* found = look_up(std::string(32, 'a'));
  ASSERT_NE(found, nullptr);
  EXPECT_NE(found, s);
  unsigned int length = 0;
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(SSL_SESSION_get_id(found, &length)), 32),
            std::string(32, 'a'));
  EXPECT_EQ(SSL_SESSION_get_protocol_version(found), TLS1_2_VERSION);
  EXPECT_EQ(SSL_SESSION_get_timeout(found), 300);
  EXPECT_EQ(look_up(std::string(32, 'b')), nullptr);
  // Removed (timed out, or its connection failed): by its id, whichever copy OpenSSL holds.
  remove(found);
  EXPECT_EQ(added(), 0u);
  EXPECT_EQ(look_up(std::string(32, 'a')), nullptr);
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
  offer(old);                 // (kept or not: it is no use to anyone)
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
      EXPECT_NE(found, nullptr) << i;
    }
    if (found != nullptr) SSL_SESSION_free(found);
    remove(made[i]);
    SSL_SESSION_free(made[i]);
  }
}

// Each session keeps its client's certificate, and a client may send a large one: the cache's
// bytes are bounded too. (A live session kept every certificate the client sent: 220 made-up
// ones behind a device certificate held about 1 MB per session, 20 GB at the bound's count.)
TEST_F(SharedSessionCacheTest, HoldsAtMostItsBytesAndNoSessionLargerThanAShare) {
  std::vector<SSL_SESSION*> made;
  const std::size_t large = 100 * 1024;
  for (std::size_t i = 0; i < tls::kMaxSharedSessionBytes / large + 20; ++i) {
    std::string id(32, 'g');
    id.replace(0, std::to_string(i).size(), std::to_string(i));
    made.push_back(session(id, TLS1_2_VERSION, std::time(nullptr), 300, large));
    ASSERT_TRUE(offer(made.back())) << i;
    ASSERT_LE(tls::shared_session_bytes(), tls::kMaxSharedSessionBytes) << i;
  }
  EXPECT_LT(tls::shared_session_count(), made.size());
  // One over a 64th of the bound is not kept at all.
  SSL_SESSION* huge = session(std::string(32, 'h'), TLS1_2_VERSION, std::time(nullptr), 300,
                              tls::kMaxSharedSessionBytes / 64 + 1);
  EXPECT_FALSE(offer(huge));
  SSL_SESSION_free(huge);
  for (SSL_SESSION* s : made) {
    remove(s);
    SSL_SESSION_free(s);
  }
}

}  // namespace
}  // namespace wsbridge
