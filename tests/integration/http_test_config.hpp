// What the http adapter's integration tests (http_test.cpp, http_lifecycle_test.cpp) share: the
// secrets they hand wsbridge and the backend's address in a config.
#pragma once

#include <string>

#include "integration/wsbridge_instance.hpp"
#include "support/http_backend.hpp"

namespace wsbridge::testing {

inline const std::string kSecret = "an-hmac-secret-of-at-least-32-bytes!";
inline const std::string kAdminToken = "push-admin-token";

// Replaces ${BACKEND} (the backend's base URL) and ${BACKEND_PORT} before WsbridgeInstance
// fills in its own ports.
inline std::string with_backend(std::string config, const HttpBackend& backend) {
  WsbridgeInstance::replace_all(config, "${BACKEND}", backend.base_url());
  WsbridgeInstance::replace_all(config, "${BACKEND_PORT}", std::to_string(backend.port()));
  return config;
}

}  // namespace wsbridge::testing
