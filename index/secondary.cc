#include "index/secondary.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <algorithm>

#include "engine/format.h"
#include "index/manifest.h"

namespace annal::index {

const char* index_kind_name(IndexKind k) {
  switch (k) {
    case IndexKind::kCategory:
      return "category";
    case IndexKind::kType:
      return "type";
    case IndexKind::kTag:
      return "tag";
    case IndexKind::kCorrelation:
      return "correlation";
    case IndexKind::kCausation:
      return "causation";
  }
  return "unknown";
}

namespace {

constexpr const char* kKeysName = "KEYS";
// The time map's granularity: one entry per millisecond of write time that
// saw an event, so a seek reads at most a millisecond's events from the log.
constexpr std::int64_t kTimeBucketUs = 1'000;

}  // namespace

std::int64_t time_bucket_of(std::int64_t ts) {
  return ts >= 0 ? ts / kTimeBucketUs : -((-ts + kTimeBucketUs - 1) / kTimeBucketUs);
}

namespace {

Result<std::string> read_small_file(engine::FileSystem& fs, const std::string& path) {
  auto opened = fs.open(path, engine::OpenOptions{.read_only = true});
  if (!opened) return opened.status();
  auto size = (*opened)->size();
  if (!size) return size.status();
  std::string bytes(std::min<std::uint64_t>(*size, 4096), '\0');
  ANNAL_RETURN_IF_ERROR((*opened)->pread(
      0, std::span<std::byte>(reinterpret_cast<std::byte*>(bytes.data()), bytes.size())));
  return bytes;
}

// DIR/KEYS says how the index's keys were derived ("category_separator=-").
// An index built with another separator would miss events (answer them as
// absent), so it is dropped and rebuilt from the log: its MANIFEST goes
// first, then KEYS is replaced atomically; a crash in between leaves no
// MANIFEST, which rebuilds too.
Status check_keys(engine::FileSystem& fs, const std::string& dir, char separator) {
  if (!fs.exists(dir)) {
    ANNAL_RETURN_IF_ERROR(fs.create_dirs(dir));
    const auto slash = dir.find_last_of('/');
    if (slash != std::string::npos && slash > 0)
      ANNAL_RETURN_IF_ERROR(fs.sync_dir(dir.substr(0, slash)));
  }
  const std::string want = fmt::format("category_separator={}\n", separator);
  const std::string path = dir + "/" + kKeysName;
  if (fs.exists(path)) {
    auto have = read_small_file(fs, path);
    if (have && *have == want) return Status::ok();
    spdlog::warn("secondary index in {} was built with {}; this node uses {}: rebuilding it", dir,
                 have ? "'" + *have + "'" : have.status().message(), want);
  }
  const std::string manifest = dir + "/" + kManifestName;
  if (fs.exists(manifest)) {
    ANNAL_RETURN_IF_ERROR(fs.remove(manifest));
    ANNAL_RETURN_IF_ERROR(fs.sync_dir(dir));
  }
  return engine::write_file_atomically(fs, dir, kKeysName, want);
}

}  // namespace

SecondaryIndex::SecondaryIndex(SecondaryOptions options) : options_(std::move(options)) {}
SecondaryIndex::~SecondaryIndex() = default;

Result<std::unique_ptr<SecondaryIndex>> SecondaryIndex::open(SecondaryOptions options,
                                                             std::uint64_t log_end) {
  auto self = std::unique_ptr<SecondaryIndex>(new SecondaryIndex(std::move(options)));
  SecondaryIndex* raw = self.get();
  IndexCoreOptions co;
  co.dir = raw->options_.dir;
  co.name = "secondary index";
  co.fs = raw->options_.fs;
  co.memtable_entries = raw->options_.memtable_entries;
  co.memtable = MemtableKind::kRuns;
  co.merge_fanout = raw->options_.merge_fanout;
  co.verify_on_open = raw->options_.verify_on_open;
  // No id digests: the idempotency window is the stream index's business.
  co.load_range = [raw](std::uint64_t first, std::uint64_t last, std::vector<IndexEntry>& entries,
                        std::vector<std::uint64_t>&) {
    std::int64_t range_bucket = INT64_MIN;
    return raw->options_.scan(first, last, [&](const engine::RecordView& v) {
      if (v.stream.empty()) return true;  // a lost entry: no keys, no time
      // The time map's entries of this range: the first event of each millisecond
      // (and of the range, which may repeat one the previous range has).
      const std::int64_t s = time_bucket_of(v.timestamp_us);
      if (v.timestamp_us >= 0 && s != range_bucket) {
        range_bucket = s;
        entries.push_back(IndexEntry{raw->time_key(), static_cast<std::uint64_t>(v.timestamp_us),
                                     v.position.value});
      }
      raw->for_each_key(
          v.stream, v.type, v.tags, v.correlation_id, v.causation_id,
          [&](IndexKind k, std::string_view value) {
            entries.push_back(IndexEntry{raw->key(k, value), v.position.value, v.position.value});
          });
      return true;
    });
  };
  engine::FileSystem& fs =
      raw->options_.fs != nullptr ? *raw->options_.fs : engine::FileSystem::posix();
  ANNAL_RETURN_IF_ERROR(check_keys(fs, raw->options_.dir, raw->options_.category_separator));
  auto core = IndexCore::open(co, log_end);
  if (!core) return core.status();
  raw->core_ = std::move(core).value();
  const std::uint64_t from = raw->core_->indexed_through();
  std::uint64_t n = 0;
  Status st = raw->options_.scan(from, log_end, [&](const engine::RecordView& v) {
    raw->add_view(v);
    if (++n % 4096 == 0) {
      raw->set_durable(v.position.value + 1);
      raw->core_->throttle(2);
    }
    return true;
  });
  if (!st.is_ok()) return st;
  raw->set_durable(log_end);
  // Every position below the log's end holds keys the table never saw (in
  // index files or replayed before it exists): it starts above them.
  raw->added_end_ = std::max(raw->added_end_, log_end);
  if (n > 0 || !raw->core_->rebuild_reason().empty())
    spdlog::info(
        "secondary index: {} events replayed from position {}{}", n, from,
        raw->core_->rebuild_reason().empty() ? "" : "; rebuilt: " + raw->core_->rebuild_reason());
  return self;
}

std::string_view SecondaryIndex::category_of(std::string_view stream) const {
  return index::category_of(stream, options_.category_separator);
}

std::uint64_t secondary_key_hash(IndexKind kind, std::string_view value) {
  // One seed per kind: equal values of different kinds hash apart (and
  // matches() tells apart whatever still collides).
  const std::uint64_t seed = 0x9E3779B97F4A7C15ull * (static_cast<std::uint64_t>(kind) + 1);
  return XXH3_64bits_withSeed(value.data(), value.size(), seed);
}

std::uint64_t SecondaryIndex::key(IndexKind kind, std::string_view value) const {
  if (options_.test_hash) return options_.test_hash(kind, value);
  return secondary_key_hash(kind, value);
}

template <class Tags, class F>
void SecondaryIndex::for_each_key(std::string_view stream, std::string_view type, const Tags& tags,
                                  std::string_view correlation_id, std::string_view causation_id,
                                  F&& fn) const {
  for_each_event_key(stream, type, tags, correlation_id, causation_id, options_.category_separator,
                     fn);
}

std::size_t SecondaryIndex::recent_slot(std::uint64_t h) {
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return static_cast<std::size_t>(h & (kRecentSlots - 1));
}

void SecondaryIndex::add_key(std::uint64_t position, IndexKind kind, std::string_view value) {
  const std::uint64_t h = key(kind, value);
  batch_.push_back(IndexEntry{h, position, position});
  added_end_ = std::max(added_end_, position + 1);
  if (recent_.size() == 0) return;
  std::uint64_t& slot = recent_[recent_slot(h)];
  slot = std::max(slot, position + 1);
}

void SecondaryIndex::track_recent() {
  if (recent_.size() != 0) return;
  recent_ = ZeroedTable<std::uint64_t>(kRecentSlots);
  // Keys added before know no slot: every position below is "may".
  recent_from_ = added_end_;
}

bool SecondaryIndex::may_have_since(IndexKind kind, std::string_view value,
                                    std::uint64_t position) const {
  if (recent_.size() == 0 || position < recent_from_) return true;
  return recent_[recent_slot(key(kind, value))] > position;
}

void SecondaryIndex::add_batch() {
  core_->add(batch_);
  batch_.clear();
}

std::uint64_t SecondaryIndex::time_key() const {
  // Tests that force collisions put the time map among the colliding keys.
  return options_.test_hash ? options_.test_hash(IndexKind::kType, std::string_view("\0time", 5))
                            : kTimeMapKey;
}

void SecondaryIndex::add_time(std::uint64_t position, std::int64_t timestamp_us) {
  const std::int64_t s = time_bucket_of(timestamp_us);
  if (s == last_bucket_ || timestamp_us < 0) return;
  last_bucket_ = s;
  batch_.push_back(IndexEntry{time_key(), static_cast<std::uint64_t>(timestamp_us), position});
}

void SecondaryIndex::add(std::uint64_t position, std::int64_t timestamp_us, std::string_view stream,
                         std::string_view type, const std::vector<std::string>& tags,
                         std::string_view correlation_id, std::string_view causation_id) {
  if (stream.empty()) return;  // a lost entry: no keys, no time
  add_time(position, timestamp_us);
  for_each_key(stream, type, tags, correlation_id, causation_id,
               [&](IndexKind k, std::string_view value) { add_key(position, k, value); });
  add_batch();
}

void SecondaryIndex::add_view(const engine::RecordView& v) {
  if (v.stream.empty()) return;
  add_time(v.position.value, v.timestamp_us);
  if (v.flags & engine::format::kFlagRemoved) return;  // scavenged: no keys
  for_each_key(v.stream, v.type, v.tags, v.correlation_id, v.causation_id,
               [&](IndexKind k, std::string_view value) { add_key(v.position.value, k, value); });
  add_batch();
}

void SecondaryIndex::abort_from(std::uint64_t position) {
  core_->remove_from(position);
  last_bucket_ = INT64_MIN;
}

Result<std::optional<std::uint64_t>> SecondaryIndex::first_in_bucket(std::int64_t bucket_start_us,
                                                                     std::uint64_t limit) const {
  const auto lo = static_cast<std::uint64_t>(std::max<std::int64_t>(bucket_start_us, 0));
  auto e = core_->collect(time_key(), lo, UINT64_MAX, limit, 1);
  if (!e) return e.status();
  if (e->empty()) return std::optional<std::uint64_t>();
  return std::optional<std::uint64_t>(e->front().position);
}

void SecondaryIndex::set_durable(std::uint64_t end) {
  core_->set_durable(end);
}

Status SecondaryIndex::flush(std::uint64_t end) {
  return core_->flush(end);
}

Result<std::vector<std::uint64_t>> SecondaryIndex::candidates(IndexKind kind,
                                                              std::string_view value,
                                                              std::uint64_t from, std::uint64_t to,
                                                              std::uint64_t limit, std::size_t max,
                                                              bool files_only) const {
  // Entries are (hash, position, position); `to` below `limit` also keeps out
  // time-map entries (revision = a write time) should their key collide.
  if (limit == 0) return std::vector<std::uint64_t>{};
  auto entries =
      files_only ? core_->collect_files(key(kind, value), from, std::min(to, limit - 1), limit, max)
                 : core_->collect(key(kind, value), from, std::min(to, limit - 1), limit, max);
  if (!entries) return entries.status();
  std::vector<std::uint64_t> out;
  out.reserve(entries->size());
  for (const auto& e : *entries) out.push_back(e.position);
  return out;
}

Result<std::vector<std::uint64_t>> SecondaryIndex::candidates_desc(IndexKind kind,
                                                                   std::string_view value,
                                                                   std::uint64_t from,
                                                                   std::uint64_t limit,
                                                                   std::size_t max) const {
  std::vector<std::uint64_t> out;
  const std::uint64_t below = std::min(limit, from == UINT64_MAX ? UINT64_MAX : from + 1);
  if (below == 0) return out;
  // Entries are (hash, position, position): starting at revision below - 1
  // starts at the position, by binary search, not by walking down from the top.
  Status st = core_->visit_desc(
      key(kind, value), below,
      [&](const IndexEntry& e) {
        if (e.revision != e.position) return true;  // a time-map entry whose key collides
        out.push_back(e.position);
        return out.size() < max;
      },
      below - 1);
  if (!st.is_ok()) return st;
  return out;
}

bool SecondaryIndex::matches(const engine::RecordView& v, IndexKind kind,
                             std::string_view value) const {
  return key_matches(v, kind, value, options_.category_separator);
}

std::string_view category_of(std::string_view stream, char separator) {
  const std::size_t at = stream.find(separator);
  return at == std::string_view::npos ? std::string_view() : stream.substr(0, at);
}

bool key_matches(const engine::RecordView& v, IndexKind kind, std::string_view value,
                 char separator) {
  if (v.stream.empty()) return false;
  switch (kind) {
    case IndexKind::kCategory: {
      const std::string_view c = category_of(v.stream, separator);
      return !c.empty() && c == value;
    }
    case IndexKind::kType:
      return v.type == value;
    case IndexKind::kTag:
      for (std::string_view t : v.tags)
        if (t == value) return true;
      return false;
    case IndexKind::kCorrelation:
      return !v.correlation_id.empty() && v.correlation_id == value;
    case IndexKind::kCausation:
      return !v.causation_id.empty() && v.causation_id == value;
  }
  return false;
}

namespace {
// Candidates read per step: enough to fill a page in one step when no hash
// collides, small enough that a short read does not collect a long posting.
constexpr std::size_t kCandidatesPerStep = 256;
}  // namespace

Status visit_secondary(const SecondaryIndex& index, const engine::Log& log, IndexKind kind,
                       std::string_view value, GlobalPosition from, bool backward,
                       GlobalPosition end,
                       const std::function<bool(const engine::RecordView&)>& fn) {
  if (end.value == 0) return Status::ok();
  std::uint64_t at = backward ? std::min(from.value, end.value - 1) : from.value;
  for (;;) {
    if (!backward && at >= end.value) return Status::ok();
    auto c = backward
                 ? index.candidates_desc(kind, value, at, end.value, kCandidatesPerStep)
                 : index.candidates(kind, value, at, UINT64_MAX, end.value, kCandidatesPerStep);
    if (!c) return c.status();
    if (c->empty()) return Status::ok();
    bool more = true;
    Status st = log.visit_many(*c, [&](std::size_t, const engine::RecordView& v) {
      if (!index.matches(v, kind, value)) return true;  // another key with the same hash
      more = fn(v);
      return more;
    });
    if (!st.is_ok() || !more || c->size() < kCandidatesPerStep) return st;
    if (backward) {
      if (c->back() == 0) return Status::ok();
      at = c->back() - 1;
    } else {
      at = c->back() + 1;
    }
  }
}

Result<GlobalPosition> seek_secondary_time(const SecondaryIndex& index, const engine::Log& log,
                                           std::int64_t timestamp_us, GlobalPosition end) {
  auto first = index.first_in_bucket(time_bucket_of(timestamp_us) * kTimeBucketUs, end.value);
  if (!first) return first.status();
  if (!*first) return end;
  // Events of that second before `timestamp_us` are skipped by reading them.
  GlobalPosition found = end;
  Status st = log.scan_forward(GlobalPosition(**first), end.value - **first,
                               [&](const engine::RecordView& v) {
                                 if (v.stream.empty() || v.timestamp_us < timestamp_us) return true;
                                 found = v.position;
                                 return false;
                               });
  if (!st.is_ok()) return st;
  return found;
}

IndexCoreStats SecondaryIndex::stats() const {
  return core_->stats();
}
std::string SecondaryIndex::rebuild_reason() const {
  return core_->rebuild_reason();
}
void SecondaryIndex::wait_idle() {
  core_->wait_idle();
}

}  // namespace annal::index
