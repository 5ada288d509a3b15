// The backend pool: idle connections reused most recent first (the warmest socket), an idle one
// that hears anything (the backend closing it, or talking out of turn) dropped, and room handed
// to the oldest waiter whenever a connection closes or comes back.
#include "reverse_proxy/backend_pool.hpp"

#include <algorithm>

namespace wsbridge::reverse_proxy {

BackendLink::~BackendLink() {
  stream_.reset();  // closes without a callback
  if (counted_) pool_.link_gone();
}

void BackendLink::on_connected() {
  connected_ = true;
  if (user_ != nullptr) user_->backend_connected();
}

void BackendLink::on_data(std::string_view bytes) {
  if (user_ != nullptr) return user_->backend_data(bytes);
  pool_.idle_link_ended(*this);  // an idle connection has nothing to say
}

void BackendLink::on_drained() {
  if (user_ != nullptr) user_->backend_drained();
}

void BackendLink::on_timer() {
  if (user_ == nullptr) pool_.idle_link_ended(*this);  // kept alive long enough
}

void BackendLink::on_closed(std::string_view reason) {
  if (user_ != nullptr) return user_->backend_closed(reason);
  pool_.idle_link_ended(*this);
}

BackendPool::BackendPool(std::shared_ptr<StreamEndpoint> endpoint, std::size_t max_open,
                         std::chrono::milliseconds keepalive)
    : endpoint_(std::move(endpoint)),
      max_open_(std::max<std::size_t>(max_open, 1)),
      keepalive_(keepalive) {}

BackendPool::~BackendPool() {
  destroying_ = true;
  waiters_.clear();
  idle_.clear();
}

void BackendPool::update(std::shared_ptr<StreamEndpoint> endpoint, std::size_t max_open,
                         std::chrono::milliseconds keepalive) {
  endpoint_ = std::move(endpoint);
  max_open_ = std::max<std::size_t>(max_open, 1);
  keepalive_ = keepalive;
}

std::unique_ptr<BackendLink> BackendPool::acquire(BackendUser& user) {
  if (!idle_.empty()) {
    std::unique_ptr<BackendLink> link = std::move(idle_.back());
    idle_.pop_back();
    link->stream_->set_timer(std::chrono::milliseconds(0));
    link->set_user(&user);
    link->reused_ = true;
    return link;
  }
  if (open_ >= max_open_) return nullptr;
  auto link = std::make_unique<BackendLink>(*this, &user);
  ++open_;
  link->stream_ = endpoint_->connect(*link);
  return link;
}

bool BackendPool::wait(BackendWaiter& waiter) {
  if (waiters_.size() >= kMaxWaitingRequests) return false;
  waiters_.push_back(&waiter);
  return true;
}

void BackendPool::cancel_wait(BackendWaiter& waiter) {
  std::erase(waiters_, &waiter);
}

void BackendPool::give_back(std::unique_ptr<BackendLink> link) {
  link->set_user(nullptr);
  if (keepalive_.count() == 0 || open_ > max_open_) return;  // destroyed: room freed
  link->stream_->set_timer(keepalive_);
  idle_.push_back(std::move(link));
  wake_one();
}

void BackendPool::let_go(BackendLink& link) {
  if (!link.counted_) return;
  link.counted_ = false;
  link_gone();
}

void BackendPool::link_gone() {
  if (open_ > 0) --open_;
  if (!destroying_) wake_one();
}

void BackendPool::idle_link_ended(BackendLink& link) {
  auto it =
      std::find_if(idle_.begin(), idle_.end(), [&](const auto& p) { return p.get() == &link; });
  if (it == idle_.end()) return;
  std::unique_ptr<BackendLink> gone = std::move(*it);
  idle_.erase(it);
  // (Destroyed here, from inside its stream's callback: the stream ignores its owner from then
  // on, and its link object outlives the call.)
}

void BackendPool::wake_one() {
  if (waiters_.empty() || (open_ >= max_open_ && idle_.empty())) return;
  BackendWaiter* waiter = waiters_.front();
  waiters_.pop_front();
  waiter->backend_available();
}

}  // namespace wsbridge::reverse_proxy
