// The instances' control channel through the broker they share ([cluster], docs/DEPLOY.md): one
// MQTT 5 connection per process, on which the admin API's pushes, closes and lists travel as
// sealed control messages (control_message.hpp). Topics, under T = "<control_prefix>/v1":
//   T/all/push, T/all/list        to every instance (a list asks with MQTT 5 request/response)
//   T/to/<instance>/push|close    to one instance (a connection's owner)
//   T/to/<instance>/reply         the answers to that instance's lists
//   T/presence/<instance>         retained while the instance is up (cleared by its will),
//                                 said again every presence_interval
// Presence tells a list whom to wait for, so it ends as soon as every instance answered.
//
// Paho's callbacks run on its thread under a process-wide lock: the handlers only queue work
// (SessionIndex hands pushes and closes to the shards' inboxes) and never wait.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "admin/admin_api.hpp"
#include "cluster/cluster_settings.hpp"
#include "cluster/control_message.hpp"
#include "cluster/presence_book.hpp"

namespace mqtt {
class async_client;
class iaction_listener;
}  // namespace mqtt

namespace wsbridge::cluster {

class ClusterBus final : public ClusterLink {
 public:
  // What arrives for this instance, applied to its own sessions (any thread, never blocking).
  struct Handlers {
    std::function<void(const nlohmann::json& push_request)> push;
    std::function<void(ConnectionId, std::uint16_t code, const std::string& reason)> close;
    std::function<nlohmann::json()> list;  // this instance's entries
  };

  ClusterBus(const Settings& settings, std::string instance, Handlers handlers);
  ~ClusterBus();
  ClusterBus(const ClusterBus&) = delete;
  ClusterBus& operator=(const ClusterBus&) = delete;

  // Connects (and keeps reconnecting) in the background.
  void start();
  // Clears this instance's presence and disconnects; pending lists end with what they have.
  void stop();

  bool push_everywhere(const nlohmann::json& request) override;
  Forwarded push_to(const std::string& instance, const nlohmann::json& request) override;
  Forwarded close_on(const std::string& instance, ConnectionId id, std::uint16_t code,
                     const std::string& reason) override;
  bool gather_sessions(std::function<void(ClusterListing)> done) override;

  // True at most once every 10 s for one `last`: a flood is counted in full but logged once in
  // a while.
  static bool once_in_a_while(std::atomic<std::int64_t>& last);

 private:
  struct Gathering {
    std::chrono::steady_clock::time_point deadline;
    std::set<std::string> expected;
    ClusterListing listing;
    std::function<void(ClusterListing)> done;
  };

  std::string topic(std::string_view tail) const { return base_ + "/" + std::string(tail); }
  // False when Paho refused it (disconnected): logged and counted.
  bool publish(const std::string& topic, nlohmann::json fields, bool retained = false,
               const std::string& response_topic = {}, const std::string& correlation = {});
  // A control message for one other instance, unless it is not up (or the channel is down).
  Forwarded send_to(const std::string& instance, std::string_view what, nlohmann::json fields);
  void on_connected();
  void on_message(const std::string& topic, const std::string& payload,
                  const std::string& response_topic, const std::string& correlation);
  void on_presence(const std::string& instance, const std::string& topic,
                   const std::string& payload);
  void on_reply(const nlohmann::json& message, const std::string& correlation);
  bool answer_list(const nlohmann::json& message, const std::string& response_topic,
                   const std::string& correlation);
  void connect();
  void connect_failed();
  // This connection's sealed "up", retained (on connecting, then every presence_interval).
  void announce();
  // Takes the instances not heard from in time out of the lists (under the lock); true if any.
  bool expire_silent_instances();
  std::string current_epoch();  // epoch_, read under the lock
  void run_timer();
  // Ends the gatherings that are complete or past their deadline (all when `all`).
  void finish_gatherings(bool all);

  const Settings settings_;
  const std::string instance_;
  const std::string base_;  // "<control_prefix>/v1"
  const Handlers handlers_;
  ControlSeal seal_;
  std::unique_ptr<::mqtt::async_client> client_;
  // Paho keeps a reference to it for every connect's token: it lives as long as the client.
  std::unique_ptr<::mqtt::iaction_listener> connect_listener_;

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;                                // guarded
  bool connected_ = false;                               // guarded
  bool connecting_ = false;                              // guarded
  std::chrono::steady_clock::time_point next_attempt_;   // guarded
  std::chrono::milliseconds backoff_{1000};              // guarded
  std::chrono::steady_clock::time_point next_announce_;  // guarded
  PresenceBook presence_;                                // guarded: other instances up
  std::string epoch_;                    // guarded: this broker connection's (presence_book.hpp)
  std::int64_t connected_since_ms_ = 0;  // guarded: when it was opened (unix ms)
  std::map<std::string, Gathering> gatherings_;  // guarded, by correlation id
  std::uint64_t next_gathering_ = 0;             // guarded
  std::thread timer_;
};

}  // namespace wsbridge::cluster
