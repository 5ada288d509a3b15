// tls.watch's look at the certificate files (proxy/src/config/file_watch.*): a change counts once
// the files stopped changing.
#include "config/file_watch.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include "support/process.hpp"

namespace wsbridge {
namespace {

void write(const std::string& file, const std::string& text) {
  std::ofstream(file, std::ios::trunc) << text;
}

TEST(FileWatchTest, AChangeCountsOnceItSettled) {
  const std::string cert = testing::write_temp_file("watched-cert.pem", "one");
  const std::string key = testing::write_temp_file("watched-key.pem", "one");
  FileWatch watch;
  EXPECT_TRUE(watch.empty());
  watch.watch({cert, key});
  EXPECT_FALSE(watch.empty());
  EXPECT_FALSE(watch.settled_change());  // nothing changed
  write(cert, "two, longer");
  EXPECT_FALSE(watch.settled_change());  // changing: the key may follow
  write(key, "two, longer");
  EXPECT_FALSE(watch.settled_change());  // still changing
  EXPECT_TRUE(watch.settled_change());   // settled: reload now
  EXPECT_FALSE(watch.settled_change());  // and once only
}

TEST(FileWatchTest, AFileThatDisappearsOrComesBackIsAChange) {
  const std::string cert = testing::write_temp_file("vanishing.pem", "x");
  FileWatch watch;
  watch.watch({cert});
  std::remove(cert.c_str());
  EXPECT_FALSE(watch.settled_change());
  EXPECT_TRUE(watch.settled_change());
  write(cert, "y");
  EXPECT_FALSE(watch.settled_change());
  EXPECT_TRUE(watch.settled_change());
}

}  // namespace
}  // namespace wsbridge
