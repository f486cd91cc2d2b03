// Connection: stream metadata and deletion (protocol v5, docs/protocol.md
// section 3.8). Setting metadata and deleting are appends to the stream's
// metadata stream: they go through the writer like any append and are
// answered from the lane when durable; reading the metadata is a few index
// lookups, on the reading pool.
#include <fmt/format.h>

#include "net/connection.h"

namespace annal::net::detail {

// From another thread: sends a request's answer on the connection's strand
// and ends the request.
void Connection::answer_on_strand(std::string frame) {
  asio::post(strand_, [self = shared_from_this(), frame = std::move(frame)]() mutable {
    self->send(std::move(frame));
    self->request_finished();
  });
}

bool Connection::dispatch_lifecycle(proto::Op op, std::uint64_t id, std::string_view payload) {
  switch (op) {
    case proto::Op::kStreamMetadata:
      handle_stream_metadata(id, payload);
      return true;
    case proto::Op::kSetStreamMetadata:
      handle_set_stream_metadata(id, payload);
      return true;
    case proto::Op::kDeleteStream:
      handle_delete_stream(id, payload);
      return true;
    case proto::Op::kScavenge:
      handle_scavenge(id, payload);
      return true;
    case proto::Op::kSnapshotSave:
      handle_snapshot_save(id, payload);
      return true;
    case proto::Op::kSnapshotRead:
      handle_snapshot_read(id, payload);
      return true;
    default:
      return false;
  }
}

void Connection::handle_stream_metadata(std::uint64_t id, std::string_view payload) {
  if (refuse_if_too_many(id)) return;
  auto m = proto::decode<proto::StreamMetadataReq>(payload, version_);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  request_started();
  asio::post(shared_->reads, [self = shared_from_this(), id, stream = std::move(m->stream)] {
    auto md = self->shared_->store.read_metadata(stream);
    std::string frame;
    if (!md) {
      frame = proto::encode_error(id, proto::Error{proto::code_from_errc(md.status().code()),
                                                   proto::kNone, md.status().message()});
    } else {
      proto::StreamMetadataOk ok;
      ok.revision = md->revision ? md->revision->value : proto::kNone;
      ok.json = std::move(md->json);
      const index::StreamRules& r = md->rules;
      ok.max_count = r.metadata.max_count.value_or(proto::kNone);
      ok.max_age = r.metadata.max_age_s.value_or(proto::kNone);
      ok.truncate_before = r.metadata.truncate_before;
      ok.deleted_before = r.deleted_before;
      ok.deleted = md->deleted;
      ok.tombstoned = r.tombstoned;
      frame = proto::encode(id, ok, self->version_);
    }
    self->answer_on_strand(std::move(frame));
  });
}

void Connection::handle_set_stream_metadata(std::uint64_t id, std::string_view payload) {
  if (refuse_if_too_many(id)) return;
  auto m = proto::decode<proto::SetStreamMetadataReq>(payload, version_);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  const std::size_t bytes = payload.size();
  request_started(bytes);
  pending_appends_.push_back({id, bytes, shared_->metrics.start()});
  // Answered like an append (append_ok: the metadata event), from the lane.
  shared_->store.set_metadata(std::move(m->stream), m->expected, std::move(m->json),
                              [weak = weak_from_this(), id, bytes](const engine::AppendOutcome& o) {
                                if (auto self = weak.lock())
                                  self->lane_->acks->push(Ack{self, id, bytes, o, false, false});
                              });
}

void Connection::handle_delete_stream(std::uint64_t id, std::string_view payload) {
  if (refuse_if_too_many(id)) return;
  auto m = proto::decode<proto::DeleteStreamReq>(payload, version_);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  const std::size_t bytes = payload.size();
  request_started(bytes);
  pending_appends_.push_back({id, bytes, shared_->metrics.start()});
  shared_->store.delete_stream(
      std::move(m->stream), m->expected, m->hard,
      [weak = weak_from_this(), id, bytes](const engine::AppendOutcome& o) {
        if (auto self = weak.lock()) self->lane_->acks->push(Ack{self, id, bytes, o, false, true});
      });
}

// Both on the reading pool: a save writes and syncs a file, a read reads
// one and a page of the stream.
void Connection::handle_snapshot_save(std::uint64_t id, std::string_view payload) {
  if (refuse_if_too_many(id)) return;
  auto m = proto::decode<proto::SnapshotSaveReq>(payload, version_);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  request_started();
  asio::post(shared_->reads, [self = shared_from_this(), id, req = std::move(*m)]() mutable {
    auto kept = self->shared_->store.save_snapshot(req.stream, req.revision, std::move(req.type),
                                                   std::move(req.data));
    std::string frame =
        kept ? proto::encode(id,
                             proto::SnapshotSaved{req.revision, static_cast<std::uint32_t>(*kept)},
                             self->version_)
             : proto::encode_error(id, proto::Error{proto::code_from_errc(kept.status().code()),
                                                    proto::kNone, kept.status().message()});
    self->answer_on_strand(std::move(frame));
  });
}

void Connection::handle_snapshot_read(std::uint64_t id, std::string_view payload) {
  if (refuse_if_too_many(id)) return;
  auto m = proto::decode<proto::SnapshotReadReq>(payload, version_);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  request_started();
  asio::post(shared_->reads, [self = shared_from_this(), id, req = std::move(*m)] {
    index::Store& store = self->shared_->store;
    auto error = [&](const Status& st) {
      return proto::encode_error(
          id, proto::Error{proto::code_from_errc(st.code()), proto::kNone, st.message()});
    };
    std::string frame;
    auto snap = store.read_snapshot(req.stream, req.max_revision);
    if (!snap) {
      frame = error(snap.status());
    } else {
      proto::SnapshotOk ok;
      if (*snap) {
        ok.found = true;
        ok.revision = (*snap)->revision;
        ok.type = std::move((*snap)->type);
        ok.data = std::move((*snap)->data);
      }
      ok.next = ok.found ? ok.revision + 1 : 0;
      const std::uint32_t count = std::min(req.count, self->shared_->options.max_read_count);
      Status st;
      if (count > 0) {
        auto events = store.read_stream(req.stream, StreamRevision(ok.next), count,
                                        index::Direction::kForward);
        if (!events) {
          st = events.status();
        } else {
          ok.events = std::move(*events);
          if (!ok.events.empty()) ok.next = ok.events.back().revision.value + 1;
        }
      }
      auto head = store.last_revision(req.stream);
      if (st.is_ok() && !head) st = head.status();
      ok.end = st.is_ok() && ok.next > head->value;
      frame = st.is_ok() ? proto::encode(id, ok, self->version_) : error(st);
    }
    self->answer_on_strand(std::move(frame));
  });
}

void Connection::handle_scavenge(std::uint64_t id, std::string_view payload) {
  if (refuse_if_too_many(id)) return;
  if (auto m = proto::decode<proto::ScavengeReq>(payload, version_); !m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  request_started();
  // Answered when the run is done (seconds to hours, throttled): on the
  // scavenger's thread, posted back to the connection.
  shared_->scavenger->request(
      [weak = weak_from_this(), id](const Result<index::ScavengeReport>& r) {
        auto self = weak.lock();
        if (!self) return;
        std::string frame;
        if (!r) {
          frame = proto::encode_error(id, proto::Error{proto::code_from_errc(r.status().code()),
                                                       proto::kNone, r.status().message()});
        } else {
          frame = proto::encode(
              id,
              proto::ScavengeOk{r->segments_checked, r->segments_rewritten, r->events_removed,
                                r->bytes_read, r->bytes_written, r->log_bytes_before,
                                r->log_bytes_after, static_cast<std::uint64_t>(r->seconds * 1e6),
                                r->cancelled},
              self->version_);
        }
        self->answer_on_strand(std::move(frame));
      });
}

}  // namespace annal::net::detail
