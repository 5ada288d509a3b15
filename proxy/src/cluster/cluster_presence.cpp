// The presence half of the cluster bus (cluster_bus.hpp): this instance's sealed "up", said
// again every presence_interval, and the other instances' presence messages, kept in a
// PresenceBook (presence_book.hpp) that tells a cluster-wide list whom to wait for.
#include "cluster/cluster_bus.hpp"
#include "metrics/core_metrics.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge::cluster {

namespace {

// Another process under this instance_id: on its own clock, which forgeries cannot use up.
bool log_duplicate_now() {
  static std::atomic<std::int64_t> last{0};
  return ClusterBus::once_in_a_while(last);
}

// Presence messages that fail their seal (a forgery, or an instance with another secret).
bool log_rejected_presence_now() {
  static std::atomic<std::int64_t> last{0};
  return ClusterBus::once_in_a_while(last);
}

}  // namespace

bool ClusterBus::once_in_a_while(std::atomic<std::int64_t>& last) {
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  std::int64_t before = last.load();
  return now - before >= 10 && last.compare_exchange_strong(before, now);
}

void ClusterBus::announce() {
  const std::string epoch = current_epoch();
  publish(topic("presence/" + instance_),
          nlohmann::json{
              {"up", true}, {"epoch", epoch}, {"every_ms", settings_.presence_interval.count()}},
          true);
}

bool ClusterBus::expire_silent_instances() {
  const auto silent = presence_.expire(unix_ms(std::chrono::system_clock::now()));
  if (!silent.empty()) core_metrics::cluster_peers_up(presence_.up_count());
  for (const std::string& instance : silent) {
    WSB_LOG(kWarn) << "cluster: instance " << instance << " has not said it is up for "
                   << PresenceBook::kIntervalsMissed
                   << " of its presence intervals: lists no longer wait for it";
    for (auto& [id, g] : gatherings_) g.expected.erase(instance);
  }
  return !silent.empty();
}

void ClusterBus::on_presence(const std::string& instance, const std::string& topic,
                             const std::string& payload) {
  // (An empty retained message, which anyone may publish to clear the topic, says nothing.)
  if (payload.empty()) return;
  std::string problem;
  const auto message = seal_.open(topic, payload, &problem, false);
  const auto up = message ? message->find("up") : nlohmann::json::const_iterator{};
  const auto epoch = message ? message->find("epoch") : nlohmann::json::const_iterator{};
  if (!message || (*message)["from"] != instance || up == message->end() || !up->is_boolean() ||
      epoch == message->end() || !epoch->is_string()) {
    core_metrics::cluster_message("in", "rejected");
    if (log_rejected_presence_now()) {
      WSB_LOG(kWarn) << "cluster: ignored a presence message on " << topic << ": "
                     << (problem.empty() ? "it names another instance, or lacks its fields"
                                         : problem)
                     << " (a forgery, or an instance with another [cluster] secret; further ones "
                        "are counted in wsbridge_cluster_messages_total)";
    }
    return;
  }
  const auto ts = message->at("ts").get<std::int64_t>();
  // How often it says "up" again (none from an instance before that: its "up" lasts).
  const auto every = message->find("every_ms");
  std::int64_t every_ms = 0;
  if (every != message->end()) {
    if (!every->is_number_integer() || every->get<std::int64_t>() < 1000 ||
        every->get<std::int64_t>() > 600'000) {
      core_metrics::cluster_message("in", "malformed");
      return;
    }
    every_ms = every->get<std::int64_t>();
  }
  std::lock_guard lock(mutex_);
  if (instance == instance_) {
    // Another process "up" under this instance_id since this connection opened: both get the
    // same instance's messages, and every list and forwarded request goes astray.
    if (up->get<bool>() && epoch->get_ref<const std::string&>() != epoch_ &&
        ts > connected_since_ms_ && log_duplicate_now()) {
      WSB_LOG(kWarn) << "cluster: another instance is up with instance_id " << instance_
                     << ": give each instance its own [server] instance_id";
    }
    return;
  }
  const auto change =
      presence_.apply(instance, up->get<bool>(), epoch->get_ref<const std::string&>(), ts, every_ms,
                      unix_ms(std::chrono::system_clock::now()));
  if (change != PresenceBook::Change::kNone) core_metrics::cluster_peers_up(presence_.up_count());
  if (change == PresenceBook::Change::kDown) {
    // Gone (its will, or a clean stop): lists stop waiting for it.
    for (auto& [id, g] : gatherings_) g.expected.erase(instance);
    wake_.notify_all();
  }
}

}  // namespace wsbridge::cluster
