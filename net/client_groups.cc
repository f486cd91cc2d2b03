// The client library's consumer-group calls (protocol v4,
// docs/consumer-groups.md): group administration, named checkpoints, and a
// consumer's membership (join, ack, nack, leave).
#include "net/client.h"
#include "net/client_impl.h"

namespace annal::net {
namespace {

proto::Error needs_v4(const char* what, std::uint16_t have) {
  return make_error(
      proto::Code::kBadRequest,
      fmt::format("{} needs protocol version 4; this connection speaks {}", what, have));
}

}  // namespace

Reply<proto::GroupOk> Client::group_create(const std::string& name,
                                           const groups::Settings& settings, bool update) {
  const std::uint16_t v = impl_->version;
  if (v < 4) return needs_v4("group_create", v);
  const proto::GroupCreateReq req{update, name, settings};
  return impl_->call<proto::GroupOk>(
      [&req, v](std::uint64_t id) { return proto::encode(id, req, v); }, proto::Op::kGroupOk,
      &proto::decode<proto::GroupOk>);
}

Reply<proto::GroupOk> Client::group_delete(const std::string& name) {
  const std::uint16_t v = impl_->version;
  if (v < 4) return needs_v4("group_delete", v);
  return impl_->call<proto::GroupOk>(
      [&name, v](std::uint64_t id) { return proto::encode(id, proto::GroupDeleteReq{name}, v); },
      proto::Op::kGroupOk, &proto::decode<proto::GroupOk>);
}

Reply<std::vector<proto::GroupInfo>> Client::group_list() {
  const std::uint16_t v = impl_->version;
  if (v < 4) return needs_v4("group_list", v);
  auto r = impl_->call<proto::GroupListOk>(
      [](std::uint64_t id) { return proto::encode_empty(proto::Op::kGroupList, id); },
      proto::Op::kGroupListOk, &proto::decode<proto::GroupListOk>);
  if (!r.ok()) return r.error();
  return std::move(r->groups);
}

Reply<proto::GroupInfo> Client::group_info(const std::string& name) {
  const std::uint16_t v = impl_->version;
  if (v < 4) return needs_v4("group_info", v);
  auto r = impl_->call<proto::GroupListOk>(
      [&name, v](std::uint64_t id) { return proto::encode(id, proto::GroupInfoReq{name}, v); },
      proto::Op::kGroupListOk, &proto::decode<proto::GroupListOk>);
  if (!r.ok()) return r.error();
  if (r->groups.size() != 1)
    return make_error(
        proto::Code::kBadRequest,
        fmt::format("group_info: the node answered {} groups, expected 1", r->groups.size()));
  return std::move(r->groups.front());
}

Reply<proto::GroupParkedOk> Client::group_parked(const std::string& name, std::uint64_t from,
                                                 std::uint32_t count) {
  const std::uint16_t v = impl_->version;
  if (v < 4) return needs_v4("group_parked", v);
  const proto::GroupParkedReq req{name, from, count};
  return impl_->call<proto::GroupParkedOk>(
      [&req, v](std::uint64_t id) { return proto::encode(id, req, v); }, proto::Op::kGroupParkedOk,
      &proto::decode<proto::GroupParkedOk>);
}

Reply<std::uint64_t> Client::group_replay_parked(const std::string& name) {
  const std::uint16_t v = impl_->version;
  if (v < 4) return needs_v4("group_replay_parked", v);
  auto r = impl_->call<proto::GroupOk>(
      [&name, v](std::uint64_t id) {
        return proto::encode(id, proto::GroupReplayParkedReq{name}, v);
      },
      proto::Op::kGroupOk, &proto::decode<proto::GroupOk>);
  if (!r.ok()) return r.error();
  return r->count;
}

Reply<std::unique_ptr<GroupMember>> Client::group_join(const std::string& name,
                                                       std::uint32_t max_in_flight) {
  const std::uint16_t v = impl_->version;
  if (v < 4) return needs_v4("group_join", v);
  const proto::GroupJoinReq req{name, max_in_flight};
  auto sub = subscribe_with([&req, v](std::uint64_t id) { return proto::encode(id, req, v); });
  if (!sub.ok()) return sub.error();
  return std::unique_ptr<GroupMember>(new GroupMember(this, std::move(sub.value())));
}

Reply<bool> Client::checkpoint_save(const std::string& name, std::uint64_t position) {
  const std::uint16_t v = impl_->version;
  if (v < 4) return needs_v4("checkpoint_save", v);
  auto r = impl_->call<proto::GroupOk>(
      [&name, position, v](std::uint64_t id) {
        return proto::encode(id, proto::CheckpointSaveReq{name, position}, v);
      },
      proto::Op::kGroupOk, &proto::decode<proto::GroupOk>);
  if (!r.ok()) return r.error();
  return true;
}

Reply<std::optional<std::uint64_t>> Client::checkpoint_load(const std::string& name) {
  const std::uint16_t v = impl_->version;
  if (v < 4) return needs_v4("checkpoint_load", v);
  auto r = impl_->call<proto::CheckpointOk>(
      [&name, v](std::uint64_t id) { return proto::encode(id, proto::CheckpointLoadReq{name}, v); },
      proto::Op::kCheckpointOk, &proto::decode<proto::CheckpointOk>);
  if (!r.ok()) return r.error();
  return r->found ? std::optional<std::uint64_t>(r->position) : std::nullopt;
}

GroupMember::~GroupMember() = default;  // the Subscription leaves if still joined

void GroupMember::ack(const std::vector<std::uint64_t>& positions) {
  if (positions.empty()) return;
  const proto::GroupAckReq req{sub_->id(), positions};
  owner_->impl_->send_oneway([&req](std::uint64_t id) { return proto::encode(id, req); });
}

void GroupMember::nack(groups::NackAction action, const std::vector<std::uint64_t>& positions,
                       const std::string& reason) {
  if (positions.empty()) return;
  const proto::GroupNackReq req{sub_->id(), action, reason, positions};
  owner_->impl_->send_oneway([&req](std::uint64_t id) { return proto::encode(id, req); });
}

}  // namespace annal::net
