// The service thread's epoll loop (proxy/src/server/event_loop.*): that it finds its own epoll
// instance, and that forget_descriptor() takes a socket out of it on the loop's thread only.
#include "server/event_loop.hpp"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>

namespace wsbridge {
namespace {

std::string link_target(int fd) {
  char target[128] = {};
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t length = readlink(path.c_str(), target, sizeof target - 1);
  return length > 0 ? std::string(target, static_cast<std::size_t>(length)) : std::string();
}

struct SocketPair {
  SocketPair() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0); }
  ~SocketPair() {
    close(fds[0]);
    close(fds[1]);
  }
  int fds[2] = {-1, -1};
};

int watch(int epoll_fd, int fd) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = fd;
  return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) == 0 ? 0 : errno;
}

TEST(EventLoopTest, FindsItsOwnEpollInstanceAmongOthers) {
  // Other epoll instances in the process (another shard's, a library's) must not be taken.
  const int other = epoll_create1(EPOLL_CLOEXEC);
  ASSERT_GE(other, 0);
  EventLoop first;
  EventLoop second;
  ASSERT_GE(first.epoll_descriptor(), 0);
  ASSERT_GE(second.epoll_descriptor(), 0);
  EXPECT_NE(first.epoll_descriptor(), second.epoll_descriptor());
  EXPECT_NE(first.epoll_descriptor(), other);
  EXPECT_NE(second.epoll_descriptor(), other);
  EXPECT_EQ(link_target(first.epoll_descriptor()), "anon_inode:[eventpoll]");
  close(other);
}

TEST(EventLoopTest, ForgetDescriptorDeletesTheEntryOnTheLoopsThread) {
  EventLoop loop;
  loop.bind_to_this_thread();
  SocketPair pair;
  ASSERT_EQ(watch(loop.epoll_descriptor(), pair.fds[0]), 0);
  EXPECT_EQ(watch(loop.epoll_descriptor(), pair.fds[0]), EEXIST);
  forget_descriptor(pair.fds[0]);
  EXPECT_EQ(watch(loop.epoll_descriptor(), pair.fds[0]), 0) << "the entry was not deleted";
  forget_descriptor(pair.fds[1]);  // never watched: nothing happens
}

TEST(EventLoopTest, ForgetDescriptorOnAnotherThreadLeavesTheLoopAlone) {
  EventLoop loop;
  loop.bind_to_this_thread();
  SocketPair pair;
  ASSERT_EQ(watch(loop.epoll_descriptor(), pair.fds[0]), 0);
  std::thread([&] { forget_descriptor(pair.fds[0]); }).join();
  EXPECT_EQ(watch(loop.epoll_descriptor(), pair.fds[0]), EEXIST);
}

}  // namespace
}  // namespace wsbridge
