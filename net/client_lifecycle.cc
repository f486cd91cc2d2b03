// Client: stream metadata and deletion (protocol v5), backup (v6).
#include <fmt/format.h>

#include "net/client_impl.h"

namespace annal::net {
namespace {

proto::Error needs_v5(const char* what, std::uint16_t have) {
  return make_error(
      proto::Code::kBadRequest,
      fmt::format("{} needs protocol version 5; this connection speaks {}", what, have));
}

}  // namespace

Reply<proto::StreamMetadataOk> Client::stream_metadata(const std::string& stream) {
  const std::uint16_t v = impl_->version;
  if (v < 5) return needs_v5("stream_metadata", v);
  return impl_->call<proto::StreamMetadataOk>(
      [&stream, v](std::uint64_t id) {
        return proto::encode(id, proto::StreamMetadataReq{stream}, v);
      },
      proto::Op::kStreamMetadataOk, &proto::decode<proto::StreamMetadataOk>);
}

Reply<proto::AppendOk> Client::set_stream_metadata(const std::string& stream,
                                                   ExpectedRevision expected,
                                                   const std::string& json) {
  const std::uint16_t v = impl_->version;
  if (v < 5) return needs_v5("set_stream_metadata", v);
  return impl_->call<proto::AppendOk>(
      [&, v](std::uint64_t id) {
        return proto::encode(id, proto::SetStreamMetadataReq{stream, expected, json}, v);
      },
      proto::Op::kAppendOk, &proto::decode<proto::AppendOk>);
}

Reply<proto::DeleteOk> Client::delete_stream(const std::string& stream, ExpectedRevision expected,
                                             bool hard) {
  const std::uint16_t v = impl_->version;
  if (v < 5) return needs_v5("delete_stream", v);
  return impl_->call<proto::DeleteOk>(
      [&, v](std::uint64_t id) {
        return proto::encode(id, proto::DeleteStreamReq{stream, expected, hard}, v);
      },
      proto::Op::kDeleteOk, &proto::decode<proto::DeleteOk>);
}

Reply<proto::ScavengeOk> Client::scavenge() {
  const std::uint16_t v = impl_->version;
  if (v < 5) return needs_v5("scavenge", v);
  return impl_->call<proto::ScavengeOk>(
      [v](std::uint64_t id) { return proto::encode(id, proto::ScavengeReq{}, v); },
      proto::Op::kScavengeOk, &proto::decode<proto::ScavengeOk>);
}

Reply<proto::BackupOk> Client::backup(const std::string& dest, bool link,
                                      std::uint64_t bytes_per_second) {
  const std::uint16_t v = impl_->version;
  if (v < 6)
    return make_error(proto::Code::kBadRequest,
                      fmt::format("backup needs protocol version 6; this connection speaks {}", v));
  return impl_->call<proto::BackupOk>(
      [&, v](std::uint64_t id) {
        return proto::encode(id, proto::BackupReq{dest, link, bytes_per_second}, v);
      },
      proto::Op::kBackupOk, &proto::decode<proto::BackupOk>);
}

Reply<proto::SnapshotSaved> Client::snapshot_save(const std::string& stream, std::uint64_t revision,
                                                  const std::string& type,
                                                  const std::string& data) {
  const std::uint16_t v = impl_->version;
  if (v < 5) return needs_v5("snapshot_save", v);
  return impl_->call<proto::SnapshotSaved>(
      [&, v](std::uint64_t id) {
        return proto::encode(id, proto::SnapshotSaveReq{stream, revision, type, data}, v);
      },
      proto::Op::kSnapshotSaved, &proto::decode<proto::SnapshotSaved>);
}

Reply<proto::SnapshotOk> Client::snapshot_read(const std::string& stream,
                                               std::uint64_t max_revision, std::uint32_t count) {
  const std::uint16_t v = impl_->version;
  if (v < 5) return needs_v5("snapshot_read", v);
  return impl_->call<proto::SnapshotOk>(
      [&, v](std::uint64_t id) {
        return proto::encode(id, proto::SnapshotReadReq{stream, max_revision, count}, v);
      },
      proto::Op::kSnapshotOk, &proto::decode<proto::SnapshotOk>);
}

}  // namespace annal::net
