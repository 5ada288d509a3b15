// The upstream's worker state and its event types, private to upstream.cpp (lifecycle),
// upstream_broker.cpp (broker connection), upstream_sessions.cpp (sessions),
// upstream_subscriptions.cpp (subscriptions, retained messages, fan-out) and upstream_publish.cpp.
#pragma once

#include "upstream.hpp"

#include <mqtt/async_client.h>
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <variant>

#include "acl.hpp"
#include "fair_queue.hpp"
#include "protocol.hpp"
#include "retain_rounds.hpp"
#include "subscription_set.hpp"
#include "topic.hpp"
#include "topic_trie.hpp"
#include "wsbridge/log.hpp"
#include "wsbridge/metrics.hpp"

namespace wsbridge::mqtt {

// Shared by the upstream_*.cpp files only.
namespace upstream_detail {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// ---- events: everything that reaches the worker ----------------------------------------------
struct SessionOpened {
  std::shared_ptr<Connection> connection;
  std::shared_ptr<const MqttRouteConfig> route;
  // JSON routes: the adapter told the client "up" at once (the link was up); the worker sends
  // "down" if the link went down before it took the session in. Otherwise the worker tells it.
  bool told_up = false;
};
struct SessionMessage {
  ConnectionId id;
  Frame frame;
  FlowTicket ticket;  // released once the worker is done with the message
};
struct SessionClosed {
  ConnectionId id;
};
struct BrokerMessage {
  ::mqtt::const_message_ptr message;
  std::chrono::steady_clock::time_point arrived = std::chrono::steady_clock::now();
};
struct BrokerLost {
  std::string cause;
};
struct ActionDone {  // a Paho token completed: connect, subscribe or publish
  std::uint64_t seq;
  bool ok;
  int return_code;
  // A connect's CONNACK (MQTT 5) said "Subscription Identifiers Available: 0".
  bool no_sub_ids = false;
};
using Event = std::variant<SessionOpened, SessionMessage, SessionClosed, BrokerMessage, BrokerLost,
                           ActionDone>;

// ---- worker state ------------------------------------------------------------------------------
struct PendingPublish {
  ConnectionId session = 0;
  std::optional<json> id;
  std::string topic;  // broker topic (prefix applied)
  std::string payload;
  int qos = 0;
  bool retain = false;
  FlowTicket ticket;  // the client's message stays counted until the broker has the publish
};

struct SessionState {
  std::shared_ptr<Connection> connection;
  std::shared_ptr<const MqttRouteConfig> route;
  SharedAcl subscribe_acl;  // expanded for this identity (or shared, the same for everyone)
  SharedAcl publish_acl;
  // From the credential (an API key's or a token's ACL claim): allowed only if both allow.
  std::optional<std::vector<std::string>> credential_subscribe_acl;
  std::optional<std::vector<std::string>> credential_publish_acl;
  bool may_subscribe(const std::string& filter) const {
    return subscribe_allowed(*subscribe_acl, filter) &&
           (!credential_subscribe_acl || subscribe_allowed(*credential_subscribe_acl, filter));
  }
  bool may_publish(const std::string& topic) const {
    return publish_allowed(*publish_acl, topic) &&
           (!credential_publish_acl || publish_allowed(*credential_publish_acl, topic));
  }
  SubscriptionSet filters;  // browser-side filters
  bool raw() const { return route->mode == RouteMode::kRaw; }
};

struct Waiter {
  ConnectionId session;
  std::optional<json> id;
};

struct FilterState {  // one broker-side filter, shared by its subscribers
  int qos = 0;
  bool confirmed = false;  // SUBACK received on the current broker connection
  // The SUBSCRIBE whose SUBACK confirms this state. An older one's (sent before the filter was
  // dropped and subscribed again, or before a QoS raise) must not confirm it early.
  std::uint64_t subscribe_seq = 0;
  // Whether that SUBSCRIBE makes the broker send the filter's retained messages (always, except
  // an MQTT 5 QoS raise, whose subscribers are served from the cache).
  bool resend = true;
  std::vector<Waiter> waiters;  // subscribe requests waiting for that SUBACK
  // MQTT 5: its Subscription Identifier, which tells which of our subscriptions a message is for.
  std::uint32_t sub_id = 0;
  // MQTT 5: that SUBSCRIBE's fence is on its way; between the SUBACK and the fence's answer the
  // acks wait in `fenced`, and what reaches `held_sessions` is held (see FenceAction).
  bool fence_pending = false;
  std::vector<Waiter> fenced;
  std::vector<ConnectionId> held_sessions;
};

struct ConnectAction {
  std::uint64_t generation;
};
struct SubscribeAction {
  std::string filter;
  int qos;
  std::uint64_t generation;
};
struct PublishAction {
  PendingPublish publish;
  std::uint64_t generation;
};
// MQTT 5: an UNSUBSCRIBE of a filter we never subscribe, sent right after a SUBSCRIBE. The broker
// queues a SUBSCRIBE's retained copies while it handles it, so the answer to the next packet
// comes after the last of them: from then on a retain=1 message is live, not a copy.
// Until that answer the subscribers get neither their ack nor any message: whatever the broker
// sent before it (copies, and live changes the broker handled between the SUBSCRIBE and the
// fence, indistinguishable from copies) is the state at subscribe time, delivered after the ack;
// whatever follows the ack is live.
struct FenceAction {
  std::string filter;
  std::uint64_t generation;
  std::uint64_t subscribe_seq;
};
inline constexpr const char* kFenceFilter = "$wsbridge/fence";
using Action = std::variant<ConnectAction, SubscribeAction, PublishAction, FenceAction>;

inline void* seq_context(std::uint64_t seq) {
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(seq));
}

}  // namespace upstream_detail
using namespace upstream_detail;

struct Upstream::Impl final : ::mqtt::callback, ::mqtt::iaction_listener {
  explicit Impl(const UpstreamConfig& c)
      : config(c),
        rng(std::random_device{}()),
        up_gauge(metrics::Registry::global().gauge(
            "wsbridge_upstream_up", "1 when the broker connection is up", {{"upstream", c.name}})),
        reconnects(metrics::Registry::global().counter(
            "wsbridge_upstream_reconnects_total",
            "broker connections established again after a loss", {{"upstream", c.name}})),
        broker_messages(metrics::Registry::global().counter("wsbridge_upstream_messages_total",
                                                            "messages received from the broker",
                                                            {{"upstream", c.name}})),
        fanout_latency(
            metrics::Registry::global().histogram("wsbridge_fanout_latency_seconds",
                                                  "from a broker message reaching wsbridge to its "
                                                  "frames being queued for every subscriber",
                                                  {{"upstream", c.name}})),
        behind_high_water(metrics::Registry::global().counter(
            "wsbridge_upstream_deliveries_behind_total", kBehindHelp,
            {{"upstream", c.name}, {"result", "over_high_water"}})),
        behind_dropped(metrics::Registry::global().counter(
            "wsbridge_upstream_deliveries_behind_total", kBehindHelp,
            {{"upstream", c.name}, {"result", "dropped"}})) {}
  static constexpr const char* kBehindHelp =
      "broker messages handed to a subscriber whose queue was past its high-water mark, or full "
      "(the slow-consumer policy dropped a frame), as Connection::send answered";

  // ---- any thread ----
  // An event the worker must see now.
  void post(Event&& e) {
    {
      std::lock_guard lock(mutex);
      queue.push_back(std::move(e));
      urgent = true;
    }
    wake.notify_one();
  }
  // An event with no answer due (a JSON session's open, any session's close): it waits for the
  // worker's next wake-up, kLazyDelay at most. Waking it for each cost a connection two futex
  // calls and about four context switches (the worker, then the shard for the status frame it
  // sent back); a reconnect storm now wakes the worker once per kLazyDelay. Order is kept: the
  // session's first message is urgent and comes after its open in the same queue.
  void post_lazy(Event&& e) {
    bool notify = false;
    {
      std::lock_guard lock(mutex);
      queue.push_back(std::move(e));
      if (!lazy_deadline) {
        lazy_deadline = Clock::now() + kLazyDelay;
        notify = true;  // the worker may be asleep without a deadline: it must learn this one
      }
      if (queue.size() >= kLazyBound && !urgent) {
        urgent = true;
        notify = true;
      }
    }
    if (notify) wake.notify_one();
  }
  static constexpr std::chrono::milliseconds kLazyDelay{20};
  static constexpr std::size_t kLazyBound = 1024;  // events queued before the worker is woken
  // Paho's threads: hand over and return at once (Paho holds a process-wide lock meanwhile).
  void connection_lost(const std::string& cause) override { post(BrokerLost{cause}); }
  void message_arrived(::mqtt::const_message_ptr message) override {
    post(BrokerMessage{std::move(message), Clock::now()});
  }
  void on_success(const ::mqtt::token& token) override { done(token, true); }
  void on_failure(const ::mqtt::token& token) override { done(token, false); }
  void done(const ::mqtt::token& token, bool ok) {
    bool no_sub_ids = false;
    if (ok && token.get_type() == ::mqtt::token::Type::CONNECT && config.mqtt_version == 5) {
      try {
        const auto& props = token.get_connect_response().get_properties();
        const auto code = ::mqtt::property::SUBSCRIPTION_IDENTIFIERS_AVAILABLE;
        no_sub_ids = props.count(code) > 0 && ::mqtt::get<std::uint8_t>(props, code) == 0;
      } catch (const std::exception&) {
      }
    }
    post(ActionDone{
        static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(token.get_user_context())), ok,
        token.get_return_code(), no_sub_ids});
  }

  // ---- the worker ----
  void run();
  void handle(SessionOpened& e);
  void handle(SessionMessage& e);
  void handle(SessionClosed& e);
  void handle(BrokerMessage& e);
  void handle(BrokerLost& e);
  void handle(ActionDone& e);

  void connect();
  void connect_failed(const std::string& why);
  void on_connected();
  void set_link_up(bool up);
  std::chrono::milliseconds backoff();

  void json_request(SessionState& s, ConnectionId id, std::string_view text, FlowTicket& ticket);
  void subscribe(SessionState& s, ConnectionId id, const std::string& filter, int qos,
                 std::optional<json> request_id);
  void subscribe_again(SessionState& s, ConnectionId id, const std::string& broker_filter, int qos,
                       std::optional<json> request_id);
  void await_suback(const std::string& broker_filter, FilterState& state, ConnectionId id, int qos,
                    std::optional<json> request_id);
  void unsubscribe(SessionState& s, ConnectionId id, const std::string& filter);
  void send_subscribe(const std::string& broker_filter, FilterState& state, bool resend);
  bool send_fence(const std::string& broker_filter, std::uint64_t subscribe_seq);
  void release_fenced(FilterState& state);  // acks, then what was held
  void submit_publish(PendingPublish p);
  void do_publish(PendingPublish p);
  void fail_publish(const PendingPublish& p, std::string_view code, const std::string& message);
  void flush_buffered();
  std::vector<std::string> deliver_retained(SessionState& s, const std::string& broker_filter);
  void cache_retained(const ::mqtt::message& m);
  // MQTT 5: who takes a retain=1 message live (not waiting for copies, and subscribed with one
  // of the subscriptions the message is for).
  std::vector<SubscriberId> live_on_mqtt5(const ::mqtt::message& m,
                                          std::vector<ConnectionId>& involved);
  // MQTT 5: the Subscription Identifiers a message carries (the subscriptions of ours it is for).
  static std::vector<std::uint32_t> subscription_ids(const ::mqtt::message& m);
  // MQTT 5: whether a copy naming `ids` is the one session `s` takes. A broker may send one copy
  // per matching subscription of ours (mosquitto does, to MQTT 5 clients), each naming only its
  // own: a session takes the copy of its matching filter with the smallest identifier, so it
  // gets the message once. A copy naming none (a broker without identifiers) is everyone's.
  bool copy_is_for(const SessionState& s, const std::string& topic,
                   const std::vector<std::uint32_t>& ids);
  // `matched` less the sessions for which the copy naming `ids` is not the one (copy_is_for).
  std::vector<SubscriberId> once_per_session(const std::string& topic,
                                             const std::vector<std::uint32_t>& ids);
  void fan_out(const std::vector<SubscriberId>& ids, const std::string& topic,
               const std::string& payload, int qos, bool retain);
  // MQTT 5 subscriptions are made with Retain As Published, so every change of a retained value
  // reaches us with retain=1 and the cache stays exact; MQTT 3.1.1 offers no such thing.
  bool caching() const { return config.mqtt_version == 5; }
  void reply(ConnectionId id, Frame frame);

  const UpstreamConfig& config;

  std::mutex mutex;
  std::condition_variable wake;
  std::deque<Event> queue;  // guarded by mutex
  bool urgent = false;      // guarded by mutex: the queue holds an event that cannot wait
  std::optional<Clock::time_point> lazy_deadline;  // guarded by mutex: the oldest lazy one due
  bool stop_requested = false;
  std::thread thread;

  // Worker-only state.
  std::unique_ptr<::mqtt::async_client> client;
  enum class Link { kDown, kConnecting, kUp } link = Link::kDown;
  // `link == kUp` as the last status frames said it; read by the adapters' threads, which send a
  // new session its first status frame themselves.
  std::atomic<bool> link_up{false};
  const Frame status_up = status_frame(true);
  const Frame status_down = status_frame(false);
  std::uint64_t generation = 0;  // one per connection attempt; stale token results are ignored
  int failures = 0;
  Clock::time_point next_connect = Clock::now();
  std::uint64_t next_seq = 1;
  std::unordered_map<std::uint64_t, Action> actions;
  std::unordered_map<ConnectionId, SessionState> sessions;
  TopicTrie trie;  // broker filter -> session ids
  std::unordered_map<std::string, FilterState> filters;
  // QoS 1/2 held while the broker is down or busy, taken a session at a time in turn.
  FairQueue<PendingPublish> buffered;
  // QoS 1/2 publishes handed to Paho and not acknowledged yet. At most config.publish_window:
  // Paho refuses more than it can buffer ("No more messages can be buffered") when the broker
  // stops reading, so the rest wait in `buffered`, still counted by their sessions' flow control.
  std::size_t publishing = 0;
  struct Retained {
    std::string payload;
    int qos;
    std::optional<Clock::time_point> expires;  // MQTT 5 message expiry
  };
  // MQTT 5 only: broker topic -> retained value, for late subscribers of an active filter.
  std::unordered_map<std::string, Retained> retained;
  bool cache_full_warned = false;
  RetainRounds rounds;  // which sessions get the retained copies a SUBSCRIBE brings
  std::uint32_t next_sub_id = 1;
  // Sessions whose messages wait for a fence (MQTT 5), in arrival order.
  std::unordered_map<ConnectionId, std::vector<Frame>> held;
  bool sub_ids_available = true;      // MQTT 5: as the broker's CONNACK says
  std::vector<SubscriberId> matched;  // scratch for trie matches
  std::string broker_filter_scratch;  // scratch for copy_is_for
  std::mt19937 rng;
  bool ever_connected = false;
  metrics::Gauge& up_gauge;
  metrics::Counter& reconnects;
  metrics::Counter& broker_messages;
  metrics::Histogram& fanout_latency;
  metrics::Counter& behind_high_water;
  metrics::Counter& behind_dropped;
};

}  // namespace wsbridge::mqtt
