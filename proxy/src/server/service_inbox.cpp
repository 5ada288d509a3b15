#include "server/service_inbox.hpp"

#include <libwebsockets.h>

namespace wsbridge {

void ServiceInbox::attach(lws_context* context, InboxDispatcher* dispatcher) {
  std::lock_guard lock(mutex_);
  service_thread_ = std::this_thread::get_id();
  dispatcher_ = dispatcher;
  context_ = context;
}

void ServiceInbox::detach() {
  std::lock_guard lock(mutex_);
  context_ = nullptr;
  dispatcher_ = nullptr;
  queue_.clear();
}

bool ServiceInbox::post(InboxCommand&& command) {
  std::unique_lock lock(mutex_);
  if (context_ == nullptr) return false;
  if (std::this_thread::get_id() == service_thread_) {
    // Already on the service thread (an adapter answering inside a callback): no queue, no
    // wake-up. The dispatcher is only ever touched on this thread, so the lock can go.
    InboxDispatcher* dispatcher = dispatcher_;
    lock.unlock();
    dispatcher->dispatch(std::move(command));
    return true;
  }
  const bool was_empty = queue_.empty();
  queue_.push_back(std::move(command));
  // One wake-up per batch: the service thread drains everything it finds. Called under the lock
  // so the context cannot be destroyed in between (detach takes the same lock).
  if (was_empty) lws_cancel_service(context_);
  return true;
}

void ServiceInbox::drain_into(std::vector<InboxCommand>& out) {
  std::lock_guard lock(mutex_);
  out.swap(queue_);
}

}  // namespace wsbridge
