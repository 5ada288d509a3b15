#include "topic_trie.hpp"

#include <algorithm>
#include <functional>

namespace wsbridge::mqtt {

struct TopicTrie::Node {
  std::map<std::string, std::unique_ptr<Node>, std::less<>> children;
  std::unordered_set<SubscriberId> subscribers;  // of the filter ending at this node
  bool empty() const { return children.empty() && subscribers.empty(); }
};

namespace {

// Calls f(level) for each '/'-separated level of s, without allocating.
template <typename F>
void for_each_level(std::string_view s, F&& f) {
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      f(s.substr(start));
      return;
    }
    f(s.substr(start, slash - start));
    start = slash + 1;
  }
}

}  // namespace

TopicTrie::TopicTrie() : root_(std::make_unique<Node>()) {}
TopicTrie::~TopicTrie() = default;

bool TopicTrie::add(std::string_view filter, SubscriberId id) {
  Node* node = root_.get();
  for_each_level(filter, [&](std::string_view level) {
    auto it = node->children.find(level);
    if (it == node->children.end()) {
      it = node->children.emplace(std::string(level), std::make_unique<Node>()).first;
    }
    node = it->second.get();
  });
  const bool first = node->subscribers.empty();
  return node->subscribers.insert(id).second && first;
}

bool TopicTrie::remove(std::string_view filter, SubscriberId id) {
  std::vector<std::pair<Node*, std::string_view>> path;  // parent, level taken from it
  Node* node = root_.get();
  bool found = true;
  for_each_level(filter, [&](std::string_view level) {
    if (!found) return;
    auto it = node->children.find(level);
    if (it == node->children.end()) {
      found = false;
      return;
    }
    path.emplace_back(node, level);
    node = it->second.get();
  });
  if (!found || node->subscribers.erase(id) == 0) return false;
  const bool last = node->subscribers.empty();
  // Prune nodes left with nothing, from the leaf up.
  for (auto it = path.rbegin(); it != path.rend(); ++it) {
    auto child = it->first->children.find(it->second);
    if (!child->second->empty()) break;
    it->first->children.erase(child);
  }
  return last;
}

void TopicTrie::match(std::string_view topic, std::vector<SubscriberId>& out) const {
  const std::size_t before = out.size();
  std::vector<std::string_view> levels;
  for_each_level(topic, [&](std::string_view level) { levels.push_back(level); });
  const bool dollar = !topic.empty() && topic.front() == '$';

  // Depth-first over the nodes that can match levels[depth...].
  std::function<void(const Node&, std::size_t)> walk = [&](const Node& node, std::size_t depth) {
    // A leading wildcard does not match a topic starting with '$'.
    const bool wild_ok = !(dollar && depth == 0);
    if (wild_ok) {
      if (auto hash = node.children.find("#"); hash != node.children.end()) {
        out.insert(out.end(), hash->second->subscribers.begin(), hash->second->subscribers.end());
      }
    }
    if (depth == levels.size()) {
      out.insert(out.end(), node.subscribers.begin(), node.subscribers.end());
      return;
    }
    if (auto exact = node.children.find(levels[depth]); exact != node.children.end()) {
      walk(*exact->second, depth + 1);
    }
    if (wild_ok && levels[depth] != "+") {
      if (auto plus = node.children.find("+"); plus != node.children.end()) {
        walk(*plus->second, depth + 1);
      }
    }
  };
  walk(*root_, 0);
  std::sort(out.begin() + static_cast<std::ptrdiff_t>(before), out.end());
  out.erase(std::unique(out.begin() + static_cast<std::ptrdiff_t>(before), out.end()), out.end());
}

std::size_t TopicTrie::subscriber_count(std::string_view filter) const {
  const Node* node = root_.get();
  bool found = true;
  for_each_level(filter, [&](std::string_view level) {
    if (!found) return;
    auto it = node->children.find(level);
    if (it == node->children.end()) {
      found = false;
      return;
    }
    node = it->second.get();
  });
  return found ? node->subscribers.size() : 0;
}

std::vector<std::string> TopicTrie::filters() const {
  std::vector<std::string> out;
  std::function<void(const Node&, const std::string&)> walk = [&](const Node& node,
                                                                  const std::string& prefix) {
    for (const auto& [level, child] : node.children) {
      const std::string filter =
          prefix.empty() && &node == root_.get() ? level : prefix + "/" + level;
      if (!child->subscribers.empty()) out.push_back(filter);
      walk(*child, filter);
    }
  };
  walk(*root_, "");
  return out;
}

bool TopicTrie::empty() const {
  return root_->empty();
}

}  // namespace wsbridge::mqtt
