#pragma once
// The node's consumer groups and named consumers by name (internal to
// annal_net): read from DATA/groups at start, created, updated and deleted
// by requests, each group's file written before the request is answered.
// docs/consumer-groups.md.
//
// Thread safety: every method may be called from any thread. create,
// update, remove, save_checkpoint and open write files (fsync): call them
// from the reading pool, not a network thread.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "groups/group_file.h"
#include "net/group.h"
#include "proto/protocol.h"

namespace annal::net::detail {

struct Shared;

class GroupRegistry {
 public:
  GroupRegistry(Shared& shared, std::string dir);

  // Reads every group file and starts its group. A damaged file is an error
  // naming it: the node does not start (a group silently reset would
  // redeliver or skip).
  Status open();
  // Writes every group's progress one last time (the node is stopping).
  void stop();

  // nullopt: done; else the error to answer.
  std::optional<proto::Error> create(const std::string& name, const groups::Settings& s);
  // `done` gets nullopt or the error (from the group's strand).
  void update(const std::string& name, const groups::Settings& s,
              std::function<void(std::optional<proto::Error>)> done);
  // A group, or else a named consumer, of that name.
  std::optional<proto::Error> remove(const std::string& name);
  std::shared_ptr<Group> find(const std::string& name) const;
  // Every group's figures and every named consumer's, by name.
  std::vector<proto::GroupInfo> list() const;
  std::optional<proto::GroupInfo> named_info(const std::string& name) const;

  std::optional<proto::Error> save_checkpoint(const std::string& name, std::uint64_t position);
  std::optional<std::uint64_t> load_checkpoint(const std::string& name) const;

  std::uint64_t next_consumer_id() { return ++consumer_ids_; }

 private:
  std::shared_ptr<Group> make_group(groups::GroupFile file);
  proto::GroupInfo named_figures(const groups::GroupFile& f) const;

  Shared& shared_;
  const std::string dir_;
  mutable std::mutex mu_;  // the maps below
  std::map<std::string, std::shared_ptr<Group>> groups_;
  std::map<std::string, groups::GroupFile> named_;
  std::size_t next_lane_ = 0;
  std::atomic<std::uint64_t> consumer_ids_{0};
  // Creates, deletes and named checkpoint writes, one at a time (they write
  // files); mu_ guards only the maps, so lookups never wait for an fsync.
  std::mutex admin_mu_;
};

}  // namespace annal::net::detail
