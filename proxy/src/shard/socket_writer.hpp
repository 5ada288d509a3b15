// The write path of connections without permessage-deflate: as many queued frames as the socket
// takes in one sendmsg(), each as two iovecs (its header, built here, and its payload, pointing
// into the shared Frame: never copied), and the offset kept when the socket takes part of a frame,
// so the rest goes out on the next WRITEABLE (as libuv writes). No libwebsockets in here: the
// Shard decides when it may write (write_path.cpp), this only writes, so it is unit-tested over a
// socketpair.
#pragma once

#include <sys/uio.h>

#include <array>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include <openssl/types.h>

#include "compression/shared_deflate.hpp"
#include "session/frame_queue.hpp"

namespace wsbridge {

// A frame the socket took part of. Its remaining bytes must go out before any other byte on the
// connection (a ping or close frame in between would corrupt the stream), so it leaves the
// outbound queue: nothing that trims the queue (drop_oldest, a close) can drop it.
struct PartialFrame {
  Frame frame;
  std::size_t sent = 0;  // wire bytes written so far: header first, then payload
};

// RFC 6455 5.2: the header of a server frame (FIN, text or binary, RSV1 when its payload is
// compressed, unmasked) in `out`; returns its length (2, 4 or 10).
std::size_t encode_frame_header(bool text, bool compressed, std::uint64_t size, unsigned char* out);
std::size_t encode_frame_header(const Frame& frame, unsigned char* out);

// Header plus payload, as written for `format` (compressed or not).
std::size_t wire_size(const Frame& frame, const shared_deflate::WireFormat& format = {});

class SocketWriter {
 public:
  // Two iovecs per frame; Linux' IOV_MAX is 1024.
  static constexpr std::size_t kMaxIovecs = 1024;
  static constexpr std::size_t kMaxFrames = kMaxIovecs / 2;
  static_assert(kMaxIovecs <= IOV_MAX);

  enum class Status {
    kDrained,  // nothing left to write
    kMore,     // the budget (or kMaxFrames) ran out first: write again on the next WRITEABLE
    kFull,     // the socket took less than offered, or EAGAIN: wait for WRITEABLE
    kError,    // the connection is dead (`error` says why)
  };
  struct Result {
    Status status = Status::kDrained;
    int error = 0;                   // errno, for kError
    std::size_t wire_bytes = 0;      // bytes the socket took
    std::size_t frames_done = 0;     // frames now written completely
    std::size_t payload_done = 0;    // their payload bytes
    std::size_t dequeued_bytes = 0;  // payload bytes taken out of `queue` (done or now partial)
  };

  // Writes `partial`'s rest, then frames from the front of `queue`, with sendmsg(MSG_NOSIGNAL |
  // MSG_DONTWAIT) on the non-blocking `fd`, until the queue is empty, `budget` bytes went out or
  // the socket is full. Frames written completely are popped; one written in part becomes
  // `partial` (taken out of the queue). `format`: the session's permessage-deflate variant.
  Result write(int fd, std::optional<PartialFrame>& partial, FrameQueue& queue, std::size_t budget,
               const shared_deflate::WireFormat& format = {});

  // The same over TLS: at most one record (16 KiB) per SSL_write, gathered from the same iovecs
  // into this writer's scratch (OpenSSL copies it into the record anyway). `sealed` is the
  // connection's count of bytes OpenSSL took into a record that the socket has not taken yet
  // (SSL_write said WANT_WRITE): they are consumed from the queue at once, since the record
  // holds them, and the next call finishes that record before anything else. While it is not 0
  // nothing else may be written on the connection (TlsWriter callers treat it as mid-frame).
  Result write_tls(SSL* ssl, std::size_t& sealed, std::optional<PartialFrame>& partial,
                   FrameQueue& queue, std::size_t budget,
                   const shared_deflate::WireFormat& format = {});
  static constexpr std::size_t kTlsRecordBytes = 16384;  // TLS' largest record plaintext

  // The iovecs of `partial`'s rest and then of the queue's frames, at most `budget` bytes in all
  // (the last one cut short when the budget ends inside it); returns their total. They point into
  // the frames and into this writer's header scratch: valid until the next call.
  std::size_t gather(const std::optional<PartialFrame>& partial, FrameQueue& queue,
                     std::size_t budget, const shared_deflate::WireFormat& format = {});
  std::span<const iovec> iovecs() const { return {iov_.data(), iov_count_}; }

 private:
  // Before each write of a turn: true (with the status set) when nothing is left or the budget
  // is spent.
  static bool turn_ends(const std::optional<PartialFrame>& partial, const FrameQueue& queue,
                        std::size_t budget, Result& result);
  // Accounts for `n` bytes the socket took from what gather() offered.
  void consume(std::size_t n, std::optional<PartialFrame>& partial, FrameQueue& queue,
               Result& result, const shared_deflate::WireFormat& format);

  std::array<iovec, kMaxIovecs> iov_{};
  std::size_t iov_count_ = 0;
  std::array<std::array<unsigned char, 10>, kMaxFrames> headers_{};
  std::array<unsigned char, kTlsRecordBytes> record_{};
};

}  // namespace wsbridge
