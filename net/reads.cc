// Connection: read_stream and read_all. Each request is one page
// (read/paging.h), read on the reading pool and posted back to the strand.
#include <fmt/format.h>

#include <algorithm>

#include "net/connection.h"
#include "net/wire_sink.h"
#include "read/paging.h"

namespace annal::net::detail {
namespace {

read::PageLimits page_limits(const ServerOptions& opts, std::uint32_t count) {
  read::PageLimits l;
  l.max_count =
      count == 0 ? opts.max_read_count : std::min<std::uint64_t>(count, opts.max_read_count);
  l.max_bytes = opts.max_read_bytes;
  return l;
}

std::string response(std::uint64_t id, const read::Page& page, const WireSink& events) {
  if (!page.status.is_ok())
    return proto::encode_error(id, proto::Error{proto::code_from_errc(page.status.code()),
                                                proto::kNone, page.status.message()});
  // The events were encoded once, from the log's records, into the sink; the
  // frame copies them once more (the header needs the count in front).
  return proto::encode(id, proto::ReadOkOf<proto::EncodedEvents>{
                               page.end, page.next, {events.count(), events.events()}});
}

}  // namespace

void Connection::handle_read_stream(std::uint64_t id, std::string_view payload) {
  if (refuse_if_too_many(id)) return;
  auto m = proto::decode_read_stream(payload);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  request_started();
  auto self = shared_from_this();
  asio::post(shared_->reads, [self, id, req = std::move(m.value())]() {
    WireSink events;
    const auto page =
        read::read_stream_page(self->shared_->store, req.stream, req.from, req.direction,
                               page_limits(self->shared_->options, req.count), events);
    asio::post(self->strand_, [self, frame = response(id, page, events)]() mutable {
      self->send(std::move(frame));
      self->request_finished();
    });
  });
}

void Connection::handle_read_all(std::uint64_t id, std::string_view payload) {
  if (refuse_if_too_many(id)) return;
  auto m = proto::decode_read_all(payload);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  request_started();
  auto self = shared_from_this();
  asio::post(shared_->reads, [self, id, req = m.value()]() {
    WireSink events;
    const auto page = read::read_all_page(self->shared_->store.log(), req.from, req.direction,
                                          page_limits(self->shared_->options, req.count), events);
    asio::post(self->strand_, [self, frame = response(id, page, events)]() mutable {
      self->send(std::move(frame));
      self->request_finished();
    });
  });
}

}  // namespace annal::net::detail
