// The mixed load of SoakTest.MixedLoadForAMinuteLosesNoQos1MessageAndLeaksNothing, one function
// per kind of client, each run on a thread of its own: the QoS 1 and bulk streams with their
// readers (soak_workers_streams.cpp) and the echo, churning and bad-input clients
// (soak_workers_clients.cpp). They report to the Phase, never with gtest assertions.
#pragma once

#include <atomic>
#include <string>

#include "soak_support.hpp"

namespace wsbridge::testing::soak {

constexpr int kQos1Subscribers = 4;
constexpr int kEchoClients = 3;
constexpr int kChurners = 2;

struct Phase {
  std::atomic<bool> stop{false};
  std::atomic<int> ready{0};             // subscribers subscribed, before the publishers start
  std::atomic<long> qos1_sent{0};        // published so far
  std::atomic<long> qos1_published{-1};  // set when the QoS 1 publisher has finished
  std::atomic<long> bulk_sent{0};
  std::atomic<long> bulk_published{-1};  // likewise for the QoS 0 bulk stream (and its end
                                         // marker, sent before this is set)
  std::atomic<long> echoes{0};
  std::atomic<long> churn_cycles{0};
  std::atomic<long> bad_inputs{0};
  std::atomic<long> slow_delivered{0};
  std::atomic<long> slow_dropped{0};
  Failures& failures;
  std::atomic<Clock::time_point> drain_deadline{Clock::time_point::max()};  // set at the end

  void fail(const std::string& who, const std::string& what) {
    failures.add(who + ": " + what);
    stop = true;
  }
  bool past_drain_deadline() const { return stop && Clock::now() > drain_deadline.load(); }
  std::atomic<Clock::time_point> stopped_at{Clock::time_point::max()};
  std::string since_stop() const {
    const auto at = stopped_at.load();
    if (at == Clock::time_point::max()) return ", during the load";
    return ", " + std::to_string(std::chrono::duration<double>(Clock::now() - at).count()) +
           " s after the load stopped";
  }
};

void qos1_subscriber(const WsbridgeInstance& server, Phase& phase, int index);
void qos1_publisher(const Mosquitto& broker, Phase& phase);
void bulk_publisher(const Mosquitto& broker, Phase& phase);
void slow_reader(const WsbridgeInstance& server, Phase& phase);
void stalled_reader(const WsbridgeInstance& server, Phase& phase);
void echo_client(const WsbridgeInstance& server, Phase& phase, int index);
void churner(const WsbridgeInstance& server, Phase& phase, int index);
void bad_input_client(const WsbridgeInstance& server, Phase& phase);

}  // namespace wsbridge::testing::soak
