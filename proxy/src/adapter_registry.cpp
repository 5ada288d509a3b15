#include "wsbridge/adapter_registry.hpp"

#include <stdexcept>

namespace wsbridge {

void AdapterRegistry::add(const std::string& name, KindFactory factory) {
  if (name.empty()) throw std::invalid_argument("adapter name must not be empty");
  if (!factory) throw std::invalid_argument("adapter '" + name + "' has no factory");
  if (!factories_.emplace(name, std::move(factory)).second) {
    throw std::invalid_argument("adapter '" + name + "' is registered twice");
  }
}

const AdapterRegistry::KindFactory* AdapterRegistry::find(std::string_view name) const {
  auto it = factories_.find(name);
  return it == factories_.end() ? nullptr : &it->second;
}

std::vector<std::string> AdapterRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, factory] : factories_) out.push_back(name);
  return out;
}

}  // namespace wsbridge
