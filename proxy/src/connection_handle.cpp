#include "connection_handle.hpp"

namespace wsbridge {

SendResult ConnectionHandle::send(Frame frame) {
  if (!is_open()) return SendResult::kClosed;
  InboxCommand command;
  command.type = InboxCommand::Type::kSend;
  command.connection = id_;
  command.frame = std::move(frame);
  return inbox_->post(std::move(command)) ? SendResult::kQueued : SendResult::kClosed;
}

void ConnectionHandle::close(CloseCode code, std::string_view reason) {
  if (!is_open()) return;
  InboxCommand command;
  command.type = InboxCommand::Type::kClose;
  command.connection = id_;
  command.close_code = static_cast<std::uint16_t>(code);
  // A close frame carries at most 123 bytes of reason; cut on a UTF-8 boundary.
  std::size_t n = std::min<std::size_t>(reason.size(), 123);
  while (n > 0 && n < reason.size() && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80) --n;
  command.close_reason = std::string(reason.substr(0, n));
  inbox_->post(std::move(command));
}

void ConnectionHandle::pause_reading(bool paused) {
  if (!is_open()) return;
  InboxCommand command;
  command.type = paused ? InboxCommand::Type::kPauseReading : InboxCommand::Type::kResumeReading;
  command.connection = id_;
  inbox_->post(std::move(command));
}

}  // namespace wsbridge
