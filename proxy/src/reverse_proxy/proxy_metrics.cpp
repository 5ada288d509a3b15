#include "reverse_proxy/proxy_metrics.hpp"

#include <array>
#include <map>
#include <mutex>
#include <string>

#include "wsbridge/metrics.hpp"

namespace wsbridge::reverse_proxy::proxy_metrics {

namespace {

constexpr std::string_view kRequests = "wsbridge_proxy_requests_total";
constexpr std::string_view kRequestsHelp =
    "Responses the reverse proxy gave, by [[proxy]] prefix and status class";

// Per thread, so the hot path takes no lock after the first response of each class.
metrics::Counter& requests(std::string_view proxy, unsigned status_class) {
  thread_local std::map<std::string, std::array<metrics::Counter*, 6>, std::less<>> cache;
  auto it = cache.find(proxy);
  if (it == cache.end())
    it = cache.emplace(std::string(proxy), std::array<metrics::Counter*, 6>{}).first;
  metrics::Counter*& counter = it->second[status_class];
  if (counter == nullptr) {
    counter = &metrics::Registry::global().counter(
        kRequests, kRequestsHelp,
        {{"proxy", std::string(proxy)}, {"code", std::to_string(status_class) + "xx"}});
  }
  return *counter;
}

}  // namespace

void response(std::string_view proxy, unsigned status) {
  const unsigned status_class = status / 100;
  requests(proxy, status_class >= 1 && status_class <= 5 ? status_class : 5).inc();
}

void backend_error(std::string_view proxy, std::string_view kind) {
  metrics::Registry::global()
      .counter("wsbridge_proxy_backend_errors_total",
               "Backend failures the reverse proxy met, by [[proxy]] prefix and kind",
               {{"proxy", std::string(proxy)}, {"kind", std::string(kind)}})
      .inc();
}

void refused(std::string_view proxy, std::string_view code) {
  metrics::Registry::global()
      .counter("wsbridge_proxy_refused_total",
               "Requests the reverse proxy refused before the backend, by prefix and reason",
               {{"proxy", std::string(proxy)}, {"reason", std::string(code)}})
      .inc();
}

void tunnel_opened(std::string_view proxy) {
  metrics::Registry::global()
      .gauge("wsbridge_proxy_tunnels", "WebSockets relayed to a backend now, by [[proxy]] prefix",
             {{"proxy", std::string(proxy)}})
      .add(1);
}

void tunnel_closed(std::string_view proxy) {
  metrics::Registry::global()
      .gauge("wsbridge_proxy_tunnels", "WebSockets relayed to a backend now, by [[proxy]] prefix",
             {{"proxy", std::string(proxy)}})
      .add(-1);
}

}  // namespace wsbridge::reverse_proxy::proxy_metrics
