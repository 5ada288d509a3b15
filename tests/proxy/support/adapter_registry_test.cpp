// The adapter registry (proxy/src/support/adapter_registry.cpp): adapters by name and the
// config sections they own.
#include <gtest/gtest.h>

#include "echo_adapter.hpp"
#include "wsbridge/adapter_registry.hpp"

namespace wsbridge {
namespace {

TEST(AdapterRegistryTest, RegistersByName) {
  AdapterRegistry registry;
  register_builtin_adapters(registry);
  EXPECT_NE(registry.find("echo"), nullptr);
  EXPECT_EQ(registry.find("nope"), nullptr);
  EXPECT_THROW(registry.add("echo", [] { return std::make_unique<echo::EchoKind>(); }),
               std::invalid_argument);
  EXPECT_THROW(registry.add("", [] { return std::make_unique<echo::EchoKind>(); }),
               std::invalid_argument);
  EXPECT_EQ(registry.names(), (std::vector<std::string>{"echo", "http", "mqtt"}));
  EXPECT_EQ(registry.section_owner("upstreams"), "mqtt");
  EXPECT_EQ(registry.section_owner("listeners"), "");
  auto factory = [] { return std::make_unique<echo::EchoKind>(); };
  EXPECT_THROW(registry.add("other", factory, {"upstreams"}), std::invalid_argument);
  EXPECT_THROW(registry.add("other", factory, {"routes"}), std::invalid_argument);
  EXPECT_EQ(registry.find("other"), nullptr);  // a refused registration leaves nothing behind
}

}  // namespace
}  // namespace wsbridge
