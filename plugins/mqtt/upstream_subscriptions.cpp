#include "upstream_impl.hpp"
#include "wsbridge/fan_out.hpp"

namespace wsbridge::mqtt {

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
  if (!s.filters.insert(filter)) {
    return subscribe_again(s, id, broker_filter, qos, std::move(request_id));
  }
  const bool first = trie.add(broker_filter, id);
  FilterState& state = filters[broker_filter];
  if (first) {
    state = FilterState{};
    state.qos = qos;
    state.sub_id = next_sub_id;
    next_sub_id = next_sub_id % 268'435'455 + 1;  // the protocol's largest
    state.waiters.push_back({id, std::move(request_id)});
    rounds.wait(broker_filter, id);
    if (link == Link::kUp) send_subscribe(broker_filter, state, true);
    return;
  }
  if (!state.confirmed || qos > state.qos || !caching()) {
    // Served by the next SUBACK and the copies that follow it. Joiners until then share it.
    rounds.wait(broker_filter, id);
    await_suback(broker_filter, state, id, qos, std::move(request_id));
    return;
  }
  // MQTT 5, the broker already sends this filter: no SUBSCRIBE, the cache has its retained values.
  if (request_id) s.connection->send(ack_frame(*request_id));
  rounds.join_open(broker_filter, id, deliver_retained(s, broker_filter), Clock::now());
}

// A session subscribing to a filter it has. It was acknowledged at once, at the filter's QoS and
// before the broker had answered: now it waits for the broker's SUBACK when one is in flight (a
// refusal reaches it too), and a higher QoS is asked of the broker (else a QoS 2 message came as
// QoS 0, which a slow consumer's drop_oldest may discard). No retained copies: it has them.
void Upstream::Impl::subscribe_again(SessionState& s, ConnectionId id,
                                     const std::string& broker_filter, int qos,
                                     std::optional<json> request_id) {
  FilterState& state = filters[broker_filter];
  if (state.confirmed && qos <= state.qos) {
    if (request_id) s.connection->send(ack_frame(*request_id));
    return;
  }
  await_suback(broker_filter, state, id, qos, std::move(request_id));
}

// The session is answered with the filter's next SUBACK: the one in flight, or that of a new
// SUBSCRIBE (to raise the QoS the bridge receives this filter with, or on MQTT 3.1.1 to have the
// retained messages sent again).
void Upstream::Impl::await_suback(const std::string& broker_filter, FilterState& state,
                                  ConnectionId id, int qos, std::optional<json> request_id) {
  const bool send = link == Link::kUp && (state.confirmed || qos > state.qos);
  // (An MQTT 5 QoS raise asks for no copies unless the ones of a SUBSCRIBE in flight are due.)
  const bool resend = !caching() || (!state.confirmed && state.resend);
  state.qos = std::max(state.qos, qos);
  state.confirmed = false;
  state.waiters.push_back({id, std::move(request_id)});
  if (send) send_subscribe(broker_filter, state, resend);
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
  if (!s.filters.erase(filter)) return;
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
    if (caching()) {
      fan_out(once_per_session(topic, subscription_ids(m)), topic, payload, qos, false);
    } else {
      fan_out(matched, topic, payload, qos, false);
    }
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
  // A copy a SUBSCRIBE brought carries only that subscription's identifier.
  const std::vector<std::uint32_t> ids = subscription_ids(m);
  std::sort(involved.begin(), involved.end());
  std::vector<SubscriberId> live;
  for (SubscriberId id : matched) {
    if (std::binary_search(involved.begin(), involved.end(), id)) continue;
    auto it = sessions.find(id);
    if (it != sessions.end() && copy_is_for(it->second, m.get_topic(), ids)) live.push_back(id);
  }
  return live;
}

std::vector<std::uint32_t> Upstream::Impl::subscription_ids(const ::mqtt::message& m) {
  const auto& props = m.get_properties();
  const std::size_t n = props.count(::mqtt::property::SUBSCRIPTION_IDENTIFIER);
  std::vector<std::uint32_t> ids;
  ids.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    ids.push_back(::mqtt::get<std::uint32_t>(props, ::mqtt::property::SUBSCRIPTION_IDENTIFIER, i));
  }
  return ids;
}

bool Upstream::Impl::copy_is_for(const SessionState& s, const std::string& topic,
                                 const std::vector<std::uint32_t>& ids) {
  if (ids.empty()) return true;
  std::uint32_t smallest = 0;
  for (const std::string& filter : s.filters) {
    broker_filter_scratch.assign(s.route->topic_prefix).append(filter);
    if (!filter_matches(broker_filter_scratch, topic)) continue;
    auto it = filters.find(broker_filter_scratch);
    if (it == filters.end() || it->second.sub_id == 0) continue;
    if (smallest == 0 || it->second.sub_id < smallest) smallest = it->second.sub_id;
  }
  // (None of its filters has an identifier the copy could name: it takes every copy.)
  return smallest == 0 || std::find(ids.begin(), ids.end(), smallest) != ids.end();
}

std::vector<SubscriberId> Upstream::Impl::once_per_session(const std::string& topic,
                                                           const std::vector<std::uint32_t>& ids) {
  if (ids.empty()) return matched;
  std::vector<SubscriberId> taking;
  taking.reserve(matched.size());
  for (SubscriberId id : matched) {
    auto it = sessions.find(id);
    if (it != sessions.end() && copy_is_for(it->second, topic, ids)) taking.push_back(id);
  }
  return taking;
}

void Upstream::Impl::fan_out(const std::vector<SubscriberId>& ids, const std::string& topic,
                             const std::string& payload, int qos, bool retain) {
  // Serialize once per route (the topic as that route shows it), then share the Frame, handed
  // to each shard once for all its subscribers (send_to_all).
  struct Built {
    const MqttRouteConfig* route;
    std::optional<Frame> frame;
    std::vector<std::shared_ptr<Connection>> to;
  };
  std::vector<Built> built;
  for (SubscriberId id : ids) {
    auto it = sessions.find(id);
    if (it == sessions.end()) continue;
    const MqttRouteConfig* route = it->second.route.get();
    auto b =
        std::find_if(built.begin(), built.end(), [&](const auto& x) { return x.route == route; });
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
      b = built.insert(built.end(), Built{route, std::move(frame), {}});
    }
    if (!b->frame) continue;
    if (!held.empty()) {
      if (auto h = held.find(id); h != held.end()) {
        h->second.push_back(*b->frame);
        continue;
      }
    }
    b->to.push_back(it->second.connection);
  }
  for (const auto& b : built) {
    if (!b.frame || b.to.empty()) continue;
    const FanOutResult r = send_to_all(b.to, *b.frame);
    // Counted, so operators see subscribers falling behind before (and while) they lose data.
    behind_high_water.inc(r.over_high_water);
    behind_dropped.inc(r.dropped);
  }
}

}  // namespace wsbridge::mqtt
