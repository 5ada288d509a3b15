#include "upstream.hpp"

#include <unistd.h>

#include <mqtt/async_client.h>
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <variant>

#include "acl.hpp"
#include "protocol.hpp"
#include "retain_rounds.hpp"
#include "topic.hpp"
#include "topic_trie.hpp"
#include "wsbridge/log.hpp"
#include "wsbridge/metrics.hpp"

namespace wsbridge::mqtt {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// ---- events: everything that reaches the worker ----------------------------------------------
struct SessionOpened {
  std::shared_ptr<Connection> connection;
  std::shared_ptr<const MqttRouteConfig> route;
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
  std::vector<std::string> subscribe_acl;  // expanded for this identity
  std::vector<std::string> publish_acl;
  // From the credential (an API key's or a token's ACL claim): allowed only if both allow.
  std::optional<std::vector<std::string>> credential_subscribe_acl;
  std::optional<std::vector<std::string>> credential_publish_acl;
  bool may_subscribe(const std::string& filter) const {
    return subscribe_allowed(subscribe_acl, filter) &&
           (!credential_subscribe_acl || subscribe_allowed(*credential_subscribe_acl, filter));
  }
  bool may_publish(const std::string& topic) const {
    return publish_allowed(publish_acl, topic) &&
           (!credential_publish_acl || publish_allowed(*credential_publish_acl, topic));
  }
  std::set<std::string> filters;  // browser-side filters
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
constexpr const char* kFenceFilter = "$wsbridge/fence";
using Action = std::variant<ConnectAction, SubscribeAction, PublishAction, FenceAction>;

void* seq_context(std::uint64_t seq) {
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(seq));
}

}  // namespace

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
                                                  {{"upstream", c.name}})) {}

  // ---- any thread ----
  void post(Event&& e) {
    {
      std::lock_guard lock(mutex);
      queue.push_back(std::move(e));
    }
    wake.notify_one();
  }
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
  bool stop_requested = false;
  std::thread thread;

  // Worker-only state.
  std::unique_ptr<::mqtt::async_client> client;
  enum class Link { kDown, kConnecting, kUp } link = Link::kDown;
  std::uint64_t generation = 0;  // one per connection attempt; stale token results are ignored
  int failures = 0;
  Clock::time_point next_connect = Clock::now();
  std::uint64_t next_seq = 1;
  std::unordered_map<std::uint64_t, Action> actions;
  std::unordered_map<ConnectionId, SessionState> sessions;
  TopicTrie trie;  // broker filter -> session ids
  std::unordered_map<std::string, FilterState> filters;
  std::deque<PendingPublish> buffered;  // QoS 1/2 held while the broker is down or busy
  // QoS 1/2 publishes handed to Paho and not acknowledged yet. At most kPublishWindow: Paho
  // refuses more than it can buffer ("No more messages can be buffered") when the broker stops
  // reading, so the rest wait in `buffered`, still counted by their sessions' flow control.
  std::size_t publishing = 0;
  static constexpr std::size_t kPublishWindow = 64;
  struct Retained {
    std::string payload;
    int qos;
    std::optional<Clock::time_point> expires;  // MQTT 5 message expiry
  };
  // MQTT 5 only: broker topic -> retained value, for late subscribers of an active filter.
  std::unordered_map<std::string, Retained> retained;
  bool cache_full_warned = false;
  RetainRounds rounds;  // which sessions get the retained copies a SUBSCRIBE brings
  std::unordered_map<std::uint32_t, std::string> filter_of_sub_id;  // MQTT 5
  std::uint32_t next_sub_id = 1;
  // Sessions whose messages wait for a fence (MQTT 5), in arrival order.
  std::unordered_map<ConnectionId, std::vector<Frame>> held;
  bool sub_ids_available = true;      // MQTT 5: as the broker's CONNACK says
  std::vector<SubscriberId> matched;  // scratch for trie matches
  std::mt19937 rng;
  bool ever_connected = false;
  metrics::Gauge& up_gauge;
  metrics::Counter& reconnects;
  metrics::Counter& broker_messages;
  metrics::Histogram& fanout_latency;
};

// ---- lifecycle ---------------------------------------------------------------------------------

Upstream::Upstream(UpstreamConfig config)
    : config_(std::move(config)), impl_(std::make_unique<Impl>(config_)) {}

Upstream::~Upstream() {
  stop();
}

void Upstream::start() {
  if (impl_->thread.joinable()) return;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stop_requested = false;
  }
  impl_->link = Impl::Link::kDown;
  impl_->next_connect = Clock::now();
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

void Upstream::stop() {
  if (!impl_->thread.joinable()) return;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stop_requested = true;
  }
  impl_->wake.notify_one();
  impl_->thread.join();
}

void Upstream::open_session(std::shared_ptr<Connection> connection,
                            std::shared_ptr<const MqttRouteConfig> route) {
  flows_[connection->id()] = std::make_shared<SessionFlow>(connection, unfinished_);
  impl_->post(SessionOpened{std::move(connection), std::move(route)});
}
void Upstream::session_message(ConnectionId id, Frame message) {
  auto flow = flows_.find(id);
  FlowTicket ticket(flow != flows_.end() ? flow->second : nullptr);
  impl_->post(SessionMessage{id, std::move(message), std::move(ticket)});
}
void Upstream::close_session(ConnectionId id) {
  flows_.erase(id);  // tickets still travelling keep it alive until they are done
  impl_->post(SessionClosed{id});
}

void Upstream::Impl::run() {
  char host[64] = "host";
  gethostname(host, sizeof host - 1);
  const std::string client_id =
      config.client_id_prefix + "-" + std::to_string(getpid()) + "-" +
      std::to_string(std::uniform_int_distribution<unsigned>(0, 0xffffff)(rng));
  try {
    client = std::make_unique<::mqtt::async_client>(
        config.uri, client_id,
        ::mqtt::create_options(config.mqtt_version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1));
    client->set_callback(*this);
  } catch (const std::exception& e) {
    WSB_LOG(kError) << "upstream " << config.name
                    << ": cannot create the MQTT client: " << e.what();
    return;
  }
  WSB_LOG(kInfo) << "upstream " << config.name << ": " << config.uri << " as " << client_id;

  std::deque<Event> batch;
  while (true) {
    {
      std::unique_lock lock(mutex);
      auto ready = [&] { return stop_requested || !queue.empty(); };
      if (link == Link::kDown) {
        wake.wait_until(lock, next_connect, ready);
      } else {
        wake.wait(lock, ready);
      }
      if (stop_requested) break;
      batch.swap(queue);
    }
    for (auto& event : batch) {
      try {
        std::visit([this](auto& e) { handle(e); }, event);
      } catch (const std::exception& e) {
        WSB_LOG(kError) << "upstream " << config.name << ": " << e.what();
      }
    }
    batch.clear();
    if (link == Link::kDown && Clock::now() >= next_connect) connect();
  }

  // Shutdown: leave the broker politely, then free the client here, never in a Paho callback.
  try {
    if (client->is_connected()) client->disconnect(1000)->wait_for(std::chrono::seconds(2));
  } catch (const std::exception& e) {
    WSB_LOG(kDebug) << "upstream " << config.name << ": disconnect: " << e.what();
  }
  client.reset();
}

// ---- broker connection -------------------------------------------------------------------------

std::chrono::milliseconds Upstream::Impl::backoff() {
  auto delay = config.reconnect_min;
  for (int i = 1; i < failures && delay < config.reconnect_max; ++i) delay *= 2;
  delay = std::min(delay, config.reconnect_max);
  // +-20% jitter, so many bridges do not reconnect to a restarted broker in lockstep.
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  return std::chrono::milliseconds(static_cast<long long>(delay.count() * jitter(rng)));
}

void Upstream::Impl::connect() {
  link = Link::kConnecting;
  const std::uint64_t gen = ++generation;
  ::mqtt::connect_options options;
  if (config.mqtt_version == 5) {
    // MQTT 5 refuses the 3.1.1 clean-session flag (-15): it has clean start instead.
    options.set_mqtt_version(MQTTVERSION_5);
    options.set_clean_session(false);
    options.set_clean_start(true);
  } else {
    options.set_mqtt_version(MQTTVERSION_3_1_1);
    options.set_clean_session(true);
  }
  options.set_keep_alive_interval(config.keepalive);
  options.set_connect_timeout(std::max<long long>(
      1, std::chrono::duration_cast<std::chrono::seconds>(config.connect_timeout).count()));
  options.set_automatic_reconnect(false);  // we reconnect ourselves, with our own backoff
  if (config.username) options.set_user_name(*config.username);
  if (config.password) options.set_password(*config.password);
  if (config.uri.starts_with("ssl://") || config.uri.starts_with("mqtts://")) {
    ::mqtt::ssl_options ssl;
    if (config.ca_file) ssl.set_trust_store(*config.ca_file);
    if (config.cert_file) ssl.set_key_store(*config.cert_file);
    if (config.key_file) ssl.set_private_key(*config.key_file);
    ssl.set_enable_server_cert_auth(config.verify_server);
    ssl.set_verify(config.verify_server);
    options.set_ssl(std::move(ssl));
  }
  const std::uint64_t seq = next_seq++;
  actions.emplace(seq, ConnectAction{gen});
  try {
    client->connect(options, seq_context(seq), *this);
  } catch (const std::exception& e) {
    actions.erase(seq);
    connect_failed(e.what());
  }
}

void Upstream::Impl::connect_failed(const std::string& why) {
  link = Link::kDown;
  ++failures;
  const auto delay = backoff();
  next_connect = Clock::now() + delay;
  // The first failure is worth a warning; repeats while it stays down are not.
  if (failures == 1) {
    WSB_LOG(kWarn) << "upstream " << config.name << ": cannot connect to " << config.uri << " ("
                   << why << "); retrying with backoff";
  } else {
    WSB_LOG(kDebug) << "upstream " << config.name << ": connect failed (" << why
                    << "), next try in " << delay.count() << "ms";
  }
}

void Upstream::Impl::on_connected() {
  failures = 0;
  if (ever_connected) reconnects.inc();
  ever_connected = true;
  set_link_up(true);  // before the log line, which tests and operators take as "it is up"
  WSB_LOG(kInfo) << "upstream " << config.name << ": connected to " << config.uri;
  // A clean session starts with no subscriptions: restore every active filter. The broker sends
  // their retained messages again, to every subscriber (values may have changed meanwhile).
  for (auto& [sid, session] : sessions) {
    for (const auto& filter : session.filters)
      rounds.wait(session.route->topic_prefix + filter, sid);
  }
  for (auto& [filter, state] : filters) {
    state.confirmed = false;
    send_subscribe(filter, state, true);
  }
  flush_buffered();
}

void Upstream::Impl::set_link_up(bool up) {
  const bool was_up = link == Link::kUp;
  link = up ? Link::kUp : Link::kDown;
  up_gauge.set(up ? 1 : 0);
  if (was_up == up) return;
  const Frame status = status_frame(up);
  for (auto& [id, s] : sessions) {
    if (!s.raw()) s.connection->send(status);
  }
}

void Upstream::Impl::handle(BrokerLost& e) {
  if (link != Link::kUp) return;
  WSB_LOG(kWarn) << "upstream " << config.name << ": connection lost ("
                 << (e.cause.empty() ? "no reason given" : e.cause) << "); reconnecting";
  set_link_up(false);
  // QoS 1/2 publishes in flight were not acknowledged to anyone: send them again after the
  // reconnect, in their original order, ahead of what was buffered meanwhile.
  std::vector<std::pair<std::uint64_t, PendingPublish>> in_flight;
  for (auto it = actions.begin(); it != actions.end();) {
    if (auto* p = std::get_if<PublishAction>(&it->second)) {
      in_flight.emplace_back(it->first, std::move(p->publish));
      it = actions.erase(it);
    } else {
      ++it;
    }
  }
  publishing = 0;
  std::sort(in_flight.begin(), in_flight.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  for (auto& [seq, p] : in_flight) buffered.push_front(std::move(p));
  for (auto& [filter, state] : filters) {
    state.confirmed = false;
    if (state.fence_pending) release_fenced(state);  // no answer will come on this connection
  }
  rounds.connection_lost();
  retained.clear();  // values may change or go while we are away: the resubscription tells
  failures = 1;
  next_connect = Clock::now() + backoff();
}

void Upstream::Impl::handle(ActionDone& e) {
  auto it = actions.find(e.seq);
  if (it == actions.end()) return;  // superseded (e.g. re-queued when the connection dropped)
  Action action = std::move(it->second);
  actions.erase(it);

  if (auto* c = std::get_if<ConnectAction>(&action)) {
    if (c->generation != generation) return;
    if (e.ok) {
      // (A broker without them would drop the connection at a SUBSCRIBE carrying one.)
      sub_ids_available = !e.no_sub_ids;
      on_connected();
    } else {
      connect_failed("return code " + std::to_string(e.return_code));
    }
    return;
  }

  if (auto* f = std::get_if<FenceAction>(&action)) {
    // (Answered with "no subscription existed": success or not, it is the answer we wait for.)
    if (f->generation != generation) return;
    rounds.close(f->filter);
    auto fit = filters.find(f->filter);
    if (fit != filters.end() && fit->second.subscribe_seq == f->subscribe_seq) {
      release_fenced(fit->second);
    }
    return;
  }

  if (auto* s = std::get_if<SubscribeAction>(&action)) {
    auto fit = filters.find(s->filter);
    if (fit == filters.end() || s->generation != generation || fit->second.subscribe_seq != e.seq) {
      return;
    }
    FilterState& state = fit->second;
    if (e.ok) {
      state.confirmed = true;
      if (state.fence_pending) {
        // (MQTT 5) acks and messages wait for the fence: see FenceAction.
        state.held_sessions = rounds.waiting(s->filter);
        for (ConnectionId id : state.held_sessions) held.try_emplace(id);
        for (auto& w : state.waiters) state.fenced.push_back(std::move(w));
        state.waiters.clear();
        rounds.acked(s->filter, Clock::now());
        return;
      }
      for (auto& w : state.waiters) {
        if (w.id) reply(w.session, ack_frame(*w.id));
      }
      state.waiters.clear();
      if (state.resend) {
        rounds.acked(s->filter, Clock::now());  // its retained copies follow: for its subscribers
      } else {
        for (ConnectionId sid : rounds.take_waiting(s->filter)) {
          auto sit = sessions.find(sid);
          if (sit != sessions.end()) deliver_retained(sit->second, s->filter);
        }
      }
      return;
    }
    if (link != Link::kUp) return;  // lost meanwhile: it is sent again after the reconnect
    WSB_LOG(kWarn) << "upstream " << config.name << ": broker refused SUBSCRIBE " << s->filter
                   << " (code " << e.return_code << ")";
    // Undo the subscription for everyone who asked for it.
    std::vector<ConnectionId> subscribers;
    for (auto& [sid, session] : sessions) {
      const std::string& prefix = session.route->topic_prefix;
      if (s->filter.starts_with(prefix) && session.filters.count(s->filter.substr(prefix.size()))) {
        subscribers.push_back(sid);
      }
    }
    const std::vector<Waiter> waiters = std::move(state.waiters);
    filter_of_sub_id.erase(state.sub_id);
    filters.erase(fit);
    for (ConnectionId sid : subscribers) {
      auto& session = sessions.at(sid);
      session.filters.erase(s->filter.substr(session.route->topic_prefix.size()));
      trie.remove(s->filter, sid);
      rounds.leave(s->filter, sid);
    }
    for (const auto& w : waiters) {
      reply(w.session, error_frame(w.id, "forbidden", "the broker refused the subscription"));
    }
    return;
  }

  auto& p = std::get<PublishAction>(action);
  --publishing;
  if (link == Link::kUp && !buffered.empty()) flush_buffered();  // the window has room again
  if (e.ok) {
    if (p.publish.id) reply(p.publish.session, ack_frame(*p.publish.id));
  } else if (link != Link::kUp || p.generation != generation) {
    buffered.push_front(std::move(p.publish));  // lost with the connection: send it again
  } else {
    fail_publish(
        p.publish, "upstream_unavailable",
        "the broker did not accept the publish (code " + std::to_string(e.return_code) + ")");
  }
}

// ---- sessions ----------------------------------------------------------------------------------

void Upstream::Impl::reply(ConnectionId id, Frame frame) {
  auto it = sessions.find(id);
  if (it != sessions.end()) it->second.connection->send(std::move(frame));
}

void Upstream::Impl::handle(SessionOpened& e) {
  const ConnectionId id = e.connection->id();
  const Identity& who = e.connection->identity();
  SessionState s;
  s.connection = std::move(e.connection);
  s.route = std::move(e.route);
  s.subscribe_acl = expand_acl(s.route->allow_subscribe, who.user, who.claims);
  s.publish_acl = expand_acl(s.route->allow_publish, who.user, who.claims);
  if (who.acl) {
    s.credential_subscribe_acl = expand_acl(who.acl->subscribe, who.user, who.claims);
    s.credential_publish_acl = expand_acl(who.acl->publish, who.user, who.claims);
  }
  auto& session = sessions.emplace(id, std::move(s)).first->second;
  if (session.raw()) {
    for (const auto& filter : session.route->subscribe) {
      subscribe(session, id, filter, session.route->qos, std::nullopt);
    }
  } else {
    session.connection->send(status_frame(link == Link::kUp));
  }
}

void Upstream::Impl::handle(SessionClosed& e) {
  auto it = sessions.find(e.id);
  if (it == sessions.end()) return;
  const std::vector<std::string> subscribed(it->second.filters.begin(), it->second.filters.end());
  for (const auto& filter : subscribed) unsubscribe(it->second, e.id, filter);
  held.erase(e.id);
  sessions.erase(it);
}

void Upstream::Impl::handle(SessionMessage& e) {
  auto it = sessions.find(e.id);
  if (it == sessions.end()) return;
  SessionState& s = it->second;
  if (s.raw()) {
    const auto& route = *s.route;
    if (!route.publish_topic) {
      s.connection->close(CloseCode::kPolicyViolation, "this route does not accept messages");
      return;
    }
    submit_publish(PendingPublish{e.id, std::nullopt, route.topic_prefix + *route.publish_topic,
                                  std::string(e.frame.payload()), route.qos, route.retain,
                                  std::move(e.ticket)});
    return;
  }
  if (!e.frame.is_text()) {
    s.connection->send(
        error_frame(std::nullopt, "bad_request", "this route speaks JSON: send text frames"));
    return;
  }
  json_request(s, e.id, e.frame.payload(), e.ticket);
}

void Upstream::Impl::json_request(SessionState& s, ConnectionId id, std::string_view text,
                                  FlowTicket& ticket) {
  auto parsed = parse_request(text);
  if (auto* err = std::get_if<RequestError>(&parsed)) {
    s.connection->send(error_frame(err->id, err->code, err->message));
    return;
  }
  Request& r = std::get<Request>(parsed);
  const auto& route = *s.route;
  if (r.qos > route.max_qos) {
    s.connection->send(error_frame(r.id, "bad_request",
                                   "qos " + std::to_string(r.qos) +
                                       " is above this route's max_qos " +
                                       std::to_string(route.max_qos)));
    return;
  }
  if (route.topic_prefix.size() + r.topic.size() > kMaxTopicBytes) {
    s.connection->send(error_frame(r.id, "bad_request", "topic too long with this route's prefix"));
    return;
  }
  switch (r.type) {
    case RequestType::kPing:
      s.connection->send(pong_frame(r.id));
      return;
    case RequestType::kSubscribe:
      if (!s.may_subscribe(r.topic)) {
        s.connection->send(error_frame(r.id, "forbidden",
                                       "subscribing to \"" + r.topic + "\" is not allowed here"));
        return;
      }
      if (s.filters.count(r.topic) == 0 && s.filters.size() >= route.max_subscriptions) {
        s.connection->send(error_frame(r.id, "forbidden",
                                       "at most " + std::to_string(route.max_subscriptions) +
                                           " subscriptions per connection"));
        return;
      }
      subscribe(s, id, r.topic, r.qos, std::move(r.id));
      return;
    case RequestType::kUnsubscribe:
      unsubscribe(s, id, r.topic);
      if (r.id) s.connection->send(ack_frame(*r.id));
      return;
    case RequestType::kPublish:
      if (!s.may_publish(r.topic)) {
        s.connection->send(error_frame(r.id, "forbidden",
                                       "publishing to \"" + r.topic + "\" is not allowed here"));
        return;
      }
      submit_publish(PendingPublish{id, std::move(r.id), route.topic_prefix + r.topic,
                                    std::move(r.payload), r.qos, r.retain, std::move(ticket)});
      return;
  }
}

// ---- subscriptions -----------------------------------------------------------------------------
//
// Retained messages (docs/ARCHITECTURE.md): the broker sends a filter's retained messages after
// the SUBACK of every SUBSCRIBE; `rounds` hands those copies to the sessions that caused it only.
// A session joining an active filter causes a fresh SUBSCRIBE on MQTT 3.1.1 (only the broker
// knows the retained values: a value retained while we are subscribed reaches us with retain=0);
// on MQTT 5 it is served from the cache, which Retain As Published keeps exact.

void Upstream::Impl::subscribe(SessionState& s, ConnectionId id, const std::string& filter, int qos,
                               std::optional<json> request_id) {
  const std::string broker_filter = s.route->topic_prefix + filter;
  if (!s.filters.insert(filter).second) {
    // Already subscribed: answer like the first time.
    if (request_id) s.connection->send(ack_frame(*request_id));
    return;
  }
  const bool first = trie.add(broker_filter, id);
  FilterState& state = filters[broker_filter];
  if (first) {
    state = FilterState{};
    state.qos = qos;
    state.sub_id = next_sub_id;
    filter_of_sub_id[next_sub_id] = broker_filter;
    next_sub_id = next_sub_id % 268'435'455 + 1;  // the protocol's largest
    state.waiters.push_back({id, std::move(request_id)});
    rounds.wait(broker_filter, id);
    if (link == Link::kUp) send_subscribe(broker_filter, state, true);
    return;
  }
  if (!state.confirmed || qos > state.qos || !caching()) {
    // Served by the next SUBACK and the copies that follow it: the one in flight, or a new
    // SUBSCRIBE (to raise the QoS the bridge receives this filter with, or on MQTT 3.1.1 to have
    // the retained messages sent again). Joiners until that SUBACK share it.
    const bool send = link == Link::kUp && (state.confirmed || qos > state.qos);
    // (An MQTT 5 QoS raise asks for no copies unless the ones of a SUBSCRIBE in flight are due.)
    const bool resend = !caching() || (!state.confirmed && state.resend);
    state.qos = std::max(state.qos, qos);
    state.confirmed = false;
    state.waiters.push_back({id, std::move(request_id)});
    rounds.wait(broker_filter, id);
    if (send) send_subscribe(broker_filter, state, resend);
    return;
  }
  // MQTT 5, the broker already sends this filter: no SUBSCRIBE, the cache has its retained values.
  if (request_id) s.connection->send(ack_frame(*request_id));
  rounds.join_open(broker_filter, id, deliver_retained(s, broker_filter), Clock::now());
}

void Upstream::Impl::send_subscribe(const std::string& broker_filter, FilterState& state,
                                    bool resend) {
  const std::uint64_t seq = next_seq++;
  state.subscribe_seq = seq;
  state.resend = resend;
  actions.emplace(seq, SubscribeAction{broker_filter, state.qos, generation});
  try {
    if (config.mqtt_version == 5) {
      const ::mqtt::subscribe_options options(
          false, true,
          resend ? ::mqtt::subscribe_options::SEND_RETAINED_ON_SUBSCRIBE
                 : ::mqtt::subscribe_options::SEND_RETAINED_ON_NEW);
      ::mqtt::properties props;
      if (sub_ids_available) {
        props.add(
            {::mqtt::property::SUBSCRIPTION_IDENTIFIER, static_cast<std::int32_t>(state.sub_id)});
      }
      client->subscribe(broker_filter, state.qos, seq_context(seq), *this, options, props);
      state.fence_pending = resend && send_fence(broker_filter, seq);
    } else {
      client->subscribe(broker_filter, state.qos, seq_context(seq), *this);
    }
  } catch (const std::exception& e) {
    // Not connected after all: the reconnect resubscribes every filter.
    actions.erase(seq);
    WSB_LOG(kDebug) << "upstream " << config.name << ": SUBSCRIBE " << broker_filter << ": "
                    << e.what();
  }
}

bool Upstream::Impl::send_fence(const std::string& broker_filter, std::uint64_t subscribe_seq) {
  const std::uint64_t seq = next_seq++;
  actions.emplace(seq, FenceAction{broker_filter, generation, subscribe_seq});
  try {
    client->unsubscribe(kFenceFilter, seq_context(seq), *this);
    return true;
  } catch (const std::exception& e) {
    actions.erase(seq);  // the copies' group then closes after RetainRounds::kQuiet
    WSB_LOG(kDebug) << "upstream " << config.name << ": fence UNSUBSCRIBE: " << e.what();
    return false;
  }
}

void Upstream::Impl::release_fenced(FilterState& state) {
  state.fence_pending = false;
  for (auto& w : state.fenced) {
    if (w.id) reply(w.session, ack_frame(*w.id));
  }
  state.fenced.clear();
  for (ConnectionId id : state.held_sessions) {
    auto h = held.find(id);
    if (h == held.end()) continue;
    auto frames = std::move(h->second);
    held.erase(h);
    auto it = sessions.find(id);
    if (it == sessions.end()) continue;
    for (auto& frame : frames) it->second.connection->send(std::move(frame));
  }
  state.held_sessions.clear();
}

void Upstream::Impl::unsubscribe(SessionState& s, ConnectionId id, const std::string& filter) {
  if (s.filters.erase(filter) == 0) return;
  const std::string broker_filter = s.route->topic_prefix + filter;
  rounds.leave(broker_filter, id);
  auto fit = filters.find(broker_filter);
  if (fit != filters.end()) {
    // A subscribe of this session still waiting for its SUBACK is answered now: the client
    // undid it itself.
    for (auto* waiters : {&fit->second.waiters, &fit->second.fenced}) {
      for (auto w = waiters->begin(); w != waiters->end();) {
        if (w->session == id) {
          if (w->id) s.connection->send(ack_frame(*w->id));
          w = waiters->erase(w);
        } else {
          ++w;
        }
      }
    }
    if (auto h = held.find(id); h != held.end()) {  // (after its ack, as it would have been)
      for (auto& frame : h->second) s.connection->send(std::move(frame));
      held.erase(h);
    }
  }
  if (!trie.remove(broker_filter, id)) return;
  // The last subscriber left: one UNSUBSCRIBE, and forget retained values nobody matches now.
  if (fit != filters.end()) {
    filter_of_sub_id.erase(fit->second.sub_id);
    filters.erase(fit);
  }
  if (link == Link::kUp) {
    try {
      client->unsubscribe(broker_filter);
    } catch (const std::exception& e) {
      WSB_LOG(kDebug) << "upstream " << config.name << ": UNSUBSCRIBE " << broker_filter << ": "
                      << e.what();
    }
  }
  for (auto it = retained.begin(); it != retained.end();) {
    matched.clear();
    trie.match(it->first, matched);
    it = matched.empty() ? retained.erase(it) : std::next(it);
  }
}

std::vector<std::string> Upstream::Impl::deliver_retained(SessionState& s,
                                                          const std::string& broker_filter) {
  std::vector<std::string> delivered;
  const std::string& prefix = s.route->topic_prefix;
  const auto now = Clock::now();
  for (const auto& [topic, value] : retained) {
    if (!filter_matches(broker_filter, topic) || !topic.starts_with(prefix)) continue;
    if (value.expires && *value.expires <= now) continue;  // the broker has dropped it too
    delivered.push_back(topic);
    if (s.raw()) {
      s.connection->send(is_valid_utf8(value.payload) ? Frame::text(value.payload)
                                                      : Frame::binary(value.payload));
    } else {
      s.connection->send(message_frame(std::string_view(topic).substr(prefix.size()), value.payload,
                                       value.qos, true));
    }
  }
  return delivered;
}

// ---- messages from the broker ------------------------------------------------------------------

void Upstream::Impl::cache_retained(const ::mqtt::message& m) {
  const std::string& topic = m.get_topic();
  if (m.get_payload().empty()) {
    retained.erase(topic);  // an empty retained message clears it
    return;
  }
  Retained value{m.get_payload_str(), m.get_qos(), std::nullopt};
  const auto& props = m.get_properties();
  if (props.count(::mqtt::property::MESSAGE_EXPIRY_INTERVAL) > 0) {
    value.expires = Clock::now() + std::chrono::seconds(::mqtt::get<uint32_t>(
                                       props, ::mqtt::property::MESSAGE_EXPIRY_INTERVAL));
  }
  auto it = retained.find(topic);
  if (it != retained.end()) {
    it->second = std::move(value);
  } else if (retained.size() < config.max_retained_cache) {
    retained.emplace(topic, std::move(value));
  } else if (!cache_full_warned) {
    cache_full_warned = true;
    WSB_LOG(kWarn) << "upstream " << config.name << ": the retained cache is full ("
                   << config.max_retained_cache
                   << ", max_retained_cache): late subscribers miss the values beyond it";
  }
}

void Upstream::Impl::handle(BrokerMessage& e) {
  const ::mqtt::message& m = *e.message;
  const std::string& topic = m.get_topic();
  const std::string& payload = m.get_payload_str();
  const int qos = m.get_qos();
  if (caching() && m.is_retained()) cache_retained(m);

  matched.clear();
  trie.match(topic, matched);
  // A retained copy (see rounds) goes only to the sessions whose SUBSCRIBE brought it. On MQTT 5
  // retain=1 is also how a live change of a retained value arrives (Retain As Published): live
  // for the sessions not waiting for copies. An empty one only ever comes live (a deletion).
  const bool copy = m.is_retained() && !(caching() && payload.empty());
  if (!copy) {
    rounds.live(topic);
    fan_out(matched, topic, payload, qos, false);
  } else {
    auto targets = rounds.copy(topic, Clock::now());
    fan_out(targets.deliver, topic, payload, qos, true);
    if (caching()) fan_out(live_on_mqtt5(m, targets.involved), topic, payload, qos, false);
  }
  broker_messages.inc();
  fanout_latency.observe(std::chrono::duration<double>(Clock::now() - e.arrived).count());
}

std::vector<SubscriberId> Upstream::Impl::live_on_mqtt5(const ::mqtt::message& m,
                                                        std::vector<ConnectionId>& involved) {
  // The subscriptions this message is for: a copy a SUBSCRIBE brought carries only that one's.
  std::vector<const std::string*> for_filters;
  const auto& props = m.get_properties();
  const std::size_t n = props.count(::mqtt::property::SUBSCRIPTION_IDENTIFIER);
  for (std::size_t i = 0; i < n; ++i) {
    auto it = filter_of_sub_id.find(
        ::mqtt::get<std::uint32_t>(props, ::mqtt::property::SUBSCRIPTION_IDENTIFIER, i));
    if (it != filter_of_sub_id.end()) for_filters.push_back(&it->second);
  }
  std::sort(involved.begin(), involved.end());
  std::vector<SubscriberId> live;
  for (SubscriberId id : matched) {
    if (std::binary_search(involved.begin(), involved.end(), id)) continue;
    auto it = sessions.find(id);
    if (it == sessions.end()) continue;
    const std::string& prefix = it->second.route->topic_prefix;
    // (A broker without Subscription Identifiers sends none: then everyone else takes it live.)
    const bool for_it =
        n == 0 || std::any_of(for_filters.begin(), for_filters.end(), [&](const std::string* f) {
          return f->starts_with(prefix) && it->second.filters.count(f->substr(prefix.size())) > 0;
        });
    if (for_it) live.push_back(id);
  }
  return live;
}

void Upstream::Impl::fan_out(const std::vector<SubscriberId>& ids, const std::string& topic,
                             const std::string& payload, int qos, bool retain) {
  // Serialize once per route (the topic as that route shows it), then share the Frame.
  std::vector<std::pair<const MqttRouteConfig*, std::optional<Frame>>> built;
  for (SubscriberId id : ids) {
    auto it = sessions.find(id);
    if (it == sessions.end()) continue;
    const MqttRouteConfig* route = it->second.route.get();
    auto b =
        std::find_if(built.begin(), built.end(), [&](const auto& x) { return x.first == route; });
    if (b == built.end()) {
      std::optional<Frame> frame;
      if (route->mode == RouteMode::kRaw) {
        frame = is_valid_utf8(payload) ? Frame::text(payload) : Frame::binary(payload);
        if (qos == 0) frame = frame->droppable();
      } else if (topic.starts_with(route->topic_prefix)) {
        // ("p/#" also matches "p" itself, which is outside the route's prefix: not shown.)
        frame = message_frame(std::string_view(topic).substr(route->topic_prefix.size()), payload,
                              qos, retain);
        // QoS 0 is at-most-once already: a slow client may lose it rather than stall.
        if (qos == 0) frame = frame->droppable();
      }
      b = built.insert(built.end(), {route, std::move(frame)});
    }
    if (!b->second) continue;
    if (!held.empty()) {
      if (auto h = held.find(id); h != held.end()) {
        h->second.push_back(*b->second);
        continue;
      }
    }
    it->second.connection->send(*b->second);
  }
}

// ---- publishing --------------------------------------------------------------------------------

void Upstream::Impl::submit_publish(PendingPublish p) {
  if (link == Link::kUp && p.qos > 0 && (publishing >= kPublishWindow || !buffered.empty())) {
    buffered.push_back(std::move(p));  // behind the others, sent as acks free the window
  } else if (link == Link::kUp) {
    do_publish(std::move(p));
  } else if (p.qos == 0) {
    fail_publish(p, "upstream_unavailable", "the broker is unreachable; QoS 0 is not buffered");
  } else if (buffered.size() < config.max_buffered_publishes) {
    buffered.push_back(std::move(p));  // answered once the broker takes it
  } else {
    fail_publish(p, "upstream_unavailable",
                 "the broker is unreachable and the publish buffer (" +
                     std::to_string(config.max_buffered_publishes) + ") is full");
  }
}

void Upstream::Impl::do_publish(PendingPublish p) {
  if (p.qos == 0) {
    try {
      client->publish(p.topic, p.payload.data(), p.payload.size(), 0, p.retain);
      if (p.id) reply(p.session, ack_frame(*p.id));
    } catch (const std::exception& e) {
      fail_publish(p, "upstream_unavailable", std::string("publish failed: ") + e.what());
    }
    return;
  }
  const std::uint64_t seq = next_seq++;
  auto& action = std::get<PublishAction>(
      actions.emplace(seq, PublishAction{std::move(p), generation}).first->second);
  const PendingPublish& q = action.publish;
  ++publishing;
  try {
    client->publish(q.topic, q.payload.data(), q.payload.size(), q.qos, q.retain, seq_context(seq),
                    *this);
  } catch (const std::exception& e) {
    PendingPublish back = std::move(action.publish);
    actions.erase(seq);
    --publishing;
    if (link != Link::kUp) {
      buffered.push_front(std::move(back));
    } else {
      fail_publish(back, "upstream_unavailable", std::string("publish failed: ") + e.what());
    }
  }
}

void Upstream::Impl::fail_publish(const PendingPublish& p, std::string_view code,
                                  const std::string& message) {
  auto it = sessions.find(p.session);
  if (it == sessions.end()) return;
  if (it->second.raw()) {
    // A raw route has no error frames: say it with the close code instead of dropping silently.
    it->second.connection->close(CloseCode::kTryAgainLater, message);
  } else {
    it->second.connection->send(error_frame(p.id, code, message));
  }
}

void Upstream::Impl::flush_buffered() {
  std::deque<PendingPublish> pending;
  pending.swap(buffered);
  while (!pending.empty() && link == Link::kUp &&
         (pending.front().qos == 0 || publishing < kPublishWindow)) {
    do_publish(std::move(pending.front()));
    pending.pop_front();
  }
  for (auto& p : pending) buffered.push_back(std::move(p));
}

}  // namespace wsbridge::mqtt
