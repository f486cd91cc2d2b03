#include "tests/admin/admin_fixture.h"

#include <fmt/format.h>

#include <sstream>

#include "admin/beast.h"
#include "engine/format.h"

namespace annal::admin::testing {

HttpResult http_get(std::uint16_t port, const std::string& target, const std::string& method) {
  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  http::request<http::empty_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.keep_alive(false);
  http::write(s, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  boost::system::error_code ec;
  http::read(s, buf, res, ec);
  HttpResult r;
  if (ec && ec != http::error::end_of_stream) {
    r.body = "read failed: " + ec.message();
    return r;
  }
  r.status = res.result_int();
  r.content_type = std::string(res[http::field::content_type]);
  r.body = res.body();
  return r;
}

std::map<std::string, double> parse_samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    const std::string v = line.substr(sp + 1);
    out[line.substr(0, sp)] = v == "+Inf" ? 1e308 : std::stod(v);
  }
  return out;
}

void AdminFixture::start(std::uint64_t min_free, bool metrics) {
  index::StoreOptions so;
  so.log.dir = dir_.path();
  so.log.segment_size = 1u << 20;
  so.log.min_free_bytes = min_free;
  so.log.metrics = metrics;
  if (use_fault_fs_) so.log.fs = &fault_fs_;
  auto opened = index::Store::open(so);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  store_ = std::move(opened).value();
  net::ServerOptions no;
  no.host = "127.0.0.1";
  no.port = 0;
  no.threads = 1;
  no.metrics = metrics;
  no.shutdown_grace = std::chrono::milliseconds(500);
  server_ = std::make_unique<net::Server>(*store_, no);
  ASSERT_TRUE(server_->start().is_ok());
  AdminOptions ao;
  ao.port = 0;
  ao.data_dir = dir_.path();
  ao.min_free_bytes = min_free;
  ao.segment_size = so.log.segment_size;
  ao.metrics = metrics;
  ao.tail_poll = std::chrono::milliseconds(20);
  admin_ = std::make_unique<AdminServer>(*store_, *server_, ao);
  auto st = admin_->start();
  ASSERT_TRUE(st.is_ok()) << st.to_string();
}

void AdminFixture::stop() {
  client_.reset();
  if (admin_) admin_->stop();
  if (server_) server_->stop();
  admin_.reset();
  server_.reset();
  store_.reset();
}

net::Client& AdminFixture::client() {
  if (!client_) {
    net::ClientOptions co;
    co.port = server_->port();
    auto c = net::Client::connect(co);
    EXPECT_TRUE(c.ok()) << c.error_string();
    client_ = std::move(c).value();
  }
  return *client_;
}

void AdminFixture::append(const std::string& stream, int count, const std::string& type) {
  proto::AppendReq req;
  req.stream = stream;
  req.expected = ExpectedRevision::any();
  for (int i = 0; i < count; ++i) {
    index::NewEvent e;
    ++appended_ids_;
    for (int b = 0; b < 4; ++b)
      e.id.bytes[static_cast<std::size_t>(b)] =
          static_cast<std::uint8_t>(static_cast<unsigned>(appended_ids_) >> (8 * b));
    e.id.bytes[15] = 0x5A;
    e.type = type;
    e.flags = engine::format::kFlagDataJson;
    e.data = fmt::format("{{\"n\":{}}}", appended_ids_);
    req.events.push_back(std::move(e));
  }
  auto r = client().append(req);
  ASSERT_TRUE(r.ok()) << r.error_string();
}

net::Reply<proto::AppendOk> AdminFixture::append_one(const std::string& stream,
                                                     ExpectedRevision expected) {
  proto::AppendReq req;
  req.stream = stream;
  req.expected = expected;
  index::NewEvent e;
  ++appended_ids_;
  e.id.bytes[0] = static_cast<std::uint8_t>(appended_ids_);
  e.id.bytes[1] = static_cast<std::uint8_t>(appended_ids_ >> 8);
  e.id.bytes[15] = 0xA7;
  e.type = "T";
  req.events.push_back(std::move(e));
  return client().append(req);
}

}  // namespace annal::admin::testing
