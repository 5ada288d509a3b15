// The configuration loader on arbitrary TOML: parse_config(input, "fuzz.toml", builtin adapters)
// must return a ServerConfig or throw ConfigError. Any other exception escapes this function and
// libFuzzer reports it as a crash (an uncaught exception aborts).
//
// Only parsing: the mqtt adapter builds config objects in create_route and starts no thread
// before AdapterKind::start(), which is never called here. Relative file names in the input
// (public_key_file, jwks_file, static_dir, ca_file, ...) resolve against the working directory.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "config/server_config.hpp"
#include "fuzz_check.hpp"
#include "wsbridge/adapter_registry.hpp"
#include "wsbridge/log.hpp"

namespace {

const wsbridge::AdapterRegistry& registry() {
  static const wsbridge::AdapterRegistry instance = [] {
    wsbridge::AdapterRegistry r;
    wsbridge::register_builtin_adapters(r);
    return r;
  }();
  return instance;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = [] {
    wsbridge::set_log_level(wsbridge::LogLevel::kError);
    return true;
  }();
  (void)quiet;

  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const wsbridge::ServerConfig config = wsbridge::parse_config(text, "fuzz.toml", registry());
    // A config that loads is a config that can run: every route has its adapter.
    for (const auto& route : config.routes) {
      if (!route.adapter) {
        wsbridge_fuzz::fail("fuzz_config", "a route loaded without an adapter", {route.path});
      }
    }
    if (config.listeners.empty()) {
      wsbridge_fuzz::fail("fuzz_config", "a config without listeners loaded");
    }
  } catch (const wsbridge::ConfigError& e) {
    if (e.where().file != "fuzz.toml") {
      wsbridge_fuzz::fail("fuzz_config", "ConfigError names another file than fuzz.toml",
                          {e.where().file, e.what()});
    }
  }
  return 0;
}
