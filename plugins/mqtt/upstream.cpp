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
  impl_->post(SessionOpened{std::move(connection), std::move(route)});
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

// Paho fails every operation still awaiting the broker (OPERATION_INCOMPLETE, or DISCONNECTED
// for one not sent yet) when the connection goes, and only then reports the loss: such a failure
// is not the broker's answer, and the reconnect sends the operation again.
static bool cut_off_by_connection_loss(int return_code) {
  return return_code == MQTTASYNC_OPERATION_INCOMPLETE || return_code == MQTTASYNC_DISCONNECTED;
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
    // Lost with the connection: it is sent again after the reconnect, its waiters kept.
    if (link != Link::kUp || cut_off_by_connection_loss(e.return_code)) return;
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
  if (!e.ok && link == Link::kUp && p.generation == generation &&
      cut_off_by_connection_loss(e.return_code)) {
    // Still in flight as far as we know: handle(BrokerLost), next, sends it again in order.
    actions.emplace(e.seq, std::move(action));
    return;
  }
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

}  // namespace wsbridge::mqtt
