#include "index/index_core.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "engine/thread_name.h"

namespace annal::index {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

IndexCore::IndexCore(IndexCoreOptions options)
    : options_(std::move(options)), fs_(options_.fs ? *options_.fs : engine::FileSystem::posix()) {
  if (options_.memtable_entries == 0) options_.memtable_entries = 1;
  if (options_.merge_fanout < 2) options_.merge_fanout = 2;
}

Result<std::unique_ptr<IndexCore>> IndexCore::open(IndexCoreOptions options,
                                                   std::uint64_t log_end) {
  std::unique_ptr<IndexCore> core(new IndexCore(std::move(options)));
  auto& fs = core->fs_;
  const std::string& dir = core->options_.dir;
  if (!fs.exists(dir)) {
    ANNAL_RETURN_IF_ERROR(fs.create_dirs(dir));
    // The new directory's entry must be durable before files in it count.
    const auto slash = dir.find_last_of('/');
    if (slash != std::string::npos && slash > 0)
      ANNAL_RETURN_IF_ERROR(fs.sync_dir(dir.substr(0, slash)));
  }
  auto names = fs.list(dir);
  if (!names) return names.status();
  for (const auto& n : *names)
    if (ends_with(n, ".tmp")) ANNAL_RETURN_IF_ERROR(fs.remove(dir + "/" + n));

  auto version = std::make_shared<Version>();
  version->active = make_memtable(core->options_.memtable, core->options_.memtable_entries);
  core->writer_active_ = version->active;
  Manifest manifest;
  std::string reason;
  auto loaded = read_manifest(fs, dir);
  if (!loaded) {
    bool any_files = std::any_of(names->begin(), names->end(),
                                 [](const std::string& n) { return ends_with(n, ".ix"); });
    if (loaded.status().code() != Errc::kNotFound || log_end > 0 || any_files)
      reason = loaded.status().message();
  } else {
    manifest = *loaded;
    if (manifest.indexed_through > log_end) {
      reason =
          fmt::format("index manifest {}/{} covers log positions below {} but the log ends at {}",
                      dir, kManifestName, manifest.indexed_through, log_end);
    } else {
      for (const auto& meta : manifest.files) {
        auto f = IndexFile::open(fs, dir, meta, core->options_.verify_on_open);
        if (!f) {
          reason = f.status().message();
          break;
        }
        version->files.push_back(std::move(f).value());
      }
    }
  }
  if (!reason.empty()) {
    spdlog::warn("rebuilding the {} in {} from the log: {}", core->options_.name, dir, reason);
    core->rebuild_reason_ = reason;
    version->files.clear();
    std::uint64_t next = manifest.next_file_number;
    manifest = Manifest{};
    manifest.next_file_number = next;
  }
  // Remove files the manifest does not list: leftovers of a crash between a
  // file and its manifest, inputs of a finished merge, or damaged files.
  std::vector<std::string> live;
  for (const auto& f : manifest.files) live.push_back(index_file_name(f.number));
  bool removed = false;
  for (const auto& n : *names) {
    if (!ends_with(n, ".ix") || std::find(live.begin(), live.end(), n) != live.end()) continue;
    ANNAL_RETURN_IF_ERROR(fs.remove(dir + "/" + n));
    removed = true;
  }
  for (const auto& f : manifest.files)
    manifest.next_file_number = std::max(manifest.next_file_number, f.number + 1);
  if (!reason.empty() || !loaded) {
    ANNAL_RETURN_IF_ERROR(write_manifest(fs, dir, manifest));
  } else if (removed) {
    ANNAL_RETURN_IF_ERROR(fs.sync_dir(dir));
  }
  core->manifest_ = manifest;
  core->indexed_through_ = manifest.indexed_through;
  core->active_first_ = manifest.indexed_through;
  core->durable_end_ = manifest.indexed_through;
  if (core->options_.scrub_after_open && !core->options_.verify_on_open)
    core->to_scrub_.assign(version->files.begin(), version->files.end());
  core->version_ = std::move(version);
  core->opened_at_ = std::chrono::steady_clock::now();
  core->thread_ = std::thread([c = core.get()] {
    engine::set_thread_name("annal-index");
    c->background_loop();
  });
  return core;
}

IndexCore::~IndexCore() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const IndexCore::Version> IndexCore::current() const {
  std::lock_guard lock(mu_);
  return version_;
}

void IndexCore::install(std::shared_ptr<const Version> v) {
  version_ = std::move(v);
}

std::string IndexCore::rebuild_reason() const {
  std::lock_guard lock(mu_);
  return rebuild_reason_;
}

void IndexCore::note_damage() const {
  {
    std::lock_guard lock(mu_);
    damage_pending_ = true;
  }
  cv_.notify_all();
}

void IndexCore::add(const IndexEntry& e) {
  writer_active_->insert(e);
  unsynced_.push_back(e);
}

void IndexCore::add(std::span<const IndexEntry> entries) {
  if (entries.empty()) return;
  writer_active_->insert(entries);
  unsynced_.insert(unsynced_.end(), entries.begin(), entries.end());
}

void IndexCore::remove(const IndexEntry& e) {
  writer_active_->erase(e);
  if (!unsynced_.empty() && unsynced_.back() == e) {
    unsynced_.pop_back();
  } else {
    auto it = std::find(unsynced_.begin(), unsynced_.end(), e);
    if (it != unsynced_.end()) unsynced_.erase(it);
  }
}

void IndexCore::remove_from(std::uint64_t position) {
  while (!unsynced_.empty() && unsynced_.back().position >= position) {
    writer_active_->erase(unsynced_.back());
    unsynced_.pop_back();
  }
}

void IndexCore::set_durable(std::uint64_t end) {
  while (!unsynced_.empty() && unsynced_.front().position < end) unsynced_.pop_front();
  durable_end_ = std::max(durable_end_, end);
  if (writer_active_->size() >= options_.memtable_entries + unsynced_.size()) freeze(durable_end_);
}

void IndexCore::freeze(std::uint64_t end) {
  auto old = writer_active_;
  auto fresh = make_memtable(options_.memtable, options_.memtable_entries);
  // Entries of appends not yet durable stay in memory with the new memtable:
  // a frozen memtable holds durable entries only and covers [first, end).
  for (const auto& e : unsynced_) {
    fresh->insert(e);
    old->erase(e);
  }
  old->first_position = active_first_;
  old->end_position = end;
  if (options_.id_digests) options_.id_digests(active_first_, end, old->id_digests);
  active_first_ = end;
  {
    // Copy the version under the lock: the background thread may have
    // installed a flushed or merged file list since `v` was read, and building
    // on `v` would silently undo it (found by the power-loss test under load).
    std::lock_guard lock(mu_);
    auto next = std::make_shared<Version>(*version_);
    next->active = fresh;
    next->frozen.push_back(old);
    install(std::move(next));
  }
  writer_active_ = std::move(fresh);
  cv_.notify_all();
}

Status IndexCore::flush(std::uint64_t end) {
  set_durable(end);
  if (end > active_first_) freeze(end);
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return version_->frozen.empty() || !bg_status_.is_ok(); });
  return bg_status_;
}

void IndexCore::throttle(std::size_t max_frozen) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return version_->frozen.size() <= max_frozen || !bg_status_.is_ok(); });
}

void IndexCore::wait_idle() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] {
    return (version_->frozen.empty() && !busy_ && !merge_wanted_locked() && !damage_pending_ &&
            to_scrub_.empty()) ||
           !bg_status_.is_ok();
  });
}

Status IndexCore::background_status() const {
  std::lock_guard lock(mu_);
  return bg_status_;
}

void IndexCore::fail(const Status& st) {
  spdlog::error("{} background writer in {} stopped: {}", options_.name, options_.dir,
                st.to_string());
  {
    std::lock_guard lock(mu_);
    bg_status_ = st;
  }
  cv_.notify_all();
}

void IndexCore::background_loop() {
  for (;;) {
    // In order of urgency: frozen memtables (memory), damaged files (queries
    // failing), the scrub of files found at open, merges.
    std::shared_ptr<Memtable> todo;
    bool repair = false, scrub = false;
    {
      std::unique_lock lock(mu_);
      busy_ = false;
      cv_.notify_all();
      cv_.wait(lock, [&] {
        return stop_ || !version_->frozen.empty() || damage_pending_ || !to_scrub_.empty() ||
               merge_wanted_locked();
      });
      if (!bg_status_.is_ok()) {
        if (stop_) return;
        cv_.wait(lock, [&] { return stop_; });
        return;
      }
      if (!version_->frozen.empty()) {
        todo = version_->frozen.front();
      } else if (stop_) {
        return;
      } else if (damage_pending_) {
        damage_pending_ = false;
        repair = true;
      } else {
        scrub = !to_scrub_.empty();
      }
      busy_ = true;
    }
    if (todo) {
      Status st = flush_one(todo);
      if (!st.is_ok()) fail(st);
    } else if (repair) {
      repair_damaged();
    } else if (scrub) {
      scrub_one();
    } else {
      merge_some();
    }
  }
}

Status IndexCore::flush_one(const std::shared_ptr<Memtable>& m) {
  // Copy out in order; the memtable is immutable now.
  std::vector<IndexEntry> entries;
  entries.reserve(m->size());
  m->for_each([&](const IndexEntry& e) { entries.push_back(e); });
  IndexFileMeta meta;
  meta.number = manifest_.next_file_number;
  meta.level = 0;
  meta.first_position = m->first_position;
  meta.end_position = m->end_position;
  std::size_t i = 0;
  ANNAL_RETURN_IF_ERROR(write_index_file(
      fs_, options_.dir, meta,
      [&](IndexEntry& e) {
        if (i == entries.size()) return false;
        e = entries[i++];
        return true;
      },
      digest_fn([&](std::uint64_t p) {
        const std::uint64_t k = p - meta.first_position;
        return k < m->id_digests.size() ? m->id_digests[k] : 0;
      }),
      options_.summary_interval));
  auto file = IndexFile::open(fs_, options_.dir, meta, /*verify_entries=*/false);
  if (!file) return file.status();
  Manifest next = manifest_;
  next.next_file_number = meta.number + 1;
  next.files.push_back(meta);
  next.indexed_through = meta.end_position;
  ANNAL_RETURN_IF_ERROR(write_manifest(fs_, options_.dir, next));
  manifest_ = next;
  indexed_through_ = next.indexed_through;
  {
    std::lock_guard lock(mu_);
    auto v = std::make_shared<Version>(*version_);
    ANNAL_CHECK(!v->frozen.empty() && v->frozen.front() == m,
                "flushed memtable is not the oldest frozen one");
    v->frozen.erase(v->frozen.begin());
    v->files.push_back(std::move(file).value());
    install(std::move(v));
    ++flushes_;
  }
  cv_.notify_all();
  return Status::ok();
}

std::pair<std::size_t, std::size_t> IndexCore::pick_merge(
    const std::vector<std::shared_ptr<IndexFile>>& files, std::size_t fanout) {
  // Tiered: the first run of `fanout` adjacent files of one level.
  std::size_t i = 0;
  while (i < files.size()) {
    std::size_t j = i;
    while (j < files.size() && files[j]->meta().level == files[i]->meta().level) ++j;
    if (j - i >= fanout) return {i, fanout};
    i = j;
  }
  return {0, 0};
}

bool IndexCore::merge_wanted_locked() const {
  return !stop_ && pick_merge(version_->files, options_.merge_fanout).second > 0;
}

Result<std::shared_ptr<IndexFile>> IndexCore::merge_into(
    const std::vector<std::shared_ptr<IndexFile>>& inputs, IndexFileMeta& meta) {
  for (const auto& f : inputs) ANNAL_RETURN_IF_ERROR(f->verify_all());
  const std::size_t n = inputs.size();
  // A cursor and its current entry per input (`live` false once it ended).
  std::vector<IndexFile::Cursor> cursors;
  std::vector<IndexEntry> head(n);
  std::vector<bool> live(n);
  cursors.reserve(n);
  for (std::size_t k = 0; k < n; ++k) {
    cursors.emplace_back(*inputs[k]);
    live[k] = cursors[k].next(head[k]);
  }
  ANNAL_RETURN_IF_ERROR(write_index_file(
      fs_, options_.dir, meta,
      [&](IndexEntry& out) {
        std::size_t best = n;
        for (std::size_t k = 0; k < n; ++k)
          if (live[k] && (best == n || head[k] < head[best])) best = k;
        if (best == n) return false;
        out = head[best];
        live[best] = cursors[best].next(head[best]);
        return true;
      },
      digest_fn([&](std::uint64_t p) {
        for (const auto& f : inputs)
          if (p >= f->meta().first_position && p < f->meta().end_position) return f->id_digest(p);
        return std::uint64_t{0};
      }),
      options_.summary_interval));
  // The inputs were verified: a cursor can only stop early on a bug.
  for (const auto& c : cursors) ANNAL_RETURN_IF_ERROR(c.status());
  return IndexFile::open(fs_, options_.dir, meta, /*verify_entries=*/false);
}

void IndexCore::scrub_one() {
  std::shared_ptr<IndexFile> f;
  bool last = false, live = false;
  {
    std::lock_guard lock(mu_);
    if (to_scrub_.empty()) return;
    f = to_scrub_.front();
    to_scrub_.pop_front();
    last = to_scrub_.empty();
    // A file merged away meanwhile was checked by the merge.
    live = std::find(version_->files.begin(), version_->files.end(), f) != version_->files.end();
  }
  if (live) {
    Status st = f->verify_all();
    scrub_entries_ += f->size();
    if (!st.is_ok()) {
      spdlog::warn("{} scrub: {}", options_.name, st.to_string());
      if (f->damaged()) note_damage();
    }
  }
  if (last)
    spdlog::info(
        "{} scrub in {}: {} entries checked, done {:.3f} s after open", options_.name, options_.dir,
        scrub_entries_,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - opened_at_).count());
}

void IndexCore::repair_damaged() {
  for (;;) {
    auto v = current();
    std::size_t i = 0;
    while (i < v->files.size() && !v->files[i]->damaged()) ++i;
    if (i == v->files.size()) return;
    Status st = rebuild_file(i);
    if (st.code() == Errc::kShuttingDown) return;  // the owner is closing; the next open retries
    if (!st.is_ok()) {
      fail(st);
      return;
    }
  }
}

Status IndexCore::rebuild_file(std::size_t index) {
  auto v = current();
  const std::shared_ptr<IndexFile> old = v->files[index];
  const IndexFileMeta want = old->meta();
  const std::string reason = old->verify_all().to_string();
  spdlog::warn("rebuilding {} file {} (log positions [{}, {})) from the log: {}", options_.name,
               old->path(), want.first_position, want.end_position, reason);
  if (!options_.load_range)
    return Status(Errc::kCorruption, fmt::format("{}; no log to rebuild it from", reason));
  // The range is loaded in chunks of memtable_entries positions, each sorted
  // and written as a part file (not in the manifest, so a crash leaves only
  // files the next open removes); several parts are merged into the
  // replacement. Memory stays bounded by the memtable size.
  std::uint64_t number = manifest_.next_file_number;
  std::vector<std::shared_ptr<IndexFile>> parts;
  auto remove_parts = [&] {
    for (const auto& p : parts) (void)fs_.remove(p->path());
  };
  const std::uint64_t step = std::max<std::uint64_t>(options_.memtable_entries, 1);
  std::vector<IndexEntry> entries;
  std::vector<std::uint64_t> digests;
  std::uint64_t a = want.first_position;
  do {
    const std::uint64_t b = std::min(want.end_position, a + step);
    entries.clear();
    digests.assign(b - a, 0);
    Status st = options_.load_range(a, b, entries, digests);
    std::sort(entries.begin(), entries.end());
    IndexFileMeta pm{number++, want.level, a, b, 0};
    std::size_t i = 0;
    if (st.is_ok())
      st = write_index_file(
          fs_, options_.dir, pm,
          [&](IndexEntry& e) {
            if (i == entries.size()) return false;
            e = entries[i++];
            return true;
          },
          digest_fn([&](std::uint64_t p) { return digests[p - a]; }), options_.summary_interval);
    if (st.is_ok()) {
      auto f = IndexFile::open(fs_, options_.dir, pm, /*verify_entries=*/false);
      if (f)
        parts.push_back(std::move(f).value());
      else
        st = f.status();
    }
    if (!st.is_ok()) {
      remove_parts();
      return st;
    }
    a = b;
  } while (a < want.end_position);
  std::shared_ptr<IndexFile> fresh;
  if (parts.size() == 1) {
    fresh = parts.front();
    parts.clear();
  } else {
    IndexFileMeta meta{number++, want.level, want.first_position, want.end_position, 0};
    auto merged = merge_into(parts, meta);
    if (!merged) {
      remove_parts();
      return merged.status();
    }
    fresh = std::move(merged).value();
  }
  Manifest next = manifest_;
  ANNAL_CHECK(next.files.size() == v->files.size() && next.files[index] == want,
              "index manifest and live files disagree");
  next.files[index] = fresh->meta();
  next.next_file_number = number;
  Status st = write_manifest(fs_, options_.dir, next);
  if (!st.is_ok()) {
    remove_parts();
    (void)fs_.remove(fresh->path());
    return st;
  }
  manifest_ = next;
  {
    std::lock_guard lock(mu_);
    auto nv = std::make_shared<Version>(*version_);
    ANNAL_CHECK(nv->files.size() > index && nv->files[index] == old,
                "index files changed during a repair");
    nv->files[index] = fresh;
    install(std::move(nv));
    ++repairs_;
    rebuild_reason_ =
        fmt::format("index file {} was rebuilt from the log: {}", old->path(), reason);
  }
  cv_.notify_all();
  std::vector<std::string> unlisted{old->path()};
  for (const auto& p : parts) unlisted.push_back(p->path());
  remove_unlisted(unlisted, "an index repair");
  spdlog::warn("{} file {} replaced by {} ({} entries)", options_.name, old->path(), fresh->path(),
               fresh->size());
  return Status::ok();
}

bool IndexCore::merge_some() {
  auto v = current();
  auto [start, n] = pick_merge(v->files, options_.merge_fanout);
  if (n == 0) return false;
  std::vector<std::shared_ptr<IndexFile>> inputs(
      v->files.begin() + static_cast<std::ptrdiff_t>(start),
      v->files.begin() + static_cast<std::ptrdiff_t>(start + n));
  ANNAL_CHECK(
      manifest_.files.size() == v->files.size() && manifest_.files[start] == inputs[0]->meta(),
      "index manifest and live files disagree");
  IndexFileMeta meta;
  meta.number = manifest_.next_file_number;
  meta.level = inputs[0]->meta().level + 1;
  meta.first_position = inputs.front()->meta().first_position;
  meta.end_position = inputs.back()->meta().end_position;
  auto merged_file = merge_into(inputs, meta);
  Status st = merged_file.status();
  if (!st.is_ok() &&
      std::any_of(inputs.begin(), inputs.end(), [](const auto& f) { return f->damaged(); })) {
    // Never merge damaged entries into a new, validly checksummed file:
    // repair the input first, merge afterwards.
    spdlog::warn("{} merge postponed: {}", options_.name, st.to_string());
    note_damage();
    return true;
  }
  std::shared_ptr<IndexFile> merged;
  if (st.is_ok()) merged = std::move(merged_file).value();
  Manifest next = manifest_;
  if (st.is_ok()) {
    next.next_file_number = meta.number + 1;
    next.files.erase(next.files.begin() + static_cast<std::ptrdiff_t>(start),
                     next.files.begin() + static_cast<std::ptrdiff_t>(start + n));
    next.files.insert(next.files.begin() + static_cast<std::ptrdiff_t>(start), meta);
    st = write_manifest(fs_, options_.dir, next);
  }
  if (!st.is_ok()) {
    fail(st);
    return true;
  }
  manifest_ = next;
  {
    std::lock_guard lock(mu_);
    auto nv = std::make_shared<Version>(*version_);
    ANNAL_CHECK(nv->files.size() >= start + n && nv->files[start] == inputs[0],
                "index files changed during merge");
    nv->files.erase(nv->files.begin() + static_cast<std::ptrdiff_t>(start),
                    nv->files.begin() + static_cast<std::ptrdiff_t>(start + n));
    nv->files.insert(nv->files.begin() + static_cast<std::ptrdiff_t>(start), merged);
    install(std::move(nv));
    ++merges_;
  }
  // The new manifest is durable: the inputs may go. Readers holding them keep
  // their maps (unlinked files stay readable until unmapped).
  std::vector<std::string> unlisted;
  for (const auto& f : inputs) unlisted.push_back(f->path());
  remove_unlisted(unlisted, "a merge");
  return true;
}

void IndexCore::remove_unlisted(const std::vector<std::string>& paths, const char* after) {
  for (const auto& path : paths) {
    Status rm = fs_.remove(path);
    if (!rm.is_ok())
      spdlog::warn("could not remove index file {} after {}: {}", path, after, rm.to_string());
  }
  Status ds = fs_.sync_dir(options_.dir);
  if (!ds.is_ok())
    spdlog::warn("fsync of {} after {} failed: {}", options_.dir, after, ds.to_string());
}

Status IndexCore::collect_from_files(const Version& v, std::uint64_t hash, std::uint64_t lo,
                                     std::uint64_t hi, std::uint64_t pos_limit,
                                     std::vector<IndexEntry>& out, std::size_t max) const {
  for (const auto& f : v.files) {
    if (f->meta().first_position >= pos_limit || out.size() >= max) break;
    Status st = f->collect(hash, lo, hi, pos_limit, out, max);
    if (!st.is_ok()) {
      if (f->damaged()) note_damage();
      return st;
    }
  }
  return Status::ok();
}

Result<std::vector<IndexEntry>> IndexCore::collect_files(std::uint64_t hash, std::uint64_t lo,
                                                         std::uint64_t hi, std::uint64_t pos_limit,
                                                         std::size_t max) const {
  std::vector<IndexEntry> out;
  ANNAL_RETURN_IF_ERROR(collect_from_files(*current(), hash, lo, hi, pos_limit, out, max));
  return out;
}

Result<std::vector<IndexEntry>> IndexCore::collect(std::uint64_t hash, std::uint64_t lo,
                                                   std::uint64_t hi, std::uint64_t pos_limit,
                                                   std::size_t max) const {
  auto v = current();
  std::vector<IndexEntry> out;
  ANNAL_RETURN_IF_ERROR(collect_from_files(*v, hash, lo, hi, pos_limit, out, max));
  for (const auto& m : v->frozen) m->collect(hash, lo, hi, pos_limit, out, max);
  v->active->collect(hash, lo, hi, pos_limit, out, max);
  auto by_revision = [](const IndexEntry& a, const IndexEntry& b) {
    return a.revision != b.revision ? a.revision < b.revision : a.position < b.position;
  };
  if (!std::is_sorted(out.begin(), out.end(), by_revision))
    std::sort(out.begin(), out.end(), by_revision);
  return out;
}

Status IndexCore::visit_desc(std::uint64_t hash, std::uint64_t pos_limit,
                             const std::function<bool(const IndexEntry&)>& fn,
                             std::uint64_t max_revision) const {
  auto v = current();
  if (!v->active->visit_desc(hash, pos_limit, fn, max_revision)) return Status::ok();
  for (auto it = v->frozen.rbegin(); it != v->frozen.rend(); ++it)
    if (!(*it)->visit_desc(hash, pos_limit, fn, max_revision)) return Status::ok();
  for (auto it = v->files.rbegin(); it != v->files.rend(); ++it) {
    if ((*it)->meta().first_position >= pos_limit) continue;
    auto more = (*it)->visit_desc(hash, pos_limit, fn, max_revision);
    if (!more) {
      if ((*it)->damaged()) note_damage();
      return more.status();
    }
    if (!*more) return Status::ok();
  }
  return Status::ok();
}

Result<std::uint64_t> IndexCore::read_id_digests(std::uint64_t from, std::uint64_t to,
                                                 std::vector<std::uint64_t>& out) const {
  auto v = current();
  std::uint64_t first = UINT64_MAX;
  for (const auto& f : v->files) {
    if (f->meta().end_position <= from || f->meta().first_position >= to) continue;
    if (first == UINT64_MAX) first = std::max(from, f->meta().first_position);
    Status st = f->read_id_digests(from, to, out);
    if (!st.is_ok()) {
      if (f->damaged()) note_damage();
      return st;
    }
  }
  return first == UINT64_MAX ? from : first;
}

IndexCoreStats IndexCore::stats() const {
  IndexCoreStats s;
  std::lock_guard lock(mu_);
  s.memtable_entries = version_->active->size();
  for (const auto& m : version_->frozen) s.memtable_entries += m->size();
  s.frozen_memtables = version_->frozen.size();
  s.index_files = version_->files.size();
  s.indexed_through = indexed_through_.load();
  // A memtable node is ~56 bytes (red-black node + entry) in its arena.
  s.resident_bytes_estimate = s.memtable_entries * 56;
  for (const auto& f : version_->files) {
    s.resident_bytes_estimate += f->resident_bytes();
    s.files.push_back(f->meta());
  }
  s.flushes = flushes_;
  s.merges = merges_;
  s.repairs = repairs_;
  s.scrub_done = to_scrub_.empty();
  return s;
}

}  // namespace annal::index
