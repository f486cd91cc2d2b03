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

// Bytes to reserve for one page's events: its byte cap, or less when the
// page holds few events (~512 bytes each is a generous guess; the buffer
// grows if it is wrong).
std::size_t expected_bytes(const read::PageLimits& l) {
  return static_cast<std::size_t>(
      std::min<std::uint64_t>(l.max_bytes + (64u << 10), l.max_count * 512 + 4096));
}

}  // namespace

// On the reading pool: answers with the page. Its events were encoded once,
// from the log's records, into the sink, behind room for the frame's head;
// the frame is finished in place and written from there.
void Connection::post_page(std::uint64_t id, const read::Page& page,
                           std::shared_ptr<WireSink> events) {
  if (!page.status.is_ok()) {
    asio::post(strand_, [self = shared_from_this(),
                         frame = proto::encode_error(
                             id, proto::Error{proto::code_from_errc(page.status.code()),
                                              proto::kNone, page.status.message()})]() mutable {
      self->send(std::move(frame));
      self->request_finished();
    });
    return;
  }
  const std::string_view frame = events->finish_read_ok(id, page.end, page.next, page.durable_end);
  asio::post(strand_, [self = shared_from_this(), events = std::move(events), frame]() mutable {
    self->send_shared({}, std::move(events), frame);
    self->request_finished();
  });
}

// Decodes a paged read request M (bad_request if it does not decode), then
// reads one page on the reading pool with fetch(connection, request, limits,
// sink) and answers it.
template <class M, class Fetch>
void Connection::serve_page(std::uint64_t id, std::string_view payload, Fetch fetch) {
  if (refuse_if_too_many(id)) return;
  auto m = proto::decode<M>(payload, version_);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  request_started();
  asio::post(shared_->reads, [self = shared_from_this(), id, req = std::move(m.value()), fetch]() {
    const read::PageLimits limits = page_limits(self->shared_->options, req.count);
    auto events = std::make_shared<WireSink>(self->version_, expected_bytes(limits));
    const read::Page page = fetch(*self, req, limits, *events);
    self->post_page(id, page, std::move(events));
  });
}

void Connection::handle_read_stream(std::uint64_t id, std::string_view payload) {
  serve_page<proto::ReadStreamReq>(
      id, payload,
      [](Connection& c, const proto::ReadStreamReq& req, const read::PageLimits& l, WireSink& out) {
        return read::read_stream_page(c.shared_->store, req.stream, req.from, req.direction, l,
                                      out);
      });
}

void Connection::handle_read_all(std::uint64_t id, std::string_view payload) {
  serve_page<proto::ReadAllReq>(
      id, payload,
      [](Connection& c, const proto::ReadAllReq& req, const read::PageLimits& l, WireSink& out) {
        return read::read_all_page(c.shared_->store, req.from, req.direction, l, out);
      });
}

void Connection::handle_read_index(std::uint64_t id, std::string_view payload) {
  serve_page<proto::ReadIndexReq>(
      id, payload,
      [](Connection& c, const proto::ReadIndexReq& req, const read::PageLimits& l, WireSink& out) {
        return read::read_index_page(c.shared_->store, req.kind, req.value, req.from, req.direction,
                                     l, out);
      });
}

void Connection::handle_read_query(std::uint64_t id, std::string_view payload) {
  serve_page<proto::ReadQueryReq>(
      id, payload,
      [](Connection& c, const proto::ReadQueryReq& req, const read::PageLimits& l, WireSink& out) {
        return read::read_query_page(c.shared_->store, req.query, req.from, req.direction, l, out);
      });
}

void Connection::handle_seek_time(std::uint64_t id, std::string_view payload) {
  if (refuse_if_too_many(id)) return;
  auto m = proto::decode_seek_time(payload, version_);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  request_started();
  auto self = shared_from_this();
  asio::post(shared_->reads, [self, id, t = m->timestamp_us]() {
    const auto& store = self->shared_->store;
    const GlobalPosition end = store.log().durable_end();
    auto found = store.seek_time(t);
    std::string frame =
        found ? proto::encode_seek_time_ok(
                    id, proto::SeekTimeOk{std::min(*found, end).value, end.value})
              : proto::encode_error(id, proto::Error{proto::code_from_errc(found.status().code()),
                                                     proto::kNone, found.status().message()});
    asio::post(self->strand_, [self, frame = std::move(frame)]() mutable {
      self->send(std::move(frame));
      self->request_finished();
    });
  });
}

}  // namespace annal::net::detail
