#include "passthrough/connect_deadlines.hpp"

#include <string>

namespace wsbridge::mqtt {

ConnectDeadlines::~ConnectDeadlines() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<std::atomic<bool>> ConnectDeadlines::watch(
    const std::shared_ptr<Connection>& connection) {
  auto connected = std::make_shared<std::atomic<bool>>(false);
  {
    std::lock_guard lock(mutex_);
    watched_.push_back({std::chrono::steady_clock::now() + timeout_, connection, connected});
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  }
  wake_.notify_one();
  return connected;
}

void ConnectDeadlines::run() {
  const std::string reason =
      "no MQTT CONNECT within " +
      (timeout_.count() % 1000 == 0 ? std::to_string(timeout_.count() / 1000) + " s"
                                    : std::to_string(timeout_.count()) + " ms") +
      " of the WebSocket opening (mqtt_connect_timeout)";
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (watched_.empty()) {
      wake_.wait(lock);
      continue;
    }
    const auto deadline = watched_.front().deadline;
    if (std::chrono::steady_clock::now() < deadline) {
      wake_.wait_until(lock, deadline);
      continue;
    }
    Watched due = std::move(watched_.front());
    watched_.pop_front();
    lock.unlock();
    // (A connection gone already, or one whose CONNECT came, is left alone.)
    if (auto connection = due.connection.lock(); connection && !due.connected->load()) {
      connection->close(CloseCode::kPolicyViolation, reason);
    }
    lock.lock();
  }
}

}  // namespace wsbridge::mqtt
