// Connection: the v4 consumer-group requests (create, update, delete, list,
// info, replay parked, named checkpoints) and the memberships of this
// connection: join, ack, nack, leave (docs/consumer-groups.md). Requests
// that write a group file run on the reading pool; a membership's events
// come from its group's strand (net/group.h) through push_group_frame.
#include <fmt/format.h>

#include "net/connection.h"
#include "net/group_registry.h"

namespace annal::net::detail {

template <class Work>
void Connection::on_pool(Work work) {
  request_started();
  asio::post(shared_->reads, [self = shared_from_this(), work = std::move(work)]() mutable {
    std::string frame = work(*self->shared_->groups);
    asio::post(self->strand_, [self, frame = std::move(frame)]() mutable {
      self->request_finished();
      self->send(std::move(frame));
    });
  });
}

template <class M>
std::optional<M> Connection::decode_group_request(std::uint64_t id, std::string_view payload) {
  if (refuse_if_too_many(id)) return std::nullopt;
  auto m = proto::decode<M>(payload, version_);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return std::nullopt;
  }
  return std::move(m.value());
}

namespace {
std::string answer(std::uint64_t id, const std::optional<proto::Error>& err,
                   std::uint64_t count = 0) {
  return err ? proto::encode_error(id, *err) : proto::encode(id, proto::GroupOk{count});
}
}  // namespace

void Connection::handle_group_create(std::uint64_t id, std::string_view payload) {
  auto m = decode_group_request<proto::GroupCreateReq>(id, payload);
  if (!m) return;
  if (!m->update) {
    on_pool([id, m = std::move(*m)](GroupRegistry& groups) {
      return answer(id, groups.create(m.name, m.settings));
    });
    return;
  }
  request_started();
  shared_->groups->update(m->name, m->settings,
                          [self = shared_from_this(), id](std::optional<proto::Error> err) {
                            asio::post(self->strand_, [self, id, err = std::move(err)] {
                              self->request_finished();
                              self->send(answer(id, err));
                            });
                          });
}

void Connection::handle_group_delete(std::uint64_t id, std::string_view payload) {
  auto m = decode_group_request<proto::GroupDeleteReq>(id, payload);
  if (!m) return;
  on_pool([id, name = std::move(m->name)](GroupRegistry& groups) {
    return answer(id, groups.remove(name));
  });
}

void Connection::handle_group_list(std::uint64_t id, std::string_view payload) {
  if (!payload.empty()) {
    send_error(id, proto::Code::kBadRequest,
               fmt::format("group_list: unexpected payload of {} bytes", payload.size()));
    return;
  }
  if (refuse_if_too_many(id)) return;
  // The lag reads the head record: on the pool, like any read.
  on_pool(
      [id](GroupRegistry& groups) { return proto::encode(id, proto::GroupListOk{groups.list()}); });
}

void Connection::handle_group_info(std::uint64_t id, std::string_view payload) {
  auto m = decode_group_request<proto::GroupInfoReq>(id, payload);
  if (!m) return;
  GroupRegistry& groups = *shared_->groups;
  if (auto g = groups.find(m->name)) {
    request_started();
    g->info_async([self = shared_from_this(), id](proto::GroupInfo info) {
      asio::post(self->strand_, [self, id, info = std::move(info)]() mutable {
        self->request_finished();
        self->send(proto::encode(id, proto::GroupListOk{{std::move(info)}}));
      });
    });
    return;
  }
  on_pool([id, name = std::move(m->name)](GroupRegistry& groups) {
    if (auto named = groups.named_info(name))
      return proto::encode(id, proto::GroupListOk{{std::move(*named)}});
    return proto::encode_error(id,
                               proto::Error{proto::Code::kNotFound, proto::kNone,
                                            fmt::format("no group or named consumer '{}'", name)});
  });
}

void Connection::handle_group_replay_parked(std::uint64_t id, std::string_view payload) {
  auto m = decode_group_request<proto::GroupReplayParkedReq>(id, payload);
  if (!m) return;
  auto g = shared_->groups->find(m->name);
  if (!g) {
    send_error(id, proto::Code::kNotFound, fmt::format("no group '{}'", m->name));
    return;
  }
  request_started();
  g->replay_parked([self = shared_from_this(), id](Result<std::uint64_t> n) {
    asio::post(self->strand_, [self, id, n = std::move(n)] {
      self->request_finished();
      if (!n.is_ok())
        self->send_error(id, proto::code_from_errc(n.status().code()), n.status().message());
      else
        self->send(answer(id, std::nullopt, *n));
    });
  });
}

void Connection::handle_group_parked(std::uint64_t id, std::string_view payload) {
  auto m = decode_group_request<proto::GroupParkedReq>(id, payload);
  if (!m) return;
  auto g = shared_->groups->find(m->name);
  if (!g) {
    send_error(id, proto::Code::kNotFound, fmt::format("no group '{}'", m->name));
    return;
  }
  const std::uint32_t count = m->count == 0 || m->count > shared_->options.max_read_count
                                  ? shared_->options.max_read_count
                                  : m->count;
  request_started();
  g->parked_async(m->from, count, [self = shared_from_this(), id](proto::GroupParkedOk page) {
    asio::post(self->strand_, [self, id, page = std::move(page)] {
      self->request_finished();
      self->send(proto::encode(id, page));
    });
  });
}

void Connection::handle_checkpoint_save(std::uint64_t id, std::string_view payload) {
  auto m = decode_group_request<proto::CheckpointSaveReq>(id, payload);
  if (!m) return;
  on_pool([id, m = std::move(*m)](GroupRegistry& groups) {
    return answer(id, groups.save_checkpoint(m.name, m.position));
  });
}

void Connection::handle_checkpoint_load(std::uint64_t id, std::string_view payload) {
  auto m = decode_group_request<proto::CheckpointLoadReq>(id, payload);
  if (!m) return;
  const auto pos = shared_->groups->load_checkpoint(m->name);
  send(proto::encode(id, proto::CheckpointOk{pos.has_value(), pos.value_or(0)}));
}

void Connection::handle_group_join(std::uint64_t id, std::string_view payload) {
  auto m = proto::decode<proto::GroupJoinReq>(payload, version_);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  if (subs_.count(id) || joins_.count(id)) {
    send_error(id, proto::Code::kBadRequest,
               fmt::format("subscription id {} is already in use on this connection", id));
    return;
  }
  if (subs_.size() + joins_.size() >= shared_->options.max_subscriptions) {
    send_error(id, proto::Code::kTooManySubscriptions,
               fmt::format("at most {} subscriptions and group memberships per connection",
                           shared_->options.max_subscriptions));
    return;
  }
  if (m->max_in_flight > groups::kMaxInFlightLimit) {
    send_error(id, proto::Code::kInvalidArgument,
               fmt::format("group_join: max_in_flight {} is above {}", m->max_in_flight,
                           groups::kMaxInFlightLimit));
    return;
  }
  GroupRegistry& registry = *shared_->groups;
  auto g = registry.find(m->name);
  if (!g) {
    send_error(id, proto::Code::kNotFound, fmt::format("no group '{}'", m->name));
    return;
  }
  if (std::string why = g->failure(); !why.empty()) {
    send_error(id, proto::Code::kCorruption, why);
    return;
  }
  const std::uint64_t consumer = registry.next_consumer_id();
  joins_[id] = GroupJoin{g, consumer};
  // subscribe_ok goes first: the group's deliveries are posted to this
  // strand after the join, which is posted after this.
  send(proto::encode_subscribe_ok(id, proto::SubscribeOk{g->info().checkpoint}));
  g->join(consumer, Member{weak_from_this(), id}, m->max_in_flight);
}

// The membership an ack or nack names, or an error answered with the
// request's own id (the node answers these one-way requests only then).
template <class M>
std::optional<std::pair<M, std::shared_ptr<Group>>> Connection::membership_request(
    std::uint64_t id, std::string_view payload) {
  auto m = proto::decode<M>(payload, version_);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return std::nullopt;
  }
  auto it = joins_.find(m->join_id);
  if (it == joins_.end()) {
    send_error(id, proto::Code::kUnknownSubscription,
               fmt::format("{}: no group membership {} on this connection", M::kName, m->join_id));
    return std::nullopt;
  }
  return std::make_pair(std::move(m.value()), it->second.group);
}

void Connection::handle_group_ack(std::uint64_t id, std::string_view payload) {
  if (auto r = membership_request<proto::GroupAckReq>(id, payload))
    r->second->ack(std::move(r->first.positions));
}

void Connection::handle_group_nack(std::uint64_t id, std::string_view payload) {
  if (auto r = membership_request<proto::GroupNackReq>(id, payload))
    r->second->nack(r->first.action, std::move(r->first.positions), std::move(r->first.reason));
}

bool Connection::leave_group(std::uint64_t join_id) {
  auto it = joins_.find(join_id);
  if (it == joins_.end()) return false;
  it->second.group->leave(it->second.consumer);
  joins_.erase(it);
  return true;
}

void Connection::leave_groups() {
  for (auto& [id, j] : joins_) j.group->leave(j.consumer);
  joins_.clear();
}

void Connection::push_group_frame(std::uint64_t join_id, std::string frame) {
  asio::post(strand_, [self = shared_from_this(), join_id, frame = std::move(frame)]() mutable {
    // Dropped if the membership ended meanwhile: the group took the events
    // back when it processed the leave.
    if (self->joins_.count(join_id)) self->send(std::move(frame));
  });
}

void Connection::end_group_member(std::uint64_t join_id, proto::Error why) {
  asio::post(strand_, [self = shared_from_this(), join_id, why = std::move(why)] {
    if (!self->joins_.erase(join_id)) return;
    self->send_error(join_id, why.code, why.message, why.detail);
  });
}

}  // namespace annal::net::detail
