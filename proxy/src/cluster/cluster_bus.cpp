#include "cluster/cluster_bus.hpp"

#include <mqtt/async_client.h>

#include <atomic>

#include "metrics/core_metrics.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge::cluster {

namespace {

constexpr auto kMaxBackoff = std::chrono::seconds(30);
constexpr int kQos = 1;
// The largest control message the broker may deliver (MQTT 5 Maximum Packet Size, which the
// broker honours by dropping larger ones): a list answer of an instance's every connection is the
// largest legitimate one (~300 bytes each). Without it anyone who can publish to the control
// topics made every instance take in, and copy, whatever size they sent before the seal check.
constexpr std::uint32_t kMaxControlPacketBytes = 32u * 1024 * 1024;

// Forged messages.
bool log_rejection_now() {
  static std::atomic<std::int64_t> last{0};
  return ClusterBus::once_in_a_while(last);
}

class ConnectFailure final : public ::mqtt::iaction_listener {
 public:
  explicit ConnectFailure(std::function<void()> failed) : failed_(std::move(failed)) {}
  void on_failure(const ::mqtt::token&) override { failed_(); }
  void on_success(const ::mqtt::token&) override {}  // (the connected handler takes it)

 private:
  std::function<void()> failed_;
};

}  // namespace

ClusterBus::ClusterBus(const Settings& settings, std::string instance, Handlers handlers)
    : settings_(settings),
      instance_(std::move(instance)),
      base_(settings.control_prefix + "/v1"),
      handlers_(std::move(handlers)),
      seal_(settings.secret, instance_) {
  core_metrics::cluster_peers_up(0);  // (shown from the start: nobody heard yet)
  // Not guessable: a broker takes a client id's connection from whoever connects with it next,
  // and the instance id is no secret (tokens and /healthz name it).
  client_ = std::make_unique<::mqtt::async_client>(settings_.broker,
                                                   "wsbridge-" + instance_ + "-" + random_hex(8),
                                                   ::mqtt::create_options(MQTTVERSION_5));
  client_->set_message_callback([this](const ::mqtt::const_message_ptr& m) {
    if (m->get_payload_ref().size() > kMaxControlPacketBytes) {  // (a broker that ignores it)
      core_metrics::cluster_message("in", "rejected");
      return;
    }
    const ::mqtt::properties& props = m->get_properties();
    std::string response_topic, correlation;
    if (props.contains(::mqtt::property::RESPONSE_TOPIC)) {
      response_topic = ::mqtt::get<std::string>(props, ::mqtt::property::RESPONSE_TOPIC);
    }
    if (props.contains(::mqtt::property::CORRELATION_DATA)) {
      correlation = ::mqtt::get<std::string>(props, ::mqtt::property::CORRELATION_DATA);
    }
    on_message(m->get_topic(), m->to_string(), response_topic, correlation);
  });
  connect_listener_ = std::make_unique<ConnectFailure>([this] {
    WSB_LOG(kDebug) << "cluster: connecting to " << settings_.broker << " failed";
    connect_failed();
  });
  client_->set_connected_handler([this](const std::string&) { on_connected(); });
  client_->set_connection_lost_handler([this](const std::string&) {
    WSB_LOG(kWarn) << "cluster: lost the broker " << settings_.broker << "; reconnecting";
    std::lock_guard lock(mutex_);
    connected_ = false;
    connecting_ = false;
    next_attempt_ = std::chrono::steady_clock::now() + backoff_;
    wake_.notify_all();
  });
}

ClusterBus::~ClusterBus() {
  stop();
  client_.reset();  // (first: its threads may still call back into the members below it)
}

void ClusterBus::start() {
  timer_ = std::thread([this] { run_timer(); });
}

void ClusterBus::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    wake_.notify_all();
  }
  if (timer_.joinable()) timer_.join();
  finish_gatherings(true);
  try {
    if (client_->is_connected()) {
      // Gone on purpose: no instance waits for this one's answers any more.
      const std::string epoch = current_epoch();
      const std::string presence = topic("presence/" + instance_);
      client_
          ->publish(::mqtt::make_message(
              presence, seal_.seal(presence, {{"up", false}, {"epoch", epoch}}), kQos, true))
          ->wait_for(1000);
      client_->disconnect()->wait_for(2000);
    }
  } catch (const ::mqtt::exception& e) {
    WSB_LOG(kDebug) << "cluster: disconnecting: " << e.what();
  }
}

void ClusterBus::connect() {
  ::mqtt::connect_options options;
  options.set_mqtt_version(MQTTVERSION_5);
  options.set_clean_session(false);  // (MQTT 5 refuses it: clean start instead)
  options.set_clean_start(true);
  options.set_keep_alive_interval(20);
  options.set_connect_timeout(5);
  options.set_automatic_reconnect(false);  // run_timer reconnects, with backoff
  if (settings_.username) options.set_user_name(*settings_.username);
  if (settings_.password) options.set_password(*settings_.password);
  if (settings_.broker.starts_with("ssl://")) {
    ::mqtt::ssl_options ssl;
    if (settings_.ca_file) ssl.set_trust_store(*settings_.ca_file);
    options.set_ssl(std::move(ssl));
  }
  // A crashed instance's presence is ended by the broker: the will names this connection's
  // epoch, so it ends this connection's "up" and no other (presence_book.hpp).
  std::string epoch = random_hex(16);
  {
    std::lock_guard lock(mutex_);
    epoch_ = epoch;
    connected_since_ms_ = unix_ms(std::chrono::system_clock::now());
  }
  const std::string presence = topic("presence/" + instance_);
  options.set_will(::mqtt::will_options(
      presence, seal_.seal(presence, {{"up", false}, {"epoch", epoch}}), kQos, true));
  ::mqtt::properties properties;
  properties.add(::mqtt::property(::mqtt::property::MAXIMUM_PACKET_SIZE, kMaxControlPacketBytes));
  options.set_properties(properties);
  try {
    client_->connect(options, nullptr, *connect_listener_);
  } catch (const ::mqtt::exception& e) {
    WSB_LOG(kWarn) << "cluster: cannot connect to " << settings_.broker << ": " << e.what();
    connect_failed();
  }
}

std::string ClusterBus::current_epoch() {
  std::lock_guard lock(mutex_);
  return epoch_;
}

void ClusterBus::connect_failed() {
  std::lock_guard lock(mutex_);
  connecting_ = false;
  next_attempt_ = std::chrono::steady_clock::now() + backoff_;
  backoff_ = std::min<std::chrono::milliseconds>(backoff_ * 2, kMaxBackoff);
  wake_.notify_all();
}

void ClusterBus::on_connected() {
  {
    std::lock_guard lock(mutex_);
    connected_ = true;
    connecting_ = false;
    backoff_ = std::chrono::milliseconds(1000);
    next_announce_ = std::chrono::steady_clock::now() + settings_.presence_interval;
  }
  try {
    auto filters = ::mqtt::string_collection::create(
        {topic("all/+"), topic("to/" + instance_ + "/+"), topic("presence/+")});
    client_->subscribe(filters, std::vector<int>{kQos, kQos, kQos});
    announce();
  } catch (const ::mqtt::exception& e) {
    WSB_LOG(kWarn) << "cluster: subscribing on " << settings_.broker << ": " << e.what();
  }
  WSB_LOG(kInfo) << "cluster: connected to " << settings_.broker << " as instance " << instance_
                 << " (control topics " << base_ << "/#)";
}

bool ClusterBus::publish(const std::string& topic, nlohmann::json fields, bool retained,
                         const std::string& response_topic, const std::string& correlation) {
  auto message = ::mqtt::make_message(topic, seal_.seal(topic, std::move(fields)), kQos, retained);
  if (!response_topic.empty() || !correlation.empty()) {
    ::mqtt::properties props;
    if (!response_topic.empty()) {
      props.add(::mqtt::property(::mqtt::property::RESPONSE_TOPIC, response_topic));
    }
    if (!correlation.empty()) {
      props.add(::mqtt::property(::mqtt::property::CORRELATION_DATA, correlation));
    }
    message->set_properties(props);
  }
  try {
    client_->publish(message);
    core_metrics::cluster_message("out", "sent");
    return true;
  } catch (const ::mqtt::exception& e) {
    core_metrics::cluster_message("out", "failed");
    WSB_LOG(kWarn) << "cluster: cannot publish to " << topic << ": " << e.what();
    return false;
  }
}

bool ClusterBus::push_everywhere(const nlohmann::json& request) {
  return publish(topic("all/push"), nlohmann::json{{"request", request}});
}

Forwarded ClusterBus::push_to(const std::string& instance, const nlohmann::json& request) {
  return send_to(instance, "push", nlohmann::json{{"request", request}});
}

Forwarded ClusterBus::close_on(const std::string& instance, ConnectionId id, std::uint16_t code,
                               const std::string& reason) {
  return send_to(instance, "close", nlohmann::json{{"id", id}, {"code", code}, {"reason", reason}});
}

Forwarded ClusterBus::send_to(const std::string& instance, std::string_view what,
                              nlohmann::json fields) {
  {
    std::lock_guard lock(mutex_);
    if (!connected_) return Forwarded::kChannelDown;
    // (An instance that never was, or is gone: reported, rather than "forwarded" to nobody.)
    expire_silent_instances();
    if (!presence_.is_up(instance)) return Forwarded::kNotUp;
  }
  return publish(topic("to/" + instance + "/" + std::string(what)), std::move(fields))
             ? Forwarded::kSent
             : Forwarded::kChannelDown;
}

bool ClusterBus::gather_sessions(std::function<void(ClusterListing)> done) {
  std::string correlation;
  {
    std::lock_guard lock(mutex_);
    if (!connected_) return false;
    correlation = instance_ + "/" + std::to_string(++next_gathering_);
    Gathering g;
    g.deadline = std::chrono::steady_clock::now() + settings_.request_timeout;
    expire_silent_instances();
    g.expected = presence_.up();
    g.done = std::move(done);
    gatherings_.emplace(correlation, std::move(g));
    wake_.notify_all();
  }
  const std::string reply_to = topic("to/" + instance_ + "/reply");
  publish(topic("all/list"), nlohmann::json{{"reply_to", reply_to}, {"correlation", correlation}},
          false, reply_to, correlation);
  finish_gatherings(false);  // (nobody else up: done at once)
  return true;
}

void ClusterBus::on_message(const std::string& topic, const std::string& payload,
                            const std::string& response_topic, const std::string& correlation) {
  const std::string presence = base_ + "/presence/";
  if (topic.starts_with(presence)) {
    on_presence(topic.substr(presence.size()), topic, payload);
    return;
  }
  std::string problem;
  const auto message = seal_.open(topic, payload, &problem);
  if (!message) {
    core_metrics::cluster_message("in", "rejected");
    if (log_rejection_now()) {
      WSB_LOG(kWarn) << "cluster: ignored a control message on " << topic << ": " << problem
                     << " (further ones are counted in wsbridge_cluster_messages_total)";
    }
    return;
  }
  if ((*message)["from"] == instance_) return;  // (our own broadcast, applied here already)
  const std::string mine = base_ + "/to/" + instance_ + "/";
  const std::string tail = topic.substr(base_.size() + 1);
  try {
    if (tail == "all/push" || topic == mine + "push") {
      handlers_.push(message->at("request"));
    } else if (topic == mine + "close") {
      handlers_.close(message->at("id").get<ConnectionId>(),
                      message->at("code").get<std::uint16_t>(),
                      message->at("reason").get<std::string>());
    } else if (tail == "all/list") {
      if (!answer_list(*message, response_topic, correlation)) {
        core_metrics::cluster_message("in", "malformed");
        return;
      }
    } else if (topic == mine + "reply") {
      on_reply(*message, correlation);
    } else {
      core_metrics::cluster_message("in", "malformed");
      return;
    }
  } catch (const nlohmann::json::exception& e) {
    core_metrics::cluster_message("in", "malformed");
    WSB_LOG(kWarn) << "cluster: a malformed control message on " << topic << ": " << e.what();
    return;
  }
  core_metrics::cluster_message("in", "accepted");
}

bool ClusterBus::answer_list(const nlohmann::json& message, const std::string& response_topic,
                             const std::string& correlation) {
  // The sealed reply address, which MQTT 5's properties must agree with; and only ever one of
  // an instance's reply topics, so no message can make us publish elsewhere.
  const std::string reply_to = message.at("reply_to").get<std::string>();
  const std::string id = message.at("correlation").get<std::string>();
  if (reply_to != base_ + "/to/" + message.at("from").get<std::string>() + "/reply" ||
      (!response_topic.empty() && response_topic != reply_to) ||
      (!correlation.empty() && correlation != id)) {
    return false;
  }
  publish(reply_to, nlohmann::json{{"correlation", id}, {"connections", handlers_.list()}}, false,
          {}, id);
  return true;
}

void ClusterBus::on_reply(const nlohmann::json& message, const std::string& correlation) {
  const std::string id = message.at("correlation").get<std::string>();
  if (!correlation.empty() && correlation != id) return;
  const nlohmann::json& connections = message.at("connections");
  if (!connections.is_array()) return;
  {
    std::lock_guard lock(mutex_);
    const auto it = gatherings_.find(id);
    if (it == gatherings_.end()) return;  // (late: that list was answered without it)
    const std::string from = message.at("from").get<std::string>();
    Gathering& g = it->second;
    if (std::find(g.listing.answered.begin(), g.listing.answered.end(), from) !=
        g.listing.answered.end()) {
      return;
    }
    g.listing.answered.push_back(from);
    for (const auto& entry : connections) g.listing.connections.push_back(entry);
    g.expected.erase(from);
  }
  finish_gatherings(false);
}

void ClusterBus::finish_gatherings(bool all) {
  std::vector<Gathering> finished;
  {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    for (auto it = gatherings_.begin(); it != gatherings_.end();) {
      if (all || it->second.expected.empty() || now >= it->second.deadline) {
        finished.push_back(std::move(it->second));
        it = gatherings_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (Gathering& g : finished) {
    g.listing.missing.assign(g.expected.begin(), g.expected.end());
    g.done(std::move(g.listing));
  }
}

void ClusterBus::run_timer() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const auto now = std::chrono::steady_clock::now();
    if (!connected_ && !connecting_ && now >= next_attempt_) {
      connecting_ = true;
      lock.unlock();
      connect();
      lock.lock();
      continue;
    }
    if (connected_ && now >= next_announce_) {
      next_announce_ = now + settings_.presence_interval;
      lock.unlock();
      announce();
      lock.lock();
      continue;
    }
    bool due = expire_silent_instances();
    auto until = now + std::chrono::seconds(5);
    if (!connected_ && !connecting_) until = std::min(until, next_attempt_);
    if (connected_) until = std::min(until, next_announce_);
    for (const auto& [id, g] : gatherings_) {
      due = due || g.expected.empty() || now >= g.deadline;
      until = std::min(until, g.deadline);
    }
    if (due) {
      lock.unlock();
      finish_gatherings(false);
      lock.lock();
      continue;
    }
    wake_.wait_until(lock, until);
  }
}

}  // namespace wsbridge::cluster
