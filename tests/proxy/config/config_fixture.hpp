// A config parsed from text with the built-in adapters, and the full error text of one that must
// fail ("test.toml:line:column: message").
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "config/server_config.hpp"
#include "wsbridge/adapter_registry.hpp"

namespace wsbridge::testing {

// The smallest listener a configuration needs, for tests about its other tables.
inline const std::string kListener = "[[listeners]]\nport = 1\n";
inline std::string with_listener(const std::string& toml) {
  return toml + kListener;
}

class ConfigTest : public ::testing::Test {
 protected:
  ConfigTest() { register_builtin_adapters(registry_); }

  ServerConfig parse(std::string_view text) { return parse_config(text, "test.toml", registry_); }

  std::string error_of(std::string_view text) {
    try {
      parse(text);
    } catch (const ConfigError& e) {
      return e.what();
    }
    ADD_FAILURE() << "config was accepted:\n" << text;
    return {};
  }

  AdapterRegistry registry_;
};

}  // namespace wsbridge::testing
