// Probes of the soak tests (soak_test.cpp): the flavour's scale, what the kernel says about the
// wsbridge process (descriptors, RSS), what the broker says about its subscriptions, and the
// clean exit every test ends with.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "support/mosquitto.hpp"
#include "wsbridge_instance.hpp"

namespace wsbridge::testing::soak {

using Clock = std::chrono::steady_clock;

// ---- flavour and scale -------------------------------------------------------------------------

bool sanitized();
int churn_cycles();
int soak_seconds();
std::chrono::milliseconds patience(std::chrono::milliseconds release);

// ---- what the kernel says about the wsbridge process -------------------------------------------

int fd_count(int pid);
std::string describe_fds(int pid);

struct Snapshot {
  int fds = 0;
  long rss_kib = 0;
};

Snapshot settle(const WsbridgeInstance& server, std::optional<int> expected_fds);

// ---- the broker's view of wsbridge's subscriptions ---------------------------------------------

// Mosquitto (log_type all) logs "<client id> <qos> <filter>" for each SUBSCRIBE'd filter and
// "<client id> <filter>" for each UNSUBSCRIBE'd one. wsbridge's client ids start "wsbridge-".
struct BrokerSubscriptions {
  std::map<std::string, int> subscribes;
  std::map<std::string, int> unsubscribes;
  std::set<std::string> active;  // subscribed at the broker now, by the order of the log
};

BrokerSubscriptions wait_all_released(const Mosquitto& broker);
std::string first_few(const std::set<std::string>& s);

// ---- the end of every test ---------------------------------------------------------------------

void stop_and_expect_clean_exit(WsbridgeInstance& server);

}  // namespace wsbridge::testing::soak
