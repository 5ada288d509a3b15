// WsClient: the opening handshake, sending and reading frames and messages, the closing
// handshake. The frame codec is in ws_test_client_frames.cpp, the socket in ws_test_client_tcp.cpp.
#include "support/ws_test_client.hpp"

#include <algorithm>
#include <cstdlib>

#include "support/ws_test_client_util.hpp"

namespace wsbridge::testing {

using namespace client_detail;

// ---- WsClient -----------------------------------------------------------------------------------

std::string build_handshake_request(const ClientOptions& opts) {
  std::vector<std::pair<std::string, std::string>> headers = {
      {"Host", host_header(opts.host, opts.port)},
      {"Upgrade", "websocket"},
      {"Connection", "Upgrade"},
  };
  if (!opts.key.empty()) headers.emplace_back("Sec-WebSocket-Key", opts.key);
  if (!opts.version.empty()) headers.emplace_back("Sec-WebSocket-Version", opts.version);
  if (opts.offer_deflate) {
    headers.emplace_back("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits");
  }
  return build_request("GET " + opts.path + " HTTP/1.1", std::move(headers), opts.extra_headers);
}

WsClient::WsClient(TcpConn conn) : tcp_(std::move(conn)) {}
WsClient::~WsClient() = default;
WsClient::WsClient(WsClient&&) noexcept = default;
WsClient& WsClient::operator=(WsClient&&) noexcept = default;

WsClient WsClient::connect(const ClientOptions& opts) {
  const auto deadline = Clock::now() + opts.timeout;
  WsClient client(TcpConn::connect(opts.host, opts.port, opts.tls, opts.timeout));
  client.tcp_.send_all(build_handshake_request(opts), opts.timeout);
  HttpResponse resp = client.tcp_.read_http_response(
      std::max(std::chrono::milliseconds(1),
               std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now())));

  const std::string where = opts.host + ":" + std::to_string(opts.port) + opts.path;
  if (resp.status != 101) {
    std::string msg = "WebSocket handshake to " + where + " answered " +
                      std::to_string(resp.status) + " " + resp.reason;
    if (!resp.body.empty()) msg += ": " + printable(resp.body, 200);
    throw HandshakeError(msg, std::move(resp));
  }
  // RFC 6455 4.1: the client must fail the connection unless all of these hold.
  const auto upgrade = resp.header("Upgrade");
  if (!upgrade || !iequals(trim(*upgrade), "websocket")) {
    throw HandshakeError("101 response without 'Upgrade: websocket' from " + where,
                         std::move(resp));
  }
  const auto connection = resp.header("Connection");
  bool has_upgrade_token = false;
  if (connection) {
    for (auto tok : split(*connection, ',')) has_upgrade_token |= iequals(tok, "upgrade");
  }
  if (!has_upgrade_token) {
    throw HandshakeError("101 response without 'Connection: Upgrade' from " + where,
                         std::move(resp));
  }
  const auto accept = resp.header("Sec-WebSocket-Accept");
  const std::string expected = websocket_accept_key(opts.key);
  if (!accept || *accept != expected) {
    throw HandshakeError("wrong Sec-WebSocket-Accept from " + where + ": got '" +
                             (accept ? *accept : std::string("<missing>")) + "', expected '" +
                             expected + "'",
                         std::move(resp));
  }

  // Extensions: we can only accept what we offered (offer_deflate or a hand-written header).
  bool offered_deflate = opts.offer_deflate;
  for (const auto& [name, value] : opts.extra_headers) {
    if (iequals(name, "Sec-WebSocket-Extensions") &&
        value.find("permessage-deflate") != std::string::npos) {
      offered_deflate = true;
    }
  }
  std::optional<DeflateParams> deflate;
  for (const std::string& value : resp.header_values("Sec-WebSocket-Extensions")) {
    for (std::string_view ext : split(value, ',')) {
      if (ext.empty()) continue;
      const auto parts = split(ext, ';');
      if (parts[0] != "permessage-deflate" || !offered_deflate) {
        throw HandshakeError("server accepted an extension we did not offer: " + std::string(ext),
                             std::move(resp));
      }
      if (deflate) {
        throw HandshakeError("server accepted permessage-deflate twice", std::move(resp));
      }
      DeflateParams params;
      for (size_t i = 1; i < parts.size(); ++i) {
        const size_t eq = parts[i].find('=');
        const std::string_view key = trim(parts[i].substr(0, eq));
        std::string_view val =
            eq == std::string_view::npos ? std::string_view() : trim(parts[i].substr(eq + 1));
        if (val.size() >= 2 && val.front() == '"' && val.back() == '"') {
          val = val.substr(1, val.size() - 2);
        }
        auto parse_bits = [&]() {
          const int bits = val.empty() ? -1 : std::atoi(std::string(val).c_str());
          if (bits < 8 || bits > 15) {
            throw HandshakeError("bad window bits in " + std::string(ext), std::move(resp));
          }
          return bits;
        };
        if (key == "server_no_context_takeover") {
          params.server_no_context_takeover = true;
        } else if (key == "client_no_context_takeover") {
          params.client_no_context_takeover = true;
        } else if (key == "server_max_window_bits") {
          params.server_max_window_bits = parse_bits();
        } else if (key == "client_max_window_bits") {
          params.client_max_window_bits = parse_bits();
        } else {
          throw HandshakeError("unknown permessage-deflate parameter: " + std::string(key),
                               std::move(resp));
        }
      }
      deflate = params;
    }
  }
  if (deflate) client.setup_deflate(*deflate);
  client.handshake_ = std::move(resp);
  return client;
}

WsClient WsClient::adopt(TcpConn conn, std::optional<DeflateParams> deflate) {
  WsClient client(std::move(conn));
  if (deflate) client.setup_deflate(*deflate);
  return client;
}

void WsClient::setup_deflate(const DeflateParams& params) {
  deflate_ = params;
  deflater_.emplace(params.client_max_window_bits);
  inflater_.emplace();
}

const HttpResponse& WsClient::handshake_response() const {
  return handshake_;
}
bool WsClient::deflate_negotiated() const {
  return deflate_.has_value();
}
void WsClient::set_auto_pong(bool on) {
  auto_pong_ = on;
}
int WsClient::pings_received() const {
  return pings_;
}
int WsClient::pongs_received() const {
  return pongs_;
}
TcpConn& WsClient::tcp() {
  return tcp_;
}

void WsClient::send_frame(Opcode op, std::string_view payload, bool fin, bool mask, bool rsv1) {
  tcp_.send_all(encode_frame(
      op, payload, fin, mask ? std::optional<MaskKey>(random_mask_key()) : std::nullopt, rsv1));
  if (op == Opcode::kClose) close_sent_ = true;
}

void WsClient::send_raw_frame(uint8_t first_byte, std::string_view payload, bool mask) {
  tcp_.send_all(encode_raw_frame(first_byte, payload,
                                 mask ? std::optional<MaskKey>(random_mask_key()) : std::nullopt));
  if ((first_byte & 0x0f) == static_cast<uint8_t>(Opcode::kClose)) close_sent_ = true;
}

std::string WsClient::compress(std::string_view data) {
  if (!deflater_) throw std::runtime_error("compress(): permessage-deflate not negotiated");
  std::string out = deflater_->compress(data);
  if (deflate_->client_no_context_takeover) deflater_->reset();
  return out;
}

void WsClient::send_text(std::string_view s, bool compress_it) {
  if (compress_it && deflater_) {
    send_frame(Opcode::kText, compress(s), true, true, true);
  } else {
    send_frame(Opcode::kText, s);
  }
}

void WsClient::send_binary(std::string_view s, bool compress_it) {
  if (compress_it && deflater_) {
    send_frame(Opcode::kBinary, compress(s), true, true, true);
  } else {
    send_frame(Opcode::kBinary, s);
  }
}

void WsClient::send_close(uint16_t code, std::string_view reason) {
  std::string payload;
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xff));
  payload.append(reason);
  send_frame(Opcode::kClose, payload);
}

std::optional<Frame> WsClient::next_frame(Clock::time_point deadline) {
  for (;;) {
    if (auto f = decode_frame(tcp_.buffer())) {
      if (f->opcode == Opcode::kPing) ++pings_;
      if (f->opcode == Opcode::kPong) ++pongs_;
      return f;
    }
    switch (tcp_.read_some(deadline)) {
      case TcpConn::ReadStatus::kData:
        break;
      case TcpConn::ReadStatus::kEof:
        if (!tcp_.buffer().empty()) {
          throw std::runtime_error("connection closed in the middle of a frame (" +
                                   std::to_string(tcp_.buffer().size()) + " bytes pending)");
        }
        return std::nullopt;
      case TcpConn::ReadStatus::kTimeout:
        throw std::runtime_error("timed out waiting for a WebSocket frame" +
                                 (tcp_.buffer().empty()
                                      ? std::string()
                                      : " (partial frame: " + printable(tcp_.buffer(), 40) + ")"));
    }
  }
}

Frame WsClient::read_frame(std::chrono::milliseconds timeout) {
  auto f = next_frame(Clock::now() + timeout);
  if (!f) throw std::runtime_error("connection closed while waiting for a WebSocket frame");
  return std::move(*f);
}

uint16_t WsClient::Message::close_code() const {
  if (data.size() < 2) return 1005;
  return static_cast<uint16_t>((static_cast<uint8_t>(data[0]) << 8) |
                               static_cast<uint8_t>(data[1]));
}

std::string WsClient::Message::close_reason() const {
  return data.size() > 2 ? data.substr(2) : std::string();
}

WsClient::Message WsClient::read_message(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::optional<Opcode> msg_opcode;
  bool compressed = false;
  std::string data;
  for (;;) {
    auto f = next_frame(deadline);
    if (!f) throw std::runtime_error("connection closed while waiting for a WebSocket message");
    if (f->masked) throw std::runtime_error("server sent a masked frame (RFC 6455 5.1)");
    if (f->rsv2 || f->rsv3) throw std::runtime_error("server frame has RSV2/RSV3 set");
    const auto op = static_cast<uint8_t>(f->opcode);
    if (op >= 8) {  // control frame
      if (!f->fin || f->payload.size() > 125 || f->rsv1) {
        throw std::runtime_error(
            "server sent an invalid control frame (" + std::string(opcode_name(f->opcode)) +
            ", fin=" + std::to_string(f->fin) + ", rsv1=" + std::to_string(f->rsv1) +
            ", len=" + std::to_string(f->payload.size()) + ")");
      }
      switch (f->opcode) {
        case Opcode::kPing:
          if (auto_pong_) send_frame(Opcode::kPong, f->payload);
          continue;
        case Opcode::kPong:
          continue;
        case Opcode::kClose: {
          Message m{Opcode::kClose, std::move(f->payload)};
          if (m.data.size() == 1) throw std::runtime_error("server close frame with 1-byte body");
          close_received_ = m.close_code();
          return m;
        }
        default:
          throw std::runtime_error("server sent reserved control opcode " + std::to_string(op));
      }
    }
    if (f->opcode == Opcode::kContinuation) {
      if (!msg_opcode) throw std::runtime_error("server sent CONTINUATION without a message");
      if (f->rsv1) throw std::runtime_error("server set RSV1 on a CONTINUATION frame");
    } else if (f->opcode == Opcode::kText || f->opcode == Opcode::kBinary) {
      if (msg_opcode) {
        throw std::runtime_error("server started a new message before finishing the previous one");
      }
      msg_opcode = f->opcode;
      compressed = f->rsv1;
      if (compressed && !inflater_) {
        throw std::runtime_error("server set RSV1 but permessage-deflate was not negotiated");
      }
    } else {
      throw std::runtime_error("server sent reserved data opcode " + std::to_string(op));
    }
    data += f->payload;
    if (data.size() > kMaxFramePayload) throw std::runtime_error("message too large");
    if (!f->fin) continue;

    if (compressed) {
      data = inflater_->decompress(data);
      if (deflate_->server_no_context_takeover) inflater_->reset();
    }
    return Message{*msg_opcode, std::move(data)};
  }
}

uint16_t WsClient::wait_close(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::optional<uint16_t> code = close_received_;
  while (!code) {
    auto f = next_frame(deadline);
    if (!f) return 1006;
    if (f->opcode == Opcode::kPing) {
      if (auto_pong_ && !close_sent_) {
        try {
          send_frame(Opcode::kPong, f->payload);
        } catch (const std::runtime_error&) {
          // The server may already be tearing down; the close is what we're waiting for.
        }
      }
      continue;
    }
    if (f->opcode != Opcode::kClose) continue;  // data/pong frames are skipped
    if (f->payload.size() == 1) throw std::runtime_error("server close frame with 1-byte body");
    code = f->payload.size() < 2
               ? uint16_t{1005}
               : static_cast<uint16_t>((static_cast<uint8_t>(f->payload[0]) << 8) |
                                       static_cast<uint8_t>(f->payload[1]));
    close_received_ = code;
  }
  if (!close_sent_) {
    try {
      // Echo the code (RFC 6455 5.5.1); 1005 must never appear on the wire, so echo empty then.
      if (*code == 1005) {
        send_frame(Opcode::kClose, "");
      } else {
        send_close(*code);
      }
    } catch (const std::runtime_error&) {
      // Server closed the socket right after its close frame; nothing left to echo to.
      close_sent_ = true;
    }
  }
  return *code;
}

}  // namespace wsbridge::testing
