// The receive side of permessage-deflate (RFC 7692) for the load generator's WebSocket client:
// a raw inflater for messages whose first frame has RSV1 set. The client never compresses what it
// sends (RSV1 clear is always legal), so there is no deflater here.
#pragma once

#include <zlib.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace bench {

class Inflater {
 public:
  Inflater();
  ~Inflater();
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;

  // Inflates one message (the 00 00 ff ff tail the sender stripped is appended here) into `out`.
  // `reset` drops the window first: right when the server promised server_no_context_takeover,
  // which lets one inflater serve every connection of the process. False on a corrupt stream or
  // past `limit` bytes.
  bool inflate_message(std::string_view in, std::string& out, bool reset, std::size_t limit);

 private:
  z_stream z_{};
  bool ok_ = false;
  std::string in_;
};

}  // namespace bench
