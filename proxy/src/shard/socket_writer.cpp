#include "shard/socket_writer.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace wsbridge {

std::size_t encode_frame_header(const Frame& frame, unsigned char* out) {
  return encode_frame_header(frame.is_text(), false, frame.size(), out);
}

std::size_t encode_frame_header(bool text, bool compressed, std::uint64_t size,
                                unsigned char* out) {
  // FIN, RSV1 (RFC 7692 6: set on the first frame of a compressed message), opcode
  out[0] = static_cast<unsigned char>(0x80 | (compressed ? 0x40 : 0) | (text ? 0x1 : 0x2));
  if (size < 126) {
    out[1] = static_cast<unsigned char>(size);  // no MASK bit: server frames are not masked
    return 2;
  }
  if (size <= 0xffff) {
    out[1] = 126;
    out[2] = static_cast<unsigned char>(size >> 8);
    out[3] = static_cast<unsigned char>(size & 0xff);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<unsigned char>(size >> (56 - 8 * i));
  return 10;
}

std::size_t wire_size(const Frame& frame, const shared_deflate::WireFormat& format) {
  unsigned char header[10];
  const shared_deflate::WireView view = shared_deflate::wire_view(frame, format);
  return encode_frame_header(frame.is_text(), view.compressed, view.payload.size(), header) +
         view.payload.size();
}

std::size_t SocketWriter::gather(const std::optional<PartialFrame>& partial, FrameQueue& queue,
                                 std::size_t budget, const shared_deflate::WireFormat& format) {
  iov_count_ = 0;
  std::size_t offered = 0;
  std::size_t frames = 0;
  auto add = [&](const void* base, std::size_t len) {
    len = std::min(len, budget - offered);
    if (len == 0) return;
    // sendmsg() only reads through iov_base; the payload stays immutable.
    iov_[iov_count_++] = iovec{const_cast<void*>(base), len};
    offered += len;
  };
  // Skips the first `skip` wire bytes of `frame`.
  auto add_frame = [&](const Frame& frame, std::size_t skip) {
    unsigned char* header = headers_[frames++].data();
    const shared_deflate::WireView view = shared_deflate::wire_view(frame, format);
    const std::size_t header_len =
        encode_frame_header(frame.is_text(), view.compressed, view.payload.size(), header);
    if (skip < header_len) {
      add(header + skip, header_len - skip);
      skip = 0;
    } else {
      skip -= header_len;
    }
    const std::string_view payload = view.payload;
    if (skip < payload.size()) add(payload.data() + skip, payload.size() - skip);
  };
  if (partial) add_frame(partial->frame, partial->sent);
  for (auto it = queue.begin(); it != queue.end() && offered < budget && frames < kMaxFrames;
       ++it) {
    add_frame(*it, 0);
  }
  return offered;
}

void SocketWriter::consume(std::size_t n, std::optional<PartialFrame>& partial, FrameQueue& queue,
                           Result& result, const shared_deflate::WireFormat& format) {
  if (partial) {
    const std::size_t rest = wire_size(partial->frame, format) - partial->sent;
    if (n < rest) {
      partial->sent += n;
      return;
    }
    n -= rest;
    ++result.frames_done;
    result.payload_done += partial->frame.size();
    partial.reset();
  }
  // Every frame here was offered in full or in part, so one that is not complete is the last.
  while (n > 0 && !queue.empty()) {
    Frame& front = queue.front();
    const std::size_t size = wire_size(front, format);
    result.dequeued_bytes += front.size();
    if (n < size) {
      partial = PartialFrame{std::move(front), n};
      queue.pop_front();
      return;
    }
    n -= size;
    ++result.frames_done;
    result.payload_done += front.size();
    queue.pop_front();
  }
}

bool SocketWriter::turn_ends(const std::optional<PartialFrame>& partial, const FrameQueue& queue,
                             std::size_t budget, Result& result) {
  if (!partial && queue.empty()) {
    result.status = Status::kDrained;
    return true;
  }
  if (result.wire_bytes >= budget) {
    result.status = Status::kMore;
    return true;
  }
  return false;
}

SocketWriter::Result SocketWriter::write(int fd, std::optional<PartialFrame>& partial,
                                         FrameQueue& queue, std::size_t budget,
                                         const shared_deflate::WireFormat& format) {
  Result result;
  for (;;) {
    if (turn_ends(partial, queue, budget, result)) return result;
    const std::size_t offered = gather(partial, queue, budget - result.wire_bytes, format);
    msghdr message{};
    message.msg_iov = iov_.data();
    message.msg_iovlen = iov_count_;
    ssize_t n = 0;
    do {
      n = ::sendmsg(fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        result.status = Status::kFull;
      } else {
        result.status = Status::kError;
        result.error = errno;
      }
      return result;
    }
    result.wire_bytes += static_cast<std::size_t>(n);
    consume(static_cast<std::size_t>(n), partial, queue, result, format);
    // A stream socket that takes less than offered is full: another call would only EAGAIN.
    if (static_cast<std::size_t>(n) < offered) {
      result.status = Status::kFull;
      return result;
    }
  }
}

SocketWriter::Result SocketWriter::write_tls(SSL* ssl, std::size_t& sealed,
                                             std::optional<PartialFrame>& partial,
                                             FrameQueue& queue, std::size_t budget,
                                             const shared_deflate::WireFormat& format) {
  Result result;
  // Returns false when the record could not go out whole (result says why).
  auto seal_or_flush = [&](std::size_t len) {
    ERR_clear_error();
    // On a retry OpenSSL sends the record it already sealed and reads nothing from the buffer
    // but its length (lws sets SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER): the scratch may hold
    // another connection's bytes by then.
    const int n = SSL_write(ssl, record_.data(), static_cast<int>(len));
    if (n > 0) {
      sealed = 0;
      return true;
    }
    const int error = SSL_get_error(ssl, n);
    if (error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ) {
      sealed = len;
      result.status = Status::kFull;
    } else {
      result.status = Status::kError;
      result.error = error == SSL_ERROR_SYSCALL && errno != 0 ? errno : EPROTO;
    }
    ERR_clear_error();
    return false;
  };
  if (sealed > 0 && !seal_or_flush(sealed)) return result;
  for (;;) {
    if (turn_ends(partial, queue, budget, result)) return result;
    const std::size_t offered =
        gather(partial, queue, std::min(budget - result.wire_bytes, kTlsRecordBytes), format);
    std::size_t at = 0;
    for (const iovec& v : iovecs()) {
      std::memcpy(record_.data() + at, v.iov_base, v.iov_len);
      at += v.iov_len;
    }
    // Sealed or sent, these bytes are the record's now.
    result.wire_bytes += offered;
    consume(offered, partial, queue, result, format);
    if (!seal_or_flush(offered)) return result;
  }
}

}  // namespace wsbridge
