// A frame whose payload is a pattern that starts at `seed`, so a test can tell frames (and
// offsets within them) apart byte for byte. Shared by the plain and TLS socket-writer tests.
#pragma once

#include <cstddef>
#include <string>

#include "wsbridge/plugin.hpp"

namespace wsbridge::testing {

// (Qualified: wsbridge::testing has a Frame of its own, the test client's.)
inline wsbridge::Frame patterned(wsbridge::FrameKind kind, std::size_t size, char seed) {
  std::string payload(size, '\0');
  for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<char>(seed + i % 251);
  return wsbridge::Frame(kind, payload);
}

}  // namespace wsbridge::testing
