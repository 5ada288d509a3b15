// Regression test for what each reload leaves behind. Every reload makes new HTTP client pools
// (a configuration owns its backends), and each pool made an lws vhost per service thread that
// nothing destroyed when the replaced configuration was released: ~900 bytes per backend and
// thread at every reload, so a process reloaded by a file watch or a deploy tool kept growing
// (a hostile probe: +4 MB over 2,000 reloads of a config with two backends).
#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <thread>

#include "integration/wsbridge_instance.hpp"
#include "support/process.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;  // sanitizer runtimes keep freed memory: RSS says nothing
#else
constexpr bool kSanitized = false;
#endif

// How many times `needle` is in `text`.
int count_of(const std::string& text, const std::string& needle) {
  int n = 0;
  for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

TEST(ReloadRegressionTest, ReloadsOfHttpRoutesDoNotGrowTheProcess) {
  // Two backends (the route's and its admission hook), on a port nothing listens on: no request
  // is ever made, the pools and their vhosts are what is measured.
  WsbridgeInstance server(R"(
[server]
threads = 2
[[listeners]]
port = ${PORT}
[[routes]]
path = "/api"
adapter = "http"
backend = "http://127.0.0.1:9/messages"
on_connect = "http://127.0.0.1:9/admit"
)");
  int reloads = 0;
  auto reload = [&](int times) {
    for (int i = 0; i < times; ++i) {
      server.process->signal(SIGHUP);
      ++reloads;
      bool done = false;
      for (int wait = 0; wait < 400 && !done; ++wait) {
        done = count_of(server.process->output(), "configuration reloaded") >= reloads;
        if (!done) std::this_thread::sleep_for(5ms);
      }
      ASSERT_TRUE(done) << "reload " << reloads << " not logged:\n" << server.process->output();
    }
  };
  reload(50);  // (the allocator's arenas settle)
  const long before = rss_kib(server.process->pid());
  reload(400);
  const long after = rss_kib(server.process->pid());
  // 400 reloads × 2 backends × 2 threads × ~900 B leaked ~1.4 MB before; now flat within the
  // allocator's noise. (Under the sanitizers the reloads still run, the pools' vhosts destroyed
  // under ASan and TSan, but their RSS says nothing.)
  if (!kSanitized) {
    EXPECT_LT(after - before, 256)
        << "RSS " << before << " KiB -> " << after << " KiB over 400 reloads";
  }
}

}  // namespace
}  // namespace wsbridge::testing
