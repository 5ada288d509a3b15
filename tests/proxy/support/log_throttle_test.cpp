// LogThrottle: a repeated warning logged at most once per interval, with the count since.
#include "support/log_throttle.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace wsbridge {
namespace {

TEST(LogThrottle, OncePerIntervalWithHowManySince) {
  LogThrottle throttle(std::chrono::milliseconds(50));
  EXPECT_TRUE(throttle.due());  // the first is always logged
  EXPECT_EQ(throttle.occurrences(), 1u);
  EXPECT_FALSE(throttle.due());
  EXPECT_FALSE(throttle.due());
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_TRUE(throttle.due());
  EXPECT_EQ(throttle.occurrences(), 3u);  // the two held back and this one
  EXPECT_FALSE(throttle.due());
}

}  // namespace
}  // namespace wsbridge
