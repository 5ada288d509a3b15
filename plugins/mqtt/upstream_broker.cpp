// The upstream's broker connection: connecting with backoff, the link going up and down, and the
// broker's answers to the worker's actions (connect, fence, subscribe, publish, ...).

#include "upstream_impl.hpp"

namespace wsbridge::mqtt {

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
  // Before the sessions are told: a session opening meanwhile either read the old value (told
  // "up": its SessionOpened, still queued, says "down"; not up: the worker tells it) or the new.
  link_up.store(up, std::memory_order_release);
  const Frame& status = up ? status_up : status_down;
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
      if (s->filter.starts_with(prefix) &&
          session.filters.contains(s->filter.substr(prefix.size()))) {
        subscribers.push_back(sid);
      }
    }
    const std::vector<Waiter> waiters = std::move(state.waiters);
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

}  // namespace wsbridge::mqtt
