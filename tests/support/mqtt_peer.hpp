// A plain MQTT client (Paho C++, synchronous) playing the device or backend side in tests.
#pragma once

#include <mqtt/client.h>

#include <chrono>
#include <optional>
#include <random>
#include <string>

namespace wsbridge::testing {

class MqttPeer {
 public:
  explicit MqttPeer(const std::string& uri, const std::string& name = "peer")
      : client_(uri, name + "-" + std::to_string(std::random_device{}())) {
    ::mqtt::connect_options options;
    options.set_clean_session(true);
    options.set_connect_timeout(5);
    client_.start_consuming();
    client_.connect(options);
  }
  ~MqttPeer() {
    try {
      if (client_.is_connected()) client_.disconnect();
    } catch (...) {
    }
  }
  void subscribe(const std::string& filter, int qos = 1) { client_.subscribe(filter, qos); }
  void publish(const std::string& topic, const std::string& payload, int qos = 1,
               bool retain = false) {
    client_.publish(topic, payload.data(), payload.size(), qos, retain);
  }
  // The next message, or nullopt after `timeout`.
  std::optional<::mqtt::const_message_ptr> next(
      std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    ::mqtt::const_message_ptr message;
    if (client_.try_consume_message_for(&message, timeout) && message) return message;
    return std::nullopt;
  }

 private:
  ::mqtt::client client_;
};

}  // namespace wsbridge::testing
