// Raw inflate of permessage-deflate messages (see ws_deflate.hpp).
#include "ws_deflate.hpp"

#include <algorithm>

namespace bench {

Inflater::Inflater() {
  // Raw deflate (negative window bits), the largest window: it reads a stream written with any
  // smaller server_max_window_bits too.
  ok_ = inflateInit2(&z_, -15) == Z_OK;
}

Inflater::~Inflater() {
  if (ok_) inflateEnd(&z_);
}

bool Inflater::inflate_message(std::string_view in, std::string& out, bool reset,
                               std::size_t limit) {
  if (!ok_) return false;
  if (reset) inflateReset(&z_);
  in_.assign(in);
  in_.append("\x00\x00\xff\xff", 4);
  z_.next_in = reinterpret_cast<Bytef*>(in_.data());
  z_.avail_in = static_cast<uInt>(in_.size());
  out.clear();
  std::size_t used = 0;
  while (true) {
    if (out.size() - used < 4096) out.resize(used + std::max<std::size_t>(4096, used));
    z_.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    z_.avail_out = static_cast<uInt>(out.size() - used);
    const int rc = inflate(&z_, Z_SYNC_FLUSH);
    used = out.size() - z_.avail_out;
    if (used > limit) return false;
    if (rc == Z_STREAM_END) {
      // A sender that ended the stream (BFINAL) starts a new one with the next message; what
      // follows the end (our appended tail) is not part of this message.
      inflateReset(&z_);
      break;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      inflateReset(&z_);
      return false;
    }
    // Room left in the output: inflate consumed all it could and flushed it (Z_BUF_ERROR is
    // "no progress possible", i.e. nothing left).
    if (z_.avail_out != 0) break;
  }
  out.resize(used);
  return true;
}

}  // namespace bench
