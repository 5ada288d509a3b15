#include "fallback/peer_relay.hpp"

#include <charconv>

#include <nlohmann/json.hpp>

#include "wsbridge/text.hpp"

namespace wsbridge::fallback {

namespace {

constexpr std::size_t kMaxHeadBytes = 16 * 1024;
constexpr std::size_t kMaxWholeBytes = 64 * 1024 * 1024;

}  // namespace

PeerRelay::PeerRelay(std::shared_ptr<ResponseChannel> channel, std::string request,
                     std::chrono::milliseconds silence_limit)
    : channel_(std::move(channel)), request_(std::move(request)), silence_limit_(silence_limit) {}

PeerRelay::~PeerRelay() = default;

void PeerRelay::start(StreamEndpoint& endpoint) {
  stream_ = endpoint.connect(*this);
  stream_->set_timer(silence_limit_);  // (the connect has its own, shorter, timeout)
}

void PeerRelay::on_timer() {
  if (done_) return;
  if (streaming_) {
    channel_->end();  // as if the owner had ended it: the client opens the stream again
    finish();
    return;
  }
  fail(504, "the owner instance did not answer within " +
                std::to_string(silence_limit_.count() / 1000) + " s");
}

void PeerRelay::on_connected() {
  stream_->write(request_);
  request_.clear();
  request_.shrink_to_fit();
}

void PeerRelay::fail(unsigned status, std::string_view message) {
  channel_->answer(status, "application/json",
                   nlohmann::json{{"error", "peer"}, {"message", message}}.dump(
                       -1, ' ', false, nlohmann::json::error_handler_t::replace) +
                       "\n");
  finish();
}

void PeerRelay::finish() {
  done_ = true;
  if (stream_ != nullptr) stream_->close();
}

bool PeerRelay::parse_head() {
  const auto end = head_.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  std::string_view head(head_.data(), end);
  // "HTTP/1.1 200 OK"
  const auto space = head.find(' ');
  if (!head.starts_with("HTTP/1.") || space == std::string_view::npos ||
      std::from_chars(head.data() + space + 1, head.data() + head.size(), status_).ec !=
          std::errc{}) {
    fail(502, "the owner instance answered something that is not HTTP/1.1");
    return false;
  }
  std::size_t line = head.find("\r\n");
  while (line != std::string_view::npos) {
    const std::size_t start = line + 2;
    line = head.find("\r\n", start);
    const std::string_view field =
        head.substr(start, line == std::string_view::npos ? std::string_view::npos : line - start);
    const auto colon = field.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string name = text::lower(field.substr(0, colon));
    const std::string_view value = text::trim(field.substr(colon + 1));
    if (name == "content-type") content_type_ = std::string(value);
    if (name == "content-length") {
      std::size_t n = 0;
      if (std::from_chars(value.data(), value.data() + value.size(), n).ec == std::errc{}) {
        content_length_ = n;
      }
    }
  }
  head_done_ = true;
  streaming_ = channel_->kind() == ResponseKind::kStream && status_ == 200 &&
               content_type_.starts_with("text/event-stream");
  std::string rest = head_.substr(end + 4);
  head_.clear();
  head_.shrink_to_fit();
  if (!rest.empty()) on_data(rest);
  return true;
}

void PeerRelay::on_data(std::string_view bytes) {
  if (done_) return;
  // A stream's bytes keep it alive; a head and a whole answer must be complete within the
  // limit from the start, however they trickle in (a byte every few seconds held a forwarded
  // poll for good, up to 64 MiB).
  if (streaming_) stream_->set_timer(silence_limit_);
  if (!head_done_) {
    if (head_.size() + bytes.size() > kMaxHeadBytes) {
      fail(502, "the owner instance's answer has no end of head");
      return;
    }
    head_.append(bytes);
    parse_head();
    return;
  }
  if (streaming_) {
    if (!channel_->append(bytes)) {
      finish();  // its carrier left
      return;
    }
    if (!channel_->has_room()) {
      stream_->pause_reading(true);
      stream_->set_timer(std::chrono::milliseconds(0));  // silent because we stopped reading
    }
    return;
  }
  body_.append(bytes);
  if (body_.size() > kMaxWholeBytes) {
    fail(502, "the owner instance's answer is too large");
    return;
  }
  if (content_length_ && body_.size() >= *content_length_) {
    body_.resize(*content_length_);
    channel_->answer(status_, content_type_, body_);
    finish();
  }
}

void PeerRelay::on_closed(std::string_view reason) {
  // (The stream is destroyed with the relay, by its owner, never inside its own callback.)
  if (done_) return;
  if (!head_done_) {
    fail(502, "the owner instance did not answer (" + std::string(reason) + ")");
    return;
  }
  if (streaming_) {
    channel_->end();
  } else {
    channel_->answer(status_, content_type_, body_);
  }
  done_ = true;
}

void PeerRelay::on_channel_news() {
  if (done_) return;
  if (channel_->abandoned()) {
    finish();
    return;
  }
  if (stream_ != nullptr && streaming_ && channel_->has_room()) {
    stream_->pause_reading(false);  // (only a stream is ever paused)
    stream_->set_timer(silence_limit_);
  }
}

}  // namespace wsbridge::fallback
