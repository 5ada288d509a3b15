// What a fallback request asks of its session's shard (through that shard's inbox: the request
// may have landed on another one). docs/FALLBACK.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "wsbridge/plugin.hpp"

#include "fallback/fallback_transport.hpp"
#include "fallback/response_channel.hpp"

namespace wsbridge::fallback {

struct SessionRequest {
  enum class Op : std::uint8_t {
    kAttach,    // a stream or poll now carries the session (`channel`, `kind`, `last`)
    kPost,      // the client's messages (`body`), answered on `channel`
    kWake,      // the carrier wrote, or went away: look at `channel`
    kAdmitted,  // the route's admission check answered an open (`connection`: its hold, `verdict`)
  };
  Op op = Op::kAttach;
  std::uint64_t connection = 0;
  std::shared_ptr<ResponseChannel> channel;
  CarrierKind kind = CarrierKind::kStream;
  std::uint64_t last = 0;
  bool opened = false;  // kAttach: the request that opened the session
  std::string body;
  std::optional<AdmissionResult> verdict;
};

}  // namespace wsbridge::fallback
