#include "net/group_registry.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "net/shared.h"

namespace annal::net::detail {
namespace {

proto::Error error(proto::Code code, std::string message) {
  return proto::Error{code, proto::kNone, std::move(message)};
}
proto::Error error(const Status& st) {
  return error(proto::code_from_errc(st.code()), st.message());
}

std::int64_t wall_now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

GroupRegistry::GroupRegistry(Shared& shared, std::string dir)
    : shared_(shared), dir_(std::move(dir)) {}

std::shared_ptr<Group> GroupRegistry::make_group(groups::GroupFile file) {
  Lane& lane = shared_.lanes[next_lane_++ % shared_.lanes.size()];
  return std::make_shared<Group>(shared_, dir_, std::move(file), lane);
}

Status GroupRegistry::open() {
  auto files = groups::read_group_files(engine::FileSystem::posix(), dir_);
  if (!files) return files.status();
  std::lock_guard lk(mu_);
  for (auto& f : *files) {
    if (f.kind == groups::Kind::kNamed) {
      named_[f.name] = std::move(f);
      continue;
    }
    auto g = make_group(std::move(f));
    groups_[g->name()] = g;
    g->start();
  }
  if (!groups_.empty() || !named_.empty())
    spdlog::info("{} consumer groups and {} named consumers in {}", groups_.size(), named_.size(),
                 dir_);
  return Status::ok();
}

void GroupRegistry::stop() {
  std::vector<std::shared_ptr<Group>> all;
  {
    std::lock_guard lk(mu_);
    for (auto& [name, g] : groups_) all.push_back(g);
  }
  for (auto& g : all) g->flush_and_stop();
}

std::optional<proto::Error> GroupRegistry::create(const std::string& name,
                                                  const groups::Settings& s) {
  if (Status st = groups::validate_name(name); !st.is_ok()) return error(st);
  if (Status st = groups::validate(s); !st.is_ok()) return error(st);
  const index::Store& store = shared_.store;
  if (s.target == groups::Target::kIndex && !store.secondary_stats())
    return error(proto::Code::kInvalidArgument,
                 "a group on a category, type, tag or id needs the secondary index "
                 "(annald --secondary-index on)");
  groups::GroupFile f;
  f.kind = groups::Kind::kGroup;
  f.name = name;
  f.settings = s;
  f.created_us = wall_now_us();
  const std::uint64_t end = store.log().durable_end().value;
  switch (s.start) {
    case groups::Start::kBeginning:
      break;
    case groups::Start::kEnd:
      f.progress.checkpoint = end;
      if (s.target == groups::Target::kStream) {
        auto last = store.last_revision(s.stream);
        f.progress.checkpoint_revision = last.is_ok() ? last->value + 1 : 0;
      }
      break;
    case groups::Start::kPosition:
      if (s.start_value > end)
        return error(proto::Code::kInvalidArgument,
                     fmt::format("group setting 'start_value': position {} is past the durable "
                                 "end {}",
                                 s.start_value, end));
      f.progress.checkpoint = s.start_value;
      break;
    case groups::Start::kTime: {
      auto pos = store.seek_time(static_cast<std::int64_t>(s.start_value));
      if (!pos) return error(pos.status());
      f.progress.checkpoint = pos->value;
      break;
    }
  }
  // The file is written without mu_: lookups (joins, info) on the network
  // threads never wait for an fsync. admin_mu_ keeps creates and deletes of
  // one name from interleaving.
  std::lock_guard admin(admin_mu_);
  if (find(name))
    return error(proto::Code::kAlreadyExists, fmt::format("group '{}' already exists", name));
  if (Status st = groups::write_group_file(engine::FileSystem::posix(), dir_, f); !st.is_ok())
    return error(st);
  std::shared_ptr<Group> g;
  {
    std::lock_guard lk(mu_);
    g = make_group(std::move(f));
    groups_[name] = g;
  }
  g->start();
  spdlog::info("group '{}' created ({}, {})", name, groups::target_name(s.target),
               groups::strategy_name(s.strategy));
  return std::nullopt;
}

void GroupRegistry::update(const std::string& name, const groups::Settings& s,
                           std::function<void(std::optional<proto::Error>)> done) {
  if (Status st = groups::validate(s); !st.is_ok()) return done(error(st));
  auto g = find(name);
  if (!g) return done(error(proto::Code::kNotFound, fmt::format("no group '{}'", name)));
  const groups::Settings old = g->settings();
  if (old.target != s.target || old.stream != s.stream || old.stream_prefix != s.stream_prefix ||
      old.type_prefix != s.type_prefix || old.index_kind != s.index_kind ||
      old.index_value != s.index_value)
    return done(
        error(proto::Code::kInvalidArgument,
              fmt::format("group '{}': the target cannot change (delete and create it)", name)));
  if (old.strategy != s.strategy)
    return done(
        error(proto::Code::kInvalidArgument,
              fmt::format("group '{}': the strategy cannot change (delete and create it)", name)));
  groups::Settings next = s;
  next.start = old.start;  // where it started is history
  next.start_value = old.start_value;
  g->update(next, [done = std::move(done)](Status st) {
    if (!st.is_ok()) return done(error(st));
    done(std::nullopt);
  });
}

std::optional<proto::Error> GroupRegistry::remove(const std::string& name) {
  std::lock_guard admin(admin_mu_);
  std::shared_ptr<Group> g;
  bool named = false;
  {
    std::lock_guard lk(mu_);
    if (auto it = groups_.find(name); it != groups_.end()) {
      g = it->second;
      groups_.erase(it);
    } else if (named_.erase(name)) {
      named = true;
    } else {
      return error(proto::Code::kNotFound, fmt::format("no group or named consumer '{}'", name));
    }
  }
  if (g) g->close(error(proto::Code::kNotFound, fmt::format("group '{}' was deleted", name)));
  Status st = groups::remove_group_file(engine::FileSystem::posix(), dir_,
                                        named ? groups::Kind::kNamed : groups::Kind::kGroup, name);
  if (!st.is_ok()) return error(st);
  spdlog::info("{} '{}' deleted", named ? "named consumer" : "group", name);
  return std::nullopt;
}

std::shared_ptr<Group> GroupRegistry::find(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = groups_.find(name);
  return it == groups_.end() ? nullptr : it->second;
}

proto::GroupInfo GroupRegistry::named_figures(const groups::GroupFile& f) const {
  proto::GroupInfo i;
  i.kind = groups::Kind::kNamed;
  i.name = f.name;
  i.checkpoint = f.progress.checkpoint;
  const engine::Log& log = shared_.store.log();
  i.durable_end = log.durable_end().value;
  i.lag_events = i.durable_end > i.checkpoint ? i.durable_end - i.checkpoint : 0;
  if (i.lag_events > 0) {
    // Event time between the head and the last event the consumer processed
    // (the one below its checkpoint; the first event if it has none).
    std::int64_t head = 0, last = 0;
    const bool ok = log.visit(GlobalPosition(i.durable_end - 1),
                              [&](const engine::RecordView& v) { head = v.timestamp_us; })
                        .is_ok() &&
                    log.visit(GlobalPosition(i.checkpoint ? i.checkpoint - 1 : 0),
                              [&](const engine::RecordView& v) { last = v.timestamp_us; })
                        .is_ok();
    if (ok && head > last) i.lag_us = head - last;
  }
  return i;
}

std::vector<proto::GroupInfo> GroupRegistry::list() const {
  std::vector<std::shared_ptr<Group>> all;
  std::vector<groups::GroupFile> named;
  {
    std::lock_guard lk(mu_);
    for (auto& [name, g] : groups_) all.push_back(g);
    for (auto& [name, f] : named_) named.push_back(f);
  }
  std::vector<proto::GroupInfo> out;
  for (auto& g : all) out.push_back(g->info());
  for (auto& f : named) out.push_back(named_figures(f));
  return out;
}

std::optional<proto::GroupInfo> GroupRegistry::named_info(const std::string& name) const {
  groups::GroupFile f;
  {
    std::lock_guard lk(mu_);
    auto it = named_.find(name);
    if (it == named_.end()) return std::nullopt;
    f = it->second;
  }
  return named_figures(f);
}

std::optional<proto::Error> GroupRegistry::save_checkpoint(const std::string& name,
                                                           std::uint64_t position) {
  if (Status st = groups::validate_name(name); !st.is_ok()) return error(st);
  const std::uint64_t end = shared_.store.log().durable_end().value;
  if (position > end)
    return error(proto::Code::kInvalidArgument,
                 fmt::format("checkpoint position {} is past the durable end {}", position, end));
  groups::GroupFile f;
  f.kind = groups::Kind::kNamed;
  f.name = name;
  f.progress.checkpoint = position;
  std::lock_guard admin(admin_mu_);
  {
    std::lock_guard lk(mu_);
    if (auto it = named_.find(name); it != named_.end()) f.created_us = it->second.created_us;
  }
  if (!f.created_us) f.created_us = wall_now_us();
  if (Status st = groups::write_group_file(engine::FileSystem::posix(), dir_, f); !st.is_ok())
    return error(st);
  std::lock_guard lk(mu_);
  named_[name] = std::move(f);
  return std::nullopt;
}

std::optional<std::uint64_t> GroupRegistry::load_checkpoint(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = named_.find(name);
  if (it == named_.end()) return std::nullopt;
  return it->second.progress.checkpoint;
}

}  // namespace annal::net::detail
