// Waiting in tests for a state the server reports only when asked (a metric, a log line, a
// count): one helper instead of a deadline loop in every file.
#pragma once

#include <chrono>
#include <thread>

namespace wsbridge::testing {

// Polls `condition` every `every` until it holds or `timeout` has passed; true when it held (it
// is asked once more at the deadline, so a slow last step is not mistaken for a failure).
template <typename Condition>
bool eventually(Condition&& condition, std::chrono::milliseconds timeout = std::chrono::seconds(5),
                std::chrono::milliseconds every = std::chrono::milliseconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return static_cast<bool>(condition());
    std::this_thread::sleep_for(every);
  }
  return true;
}

}  // namespace wsbridge::testing
