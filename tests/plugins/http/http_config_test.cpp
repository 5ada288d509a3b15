// The http route configuration (plugins/http/http_config.cpp), read through the real config
// loader: every error with its position.
#include <gtest/gtest.h>

#include "config/server_config.hpp"
#include "wsbridge/adapter_registry.hpp"

namespace wsbridge {
namespace {

ServerConfig load(const std::string& text) {
  static AdapterRegistry registry = [] {
    AdapterRegistry r;
    register_builtin_adapters(r);
    return r;
  }();
  return parse_config(text, "test.toml", registry);
}

TEST(HttpConfigTest, RouteOptionsAreValidatedWithPositions) {
  const std::string head =
      "[[listeners]]\nport = 1\n[[routes]]\npath = \"/h\"\nadapter = \"http\"\n";
  EXPECT_NO_THROW(load(head + "backend = \"http://127.0.0.1:9/x\"\nmode = \"rpc\"\n"
                              "methods = [\"get\"]\npaths = [\"/a\"]\ntimeout = \"2s\"\n"
                              "headers = { X-Key = \"k\" }\n"));
  struct Bad {
    std::string text;
    std::string message;
  } cases[] = {
      {"backend = \"ftp://x\"\n", "test.toml:6:11"},
      {"", "backend"},
      {"backend = \"http://h/\"\nmode = \"stream\"\n", "'mode'"},
      {"backend = \"http://h/\"\nmethods = [\"GET\"]\n", "rpc routes"},
      {"backend = \"http://h/\"\nmode = \"rpc\"\npaths = [\"/a/../b\"]\n", "'paths'"},
      {"backend = \"http://h/\"\nmode = \"rpc\"\nmethods = [\"CONNECT\"]\n", "CONNECT"},
      {"backend = \"http://h/\"\nheaders = { X-Key = \"a\\r\\nb\" }\n", "CR, LF"},
      {"backend = \"http://h/\"\nca_file = \"/nonexistent.pem\"\n", "does not exist"},
      {"backend = \"http://h/\"\ntimeout = \"0s\"\n", "timeout"},
      {"backend = \"http://h/\"\nbogus = 1\n", "bogus"},
  };
  for (const auto& c : cases) {
    try {
      load(head + c.text);
      ADD_FAILURE() << "accepted: " << c.text;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos)
          << c.text << " -> " << e.what();
    }
  }
}

}  // namespace
}  // namespace wsbridge
