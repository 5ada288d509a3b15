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

  // Throws std::invalid_argument when the name is taken or empty, or a section is claimed twice.
  // `sections` are top-level config tables this kind reads (AdapterKind::configure_section).
  void add(const std::string& name, KindFactory factory, std::vector<std::string> sections = {});
  // nullptr when unknown.
  const KindFactory* find(std::string_view name) const;
  std::vector<std::string> names() const;
  // The adapter name that claimed a top-level section; empty when none did.
  std::string section_owner(std::string_view section) const;

 private:
  std::map<std::string, KindFactory, std::less<>> factories_;
  std::map<std::string, std::string, std::less<>> section_owners_;
};

// Registers every adapter compiled into this binary (generated from the plugins/ folders).
void register_builtin_adapters(AdapterRegistry& registry);

}  // namespace wsbridge
