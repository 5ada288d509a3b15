// The upstream's lifecycle: start/stop, the adapter-facing entry points, and the worker's event
// loop.

#include <unistd.h>

#include "upstream_impl.hpp"

namespace wsbridge::mqtt {

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
  impl_->link_up.store(false, std::memory_order_relaxed);
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
  auto flow = std::make_shared<SessionFlow>(connection, unfinished_, config_.session_window);
  {
    std::lock_guard lock(flows_mutex_);
    flows_[connection->id()] = std::move(flow);
  }
  // A raw route subscribes at once, and while the link is not up the worker may hold a connect
  // that just succeeded: it is needed now, and sends a JSON session its status after that.
  if (route->mode == RouteMode::kRaw || !impl_->link_up.load(std::memory_order_acquire)) {
    impl_->post(SessionOpened{std::move(connection), std::move(route)});
    return;
  }
  // The link is up (the usual case): "up" from here, the service thread. Nothing the worker sends
  // the session can come before it, since the worker hears of the session only after this.
  connection->send(impl_->status_up);
  impl_->post_lazy(SessionOpened{std::move(connection), std::move(route), true});
}
void Upstream::session_message(ConnectionId id, Frame message) {
  std::shared_ptr<SessionFlow> flow;
  {
    std::lock_guard lock(flows_mutex_);
    if (auto it = flows_.find(id); it != flows_.end()) flow = it->second;
  }
  FlowTicket ticket(std::move(flow));
  impl_->post(SessionMessage{id, std::move(message), std::move(ticket)});
}
void Upstream::close_session(ConnectionId id) {
  {
    std::lock_guard lock(flows_mutex_);
    flows_.erase(id);  // tickets still travelling keep it alive until they are done
  }
  impl_->post_lazy(SessionClosed{id});  // the broker may keep its subscriptions kLazyDelay longer
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
      while (!stop_requested && !urgent) {
        // Wake-ups: an urgent event, the oldest lazy event's deadline, the next connect attempt.
        auto deadline = Clock::time_point::max();
        if (link == Link::kDown) deadline = next_connect;
        if (lazy_deadline) deadline = std::min(deadline, *lazy_deadline);
        if (deadline == Clock::time_point::max()) {
          wake.wait(lock);
        } else if (wake.wait_until(lock, deadline) == std::cv_status::timeout) {
          break;
        }
      }
      if (stop_requested) break;
      batch.swap(queue);
      urgent = false;
      lazy_deadline.reset();
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

}  // namespace wsbridge::mqtt
