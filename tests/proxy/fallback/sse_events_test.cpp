#include "fallback/sse_events.hpp"

#include <gtest/gtest.h>

namespace wsbridge::fallback {
namespace {

std::string message(std::uint64_t id, bool binary, std::string_view payload) {
  std::string out;
  append_message_event(out, id, binary, payload);
  return out;
}

TEST(FallbackSseEvents, PlainTextIsDataLines) {
  EXPECT_EQ(message(1, false, "hello"), "id: 1\ndata: hello\n\n");
  EXPECT_EQ(message(2, false, "a\nb"), "id: 2\ndata: a\ndata: b\n\n");
  // EventSource drops one trailing LF from the joined lines: the empty last line restores it.
  EXPECT_EQ(message(3, false, "a\n"), "id: 3\ndata: a\ndata: \n\n");
  // Leading spaces survive: EventSource strips only the one after the colon.
  EXPECT_EQ(message(4, false, " x"), "id: 4\ndata:  x\n\n");
}

TEST(FallbackSseEvents, WhatDataLinesCannotCarryGoesInBase64) {
  // An empty data buffer dispatches nothing, and CR ends a line in SSE.
  EXPECT_EQ(message(5, false, ""), "id: 5\nevent: frame\ndata: t\n\n");
  EXPECT_EQ(message(6, false, "a\rb"), "id: 6\nevent: frame\ndata: tYQ1i\n\n");
  EXPECT_EQ(message(7, true, std::string_view("\0\x01", 2)),
            "id: 7\nevent: frame\ndata: bAAE=\n\n");
  EXPECT_EQ(message(8, true, "text"), "id: 8\nevent: frame\ndata: bdGV4dA==\n\n");
}

TEST(FallbackSseEvents, ControlEventsCarryTheLastId) {
  std::string out;
  append_control_event(out, 9, R"({"type":"reconnect"})");
  EXPECT_EQ(out, "id: 9\nevent: control\ndata: {\"type\":\"reconnect\"}\n\n");
}

}  // namespace
}  // namespace wsbridge::fallback
