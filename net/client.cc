#include "net/client.h"

#include "net/client_impl.h"

namespace annal::net {

std::string error_string(const proto::Error& e) {
  return fmt::format("{} ({}): {}", proto::code_name(e.code), static_cast<unsigned>(e.code),
                     e.message);
}

std::optional<std::pair<std::string, std::uint16_t>> parse_host_port(const std::string& text) {
  std::string host;
  std::string port;
  if (!text.empty() && text[0] == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.size() > 5) return std::nullopt;
  unsigned long v = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned long>(c - '0');
  }
  if (v > 65535) return std::nullopt;
  return std::make_pair(host, static_cast<std::uint16_t>(v));
}

// ---------------------------------------------------------------------------

Subscription::Subscription(Client* owner, std::uint64_t id, std::uint64_t start,
                           std::shared_ptr<State> state)
    : owner_(owner), id_(id), start_(start), state_(std::move(state)) {}

Subscription::~Subscription() {
  bool active;
  {
    std::lock_guard lk(state_->mu);
    active = !state_->ended && !state_->closed;
  }
  if (active && owner_->connected()) (void)unsubscribe();
}

std::optional<Subscription::Message> Subscription::next(std::chrono::milliseconds timeout) {
  std::unique_lock lk(state_->mu);
  if (!state_->cv.wait_for(lk, timeout, [&] { return !state_->queue.empty() || state_->ended; }))
    return std::nullopt;
  if (state_->queue.empty()) return state_->ended_message;
  Message m = std::move(state_->queue.front());
  state_->queue.pop_front();
  state_->cv.notify_all();
  return m;
}

Reply<bool> Subscription::unsubscribe() {
  {
    std::lock_guard lk(state_->mu);
    if (state_->ended) return true;
    state_->closed = true;
    state_->queue.clear();
    state_->cv.notify_all();
  }
  const std::uint64_t sid = id_;
  auto r = owner_->impl_->call<bool>(
      [sid](std::uint64_t id) { return proto::encode_unsubscribe(id, proto::UnsubscribeReq{sid}); },
      proto::Op::kUnsubscribeOk, &decode_nothing);
  {
    std::lock_guard lk(owner_->impl_->mu);
    owner_->impl_->subs.erase(sid);
  }
  state_->end(make_error(proto::Code::kOk, "unsubscribed"));
  return r;
}

// ---------------------------------------------------------------------------

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Reply<std::unique_ptr<Client>> Client::connect(const ClientOptions& options) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(options.port);
  int rc = ::getaddrinfo(options.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0)
    return make_error(proto::Code::kConnectionLost,
                      fmt::format("cannot resolve {}: {}", options.host, ::gai_strerror(rc)));
  int fd = -1;
  std::string why = "no address";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    why = std::strerror(errno);
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0)
    return make_error(proto::Code::kConnectionLost,
                      fmt::format("cannot connect to {}:{}: {}", options.host, options.port, why));
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // A node that vanished (power off, network cut) fails this connection's
  // requests and subscriptions with connection_lost within about a minute,
  // instead of leaving a subscriber waiting forever. Best effort.
  const int idle = 30, interval = 10, probes = 3;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);

  auto impl = std::make_unique<Impl>();
  impl->fd = fd;
  impl->sub_queue = std::max<std::size_t>(1, options.subscription_queue);
  // Handshake, synchronously, with a timeout on the reply.
  proto::Hello hello;
  hello.client_name = options.client_name;
  hello.version = options.protocol_version;
  if (!send_all(fd, proto::encode_hello(1, hello)))
    return make_error(proto::Code::kConnectionLost, "cannot send hello");
  pollfd pfd{fd, POLLIN, 0};
  if (::poll(&pfd, 1, static_cast<int>(options.connect_timeout.count())) <= 0)
    return make_error(proto::Code::kConnectionLost, "no hello reply from the node in time");
  Frame f;
  if (!impl->frames.next(fd, f, why)) return make_error(proto::Code::kConnectionLost, why);
  auto ok = decode_reply<proto::HelloOk>(f, proto::Op::kHelloOk, &proto::decode_hello_ok);
  if (!ok.ok()) {
    // An older node: speak its newest version instead (on a new connection,
    // since it closes this one). Appends with tags or ids then fail in the
    // client (append_async), never silently lose them.
    const proto::Error& e = ok.error();
    if (e.code == proto::Code::kUnsupportedVersion && e.detail >= proto::kMinProtocolVersion &&
        e.detail < options.protocol_version) {
      ClientOptions older = options;
      older.protocol_version = static_cast<std::uint16_t>(e.detail);
      return connect(older);
    }
    return ok.error();
  }
  if (ok->version != options.protocol_version)
    return make_error(proto::Code::kBadRequest,
                      fmt::format("the node answered hello for protocol version {}, asked for {}",
                                  ok->version, options.protocol_version));
  impl->version = ok->version;
  impl->window = std::max<std::uint32_t>(1, ok->max_in_flight);
  auto client = std::unique_ptr<Client>(new Client(std::move(impl)));
  client->hello_ = ok.value();
  Impl* raw = client->impl_.get();
  raw->reader = std::thread([raw] { raw->run_reader(); });
  return client;
}

namespace {
// Version 1 cannot carry tags or ids: refuse rather than drop them.
std::optional<proto::Error> cannot_carry(const proto::AppendReq& req, std::uint16_t version) {
  if (version >= 2) return std::nullopt;
  for (std::size_t i = 0; i < req.events.size(); ++i) {
    const auto& e = req.events[i];
    if (!e.tags.empty() || !e.correlation_id.empty() || !e.causation_id.empty())
      return make_error(proto::Code::kBadRequest,
                        fmt::format("event {} carries tags or a correlation/causation id, which "
                                    "protocol version {} (this node's) cannot carry",
                                    i, version));
  }
  return std::nullopt;
}
}  // namespace

void Client::append_async(const proto::AppendReq& req, AppendCallback cb) {
  const std::uint16_t v = impl_->version;
  if (auto e = cannot_carry(req, v)) {
    cb(std::move(*e));
    return;
  }
  impl_->request(
      [&req, v](std::uint64_t id) { return proto::encode_append(id, req, v); },
      [cb = std::move(cb)](const Frame& f) {
        cb(decode_reply<proto::AppendOk>(f, proto::Op::kAppendOk, &proto::decode_append_ok));
      });
}

void Client::read_stream_async(const proto::ReadStreamReq& req, ReadCallback cb) {
  impl_->request(
      [&req, v = impl_->version](std::uint64_t id) {
        return proto::encode_read_stream(id, req, v);
      },
      [cb = std::move(cb), v = impl_->version](const Frame& f) {
        cb(decode_reply<proto::ReadOk>(f, proto::Op::kReadOk, &proto::decode_read_ok, v));
      });
}

void Client::read_stream_view_async(const proto::ReadStreamReq& req, ReadViewCallback cb) {
  impl_->request([&req, v = impl_->version](
                     std::uint64_t id) { return proto::encode_read_stream(id, req, v); },
                 [cb = std::move(cb), v = impl_->version](const Frame& f) {
                   cb(decode_reply<proto::ReadOkView>(f, proto::Op::kReadOk,
                                                      &proto::decode<proto::ReadOkView>, v));
                 });
}

void Client::read_all_view_async(const proto::ReadAllReq& req, ReadViewCallback cb) {
  impl_->request(
      [&req, v = impl_->version](std::uint64_t id) { return proto::encode_read_all(id, req, v); },
      [cb = std::move(cb), v = impl_->version](const Frame& f) {
        cb(decode_reply<proto::ReadOkView>(f, proto::Op::kReadOk, &proto::decode<proto::ReadOkView>,
                                           v));
      });
}

void Client::read_all_async(const proto::ReadAllReq& req, ReadCallback cb) {
  impl_->request(
      [&req, v = impl_->version](std::uint64_t id) { return proto::encode_read_all(id, req, v); },
      [cb = std::move(cb), v = impl_->version](const Frame& f) {
        cb(decode_reply<proto::ReadOk>(f, proto::Op::kReadOk, &proto::decode_read_ok, v));
      });
}

Reply<proto::AppendOk> Client::append(const proto::AppendReq& req) {
  const std::uint16_t v = impl_->version;
  if (auto e = cannot_carry(req, v)) return std::move(*e);
  return impl_->call<proto::AppendOk>(
      [&req, v](std::uint64_t id) { return proto::encode_append(id, req, v); },
      proto::Op::kAppendOk, &proto::decode_append_ok);
}

Reply<proto::ReadOk> Client::read_stream(const proto::ReadStreamReq& req) {
  return impl_->call<proto::ReadOk>(
      [&req, v = impl_->version](std::uint64_t id) {
        return proto::encode_read_stream(id, req, v);
      },
      proto::Op::kReadOk, &proto::decode_read_ok);
}

Reply<proto::ReadOk> Client::read_all(const proto::ReadAllReq& req) {
  return impl_->call<proto::ReadOk>(
      [&req, v = impl_->version](std::uint64_t id) { return proto::encode_read_all(id, req, v); },
      proto::Op::kReadOk, &proto::decode_read_ok);
}

namespace {
proto::Error needs_version(const char* what, std::uint16_t need, std::uint16_t have) {
  return make_error(
      proto::Code::kBadRequest,
      fmt::format("{} needs protocol version {}; this connection speaks {}", what, need, have));
}
proto::Error needs_v2(const char* what) {
  return needs_version(what, 2, 1);
}

Reply<AppendMultiOutcome> decode_append_multi(const Frame& f, std::uint16_t v) {
  AppendMultiOutcome out;
  if (f.op == static_cast<std::uint8_t>(proto::Op::kAppendRefused)) {
    auto r = proto::decode<proto::AppendRefused>(f.payload, v);
    if (!r.is_ok()) return make_error(proto::Code::kBadRequest, r.status().message());
    out.refused = std::move(r.value());
    return out;
  }
  auto ok = decode_reply<proto::AppendMultiOk>(f, proto::Op::kAppendMultiOk,
                                               &proto::decode<proto::AppendMultiOk>, v);
  if (!ok.ok()) return ok.error();
  out.ok = std::move(ok.value());
  return out;
}
}  // namespace

void Client::append_multi_async(const proto::AppendMultiReq& req, AppendMultiCallback cb) {
  const std::uint16_t v = impl_->version;
  if (v < 3) return cb(needs_version("append_multi", 3, v));
  impl_->request([&req, v](std::uint64_t id) { return proto::encode(id, req, v); },
                 [cb = std::move(cb), v](const Frame& f) { cb(decode_append_multi(f, v)); });
}

Reply<AppendMultiOutcome> Client::append_multi(const proto::AppendMultiReq& req) {
  auto p = std::make_shared<std::promise<Reply<AppendMultiOutcome>>>();
  auto fut = p->get_future();
  append_multi_async(req, [p](Reply<AppendMultiOutcome> r) { p->set_value(std::move(r)); });
  return fut.get();
}

void Client::read_query_async(const proto::ReadQueryReq& req, ReadCallback cb) {
  const std::uint16_t v = impl_->version;
  if (v < 3) return cb(needs_version("read_query", 3, v));
  impl_->request(
      [&req, v](std::uint64_t id) { return proto::encode(id, req, v); },
      [cb = std::move(cb), v](const Frame& f) {
        cb(decode_reply<proto::ReadOk>(f, proto::Op::kReadOk, &proto::decode_read_ok, v));
      });
}

Reply<proto::ReadOk> Client::read_query(const proto::ReadQueryReq& req) {
  const std::uint16_t v = impl_->version;
  if (v < 3) return needs_version("read_query", 3, v);
  return impl_->call<proto::ReadOk>(
      [&req, v](std::uint64_t id) { return proto::encode(id, req, v); }, proto::Op::kReadOk,
      &proto::decode_read_ok);
}

void Client::read_index_async(const proto::ReadIndexReq& req, ReadCallback cb) {
  const std::uint16_t v = impl_->version;
  if (v < 2) return cb(needs_v2("read_index"));
  impl_->request(
      [&req, v](std::uint64_t id) { return proto::encode_read_index(id, req, v); },
      [cb = std::move(cb), v](const Frame& f) {
        cb(decode_reply<proto::ReadOk>(f, proto::Op::kReadOk, &proto::decode_read_ok, v));
      });
}

void Client::read_index_view_async(const proto::ReadIndexReq& req, ReadViewCallback cb) {
  const std::uint16_t v = impl_->version;
  if (v < 2) return cb(needs_v2("read_index"));
  impl_->request([&req, v](std::uint64_t id) { return proto::encode_read_index(id, req, v); },
                 [cb = std::move(cb), v](const Frame& f) {
                   cb(decode_reply<proto::ReadOkView>(f, proto::Op::kReadOk,
                                                      &proto::decode<proto::ReadOkView>, v));
                 });
}

Reply<proto::ReadOk> Client::read_index(const proto::ReadIndexReq& req) {
  const std::uint16_t v = impl_->version;
  if (v < 2) return needs_v2("read_index");
  return impl_->call<proto::ReadOk>(
      [&req, v](std::uint64_t id) { return proto::encode_read_index(id, req, v); },
      proto::Op::kReadOk, &proto::decode_read_ok);
}

Reply<proto::SeekTimeOk> Client::seek_time(std::int64_t timestamp_us) {
  const std::uint16_t v = impl_->version;
  if (v < 2) return needs_v2("seek_time");
  return impl_->call<proto::SeekTimeOk>(
      [timestamp_us, v](std::uint64_t id) {
        return proto::encode_seek_time(id, proto::SeekTimeReq{timestamp_us}, v);
      },
      proto::Op::kSeekTimeOk, &proto::decode_seek_time_ok);
}

Reply<proto::InfoOk> Client::info() {
  return impl_->call<proto::InfoOk>(
      [](std::uint64_t id) { return proto::encode_empty(proto::Op::kInfo, id); },
      proto::Op::kInfoOk, &proto::decode_info_ok);
}

Reply<bool> Client::ping() {
  return impl_->call<bool>(
      [](std::uint64_t id) { return proto::encode_empty(proto::Op::kPing, id); }, proto::Op::kPong,
      &decode_nothing);
}

Reply<std::unique_ptr<Subscription>> Client::subscribe(const proto::SubscribeReq& req) {
  if (req.target == proto::Target::kIndex && impl_->version < 2)
    return needs_v2("a subscription to an index");
  if (req.target == proto::Target::kQuery && impl_->version < 3)
    return needs_version("a subscription to a query", 3, impl_->version);
  return subscribe_with(
      [&req, v = impl_->version](std::uint64_t id) { return proto::encode_subscribe(id, req, v); });
}

Reply<std::unique_ptr<Subscription>> Client::subscribe_with(
    const std::function<std::string(std::uint64_t)>& build) {
  auto state = std::make_shared<Subscription::State>();
  state->capacity = impl_->sub_queue;
  auto p = std::make_shared<std::promise<std::pair<std::uint64_t, Reply<proto::SubscribeOk>>>>();
  auto fut = p->get_future();
  Impl* impl = impl_.get();
  impl_->request(build, [p, state, impl](const Frame& f) {
    auto r =
        decode_reply<proto::SubscribeOk>(f, proto::Op::kSubscribeOk, &proto::decode_subscribe_ok);
    // Register before the reader reads the next frame: events follow at once.
    if (r.ok()) {
      std::lock_guard lk(impl->mu);
      impl->subs[f.id] = state;
    }
    p->set_value({f.id, std::move(r)});
  });
  auto [id, r] = fut.get();
  if (!r.ok()) return r.error();
  return std::unique_ptr<Subscription>(new Subscription(this, id, r->start, state));
}

std::size_t Client::in_flight() const {
  std::lock_guard lk(impl_->mu);
  return impl_->in_flight;
}

bool Client::connected() const {
  std::lock_guard lk(impl_->mu);
  return !impl_->broken;
}

void Client::drain() {
  std::unique_lock lk(impl_->mu);
  impl_->cv.wait(lk, [&] { return impl_->in_flight == 0; });
}

}  // namespace annal::net
