#include "wsbridge/adapter_registry.hpp"

#include <stdexcept>

namespace wsbridge {

void AdapterRegistry::add(const std::string& name, KindFactory factory,
                          std::vector<std::string> sections) {
  if (name.empty()) throw std::invalid_argument("adapter name must not be empty");
  if (!factory) throw std::invalid_argument("adapter '" + name + "' has no factory");
  for (const auto& section : sections) {
    if (section == "server" || section == "listeners" || section == "routes" ||
        section == "limits" || section == "jwt" || section == "api_keys" || section == "admin" ||
        section_owners_.count(section) != 0) {
      throw std::invalid_argument("adapter '" + name + "' claims section '" + section +
                                  "', which is taken");
    }
  }
  if (factories_.count(name) != 0) {
    throw std::invalid_argument("adapter '" + name + "' is registered twice");
  }
  for (auto& section : sections) section_owners_.emplace(std::move(section), name);
  factories_.emplace(name, std::move(factory));
}

std::string AdapterRegistry::section_owner(std::string_view section) const {
  auto it = section_owners_.find(section);
  return it == section_owners_.end() ? std::string() : it->second;
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
