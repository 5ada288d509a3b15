#include "topic_trie.hpp"

#include "topic_levels.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace wsbridge::mqtt {

namespace {

// A LIFO work list whose first entries live in the object itself: matching a topic that is not
// pathologically deep or wide then needs no allocation, and no depth can exhaust the call stack
// (filters may have tens of thousands of levels).
template <typename T, std::size_t kInline>
class WorkStack {
 public:
  bool empty() const { return size_ == 0; }
  void push(const T& item) {
    if (size_ < kInline) {
      inline_[size_] = item;
    } else {
      spill_.push_back(item);
    }
    ++size_;
  }
  T pop() {
    --size_;
    if (size_ < kInline) return inline_[size_];
    T item = spill_.back();
    spill_.pop_back();
    return item;
  }

 private:
  std::array<T, kInline> inline_{};
  std::vector<T> spill_;
  std::size_t size_ = 0;
};

}  // namespace

struct TopicTrie::Node {
  std::map<std::string, std::unique_ptr<Node>, std::less<>> children;
  // Subscribers of the filter ending at this node, sorted: match appends them in order and
  // add/remove are a binary search (lists are short next to the messages they serve).
  std::vector<SubscriberId> subscribers;

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  // Tears the subtree down iteratively: the default recursive destruction of a filter with
  // tens of thousands of levels would overflow the stack.
  ~Node() {
    std::vector<std::unique_ptr<Node>> pending;
    for (auto& entry : children) pending.push_back(std::move(entry.second));
    children.clear();
    while (!pending.empty()) {
      std::unique_ptr<Node> node = std::move(pending.back());
      pending.pop_back();
      for (auto& entry : node->children) pending.push_back(std::move(entry.second));
      node->children.clear();
    }  // each node dies here with no children left
  }

  bool unused() const { return children.empty() && subscribers.empty(); }

  const Node* child(std::string_view level) const {
    const auto it = children.find(level);
    return it == children.end() ? nullptr : it->second.get();
  }
};

TopicTrie::TopicTrie() : root_(std::make_unique<Node>()) {}
TopicTrie::~TopicTrie() = default;

bool TopicTrie::add(std::string_view filter, SubscriberId id) {
  Node* node = root_.get();
  LevelCursor levels(filter);
  std::string_view level;
  while (levels.next(level)) {
    auto it = node->children.find(level);
    if (it == node->children.end()) {
      it = node->children.emplace(std::string(level), std::make_unique<Node>()).first;
    }
    node = it->second.get();
  }
  auto& subscribers = node->subscribers;
  const auto pos = std::lower_bound(subscribers.begin(), subscribers.end(), id);
  if (pos != subscribers.end() && *pos == id) return false;
  subscribers.insert(pos, id);
  return subscribers.size() == 1;
}

bool TopicTrie::remove(std::string_view filter, SubscriberId id) {
  // The nodes on the way down with the level taken from each, for pruning on the way back up.
  std::vector<std::pair<Node*, std::string_view>> path;
  Node* node = root_.get();
  LevelCursor levels(filter);
  std::string_view level;
  while (levels.next(level)) {
    const auto it = node->children.find(level);
    if (it == node->children.end()) return false;
    path.emplace_back(node, level);
    node = it->second.get();
  }
  auto& subscribers = node->subscribers;
  const auto pos = std::lower_bound(subscribers.begin(), subscribers.end(), id);
  if (pos == subscribers.end() || *pos != id) return false;
  subscribers.erase(pos);
  const bool last = subscribers.empty();
  for (auto step = path.rbegin(); step != path.rend(); ++step) {
    const auto it = step->first->children.find(step->second);
    if (!it->second->unused()) break;
    step->first->children.erase(it);
  }
  return last;
}

void TopicTrie::match(std::string_view topic, std::vector<SubscriberId>& out) const {
  const std::size_t before = out.size();
  std::size_t sources = 0;  // nodes whose subscribers were appended
  auto take = [&](const Node& node) {
    if (node.subscribers.empty()) return;
    out.insert(out.end(), node.subscribers.begin(), node.subscribers.end());
    ++sources;
  };

  // Depth-first over (node, rest of the topic below it); the root is at the first level.
  struct Frame {
    const Node* node = nullptr;
    LevelCursor rest;
    bool first_level = false;
  };
  WorkStack<Frame, 32> stack;
  stack.push(Frame{root_.get(), LevelCursor(topic), true});
  // A filter starting with a wildcard does not match a topic starting with '$' ($SYS/...).
  const bool dollar = !topic.empty() && topic.front() == '$';
  while (!stack.empty()) {
    Frame frame = stack.pop();
    const Node& node = *frame.node;
    const bool wildcards = !(frame.first_level && dollar);
    if (wildcards) {
      // '#' matches every remaining level, zero included ("a/#" matches "a").
      if (const Node* hash = node.child("#")) take(*hash);
    }
    std::string_view level;
    if (!frame.rest.next(level)) {
      take(node);  // the topic ends at this node
      continue;
    }
    if (const Node* exact = node.child(level)) stack.push(Frame{exact, frame.rest, false});
    if (wildcards) {
      if (const Node* plus = node.child("+")) stack.push(Frame{plus, frame.rest, false});
    }
  }

  // One source appended to an empty vector is already sorted and unique.
  if (before == 0 && sources <= 1) return;
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

std::size_t TopicTrie::subscriber_count(std::string_view filter) const {
  const Node* node = root_.get();
  LevelCursor levels(filter);
  std::string_view level;
  while (levels.next(level)) {
    node = node->child(level);
    if (node == nullptr) return 0;
  }
  return node->subscribers.size();
}

std::vector<std::string> TopicTrie::filters() const {
  std::vector<std::string> out;
  // Depth-first with one path buffer and an explicit stack (no recursion, see ~Node): each
  // entry is a node, the next child of it to visit, and the length of the path up to the node.
  using ChildIt = decltype(root_->children)::const_iterator;
  struct Visit {
    const Node* node;
    ChildIt next;
    std::size_t path_size;
  };
  std::vector<Visit> stack;
  stack.push_back(Visit{root_.get(), root_->children.begin(), 0});
  std::string path;
  while (!stack.empty()) {
    Visit& visit = stack.back();
    if (visit.next == visit.node->children.end()) {
      stack.pop_back();
      continue;
    }
    const auto& [level, child] = *visit.next++;
    path.resize(visit.path_size);
    if (visit.node != root_.get()) path += '/';
    path += level;
    if (!child->subscribers.empty()) out.push_back(path);
    // (`visit` may dangle after this push_back; it is not used again.)
    stack.push_back(Visit{child.get(), child->children.begin(), path.size()});
  }
  return out;
}

bool TopicTrie::empty() const {
  return root_->unused();
}

}  // namespace wsbridge::mqtt
