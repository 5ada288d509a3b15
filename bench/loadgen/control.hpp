// What the load generator's parent and children share: key=value lines over their control
// sockets, and per-process helpers.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "ws_client.hpp"

namespace bench {

// Key=value lines between children and the parent.
using Kv = std::map<std::string, std::string>;

// "VERB k=v k=v\n".
std::string kv_line(const char* verb, const Kv& kv);
Kv parse_kv(std::string_view line);
// Writes all of `data` (retrying on EINTR); gives up silently when the peer is gone.
void write_all(int fd, std::string_view data);
// Adds the error counts as err_* and close_<code> keys.
void add_errors(Kv& kv, const Errors& e);

// Raises the open-file limit to its hard limit.
void raise_fd_limit();
// Process `index`'s share of `total` over `procs` processes.
unsigned share(unsigned total, unsigned procs, unsigned index);
// CPU time (user + system) of this process, in microseconds.
std::uint64_t cpu_us();

}  // namespace bench
