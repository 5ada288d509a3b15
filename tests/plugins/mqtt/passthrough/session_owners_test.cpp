// plugins/mqtt/passthrough/session_owners.hpp: which connection holds a broker client id, and when
// an older one counts as taken over.
#include "passthrough/session_owners.hpp"

#include <gtest/gtest.h>

namespace wsbridge::mqtt {
namespace {

TEST(SessionOwnersTest, ALaterConnectMarksTheHolderAndItsAcceptanceKeepsTheMark) {
  SessionOwners owners;
  const auto first = owners.claim("dup");
  EXPECT_FALSE(first->load());
  const auto second = owners.claim("dup");
  EXPECT_TRUE(first->load()) << "marked as the newer CONNECT goes out (the broker drops it then)";
  owners.confirm("dup", second);
  owners.release("dup", second);
  EXPECT_TRUE(first->load()) << "taken over for good once the broker accepted the newer one";
}

// A CONNECT that came to nothing (refused, the broker unreachable or silent) took nothing over:
// the older connection holds the id again, unmarked, and a broker failure it meets afterwards is
// one. (The mark stayed, and a broker outage read as a takeover: 1000, uncounted.)
TEST(SessionOwnersTest, ANewerConnectThatCameToNothingTakesItsMarkBack) {
  SessionOwners owners;
  const auto first = owners.claim("dup");
  const auto second = owners.claim("dup");
  ASSERT_TRUE(first->load());
  owners.give_back("dup", second);
  EXPECT_FALSE(first->load());
  const auto third = owners.claim("dup");
  EXPECT_TRUE(first->load()) << "the older one holds the id again: the next CONNECT marks it";
  owners.give_back("dup", third);
  EXPECT_FALSE(first->load());
  owners.release("dup", first);
  const auto fourth = owners.claim("dup");
  EXPECT_FALSE(first->load()) << "gone: nothing to mark";
  owners.release("dup", fourth);
}

// A newer connection whose browser left before its CONNACK took the session over all the same:
// its CONNECT reached the broker, which dropped the older connection for it. (Its mark was
// taken back, and the older connection told its browser the broker failed: 0x8B, 1001,
// counted.)
TEST(SessionOwnersTest, ANewerConnectionGoneBeforeItsConnackStillTookTheSessionOver) {
  SessionOwners owners;
  const auto first = owners.claim("dup");
  const auto second = owners.claim("dup");
  owners.release("dup", second);  // never confirmed, never refused
  EXPECT_TRUE(first->load());
}

// The older connection gone too when the newer CONNECT came to nothing: nobody holds the id, and
// nothing is kept for it. (Its claim was given back to it, dead, and kept in the map for good.)
TEST(SessionOwnersTest, NoIdIsGivenBackToAConnectionThatIsGone) {
  SessionOwners owners;
  auto first = owners.claim("dup");
  const std::weak_ptr<std::atomic<bool>> first_seen = first;
  const auto second = owners.claim("dup");
  owners.release("dup", first);  // (not its to release: the newer one holds it)
  first.reset();                 // its relay is gone
  owners.give_back("dup", second);
  EXPECT_TRUE(first_seen.expired()) << "kept alive by the set";
}

TEST(SessionOwnersTest, OtherClientIdsAreNotTouched) {
  SessionOwners owners;
  const auto a = owners.claim("a");
  const auto b = owners.claim("b");
  EXPECT_FALSE(a->load());
  EXPECT_FALSE(b->load());
}

// Every route to one broker shares its set: a takeover through another route (the same client
// id there) was read as a broker failure.
TEST(SessionOwnersTest, RoutesToOneBrokerShareItsSet) {
  const auto one = SessionOwners::for_broker("mqtt://127.0.0.1:1883");
  const auto again = SessionOwners::for_broker("mqtt://127.0.0.1:1883");
  const auto other = SessionOwners::for_broker("mqtt://127.0.0.1:1884");
  EXPECT_EQ(one.get(), again.get());
  EXPECT_NE(one.get(), other.get());
  const auto first = one->claim("shared-id");
  const auto second = again->claim("shared-id");
  EXPECT_TRUE(first->load());
  again->release("shared-id", second);
  one->release("shared-id", first);
}

}  // namespace
}  // namespace wsbridge::mqtt
