#include "server/event_loop.hpp"

#include <dirent.h>
#include <ev.h>
#include <libwebsockets.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>

#include "wsbridge/log.hpp"

namespace wsbridge {

namespace {

thread_local EventLoop* this_thread_loop = nullptr;

void ignore_event(struct ev_loop*, ev_io*, int) {}

// Whether the epoll instance behind /proc/self/fdinfo/<epoll_fd> watches the file with this
// descriptor number and inode: the kernel lists each entry as "tfd: N events: ... ino:HEX ...".
bool epoll_watches(int epoll_fd, int fd, ino_t inode) {
  std::ifstream info("/proc/self/fdinfo/" + std::to_string(epoll_fd));
  std::string line;
  while (std::getline(info, line)) {
    int watched = -1;
    if (std::sscanf(line.c_str(), "tfd: %d", &watched) != 1 || watched != fd) continue;
    const auto at = line.find("ino:");
    if (at != std::string::npos && std::stoull(line.substr(at + 4), nullptr, 16) == inode) {
      return true;
    }
  }
  return false;
}

}  // namespace

EventLoop::EventLoop() : wake_(std::make_unique<ev_timer>()) {
  loop_ = ev_loop_new(static_cast<unsigned>(EVBACKEND_EPOLL) | static_cast<unsigned>(EVFLAG_NOENV));
  if (loop_ == nullptr) throw std::runtime_error("cannot create an epoll event loop");
  ev_timer_init(
      wake_.get(), [](struct ev_loop*, ev_timer*, int) {}, 0., 0.);
  foreign_loops_[0] = loop_;
  find_epoll_descriptor();
}

EventLoop::~EventLoop() {
  if (this_thread_loop == this) this_thread_loop = nullptr;
  ev_timer_stop(loop_, wake_.get());
  ev_loop_destroy(loop_);
}

void EventLoop::wake_after(std::chrono::milliseconds delay) {
  // (Stopped first: libev ignores a new time set on an active timer.)
  ev_timer_stop(loop_, wake_.get());
  ev_timer_set(wake_.get(), std::chrono::duration<double>(delay).count(), 0.);
  ev_timer_start(loop_, wake_.get());
}

void EventLoop::cancel_wake() {
  ev_timer_stop(loop_, wake_.get());
}

void EventLoop::configure(lws_context_creation_info& info) {
  info.options |= LWS_SERVER_OPTION_LIBEV;
  info.foreign_loops = foreign_loops_;
}

void EventLoop::bind_to_this_thread() {
  this_thread_loop = this;
}

void EventLoop::run_once() {
  ev_run(loop_, EVRUN_ONCE);
}

void EventLoop::find_epoll_descriptor() {
  // libev does not say which descriptor its epoll instance has. Watch a fresh eventfd, let libev
  // hand it to the kernel, and find the epoll instance that lists that very file.
  const int probe = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct stat probe_stat {};
  if (probe < 0 || fstat(probe, &probe_stat) != 0) {
    if (probe >= 0) close(probe);
    return;
  }
  ev_io watcher;
  ev_io_init(&watcher, ignore_event, probe, EV_READ);
  ev_io_start(loop_, &watcher);
  ev_run(loop_, EVRUN_NOWAIT);
  if (DIR* fds = opendir("/proc/self/fd")) {
    // (readdir is safe on a stream no other thread uses.)
    while (const dirent* entry = readdir(fds)) {  // NOLINT(concurrency-mt-unsafe)
      const std::string path = std::string("/proc/self/fd/") + entry->d_name;
      char target[64] = {};
      const ssize_t length = readlink(path.c_str(), target, sizeof target - 1);
      if (length <= 0 ||
          std::string(target, static_cast<std::size_t>(length)) != "anon_inode:[eventpoll]") {
        continue;
      }
      const int candidate = std::atoi(entry->d_name);
      if (epoll_watches(candidate, probe, probe_stat.st_ino)) {
        epoll_fd_ = candidate;
        break;
      }
    }
    closedir(fds);
  }
  ev_io_stop(loop_, &watcher);
  if (epoll_fd_ >= 0) {
    epoll_event unused{};
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, probe, &unused);
  } else {
    WSB_LOG(kWarn) << "event loop: its epoll instance was not found in /proc/self: a socket that "
                      "leaves libwebsockets will cost a rebuild of the loop's epoll set";
  }
  close(probe);
}

struct ev_loop* this_thread_ev_loop() {
  return this_thread_loop != nullptr ? this_thread_loop->ev() : nullptr;
}

void forget_descriptor(int fd) {
  const EventLoop* loop = this_thread_loop;
  if (loop == nullptr || loop->epoll_descriptor() < 0) return;
  epoll_event unused{};
  epoll_ctl(loop->epoll_descriptor(), EPOLL_CTL_DEL, fd,
            &unused);  // ENOENT: it was never handed over
}

}  // namespace wsbridge
