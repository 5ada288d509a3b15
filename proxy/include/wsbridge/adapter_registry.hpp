// Adapter kinds by name. The built-in adapters are linked in and registered by
// `register_builtin_adapters`; tests and embedders may add their own.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "wsbridge/plugin.hpp"

namespace wsbridge {

class AdapterRegistry {
 public:
  using KindFactory = std::function<std::unique_ptr<AdapterKind>()>;

  // Throws std::invalid_argument when the name is taken or empty.
  void add(const std::string& name, KindFactory factory);
  // nullptr when unknown.
  const KindFactory* find(std::string_view name) const;
  std::vector<std::string> names() const;

 private:
  std::map<std::string, KindFactory, std::less<>> factories_;
};

// Registers every adapter compiled into this binary (generated from the plugins/ folders).
void register_builtin_adapters(AdapterRegistry& registry);

}  // namespace wsbridge
