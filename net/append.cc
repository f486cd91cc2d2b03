// Connection: appends. A request is decoded and validated on the network
// thread, handed to the store (which checks and writes it on the log writer
// thread), and answered when its group commit is durable: the writer pushes
// the outcome to this thread's lane, one post per commit (net/shared.h).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>

#include "engine/status.h"
#include "net/connection.h"

namespace annal::net::detail {

void Connection::handle_append(std::uint64_t id, std::string_view payload) {
  if (refuse_if_too_many(id)) return;
  auto m = proto::decode_append(payload, version_);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  if (auto bad = json_.check(*m)) {
    send_error(id, bad->code, std::move(bad->message), bad->detail);
    return;
  }
  const std::size_t bytes = payload.size();
  request_started(bytes);
  pending_appends_.push_back({id, bytes, shared_->metrics.start()});
  index::StreamAppend sa{std::move(m->stream), m->expected, std::move(m->events)};
  // On the log's writer thread, the callback hands the outcome to the lane,
  // which answers every ack of a group commit in one post. It holds the
  // connection weakly: an append can outlive the server (its fdatasync hung
  // past the bounded stop), and the last reference to a connection must never
  // be dropped on the writer thread after its io_context is gone.
  shared_->store.append(std::move(sa),
                        [weak = weak_from_this(), id, bytes](const engine::AppendOutcome& o) {
                          if (auto self = weak.lock())
                            self->lane_->acks->push(Ack{self, id, bytes, o, false});
                        });
}

void Connection::handle_append_multi(std::uint64_t id, std::string_view payload) {
  if (refuse_if_too_many(id)) return;
  auto m = proto::decode<proto::AppendMultiReq>(payload, version_);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  for (const auto& s : m->streams) {
    if (auto bad = json_.check(s.stream, s.events)) {
      send_error(id, bad->code, std::move(bad->message), bad->detail);
      return;
    }
  }
  const std::size_t bytes = payload.size();
  request_started(bytes);
  pending_appends_.push_back({id, bytes, shared_->metrics.start()});
  index::MultiAppend ma;
  ma.streams = std::move(m->streams);
  if (!m->condition.items.empty())
    ma.condition = index::AppendCondition{
        std::move(m->condition), m->after == proto::kNone
                                     ? std::nullopt
                                     : std::optional<GlobalPosition>(GlobalPosition(m->after))};
  // As handle_append: the writer hands the outcome to this thread's lane.
  shared_->store.append_multi(std::move(ma),
                              [weak = weak_from_this(), id, bytes](const engine::AppendOutcome& o) {
                                if (auto self = weak.lock())
                                  self->lane_->acks->push(Ack{self, id, bytes, o, true});
                              });
}

// append_multi's answer: append_multi_ok, append_refused (expectations,
// condition) or error.
void Connection::finish_append_multi(const Ack& ack) {
  const engine::AppendOutcome& o = ack.outcome;
  if (o.status.is_ok()) {
    proto::AppendMultiOk ok;
    ok.first_position = o.first_position.value;
    ok.count = o.count;
    ok.deduplicated = o.deduplicated;
    for (const auto& s : o.streams)
      ok.streams.push_back({s.count > 0 ? s.first_revision.value : proto::kNone, s.count});
    send(proto::encode(ack.id, ok, version_));
    return;
  }
  const Errc code = o.status.code();
  if (code == Errc::kWrongExpectedRevision || code == Errc::kAppendConditionFailed) {
    proto::AppendRefused r;
    r.code = proto::code_from_errc(code);
    r.message = o.status.message();
    if (o.conflict_position) r.conflict_position = o.conflict_position->value;
    for (const auto& s : o.streams)
      r.streams.push_back({s.failed, s.actual_revision ? s.actual_revision->value : proto::kNone});
    shared_->metrics.count_error(static_cast<std::uint16_t>(r.code));
    send(proto::encode(ack.id, r, version_));
    return;
  }
  send_error(ack.id, proto::code_from_errc(code), o.status.message());
}

void Connection::finish_append(const Ack& ack) {
  auto pending = std::find_if(pending_appends_.begin(), pending_appends_.end(),
                              [&](const PendingAppend& p) { return p.id == ack.id; });
  if (pending == pending_appends_.end()) return;  // abandoned at shutdown: already answered
  shared_->metrics.append_done(pending->started);
  pending_appends_.erase(pending);
  if (ack.multi) {
    finish_append_multi(ack);
    request_finished(ack.bytes);
    return;
  }
  const engine::AppendOutcome& o = ack.outcome;
  if (ack.deletion && o.status.is_ok()) {
    send(proto::encode(ack.id, proto::DeleteOk{o.first_position.value, o.truncate_before},
                       version_));
  } else if (o.status.is_ok()) {
    proto::AppendOk ok;
    ok.first_position = o.first_position.value;
    ok.first_revision = o.first_revision.value;
    ok.count = o.count;
    ok.deduplicated = o.deduplicated;
    std::array<char, OutFrame::kSmall> frame;
    const std::size_t n = proto::encode_to(ack.id, ok, frame);
    ANNAL_CHECK(n > 0, "an append_ok frame is larger than OutFrame::kSmall");
    send_small(std::span<const char>(frame.data(), n));
  } else {
    std::uint64_t detail = proto::kNone;
    if (o.status.code() == Errc::kWrongExpectedRevision && o.actual_revision)
      detail = o.actual_revision->value;
    send_error(ack.id, proto::code_from_errc(o.status.code()), o.status.message(), detail);
  }
  request_finished(ack.bytes);
}

}  // namespace annal::net::detail

namespace annal::net::detail {

void Connection::abandon_appends(std::chrono::milliseconds waited) {
  asio::post(strand_, [self = shared_from_this(), waited] {
    if (self->pending_appends_.empty()) return;
    spdlog::warn(
        "connection {} ({}): {} appends still waiting for durability after {} ms of shutdown; "
        "answering shutting_down (outcome unknown)",
        self->id_, self->peer_, self->pending_appends_.size(), waited.count());
    auto pending = std::move(self->pending_appends_);
    self->pending_appends_.clear();
    for (const auto& [id, bytes, started] : pending) {
      self->send_error(id, proto::Code::kShuttingDown,
                       fmt::format("the node is stopping and this append was still waiting for "
                                   "its write to become durable after {} ms: its outcome is "
                                   "unknown; retry it with the same event ids (a retry of a "
                                   "written append is deduplicated)",
                                   waited.count()));
      self->request_finished(bytes);
    }
  });
}

}  // namespace annal::net::detail
