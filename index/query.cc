#include "index/query.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>

namespace annal::index {

namespace {

// Candidates read per key and step: a page's worth when nothing collides,
// few enough that a short read does not collect a long posting list.
constexpr std::size_t kCandidatesPerStep = 256;

Status check_strings(const std::vector<std::string>& v, std::size_t max_count, std::size_t max_size,
                     std::size_t item, const char* what, const char* limit_name) {
  if (v.size() > max_count)
    return Status(Errc::kTooLarge, fmt::format("query item {} has {} {}s; the limit is {}", item,
                                               v.size(), what, max_count));
  for (const auto& s : v) {
    if (s.empty())
      return Status(Errc::kBadRequest, fmt::format("query item {} has an empty {}", item, what));
    if (s.size() > max_size)
      return Status(Errc::kTooLarge,
                    fmt::format("query item {} has a {} of {} bytes; the limit ({}) is {}", item,
                                what, s.size(), limit_name, max_size));
  }
  return Status::ok();
}

void sort_unique(std::vector<std::string>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

}  // namespace

Status validate_query(const Query& q, const QueryLimits& limits) {
  if (q.items.empty())
    return Status(Errc::kBadRequest,
                  "query has no items (an item with no types and no tags matches every event)");
  if (q.items.size() > limits.max_items)
    return Status(Errc::kTooLarge, fmt::format("query has {} items; the limit is {}",
                                               q.items.size(), limits.max_items));
  for (std::size_t i = 0; i < q.items.size(); ++i) {
    const QueryItem& item = q.items[i];
    ANNAL_RETURN_IF_ERROR(check_strings(item.types, limits.max_types, limits.max_type_size, i,
                                        "type", "max_event_type"));
    ANNAL_RETURN_IF_ERROR(
        check_strings(item.tags, limits.max_tags, limits.max_tag_size, i, "tag", "max_tag_size"));
  }
  return Status::ok();
}

void normalise_query(Query& q) {
  for (auto& item : q.items) {
    sort_unique(item.types);
    sort_unique(item.tags);
  }
}

std::string query_to_string(const Query& q) {
  std::string out;
  for (std::size_t i = 0; i < q.items.size(); ++i) {
    if (i > 0) out += " | ";
    const QueryItem& item = q.items[i];
    std::string part;
    if (!item.types.empty()) part = fmt::format("type={}", fmt::join(item.types, ","));
    for (const auto& t : item.tags) part += (part.empty() ? "tag=" : " tag=") + t;
    out += part.empty() ? "*" : part;
  }
  return out;
}

bool query_may_match_since(const SecondaryIndex& index, const Query& q, std::uint64_t position) {
  for (const auto& item : q.items) {
    if (item.tags.empty() && item.types.empty()) return true;
    bool may = true;
    if (!item.tags.empty()) {
      for (const auto& t : item.tags)
        if (!index.may_have_since(IndexKind::kTag, t, position)) {
          may = false;
          break;
        }
    } else {
      may = false;
      for (const auto& t : item.types)
        if (index.may_have_since(IndexKind::kType, t, position)) {
          may = true;
          break;
        }
    }
    if (may) return true;
  }
  return false;
}

QueryCandidates::QueryCandidates(const SecondaryIndex& index, const Query& q, std::uint64_t from,
                                 bool backward, std::uint64_t end, bool files_only)
    : index_(index), backward_(backward), files_only_(files_only && !backward), end_(end) {
  for (const auto& item : q.items) {
    Driver d;
    if (!item.tags.empty()) {
      // An event of the item carries every one of its tags: it is in the
      // intersection of their lists (its types are checked on the record).
      d.intersect = true;
      for (const auto& t : item.tags) d.keys.push_back(Key{IndexKind::kTag, t});
    } else if (!item.types.empty()) {
      for (const auto& t : item.types) d.keys.push_back(Key{IndexKind::kType, t});
    } else {
      every_position_ = true;
    }
    drivers_.push_back(std::move(d));
  }
  if (every_position_) drivers_.clear();
  if (end_ == 0) {
    done_ = true;
    at_ = 0;
  } else if (backward_) {
    at_ = std::min(from, end_ - 1);  // the highest position still to look at
  } else {
    at_ = from;
    done_ = at_ >= end_;
  }
}

Result<std::span<const std::uint64_t>> QueryCandidates::next() {
  batch_.clear();
  if (done_) return std::span<const std::uint64_t>(batch_);
  if (every_position_) {
    if (backward_) {
      const std::uint64_t n = std::min<std::uint64_t>(at_ + 1, kCandidatesPerStep);
      for (std::uint64_t i = 0; i < n; ++i) batch_.push_back(at_ - i);
      done_ = batch_.back() == 0;
      if (!done_) at_ = batch_.back() - 1;
    } else {
      const std::uint64_t n = std::min<std::uint64_t>(end_ - at_, kCandidatesPerStep);
      for (std::uint64_t i = 0; i < n; ++i) batch_.push_back(at_ + i);
      at_ += n;
      done_ = at_ >= end_;
    }
    return std::span<const std::uint64_t>(batch_);
  }
  // Each key's next step. Every list is complete up to the nearest point
  // where some key's step stopped short of its list's end (beyond it, that
  // key may have more not fetched yet): the batch is what lies up to there.
  bool any_full = false;
  std::uint64_t bound = backward_ ? 0 : UINT64_MAX;
  std::size_t nkeys = 0;
  for (const Driver& d : drivers_) nkeys += d.keys.size();
  lists_.resize(nkeys);
  std::size_t li = 0;
  for (const Driver& d : drivers_) {
    for (const Key& k : d.keys) {
      auto c = backward_ ? index_.candidates_desc(k.kind, k.value, at_, end_, kCandidatesPerStep)
                         : index_.candidates(k.kind, k.value, at_, UINT64_MAX, end_,
                                             kCandidatesPerStep, files_only_);
      if (!c) return c.status();
      if (c->size() == kCandidatesPerStep) {
        any_full = true;
        bound = backward_ ? std::max(bound, c->back()) : std::min(bound, c->back());
      }
      lists_[li] = std::move(*c);
      std::sort(lists_[li].begin(), lists_[li].end());  // ascending, also backward
      ++li;
    }
  }
  li = 0;
  for (const Driver& d : drivers_) {
    merged_ = lists_[li];
    for (std::size_t k = 1; k < d.keys.size(); ++k) {
      const auto& other = lists_[li + k];
      std::vector<std::uint64_t> next;
      if (d.intersect)
        std::set_intersection(merged_.begin(), merged_.end(), other.begin(), other.end(),
                              std::back_inserter(next));
      else
        std::set_union(merged_.begin(), merged_.end(), other.begin(), other.end(),
                       std::back_inserter(next));
      merged_.swap(next);
    }
    li += d.keys.size();
    batch_.insert(batch_.end(), merged_.begin(), merged_.end());
  }
  if (backward_) {
    std::sort(batch_.begin(), batch_.end(), std::greater<>());
    if (any_full) std::erase_if(batch_, [&](std::uint64_t p) { return p < bound; });
  } else {
    std::sort(batch_.begin(), batch_.end());
    if (any_full) std::erase_if(batch_, [&](std::uint64_t p) { return p > bound; });
  }
  batch_.erase(std::unique(batch_.begin(), batch_.end()), batch_.end());
  if (!any_full) {
    done_ = true;
  } else if (backward_) {
    done_ = bound == 0;
    if (!done_) at_ = bound - 1;
  } else {
    at_ = bound + 1;
    done_ = at_ >= end_;
  }
  return std::span<const std::uint64_t>(batch_);
}

Status visit_query(const SecondaryIndex& index, const engine::Log& log, const Query& q,
                   GlobalPosition from, bool backward, GlobalPosition end,
                   const std::function<bool(const engine::RecordView&)>& fn) {
  QueryCandidates candidates(index, q, from.value, backward, end.value);
  for (;;) {
    auto batch = candidates.next();
    if (!batch) return batch.status();
    if (batch->empty()) return Status::ok();
    bool more = true;
    Status st = log.visit_many(*batch, [&](std::size_t, const engine::RecordView& v) {
      if (!query_matches(q, v)) return true;
      more = fn(v);
      return more;
    });
    if (!st.is_ok() || !more) return st;
  }
}

}  // namespace annal::index
