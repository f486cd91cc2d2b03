#include "bench/load/handshake.h"

#include <fmt/format.h>

#include <cstring>

#include "net/client.h"

namespace annal::bench {

namespace asio = net::asio;
namespace proto = net::proto;

bool read_frame_sync(net::tcp::socket& s, proto::FrameHeader& h, std::string& payload,
                     std::string& why) {
  boost::system::error_code ec;
  std::uint8_t len[4];
  asio::read(s, asio::buffer(len), ec);
  if (ec) {
    why = ec.message();
    return false;
  }
  const std::uint32_t n = proto::parse_length(std::span<const std::uint8_t, 4>(len, 4));
  if (n < proto::kFrameMinBody || n > proto::kDefaultMaxFrame) {
    why = fmt::format("invalid frame length {}", n);
    return false;
  }
  std::string body(n, '\0');
  asio::read(s, asio::buffer(body), ec);
  if (ec) {
    why = ec.message();
    return false;
  }
  std::uint8_t head[13];
  std::memcpy(head, len, 4);
  std::memcpy(head + 4, body.data(), 9);
  h = proto::parse_header(std::span<const std::uint8_t, 13>(head, 13));
  payload = body.substr(9);
  return true;
}

bool connect_and_hello(net::tcp::socket& socket, const std::string& host_port,
                       const std::string& client_name, proto::HelloOk& ok, std::string& why) {
  auto hp = net::parse_host_port(host_port);
  if (!hp) {
    why = fmt::format("--server must be HOST:PORT, got '{}'", host_port);
    return false;
  }
  boost::system::error_code ec;
  net::tcp::resolver resolver(socket.get_executor());
  auto eps = resolver.resolve(hp->first, std::to_string(hp->second), ec);
  if (!ec) asio::connect(socket, eps, ec);
  if (ec) {
    why = fmt::format("cannot connect to {}: {}", host_port, ec.message());
    return false;
  }
  socket.set_option(net::tcp::no_delay(true));
  proto::Hello hello;
  hello.client_name = client_name;
  asio::write(socket, asio::buffer(proto::encode_hello(1, hello)), ec);
  proto::FrameHeader h;
  std::string payload;
  if (ec || !read_frame_sync(socket, h, payload, why)) {
    why = fmt::format("handshake with {}: {}", host_port, ec ? ec.message() : why);
    return false;
  }
  if (h.op != static_cast<std::uint8_t>(proto::Op::kHelloOk)) {
    auto e = proto::decode_error(payload);
    why = fmt::format("handshake refused: {}", e ? e->message : "unexpected reply");
    return false;
  }
  auto decoded = proto::decode_hello_ok(payload);
  if (!decoded) {
    why = fmt::format("hello_ok: {}", decoded.status().to_string());
    return false;
  }
  ok = decoded.value();
  return true;
}

}  // namespace annal::bench
