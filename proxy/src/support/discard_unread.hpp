// Discarding what a peer sent that nobody will read, just before a socket is closed.
#pragma once

#include <sys/socket.h>

namespace wsbridge {

// Closing a socket with unread bytes makes the kernel answer with RST instead of FIN, and a peer
// that gets the RST before it has read the last thing we sent loses it: a browser closed while
// still sending (over a rate or size limit, a policy close) sees 1006 instead of our close code
// and reason; a broker loses the DISCONNECT a relay sent just before closing, and publishes the
// will. Bounded (1 MiB); bytes that arrive later still meet the RST (lws does not linger; a
// WebSocket we close lingers on our loop instead: shard/lingering_close.hpp).
inline void discard_unread(int fd) {
  if (fd < 0) return;
  char sink[16 * 1024];
  for (int i = 0; i < 64; ++i) {
    if (::recv(fd, sink, sizeof sink, MSG_DONTWAIT) <= 0) break;
  }
}

}  // namespace wsbridge
