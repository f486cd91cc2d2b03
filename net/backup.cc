// The v6 `backup` request (docs/protocol.md, "backup"): validated here,
// run by the BackupRunner (net/backup_runner.h) on its own thread, answered
// when the backup is complete.
#include "net/connection.h"
#include "net/shared.h"

namespace annal::net::detail {

void Connection::handle_backup(std::uint64_t id, std::string_view payload) {
  if (refuse_if_too_many(id)) return;
  auto m = proto::decode<proto::BackupReq>(payload, version_);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  index::BackupOptions o;
  o.dest = std::move(m->dest);
  o.link = m->link;
  o.bytes_per_second = m->bytes_per_second == 0 ? shared_->options.backup_bytes_per_second
                       : m->bytes_per_second == proto::kNone ? 0
                                                             : m->bytes_per_second;
  request_started();
  // Answered on the backup's thread when it is done, posted back to the
  // connection (which may be gone by then: the backup completes anyway).
  Status st = shared_->backups->start(
      std::move(o), [weak = weak_from_this(), id](const Result<index::BackupReport>& r) {
        auto self = weak.lock();
        if (!self) return;
        std::string frame;
        if (!r) {
          frame = proto::encode_error(id, proto::Error{proto::code_from_errc(r.status().code()),
                                                       proto::kNone, r.status().message()});
        } else {
          proto::BackupOk ok;
          ok.position = r->position.value;
          ok.files = static_cast<std::uint32_t>(r->files);
          ok.bytes = r->bytes;
          ok.linked = static_cast<std::uint32_t>(r->linked);
          ok.duration_us = static_cast<std::uint64_t>(r->seconds * 1e6);
          ok.dest = r->dest;
          ok.note = r->note;
          frame = proto::encode(id, ok, self->version_);
        }
        self->answer_on_strand(std::move(frame));
      });
  if (!st.is_ok()) {
    request_finished();
    send_error(id, proto::code_from_errc(st.code()), st.message());
  }
}

}  // namespace annal::net::detail
