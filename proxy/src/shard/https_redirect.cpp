// http:// to https://. The plain listener that only sends people to https (redirect_to_https):
// every request, an upgrade included, gets 301 (308 but for GET and HEAD) to the same path and
// query on the https port of the Host it named. And the HSTS of a TLS listener on the answers
// written below lws (lws adds it to its own).
#include "shard/shard_parts.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>

#include "http/http_reply.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge {
namespace {

// The host part of a Host header we are willing to put into a Location: a DNS name, an IPv4
// address or a bracketed IPv6 one, without its port. Anything else is not echoed back.
std::optional<std::string> host_without_port(std::string_view host) {
  if (host.empty() || host.size() > 255) return std::nullopt;
  std::string_view name = host;
  if (host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    name = host.substr(0, close + 1);
    const std::string_view after = host.substr(close + 1);
    if (!after.empty() && (after.front() != ':' || after.size() > 6 ||
                           after.find_first_not_of("0123456789", 1) != std::string_view::npos)) {
      return std::nullopt;
    }
    // An IPv6 address, which "[]" or "[::::]" is not.
    const std::string literal(name.substr(1, name.size() - 2));
    in6_addr address{};
    if (inet_pton(AF_INET6, literal.c_str(), &address) != 1) return std::nullopt;
    return std::string(name);
  }
  const auto colon = host.find(':');
  name = host.substr(0, colon);
  // A port, if any, is digits (the https port replaces it); a name is labels of letters,
  // digits and inner '-', 1 to 63 each ("a..b", "-a.b" and "a-.b" are no host name).
  if (colon != std::string_view::npos) {
    const std::string_view port = host.substr(colon + 1);
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos) {
      return std::nullopt;
    }
  }
  if (!text::is_dns_name(name)) return std::nullopt;
  return std::string(name);
}

// lws hands over the path and the query decoded: encode them again for the Location (a decoded
// CR LF must never reach a header), keeping `keep` as it is.
std::string percent_encoded(std::string_view text, std::string_view keep) {
  return text::percent_encoded(text, [keep](unsigned char u) {
    const bool unreserved = std::isalnum(u) != 0 || u == '-' || u == '.' || u == '_' || u == '~';
    return !unreserved && keep.find(static_cast<char>(u)) == std::string_view::npos;
  });
}

}  // namespace

const ListenerConfig* Shard::listener_of(lws* wsi) const {
  const auto it = listener_of_vhost_.find(lws_get_vhost(wsi));
  return it != listener_of_vhost_.end() ? it->second : nullptr;
}

std::optional<std::size_t> Shard::listener_index(const lws_vhost* vhost) const {
  const auto it = std::find(listener_vhosts_.begin(), listener_vhosts_.end(), vhost);
  if (it == listener_vhosts_.end()) return std::nullopt;
  return static_cast<std::size_t>(it - listener_vhosts_.begin());
}

int Shard::redirect_to_https(lws* wsi, std::uint16_t https_port) {
  const ListenerConfig* listener = listener_of(wsi);
  std::string host = listener != nullptr ? listener->address : "localhost";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  if (auto named = host_without_port(header(wsi, WSI_TOKEN_HOST))) host = *named;
  // Whatever the method (the path is in lws' token of that method).
  char* uri = nullptr;
  int uri_len = 0;
  const int method = lws_http_get_uri_and_method(wsi, &uri, &uri_len);
  std::string path = method >= 0 && uri_len > 0
                         ? std::string(uri, static_cast<std::size_t>(uri_len))
                         : std::string();
  if (path.empty() || path.front() != '/') path = "/";
  std::string target = percent_encoded(path, "/");
  const auto args = query_arguments(wsi);
  for (std::size_t i = 0; i < args.size(); ++i) {
    target += (i == 0 ? "?" : "&") + percent_encoded(args[i], "=");
  }
  const std::string location =
      "https://" + host + (https_port == 443 ? "" : ":" + std::to_string(https_port)) + target;
  // 308 keeps a POST a POST (RFC 9110 15.4.9); 301 lets a client turn it into a GET.
  const unsigned status = method == kLwsGet || method == kLwsHead ? 301 : 308;
  write_http_reply(wsi, status, "text/plain", "this server speaks https: " + location + "\n",
                   {{"Location:", location}, {"Connection:", "close"}});
  return -1;  // closed once the answer is out
}

std::string own_answer_lines(const ListenerConfig& listener) {
  if (!listener.tls || listener.tls->settings().hsts.empty()) return {};
  return "Strict-Transport-Security: " + listener.tls->settings().hsts + "\r\n";
}

const std::string& Shard::own_answer_headers(const lws_vhost* vhost) const {
  static const std::string kNone;
  const auto i = listener_index(vhost);
  if (!i || *i >= lws_tables_->own_answer_headers.size()) return kNone;  // (the admin listener)
  return lws_tables_->own_answer_headers[*i];
}

}  // namespace wsbridge
