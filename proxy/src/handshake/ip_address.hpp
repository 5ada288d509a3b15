// IP address literals, as the configuration, the admin listener's Host check and TLS host-name
// verification need them.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

namespace wsbridge {

// "127.0.0.1", "::1", "fe80::1": true; names, bracketed or ported forms: false.
inline bool is_ip_literal(const std::string& text) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

}  // namespace wsbridge
