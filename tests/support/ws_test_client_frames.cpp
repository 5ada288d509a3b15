// The test client's pure parts: frame encoding and decoding, handshake keys, and the
// permessage-deflate compressor and decompressor (no I/O).
#include <openssl/evp.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "support/ws_test_client.hpp"
#include "support/ws_test_client_util.hpp"
#include "wsbridge/base64.hpp"

namespace wsbridge::testing {

using namespace client_detail;

namespace {

constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr std::string_view kDeflateTail("\x00\x00\xff\xff", 4);

}  // namespace

// ---- Pure helpers -------------------------------------------------------------------------------

std::string_view opcode_name(Opcode op) {
  switch (op) {
    case Opcode::kContinuation:
      return "CONTINUATION";
    case Opcode::kText:
      return "TEXT";
    case Opcode::kBinary:
      return "BINARY";
    case Opcode::kClose:
      return "CLOSE";
    case Opcode::kPing:
      return "PING";
    case Opcode::kPong:
      return "PONG";
  }
  return "RESERVED";
}

std::string websocket_accept_key(std::string_view client_key) {
  std::string input(client_key);
  input += kWebSocketGuid;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_Digest(input.data(), input.size(), md, &md_len, EVP_sha1(), nullptr) != 1) {
    throw std::runtime_error("EVP_Digest(SHA-1) failed");
  }
  return base64_encode(std::string_view(reinterpret_cast<const char*>(md), md_len));
}

std::string random_websocket_key() {
  std::string raw(16, '\0');
  for (char& c : raw) c = static_cast<char>(rng()() & 0xff);
  return base64_encode(raw);
}

MaskKey random_mask_key() {
  const uint32_t v = rng()();
  return {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v >> 16),
          static_cast<uint8_t>(v >> 24)};
}

std::string encode_raw_frame(uint8_t first_byte, std::string_view payload,
                             const std::optional<MaskKey>& mask_key) {
  std::string out;
  out.reserve(payload.size() + 14);
  out.push_back(static_cast<char>(first_byte));
  const uint8_t mask_bit = mask_key ? 0x80 : 0x00;
  const uint64_t len = payload.size();
  if (len < 126) {
    out.push_back(static_cast<char>(mask_bit | len));
  } else if (len <= 0xffff) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(len >> 8));
    out.push_back(static_cast<char>(len & 0xff));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8) {
      out.push_back(static_cast<char>((len >> shift) & 0xff));
    }
  }
  if (mask_key) {
    out.append(reinterpret_cast<const char*>(mask_key->data()), 4);
    const size_t start = out.size();
    out.append(payload);
    for (size_t i = 0; i < payload.size(); ++i) {
      out[start + i] = static_cast<char>(static_cast<uint8_t>(out[start + i]) ^ (*mask_key)[i % 4]);
    }
  } else {
    out.append(payload);
  }
  return out;
}

std::string encode_frame(Opcode op, std::string_view payload, bool fin,
                         const std::optional<MaskKey>& mask_key, bool rsv1) {
  const uint8_t first = static_cast<uint8_t>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) |
                                             (static_cast<uint8_t>(op) & 0x0f));
  return encode_raw_frame(first, payload, mask_key);
}

std::optional<Frame> decode_frame(std::string& buffer) {
  if (buffer.size() < 2) return std::nullopt;
  const auto* p = reinterpret_cast<const uint8_t*>(buffer.data());
  size_t pos = 2;
  uint64_t len = p[1] & 0x7f;
  if (len == 126) {
    if (buffer.size() < 4) return std::nullopt;
    len = (uint64_t{p[2]} << 8) | p[3];
    pos = 4;
  } else if (len == 127) {
    if (buffer.size() < 10) return std::nullopt;
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
    pos = 10;
    if (len >> 63) throw std::runtime_error("frame has 64-bit length with the MSB set");
  }
  if (len > kMaxFramePayload) {
    throw std::runtime_error("frame payload length " + std::to_string(len) +
                             " exceeds the test client's limit");
  }
  const bool masked = (p[1] & 0x80) != 0;
  MaskKey key{};
  if (masked) {
    if (buffer.size() < pos + 4) return std::nullopt;
    std::memcpy(key.data(), p + pos, 4);
    pos += 4;
  }
  if (buffer.size() < pos + len) return std::nullopt;

  Frame f{static_cast<Opcode>(p[0] & 0x0f), (p[0] & 0x80) != 0, (p[0] & 0x40) != 0,
          buffer.substr(pos, static_cast<size_t>(len))};
  f.rsv2 = (p[0] & 0x20) != 0;
  f.rsv3 = (p[0] & 0x10) != 0;
  f.masked = masked;
  if (masked) {
    for (size_t i = 0; i < f.payload.size(); ++i) {
      f.payload[i] = static_cast<char>(static_cast<uint8_t>(f.payload[i]) ^ key[i % 4]);
    }
  }
  buffer.erase(0, pos + static_cast<size_t>(len));
  return f;
}

// ---- Deflate ------------------------------------------------------------------------------------

struct Deflater::Impl {
  z_stream zs{};
};

Deflater::Deflater(int window_bits) : impl_(std::make_unique<Impl>()) {
  window_bits = std::clamp(window_bits, 9, 15);
  if (deflateInit2(&impl_->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -window_bits, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
}

Deflater::~Deflater() {
  if (impl_) deflateEnd(&impl_->zs);
}
Deflater::Deflater(Deflater&&) noexcept = default;
Deflater& Deflater::operator=(Deflater&& other) noexcept {
  if (this != &other) {
    if (impl_) deflateEnd(&impl_->zs);
    impl_ = std::move(other.impl_);
  }
  return *this;
}

std::string Deflater::compress(std::string_view data) {
  if (!impl_) throw std::runtime_error("Deflater used after move");
  z_stream& zs = impl_->zs;
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  char chunk[16384];
  // With Z_SYNC_FLUSH all input is consumed and flushed once a call leaves output space unused.
  do {
    zs.next_out = reinterpret_cast<Bytef*>(chunk);
    zs.avail_out = sizeof(chunk);
    const int rc = deflate(&zs, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      throw std::runtime_error("deflate failed: " + std::to_string(rc));
    }
    out.append(chunk, sizeof(chunk) - zs.avail_out);
  } while (zs.avail_out == 0 || zs.avail_in != 0);
  // An empty message right after a flush makes zlib emit nothing at all; RFC 7692 7.2.3.6
  // allows a single 0x00 byte (an empty stored block once the tail is appended) for that case.
  if (out.empty() && data.empty()) return std::string(1, '\0');
  if (out.size() < 4 || std::string_view(out).substr(out.size() - 4) != kDeflateTail) {
    throw std::runtime_error("deflate output does not end with 00 00 ff ff");
  }
  out.resize(out.size() - 4);
  return out;
}

void Deflater::reset() {
  if (impl_) deflateReset(&impl_->zs);
}

struct Inflater::Impl {
  z_stream zs{};
};

Inflater::Inflater(int window_bits) : impl_(std::make_unique<Impl>()) {
  // 15 by default: a larger window than the server's max is always able to inflate its output.
  if (inflateInit2(&impl_->zs, -window_bits) != Z_OK) {
    throw std::runtime_error("inflateInit2 failed");
  }
}
Inflater::~Inflater() {
  if (impl_) inflateEnd(&impl_->zs);
}
Inflater::Inflater(Inflater&&) noexcept = default;
Inflater& Inflater::operator=(Inflater&& other) noexcept {
  if (this != &other) {
    if (impl_) inflateEnd(&impl_->zs);
    impl_ = std::move(other.impl_);
  }
  return *this;
}

std::string Inflater::decompress(std::string_view payload, size_t max_output) {
  if (!impl_) throw std::runtime_error("Inflater used after move");
  z_stream& zs = impl_->zs;
  std::string in(payload);
  in.append(kDeflateTail);
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  char chunk[16384];
  // Keep calling inflate until all input is consumed *and* a call left output space unused;
  // otherwise zlib may still hold decoded bytes.
  for (;;) {
    zs.next_out = reinterpret_cast<Bytef*>(chunk);
    zs.avail_out = sizeof(chunk);
    const int rc = inflate(&zs, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) {
      throw std::runtime_error(std::string("inflate failed: ") + (zs.msg ? zs.msg : "?") + " (rc " +
                               std::to_string(rc) + ")");
    }
    out.append(chunk, sizeof(chunk) - zs.avail_out);
    if (out.size() > max_output) throw std::runtime_error("inflated message too large");
    if (rc == Z_STREAM_END) {
      // The sender set BFINAL (legal per RFC 7692 7.2.3.3); the next message starts a new
      // stream, and the rest of the input is just our appended tail.
      inflateReset(&zs);
      break;
    }
    if (zs.avail_out != 0 && (zs.avail_in == 0 || rc == Z_BUF_ERROR)) break;
  }
  return out;
}

void Inflater::reset() {
  if (impl_) inflateReset(&impl_->zs);
}

}  // namespace wsbridge::testing
