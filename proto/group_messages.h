#pragma once
// annal wire protocol version 4: the consumer-group and named-consumer
// messages (docs/protocol.md section 3.7, docs/consumer-groups.md), declared
// like every message in proto/protocol.h (which includes this header at its
// end; the codec's encode/decode are instantiated for them in protocol.cc).

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "groups/settings.h"
#include "proto/protocol.h"

namespace annal::net::proto {

template <class V, class S>
void group_settings_fields(V& v, S& s) {
  v.enumeration(s.target, "settings.target", groups::kMaxTarget,
                "must be 0 (stream), 1 (all) or 2 (index)");
  v.str(s.stream, "settings.stream");
  v.str(s.stream_prefix, "settings.stream_prefix");
  v.str(s.type_prefix, "settings.type_prefix");
  v.enumeration(s.index_kind, "settings.index_kind", index::kMaxIndexKind,
                "must be 0 (category), 1 (type), 2 (tag), 3 (correlation) or 4 (causation)");
  v.str(s.index_value, "settings.index_value");
  v.enumeration(s.start, "settings.start", groups::kMaxStart,
                "must be 0 (beginning), 1 (end), 2 (position) or 3 (time)");
  v.u64(s.start_value, "settings.start_value");
  v.enumeration(s.strategy, "settings.strategy", groups::kMaxStrategy,
                "must be 0 (round robin) or 1 (ordered)");
  v.u32(s.max_in_flight, "settings.max_in_flight");
  v.u32(s.ack_timeout_ms, "settings.ack_timeout_ms");
  v.u32(s.max_retries, "settings.max_retries");
  v.u32(s.retry_delay_ms, "settings.retry_delay_ms");
}

// Creates a group (update = false: already_exists if the name is taken) or
// changes an existing one's settings (update = true: not_found if there is
// none; its target and start cannot change). Answered with group_ok.
struct GroupCreateReq {
  static constexpr Op kOp = Op::kGroupCreate;
  static constexpr const char* kName = "group_create";
  bool update = false;
  std::string name;
  groups::Settings settings;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.boolean(m.update, "update");
    v.str(m.name, "name");
    group_settings_fields(v, m.settings);
  }
};
// group_delete, group_info, group_replay_parked and checkpoint_load: a name.
template <Op kOpOf>
struct GroupNameReq {
  static constexpr Op kOp = kOpOf;
  static constexpr const char* kName = kOpOf == Op::kGroupDelete      ? "group_delete"
                                       : kOpOf == Op::kGroupInfo      ? "group_info"
                                       : kOpOf == Op::kCheckpointLoad ? "checkpoint_load"
                                                                      : "group_replay_parked";
  std::string name;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.str(m.name, "name");
  }
};
using GroupDeleteReq = GroupNameReq<Op::kGroupDelete>;
using GroupInfoReq = GroupNameReq<Op::kGroupInfo>;
using GroupReplayParkedReq = GroupNameReq<Op::kGroupReplayParked>;
using CheckpointLoadReq = GroupNameReq<Op::kCheckpointLoad>;
// The answer to group_create, group_delete, group_replay_parked (count:
// the parked events handed out again) and checkpoint_save.
struct GroupOk {
  static constexpr Op kOp = Op::kGroupOk;
  static constexpr const char* kName = "group_ok";
  std::uint64_t count = 0;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.u64(m.count, "count");
  }
};
// One group or named consumer, as group_list_ok lists them. Lag: events of
// the target not yet resolved (exact once the group has read up to the
// durable end, else counting the unread log positions too), and the event
// time between the durable head and the newest event resolved below the
// checkpoint (0 when nothing is pending).
struct GroupInfo {
  groups::Kind kind = groups::Kind::kGroup;
  std::string name;
  groups::Settings settings;     // kGroup
  std::uint64_t checkpoint = 0;  // every event of the target below is resolved
  std::uint64_t durable_end = 0;
  std::uint64_t lag_events = 0;
  std::int64_t lag_us = 0;
  std::uint32_t consumers = 0;
  std::uint64_t in_flight = 0;        // delivered, not yet resolved
  std::uint64_t buffered = 0;         // read from the log, not yet resolved
  std::uint64_t parked = 0;           // in the parked list now
  std::uint64_t acked_total = 0;      // resolved by ack or skip, since creation
  std::uint64_t parked_total = 0;     // parked, since creation
  std::uint64_t delivered_total = 0;  // deliveries since the node started
};
struct GroupListOk {
  static constexpr Op kOp = Op::kGroupListOk;
  static constexpr const char* kName = "group_list_ok";
  std::vector<GroupInfo> groups;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.list(m.groups, "group_count", 64, [](V& gv, auto& g) {
      gv.enumeration(g.kind, "group.kind", 1, "must be 0 (group) or 1 (named consumer)");
      gv.str(g.name, "group.name");
      group_settings_fields(gv, g.settings);
      gv.u64(g.checkpoint, "group.checkpoint");
      gv.u64(g.durable_end, "group.durable_end");
      gv.u64(g.lag_events, "group.lag_events");
      gv.i64(g.lag_us, "group.lag_us");
      gv.u32(g.consumers, "group.consumers");
      gv.u64(g.in_flight, "group.in_flight");
      gv.u64(g.buffered, "group.buffered");
      gv.u64(g.parked, "group.parked");
      gv.u64(g.acked_total, "group.acked_total");
      gv.u64(g.parked_total, "group.parked_total");
      gv.u64(g.delivered_total, "group.delivered_total");
    });
  }
};
// Joins a group as one consumer: answered with subscribe_ok (start: the
// group's checkpoint), then group_events frames carrying this request's id
// until unsubscribe (that id), the connection closing, or an error frame
// with that id (the group was deleted). max_in_flight 0: the group's.
struct GroupJoinReq {
  static constexpr Op kOp = Op::kGroupJoin;
  static constexpr const char* kName = "group_join";
  std::string name;
  std::uint32_t max_in_flight = 0;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.str(m.name, "name");
    v.u32(m.max_in_flight, "max_in_flight");
  }
};
// One delivered event: how many times it has been delivered (1 the first
// time), then the event (section 3.3).
struct GroupEvent {
  std::uint32_t attempt = 0;
  engine::EventRecord event;
};
// `Events`: std::vector<GroupEvent> (decoded), or EncodedEvents holding
// the (attempt, event) pairs already encoded (encode only).
template <class Events>
struct GroupEventsOf {
  static constexpr Op kOp = Op::kGroupEvents;
  static constexpr const char* kName = "group_events";
  Events events;
  template <class V, class M>
  static void fields(V& v, M& m) {
    if constexpr (std::is_same_v<Events, EncodedEvents>) {
      v.events(m.events, "count");
    } else {
      v.list(m.events, "count", 4 + event_wire_fixed(v.version()), [](V& ev, auto& e) {
        ev.u32(e.attempt, "attempt");
        event_fields(ev, e.event);
      });
    }
  }
};
using GroupEvents = GroupEventsOf<std::vector<GroupEvent>>;
// Resolves delivered events (by position) of the membership `join_id`. No
// answer unless it is wrong (unknown_subscription, bad_request): a position
// not held by the group (acked already, never delivered) is ignored.
struct GroupAckReq {
  static constexpr Op kOp = Op::kGroupAck;
  static constexpr const char* kName = "group_ack";
  std::uint64_t join_id = 0;
  std::vector<std::uint64_t> positions;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.u64(m.join_id, "join_id");
    v.list(m.positions, "position_count", 8, [](V& pv, auto& p) { pv.u64(p, "position"); });
  }
};
// Gives delivered events back: retry now, retry later, park, or skip.
struct GroupNackReq {
  static constexpr Op kOp = Op::kGroupNack;
  static constexpr const char* kName = "group_nack";
  std::uint64_t join_id = 0;
  groups::NackAction action = groups::NackAction::kRetry;
  std::string reason;
  std::vector<std::uint64_t> positions;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.u64(m.join_id, "join_id");
    v.enumeration(m.action, "action", groups::kMaxNackAction,
                  "must be 0 (retry), 1 (retry later), 2 (park) or 3 (skip)");
    v.str(m.reason, "reason");
    v.list(m.positions, "position_count", 8, [](V& pv, auto& p) { pv.u64(p, "position"); });
  }
};
// A named consumer's checkpoint: the position its next read starts from
// (every event below is processed). Stored durably before group_ok.
struct CheckpointSaveReq {
  static constexpr Op kOp = Op::kCheckpointSave;
  static constexpr const char* kName = "checkpoint_save";
  std::string name;
  std::uint64_t position = 0;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.str(m.name, "name");
    v.u64(m.position, "position");
  }
};
// The parked list of a group, by position from `from`, at most `count`
// entries (0: the node's page size); answered with group_parked_ok.
struct GroupParkedReq {
  static constexpr Op kOp = Op::kGroupParked;
  static constexpr const char* kName = "group_parked";
  std::string name;
  std::uint64_t from = 0;
  std::uint32_t count = 0;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.str(m.name, "name");
    v.u64(m.from, "from");
    v.u32(m.count, "count");
  }
};
struct GroupParkedOk {
  static constexpr Op kOp = Op::kGroupParkedOk;
  static constexpr const char* kName = "group_parked_ok";
  struct Entry {
    std::uint64_t position = 0;
    std::uint32_t failures = 0;
    bool replaying = false;  // handed out again by group_replay_parked, not yet resolved
    std::string reason;
  };
  std::vector<Entry> parked;
  std::uint64_t next = kNone;  // where the next page starts; kNone: no more
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.list(m.parked, "parked_count", 17, [](V& pv, auto& e) {
      pv.u64(e.position, "parked.position");
      pv.u32(e.failures, "parked.failures");
      pv.boolean(e.replaying, "parked.replaying");
      pv.str(e.reason, "parked.reason");
    });
    v.u64(m.next, "next");
  }
};
struct CheckpointOk {
  static constexpr Op kOp = Op::kCheckpointOk;
  static constexpr const char* kName = "checkpoint_ok";
  bool found = false;
  std::uint64_t position = 0;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.boolean(m.found, "found");
    v.u64(m.position, "position");
  }
};

}  // namespace annal::net::proto
