// The one path from any thread to the libwebsockets service thread: a mutex-guarded queue plus
// lws_cancel_service() to wake the loop. Wake-ups merge, so the service thread drains the whole
// queue each time it is woken. Calls made on the service thread itself skip the queue.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "wsbridge/frame.hpp"
#include "wsbridge/plugin.hpp"

typedef struct ssl_st SSL;

struct lws_context;

namespace wsbridge {

struct ServerConfig;
namespace fallback {
struct SessionRequest;
}

// A client socket taken out of one shard's lws context for another's (a WebSocket upgrade that
// resumes a fallback session lives on the session's shard): what that shard adopts.
struct HandedSocket {
  int fd = -1;
  std::string request_bytes;  // the upgrade request, which lws reads again there
  std::size_t listener = 0;   // the index of the listener it came in on
  SSL* ssl = nullptr;         // wss://: the TLS session (tls/session_handover.hpp)
  // The reverse proxy's: request_bytes are whatever it read, which lws reads through the recv
  // guard (mask_guard::replay_first) rather than from a buffer given at adoption.
  bool replayed = false;
};

struct InboxCommand {
  enum class Type : std::uint8_t {
    kSend,
    kSendMany,  // one frame to several connections of this shard (a fan-out's hand-off)
    kClose,
    kShutdown,
    kPauseReading,
    kResumeReading,
    kReload,        // to shard 0, which decides
    kReloadFollow,  // to the other shards: shard 0 accepted this configuration
    kFallback,      // to a fallback session's shard: a request of its client (`fallback`)
    kCarrierWake,   // to the shard carrying a fallback response: it has bytes (`connection`: its
                    // key)
    kAdoptSocket,   // to a fallback session's shard: an upgrade that resumes it (`socket`)
    kDrain,         // refuse new clients; after drain_delay close the others with 1012 (and
                    // shut down when `then_stop`)
  };
  Type type = Type::kSend;
  ConnectionId connection = 0;
  std::vector<ConnectionId> connections;               // kSendMany
  Frame frame;                                         // kSend, kSendMany
  std::uint16_t close_code = 0;                        // kClose
  bool then_stop = false;                              // kDrain
  std::string close_reason;                            // kClose
  std::shared_ptr<ServerConfig> config;                // kReload, kReloadFollow
  std::shared_ptr<fallback::SessionRequest> fallback;  // kFallback
  std::shared_ptr<HandedSocket> socket;                // kAdoptSocket
};

// Executes commands on the service thread.
class InboxDispatcher {
 public:
  virtual void dispatch(InboxCommand&& command) = 0;

 protected:
  ~InboxDispatcher() = default;
};

class ServiceInbox {
 public:
  // Called on the service thread once the context exists.
  void attach(lws_context* context, InboxDispatcher* dispatcher);
  // Called on the service thread before the context is destroyed; later posts are refused.
  void detach();

  // Any thread. False when the service is gone (the command is dropped).
  bool post(InboxCommand&& command);

  // Service thread: takes every queued command.
  void drain_into(std::vector<InboxCommand>& out);

 private:
  std::mutex mutex_;
  lws_context* context_ = nullptr;         // guarded by mutex_
  std::vector<InboxCommand> queue_;        // guarded by mutex_
  std::thread::id service_thread_;         // written before attach publishes context_
  InboxDispatcher* dispatcher_ = nullptr;  // used on the service thread only
};

}  // namespace wsbridge
