// A minimal MQTT 3.1.1 publisher over a blocking socket, for tests that run a Paho client of
// their own in the same process (the Upstream under test). A second Paho client there waits on
// the first one's network thread, which polls with a 1 s timeout: its CONNECT went out only on
// that thread's second wake-up, 2 s per test. This one sends from the calling thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>

namespace wsbridge::testing {

class MqttRawPublisher {
 public:
  // `uri`: "tcp://127.0.0.1:PORT", as Mosquitto::uri() gives.
  explicit MqttRawPublisher(const std::string& uri) {
    const auto colon = uri.rfind(':');
    const std::string prefix = "tcp://";
    if (!uri.starts_with(prefix) || colon == std::string::npos) {
      throw std::runtime_error("not a tcp:// uri: " + uri);
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(std::stoi(uri.substr(colon + 1))));
    const std::string host = uri.substr(prefix.size(), colon - prefix.size());
    if (inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1) {
      throw std::runtime_error("not an IPv4 address: " + host);
    }
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval timeout{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      close_socket();
      throw std::runtime_error("cannot connect to " + uri);
    }
    // CONNECT: protocol "MQTT" level 4, clean session, keep-alive 60 s, a random client id.
    std::string body = field("MQTT") + std::string("\x04\x02\x00\x3c", 4) +
                       field("rawpub-" + std::to_string(std::random_device{}()));
    send_packet(0x10, body);
    const std::string connack = read_packet();
    if (connack.size() != 4 || static_cast<unsigned char>(connack[0]) != 0x20 || connack[3] != 0) {
      throw std::runtime_error("the broker refused the CONNECT");
    }
  }
  ~MqttRawPublisher() {
    try {
      if (fd_ >= 0) send_packet(0xe0, "");  // DISCONNECT: no will, a clean end
    } catch (const std::exception&) {       // (the broker is gone already: nothing to end)
    }
    close_socket();
  }
  MqttRawPublisher(const MqttRawPublisher&) = delete;
  MqttRawPublisher& operator=(const MqttRawPublisher&) = delete;

  // QoS 0 or 1; at QoS 1 returns once the broker acknowledged it (PUBACK).
  void publish(const std::string& topic, const std::string& payload, int qos = 1,
               bool retain = false) {
    if (qos != 0 && qos != 1) throw std::invalid_argument("QoS 0 or 1");
    std::string body = field(topic);
    const std::uint16_t id = ++next_id_ == 0 ? ++next_id_ : next_id_;
    if (qos == 1) body += std::string{static_cast<char>(id >> 8), static_cast<char>(id & 0xff)};
    body += payload;
    send_packet(static_cast<unsigned char>(0x30 | (qos << 1) | (retain ? 1 : 0)), body);
    if (qos == 0) return;
    const std::string puback = read_packet();
    if (puback.size() != 4 || static_cast<unsigned char>(puback[0]) != 0x40 ||
        static_cast<unsigned char>(puback[2]) != (id >> 8) ||
        static_cast<unsigned char>(puback[3]) != (id & 0xff)) {
      throw std::runtime_error("no PUBACK for the PUBLISH");
    }
  }

 private:
  static std::string field(const std::string& s) {
    return std::string{static_cast<char>(s.size() >> 8), static_cast<char>(s.size() & 0xff)} + s;
  }
  void send_packet(unsigned char type, const std::string& body) {
    std::string packet(1, static_cast<char>(type));
    std::size_t n = body.size();
    do {  // remaining length: 7 bits a byte, the high bit says "more"
      unsigned char digit = n % 128;
      n /= 128;
      if (n > 0) digit |= 0x80;
      packet += static_cast<char>(digit);
    } while (n > 0);
    packet += body;
    for (std::size_t sent = 0; sent < packet.size();) {
      const ssize_t r = ::send(fd_, packet.data() + sent, packet.size() - sent, MSG_NOSIGNAL);
      if (r <= 0) throw std::runtime_error("send to the broker failed");
      sent += static_cast<std::size_t>(r);
    }
  }
  // One whole packet of a short length (CONNACK, PUBACK: 2-byte bodies).
  std::string read_packet() {
    std::string packet;
    char c;
    while (packet.size() < 2 || packet.size() < 2u + static_cast<unsigned char>(packet[1])) {
      if (::recv(fd_, &c, 1, 0) != 1) throw std::runtime_error("the broker sent no answer");
      packet += c;
    }
    return packet;
  }
  void close_socket() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  int fd_ = -1;
  std::uint16_t next_id_ = 0;
};

}  // namespace wsbridge::testing
