#pragma once
// Queries in the sense of Dynamic Consistency Boundaries (dcb.events; see
// docs/semantics.md, "Queries and append conditions"): a query is a list of
// items combined with OR; an item matches an event whose type is one of the
// item's types (any type if it lists none) and whose tags include every one
// of the item's tags. An item with neither types nor tags matches every
// event. Lost entries (repair markers) match nothing.
//
// The secondary index answers a query: an item with tags is driven by the
// intersection of its tags' position lists, an item with only types by the
// union of its types' lists (an item matching everything by every position);
// the items' candidates are merged in log order, and each candidate's record
// is checked against the whole query (hashes name candidates only). QueryCandidates yields them;
// readers (visit_query) and the writer's append-condition check (index/store.cc) read the records.
//
// Thread safety: pure functions; a QueryCandidates is used by one thread.

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/log.h"
#include "engine/record.h"
#include "engine/status.h"
#include "engine/types.h"
#include "index/secondary.h"

namespace annal::index {

struct QueryItem {
  std::vector<std::string> types;  // any of them; empty: any type
  std::vector<std::string> tags;   // all of them; empty: no tag required
};

struct Query {
  std::vector<QueryItem> items;  // OR; at least one
};

// "Fail if any event matching the query exists at a position > after"
// (without `after`: at any position).
struct AppendCondition {
  Query fail_if_events_match;
  std::optional<GlobalPosition> after;
};

// The limits a query must respect (Store's Limits supply the sizes).
struct QueryLimits {
  std::size_t max_items = 64;
  std::size_t max_types = 32;  // per item
  std::size_t max_tags = 32;   // per item
  std::size_t max_type_size = 1024;
  std::size_t max_tag_size = 256;
};

// kBadRequest / kTooLarge naming the item and field that is wrong.
Status validate_query(const Query& q, const QueryLimits& limits);
// Sorts each item's types and tags and drops repeats (one query, one form).
void normalise_query(Query& q);
// "type=A,B tag=x tag=y | tag=z" (the CLI's form; for messages and logs).
std::string query_to_string(const Query& q);

template <class Tags>
bool item_matches(const QueryItem& item, std::string_view type, const Tags& tags) {
  if (!item.types.empty()) {
    bool any = false;
    for (const auto& t : item.types)
      if (t == type) {
        any = true;
        break;
      }
    if (!any) return false;
  }
  for (const auto& want : item.tags) {
    bool found = false;
    for (std::string_view t : tags)
      if (t == want) {
        found = true;
        break;
      }
    if (!found) return false;
  }
  return true;
}

// Whether an event (not a lost entry: the caller checks) matches the query.
template <class Tags>
bool query_matches(const Query& q, std::string_view type, const Tags& tags) {
  for (const auto& item : q.items)
    if (item_matches(item, type, tags)) return true;
  return false;
}
inline bool query_matches(const Query& q, const engine::RecordView& v) {
  return !v.stream.empty() && query_matches(q, v.type, v.tags);
}

// False only if no event added to the index at `position` or later can match
// `q` (SecondaryIndex::may_have_since for the keys of every item: an item with
// tags needs all of them, one with types any of them; an item without either
// always may). Writer thread.
bool query_may_match_since(const SecondaryIndex& index, const Query& q, std::uint64_t position);

// The candidate positions of a query in log order: forward from `from` up to
// `end` (exclusive), or backward from `from` inclusive (UINT64_MAX: from the
// end). A superset of the matching positions; each must be checked.
class QueryCandidates {
 public:
  // `files_only` (forward): from the index files alone; `end` must be at
  // most SecondaryIndex::indexed_through().
  QueryCandidates(const SecondaryIndex& index, const Query& q, std::uint64_t from, bool backward,
                  std::uint64_t end, bool files_only = false);
  // The next batch, in order; empty once there are no more. A damaged index
  // file is kCorruption (never "no candidates").
  Result<std::span<const std::uint64_t>> next();

 private:
  struct Key {
    IndexKind kind;
    std::string_view value;
  };
  // One item's keys: its tags (intersected) or its types (united).
  struct Driver {
    std::vector<Key> keys;
    bool intersect = false;
  };
  const SecondaryIndex& index_;
  std::vector<Driver> drivers_;  // empty with every_position_
  bool every_position_ = false;
  bool backward_;
  bool files_only_;
  std::uint64_t at_;  // the next position to look at (forward) or below which (backward, +1)
  std::uint64_t end_;
  bool done_ = false;
  std::vector<std::uint64_t> batch_;
  std::vector<std::vector<std::uint64_t>> lists_;  // one step's lists, per key
  std::vector<std::uint64_t> merged_;
};

// The events matching `q` below `end` in log order from `from` (inclusive;
// backward from UINT64_MAX = from the end), until fn returns false. A record
// that cannot be read ends it with that error (kCorruption naming it).
Status visit_query(const SecondaryIndex& index, const engine::Log& log, const Query& q,
                   GlobalPosition from, bool backward, GlobalPosition end,
                   const std::function<bool(const engine::RecordView&)>& fn);

}  // namespace annal::index
