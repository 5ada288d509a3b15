#include "session/connection_handle.hpp"

#include "wsbridge/text.hpp"

namespace wsbridge {

SendResult ConnectionHandle::send(Frame frame) {
  const std::size_t size = frame.size();
  const SendResult predicted = reserve(size);
  if (predicted == SendResult::kClosed) return predicted;
  InboxCommand command;
  command.type = InboxCommand::Type::kSend;
  command.connection = id_;
  command.frame = std::move(frame);
  if (!inbox_->post(std::move(command))) {
    handed_over(size);
    return SendResult::kClosed;
  }
  return predicted;
}

SendResult ConnectionHandle::reserve(std::size_t size) {
  if (!is_open() || closing_.load(std::memory_order_acquire)) return SendResult::kClosed;
  // Judged as enqueue() will judge it, against the queue plus what is on its way to it (the
  // service thread subtracts a frame from `in_transit` before queueing it).
  const std::size_t bytes = queued_bytes_.load(std::memory_order_relaxed) +
                            in_transit_bytes_.fetch_add(size, std::memory_order_relaxed) + size;
  const std::size_t messages = queued_messages_.load(std::memory_order_relaxed) +
                               in_transit_messages_.fetch_add(1, std::memory_order_relaxed) + 1;
  SendResult predicted = SendResult::kQueued;
  if (bytes > limits_.max_bytes || messages > limits_.max_messages) {
    predicted = SendResult::kDropped;
  } else if (bytes > limits_.high_water_bytes) {
    predicted = SendResult::kQueuedOverHighWater;
    told_over_high_water_.store(true, std::memory_order_relaxed);
  }
  return predicted;
}

void ConnectionHandle::close(CloseCode code, std::string_view reason) {
  if (!is_open()) return;
  InboxCommand command;
  command.type = InboxCommand::Type::kClose;
  command.connection = id_;
  command.close_code = static_cast<std::uint16_t>(code);
  // A close frame carries at most 123 bytes of reason.
  command.close_reason = std::string(text::utf8_prefix(reason, 123));
  inbox_->post(std::move(command));
}

void ConnectionHandle::pause_reading(bool paused) {
  if (!is_open()) return;
  pause_asked_.store(paused, std::memory_order_release);
  InboxCommand command;
  command.type = paused ? InboxCommand::Type::kPauseReading : InboxCommand::Type::kResumeReading;
  command.connection = id_;
  inbox_->post(std::move(command));
}

}  // namespace wsbridge
