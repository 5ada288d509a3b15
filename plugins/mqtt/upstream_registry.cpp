#include "upstream_registry.hpp"

#include <mutex>
#include <vector>

namespace wsbridge::mqtt {

std::shared_ptr<Upstream> acquire_upstream(const UpstreamConfig& config) {
  static std::mutex mutex;
  static std::vector<std::weak_ptr<Upstream>> live;  // not owning: the configurations own them
  std::lock_guard lock(mutex);
  std::erase_if(live, [](const auto& w) { return w.expired(); });
  for (const auto& w : live) {
    if (auto upstream = w.lock(); upstream && upstream->config() == config) return upstream;
  }
  auto upstream = std::make_shared<Upstream>(config);
  live.push_back(upstream);
  return upstream;
}

}  // namespace wsbridge::mqtt
