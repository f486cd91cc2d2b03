#include "engine/log_impl.h"

namespace annal::engine {

// ---------------------------------------------------------------------------
// Recovery

Status Log::Impl::corruption(const Segment& seg, const ScanStop& stop) const {
  std::string range;
  if (stop.next_valid_position && *stop.next_valid_position > stop.position)
    range =
        fmt::format("positions {}..{}", stop.position.value, stop.next_valid_position->value - 1);
  else
    range = fmt::format("from position {}", stop.position.value);
  return Status(
      Errc::kCorruption,
      fmt::format("segment {} ({}): corrupt data at offset {} ({}): {}. The log will not open; "
                  "run `annal repair {}` to inspect and repair it",
                  seg.name, path_of(seg.name), stop.offset, range, stop.reason, opts_.dir));
}

Result<std::shared_ptr<Segment>> Log::Impl::map_segment(std::unique_ptr<File> file,
                                                        GlobalPosition first,
                                                        const std::string& name) {
  auto header = read_segment_header(*file);
  if (!header) return header.status();
  if (header->first != first)
    return Status(Errc::kCorruption,
                  fmt::format("segment {}: header says first position {}, name says {}", name,
                              header->first.value, first.value));
  auto size = file->size();
  if (!size) return size.status();
  if (*size < header->allocated_size)
    return Status(Errc::kCorruption,
                  fmt::format("segment {}: file has {} bytes, header says {} were allocated", name,
                              *size, header->allocated_size));
  if (header->allocated_size > (std::uint64_t{1} << 32))
    return Status(Errc::kCorruption, fmt::format("segment {}: allocated size {} exceeds 4 GiB",
                                                 name, header->allocated_size));
  auto map = file->map(header->allocated_size);
  if (!map) return map.status();
  auto seg = std::make_shared<Segment>();
  seg->name = name;
  seg->first = first;
  seg->version = header->version;
  seg->allocated = header->allocated_size;
  seg->map = std::move(*map);
  seg->file = std::move(file);
  return seg;
}

Result<std::shared_ptr<Segment>> Log::Impl::open_sealed(GlobalPosition first, bool has_index) {
  const std::string name = segment_file_name(first);
  auto file = fs_->open(path_of(name), OpenOptions{.read_only = true});
  if (!file) return file.status();
  auto segr = map_segment(std::move(*file), first, name);
  if (!segr) return segr.status();
  auto seg = std::move(*segr);
  seg->file.reset();  // sealed: the map is all readers need
  const auto bytes = seg->map->bytes();

  std::optional<PositionIndex> idx;
  std::string why;
  if (has_index) {
    auto r = read_position_index(*fs_, path_of(index_file_name(first)));
    if (!r) {
      why = r.status().message();
    } else if (r->first != first || r->data_end > seg->allocated || r->offsets.empty()) {
      why = fmt::format("{} does not describe segment {}", index_file_name(first), name);
    } else {
      // Trust the index after checking its last record, not a rescan: open
      // time must not grow with the log.
      const std::uint64_t n = r->offsets.size();
      DecodeResult last = decode(bytes.subspan(r->offsets.back()));
      DecodeResult after = decode(bytes.subspan(r->data_end));
      if (last.outcome != DecodeOutcome::kOk || last.view.position != first + (n - 1) ||
          r->offsets.back() + last.view.size != r->data_end ||
          !(last.view.flags & f::kFlagCommit) || after.outcome != DecodeOutcome::kEnd) {
        why = fmt::format("{}: its last entry does not match the segment", index_file_name(first));
      } else {
        idx = std::move(*r);
      }
    }
  } else {
    why = fmt::format("{} is missing", index_file_name(first));
  }

  if (!idx) {
    spdlog::warn("annal log {}: rebuilding the position index of segment {}: {}", opts_.dir, name,
                 why);
    SegmentScan scan = scan_segment(bytes, first);
    if (scan.stop.kind != ScanStopKind::kEnd) {
      ScanStop stop = scan.stop;
      if (stop.kind == ScanStopKind::kTorn) stop.reason += " (a sealed segment must end cleanly)";
      return corruption(*seg, stop);
    }
    if (scan.offsets.empty() || scan.committed_count != scan.offsets.size()) {
      ScanStop stop = scan.stop;
      stop.offset = scan.committed_end;
      stop.position = first + scan.committed_count;
      stop.reason =
          "a sealed segment ends with an incomplete append (no commit flag on its last record)";
      return corruption(*seg, stop);
    }
    PositionIndex rebuilt{first, scan.data_end, std::move(scan.offsets)};
    ANNAL_RETURN_IF_ERROR(write_position_index(*fs_, opts_.dir, rebuilt));
    ++report_.position_indexes_rebuilt;
    idx = std::move(rebuilt);
  }
  seg->capacity = idx->offsets.size();
  seg->offsets = std::make_unique<std::uint32_t[]>(seg->capacity);
  std::copy(idx->offsets.begin(), idx->offsets.end(), seg->offsets.get());
  seg->count.store(idx->offsets.size(), std::memory_order_relaxed);
  seg->data_end.store(idx->data_end, std::memory_order_relaxed);
  seg->sealed.store(true, std::memory_order_relaxed);
  return seg;
}

Result<std::shared_ptr<Segment>> Log::Impl::open_active(GlobalPosition first, bool has_index) {
  const std::string name = segment_file_name(first);
  if (has_index) {
    // A crash between sealing this segment and creating the next: it is the
    // active segment again, and its index will be rewritten when it is sealed.
    ANNAL_RETURN_IF_ERROR(fs_->remove(path_of(index_file_name(first))));
    ANNAL_RETURN_IF_ERROR(fs_->sync_dir(opts_.dir));
  }
  auto file = fs_->open(path_of(name), OpenOptions{});
  if (!file) return file.status();
  auto segr = map_segment(std::move(*file), first, name);
  if (!segr) return segr.status();
  auto seg = std::move(*segr);
  const auto bytes = seg->map->bytes();
  SegmentScan scan = scan_segment(bytes, first);
  if (scan.stop.kind == ScanStopKind::kCorrupt) return corruption(*seg, scan.stop);

  const std::uint64_t incomplete = scan.offsets.size() - scan.committed_count;
  const std::uint64_t torn =
      scan.stop.kind == ScanStopKind::kTorn ? scan.stop.garbage_end - scan.data_end : 0;
  const std::uint64_t cut_end = std::max(scan.data_end, scan.stop.garbage_end);
  const GlobalPosition cut_at = first + scan.committed_count;
  if (cut_end > scan.committed_end && cut_at.value < opts_.durable_floor) {
    // Looks like a torn write, but the position was acknowledged: bit rot
    // (or a lost write) in durable data, which must not be cut silently.
    ScanStop stop = scan.stop;
    stop.position = cut_at;
    stop.offset = scan.committed_end;
    stop.reason = fmt::format(
        "{}; position {} is below {}, through which an index MANIFEST (DIR/index or "
        "DIR/secondary) proves the log was durable, so this is damage to acknowledged data, not a "
        "torn write",
        stop.reason.empty() ? std::string("invalid record") : stop.reason, cut_at.value,
        opts_.durable_floor);
    return corruption(*seg, stop);
  }
  if (cut_end > scan.committed_end) {
    // Zero instead of truncating: the file stays preallocated and mapped.
    static const std::string zeros(1 << 20, '\0');
    for (std::uint64_t off = scan.committed_end; off < cut_end; off += zeros.size()) {
      const std::uint64_t n = std::min<std::uint64_t>(zeros.size(), cut_end - off);
      ANNAL_RETURN_IF_ERROR(seg->file->pwrite(off, as_bytes(zeros).first(n)));
    }
    ANNAL_RETURN_IF_ERROR(seg->file->datasync());
    spdlog::warn(
        "annal log {}: cut the tail of segment {} at offset {} (position {}): {} torn bytes{}{}; "
        "{} events of an "
        "incomplete append",
        opts_.dir, name, scan.committed_end, (first + scan.committed_count).value, torn,
        torn > 0 ? ": " : "", torn > 0 ? scan.stop.reason : "", incomplete);
    report_.torn_bytes_cut += torn;
    if (scan.stop.kind == ScanStopKind::kTorn && scan.stop.out_of_order)
      ++report_.out_of_order_tears_cut;
    report_.incomplete_events_cut += incomplete;
  }
  seg->capacity = (seg->allocated - f::kSegmentHeaderSize) / f::kRecordMinSize + 1;
  seg->offsets.reset(new std::uint32_t[seg->capacity]);
  std::copy(scan.offsets.begin(),
            scan.offsets.begin() + static_cast<std::ptrdiff_t>(scan.committed_count),
            seg->offsets.get());
  seg->count.store(scan.committed_count, std::memory_order_relaxed);
  seg->data_end.store(scan.committed_end, std::memory_order_relaxed);
  // The scan read the whole segment, zero-filled tail included (to tell a
  // torn tail from damage followed by valid records): without this, a
  // freshly opened node held the active segment's size (256 MiB by default)
  // in its resident set. Readers fault back in only what they read.
  seg->map->release_resident();
  return seg;
}

Status Log::Impl::recover() {
  if (opts_.dir.empty()) return Status(Errc::kInvalidArgument, "log directory not set");
  if (opts_.segment_size < f::kMinSegmentSize || opts_.segment_size > (std::uint64_t{1} << 32) ||
      opts_.segment_size % f::kRecordAlign != 0)
    return Status(Errc::kInvalidArgument,
                  fmt::format("segment size {} must be a multiple of 8 between {} and 4 GiB",
                              opts_.segment_size, f::kMinSegmentSize));
  if (opts_.max_group_bytes == 0) opts_.max_group_bytes = 1;
  ANNAL_RETURN_IF_ERROR(fs_->create_dirs(opts_.dir));
  auto names = fs_->list(opts_.dir);
  if (!names) return names.status();
  std::map<std::uint64_t, bool> segs;  // first -> has .idx
  std::vector<std::uint64_t> idx_only;
  for (const auto& n : *names) {
    if (auto p = parse_segment_file_name(n)) segs.emplace(p->value, false);
    // `annal restore` moves a backup's files into place from here, and
    // removes it last: a directory holding it is a restore that did not
    // finish, whose log may be missing segments.
    if (n == ".restore.partial")
      return Status(Errc::kInvalidArgument,
                    fmt::format("{} holds .restore.partial: an `annal restore` into it did not "
                                "finish; empty the directory and run the restore again",
                                opts_.dir));
  }
  for (const auto& n : *names) {
    if (auto p = parse_index_file_name(n)) {
      auto it = segs.find(p->value);
      if (it != segs.end())
        it->second = true;
      else
        idx_only.push_back(p->value);
    } else if ((n.size() > 4 && n.ends_with(".idx.tmp")) || n == kSpareName ||
               n.ends_with(kScavengeTmpSuffix)) {
      // An index write or a spare segment interrupted by a crash.
      ANNAL_RETURN_IF_ERROR(fs_->remove(path_of(n)));
    }
  }
  for (std::uint64_t p : idx_only)
    ANNAL_RETURN_IF_ERROR(fs_->remove(path_of(index_file_name(GlobalPosition(p)))));

  // Make what a previous incarnation wrote durable before trusting it.
  for (const auto& [first, has_idx] : segs) {
    auto file = fs_->open(path_of(segment_file_name(GlobalPosition(first))), OpenOptions{});
    if (!file) return file.status();
    ANNAL_RETURN_IF_ERROR((*file)->sync());
  }
  ANNAL_RETURN_IF_ERROR(fs_->sync_dir(opts_.dir));

  // A last segment whose creation a crash interrupted (short, or a header that
  // never made it, with nothing after it) is removed and created again.
  if (!segs.empty()) {
    const GlobalPosition first(segs.rbegin()->first);
    const std::string name = segment_file_name(first);
    auto file = fs_->open(path_of(name), OpenOptions{.read_only = true});
    if (!file) return file.status();
    auto header = read_segment_header(**file);
    if (!header) {
      auto size = (*file)->size();
      if (!size) return size.status();
      bool blank = true;
      if (*size > f::kSegmentHeaderSize) {
        auto map = (*file)->map(*size);
        if (!map) return map.status();
        auto rest = (*map)->bytes().subspan(f::kSegmentHeaderSize);
        blank =
            std::all_of(rest.begin(), rest.end(), [](std::byte b) { return b == std::byte{0}; });
      }
      if (!blank) return header.status();
      spdlog::warn("annal log {}: removing segment {} whose creation was interrupted ({})",
                   opts_.dir, name, header.status().message());
      file->reset();
      ANNAL_RETURN_IF_ERROR(fs_->remove(path_of(name)));
      ANNAL_RETURN_IF_ERROR(fs_->sync_dir(opts_.dir));
      segs.erase(std::prev(segs.end()));
    }
  }

  GlobalPosition expected(0);
  std::size_t i = 0;
  for (const auto& [first_v, has_idx] : segs) {
    const GlobalPosition first(first_v);
    const bool last = ++i == segs.size();
    if (first != expected)
      return Status(
          Errc::kCorruption,
          fmt::format(
              "segment {}: starts at position {}, but the segments before it end at {} ({}). "
              "The log will not open; run `annal repair {}`",
              segment_file_name(first), first.value, expected.value,
              first > expected ? "positions missing" : "positions overlap", opts_.dir));
    auto seg = last ? open_active(first, has_idx) : open_sealed(first, has_idx);
    if (!seg) return seg.status();
    expected = first + (*seg)->count.load(std::memory_order_relaxed);
    segments_.push_back(std::move(*seg));
  }
  if (segments_.empty()) {
    auto seg = create_segment(expected, opts_.prepare_segments);
    if (!seg) return seg.status();
    segments_.push_back(std::move(*seg));
  }
  active_ = segments_.back();
  active_end_ = active_->data_end.load(std::memory_order_relaxed);
  next_ = expected.value;
  durable_end_.store(next_, std::memory_order_release);
  report_.end = expected;
  report_.segments = segments_.size();
  spdlog::info("annal log {}: opened {} segments, end position {}", opts_.dir, segments_.size(),
               next_);
  return Status::ok();
}

// ---------------------------------------------------------------------------
// Segments

Status Log::Impl::zero_fill(File& file, std::uint64_t from, const std::atomic<bool>* abandon) {
  static const std::string zeros(1 << 20, '\0');
  for (std::uint64_t off = from; off < opts_.segment_size; off += zeros.size()) {
    if (abandon != nullptr && abandon->load(std::memory_order_relaxed))
      return Status(Errc::kShuttingDown, "abandoned");
    const std::uint64_t n = std::min<std::uint64_t>(zeros.size(), opts_.segment_size - off);
    ANNAL_RETURN_IF_ERROR(file.pwrite(off, as_bytes(zeros).first(n)));
  }
  return Status::ok();
}

Result<std::shared_ptr<Segment>> Log::Impl::create_segment(GlobalPosition first, bool zero) {
  const std::string name = segment_file_name(first);
  const std::string path = path_of(name);
  auto file = fs_->open(path, OpenOptions{.create = true, .exclusive = true});
  if (!file) return file.status();
  // Reserve every block now: a full disk must be an error here, never a
  // SIGBUS on a mapped page later.
  Status s = (*file)->allocate(opts_.segment_size);
  if (s && zero) s = zero_fill(**file, f::kSegmentHeaderSize, nullptr);
  if (!s) {
    file->reset();
    Status r = fs_->remove(path);
    if (r) r = fs_->sync_dir(opts_.dir);
    if (!r)
      spdlog::error("annal log {}: removing {} after a failed allocation: {}", opts_.dir, name,
                    r.to_string());
    return Status(s.code(), fmt::format("creating segment {}: {}", name, s.message()));
  }
  ANNAL_RETURN_IF_ERROR(write_header(**file, first));
  ANNAL_RETURN_IF_ERROR(fs_->sync_dir(opts_.dir));
  return make_segment(name, first, std::move(*file));
}

Status Log::Impl::write_header(File& file, GlobalPosition first) {
  SegmentHeader h;
  h.first = first;
  h.allocated_size = opts_.segment_size;
  h.created_us = now_us();
  ANNAL_RETURN_IF_ERROR(file.pwrite(0, as_bytes(encode_segment_header(h))));
  return file.datasync();
}

Result<std::shared_ptr<Segment>> Log::Impl::make_segment(const std::string& name,
                                                         GlobalPosition first,
                                                         std::unique_ptr<File> file) {
  auto map = file->map(opts_.segment_size);
  if (!map) return map.status();
  auto seg = std::make_shared<Segment>();
  seg->name = name;
  seg->first = first;
  seg->allocated = opts_.segment_size;
  seg->map = std::move(*map);
  seg->file = std::move(file);
  seg->capacity = record_capacity() / f::kRecordMinSize + 1;
  seg->offsets.reset(new std::uint32_t[seg->capacity]);
  return seg;
}

// The spare is allocated, zero-filled and synced; it becomes the segment by
// getting its header (synced) and then its name (rename + directory fsync),
// so after a crash it is either still the spare or a complete empty segment.
Result<std::shared_ptr<Segment>> Log::Impl::install_spare(GlobalPosition first,
                                                          std::unique_ptr<File> spare) {
  const std::string name = segment_file_name(first);
  ANNAL_RETURN_IF_ERROR(write_header(*spare, first));
  spare.reset();
  ANNAL_RETURN_IF_ERROR(fs_->rename(spare_path(), path_of(name)));
  ANNAL_RETURN_IF_ERROR(fs_->sync_dir(opts_.dir));
  auto file = fs_->open(path_of(name), OpenOptions{});
  if (!file) return file.status();
  return make_segment(name, first, std::move(*file));
}

void Log::Impl::prepare_spares() {
  for (;;) {
    {
      std::unique_lock l(spare_mu_);
      spare_cv_.wait(l, [&] { return spare_stopping_ || (spare_wanted_ && spare_ == nullptr); });
      if (spare_stopping_) return;
      spare_wanted_ = false;  // one attempt per roll, so a full disk is not hammered
    }
    const std::string path = spare_path();
    Status s;
    std::unique_ptr<File> file;
    if (fs_->exists(path)) s = fs_->remove(path);
    if (s) {
      auto f = fs_->open(path, OpenOptions{.create = true, .exclusive = true});
      if (f)
        file = std::move(*f);
      else
        s = f.status();
    }
    if (s) s = file->allocate(opts_.segment_size);
    if (s) s = zero_fill(*file, 0, &abandon_spare_);
    if (s) s = file->datasync();
    if (s) s = fs_->sync_dir(opts_.dir);
    if (!s) {
      if (s.code() != Errc::kShuttingDown)
        spdlog::warn("annal log {}: could not prepare a spare segment: {}", opts_.dir,
                     s.to_string());
      file.reset();
      if (fs_->exists(path)) (void)fs_->remove(path);
      continue;
    }
    std::lock_guard l(spare_mu_);
    spare_ = std::move(file);
  }
}

Status Log::Impl::seal(Segment& seg) {
  if (seg.sealed.load(std::memory_order_relaxed)) return Status::ok();
  const std::uint64_t n = seg.count.load(std::memory_order_relaxed);
  PositionIndex idx{seg.first, seg.data_end.load(std::memory_order_relaxed),
                    std::vector<std::uint32_t>(seg.offsets.get(), seg.offsets.get() + n)};
  ANNAL_RETURN_IF_ERROR(write_position_index(*fs_, opts_.dir, idx));
  seg.sealed.store(true, std::memory_order_relaxed);
  seg.file.reset();  // everything in it is synced
  return Status::ok();
}

Status Log::Impl::roll() {
  if (Status s = seal(*active_); !s) {
    // A full disk while writing the index is not fatal: the segment stays
    // active and unsealed, and the next roll tries again.
    if (s.code() == Errc::kNoSpace)
      return Status(s.code(), fmt::format("sealing segment {}: {}", active_->name, s.message()));
    fail_writer(
        Status(s.code(), fmt::format("sealing segment {}: {}", active_->name, s.message())));
    return writer_status();
  }
  std::unique_ptr<File> spare;
  {
    std::lock_guard l(spare_mu_);
    spare = std::move(spare_);
  }
  // Without a ready spare, allocate now (fallocate only: the writer must not
  // stall on a full zero-fill).
  auto seg = spare ? install_spare(GlobalPosition(next_), std::move(spare))
                   : create_segment(GlobalPosition(next_), false);
  // Only now (the spare's name is free again) may the next one be prepared.
  {
    std::lock_guard l(spare_mu_);
    spare_wanted_ = true;
  }
  spare_cv_.notify_all();
  if (!seg) {
    if (seg.status().code() == Errc::kNoSpace) return seg.status();
    fail_writer(seg.status());
    return writer_status();
  }
  {
    std::lock_guard l(segments_mu_);
    segments_.push_back(*seg);
  }
  active_ = std::move(*seg);
  active_end_ = f::kSegmentHeaderSize;
  return Status::ok();
}

// The active segment predates extended records: the next ones go into a
// new segment, or, if it holds no record yet, it gets the current header.
Status Log::Impl::upgrade_active() {
  if (active_->count.load(std::memory_order_relaxed) > 0 || next_ != active_->first.value)
    return roll();
  SegmentHeader h;
  h.first = active_->first;
  h.allocated_size = active_->allocated;
  h.created_us = now_us();
  Status s = active_->file->pwrite(0, as_bytes(encode_segment_header(h)));
  if (s) s = active_->file->datasync();
  if (!s) {
    fail_writer(Status(s.code(), fmt::format("upgrading the header of segment {}: {}",
                                             active_->name, s.message())));
    return writer_status();
  }
  spdlog::info("annal log {}: segment {} (empty) upgraded to version {}", opts_.dir, active_->name,
               f::kSegmentVersion);
  active_->version = f::kSegmentVersion;
  return Status::ok();
}

// ---------------------------------------------------------------------------
// Writer

void Log::Impl::append(AppendRequest req) {
  std::size_t bytes = 0;
  for (const auto& e : req.events) bytes += encoded_size(e);
  bool refused = false;
  bool write_here = false;
  bool notify = false;
  {
    std::lock_guard l(mu_);
    if (stopping_) {
      refused = true;
    } else if (opts_.write_when_idle && !writing_ && queue_.empty() && inflight_count_ == 0) {
      writing_ = true;  // the log is idle: this thread writes the group itself
      write_here = true;
    } else {
      queue_.push_back(Queued{std::move(req), bytes});
      notify = true;
    }
  }
  if (refused) {
    AppendOutcome o;
    o.status = Status(Errc::kShuttingDown, fmt::format("log {} is closing", opts_.dir));
    if (req.done) req.done(o);
    return;
  }
  if (!write_here) {
    if (notify) cv_.notify_one();
    return;
  }
  // No hand-off to the writer thread and back: one request, written, synced
  // and completed on the caller's thread. What arrives meanwhile queues for
  // the writer thread, which takes it as one group once this one is done.
  std::deque<Queued> batch;
  batch.push_back(Queued{std::move(req), bytes});
  sync_here_ = true;
  process(batch);
  sync_here_ = false;
  bool wake;
  {
    std::lock_guard l(mu_);
    writing_ = false;
    wake = !queue_.empty() || stopping_;
  }
  if (wake) cv_.notify_all();
}

void Log::Impl::run() {
  std::deque<Queued> batch;
  for (;;) {
    bool completions = false;
    {
      std::unique_lock l(mu_);
      cv_.wait(l, [&] { return !writing_ && (!queue_.empty() || stopping_ || sync_answered()); });
      if (queue_.empty() && stopping_ && inflight_.empty()) return;
      completions = sync_answered();
      std::size_t total = 0;
      while (!queue_.empty() &&
             (batch.empty() || total + queue_.front().bytes <= opts_.max_group_bytes)) {
        total += queue_.front().bytes;
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      writing_ = true;
    }
    if (completions) complete_synced();
    if (!batch.empty()) process(batch);
    if (batch.empty() && !completions) drain_syncs();  // stopping: finish what is written
    {
      std::lock_guard l(mu_);
      writing_ = false;
    }
  }
}

bool Log::Impl::sync_answered() const {
  return !inflight_.empty() && (sync_done_ >= inflight_.front().end || !sync_failed_.is_ok());
}

void Log::Impl::sync_loop() {
  for (;;) {
    std::uint64_t target = 0;
    File* file = nullptr;
    {
      std::unique_lock l(mu_);
      sync_cv_.wait(
          l, [&] { return syncer_stop_ || (sync_want_ > sync_done_ && sync_failed_.is_ok()); });
      if (syncer_stop_) return;
      target = sync_want_;
      file = sync_file_;
    }
    Status st = timed_datasync(*file);
    {
      std::lock_guard l(mu_);
      if (st)
        sync_done_ = target;
      else
        sync_failed_ = st;
    }
    cv_.notify_all();
  }
}

void Log::Impl::complete_synced() {
  std::uint64_t done = 0;
  Status failed;
  {
    std::lock_guard l(mu_);
    done = sync_done_;
    failed = sync_failed_;
  }
  std::size_t n = 0;
  while (n < inflight_.size() && inflight_[n].end <= done) ++n;
  if (n > 0) {
    const Written& last = inflight_[n - 1];
    if (last.end > durable_end_.load(std::memory_order_relaxed)) {
      // Each group is counted alone (one sync may have covered several).
      std::uint64_t before = durable_end_.load(std::memory_order_relaxed);
      for (std::size_t i = 0; i < n; ++i) {
        if (inflight_[i].end <= before) continue;
        count_durable(inflight_[i].end - before);
        before = inflight_[i].end;
      }
      if (hooks_ != nullptr) hooks_->on_disk(GlobalPosition(last.end));
      active_->count.store(last.end - active_->first.value, std::memory_order_release);
      active_->data_end.store(last.end_offset, std::memory_order_release);
      durable_end_.store(last.end, std::memory_order_release);
      if (hooks_ != nullptr) hooks_->durable(GlobalPosition(last.end));
    }
    for (std::size_t i = 0; i < n; ++i) {
      deliver(inflight_.front().group);
      inflight_.pop_front();
    }
    std::lock_guard l(mu_);
    inflight_count_ -= n;
  }
  if (failed.is_ok() || inflight_.empty()) return;
  // The sync failed: nothing written after the last durable position may be
  // acknowledged, and the writer stops (an fsync error is fatal).
  fail_writer(failed);
  for (auto g = inflight_.rbegin(); g != inflight_.rend(); ++g)
    for (auto it = g->group.rbegin(); it != g->group.rend(); ++it)
      if (it->written && hooks_ != nullptr) hooks_->aborted(it->req);
  for (auto& g : inflight_)
    for (auto& e : g.group) {
      if (e.written || e.outcome.status.is_ok()) {
        e.outcome = AppendOutcome{};
        e.outcome.status = writer_status();
      }
    }
  next_ = durable_end_.load(std::memory_order_relaxed);
  active_end_ = active_->data_end.load(std::memory_order_relaxed);
  while (!inflight_.empty()) {
    deliver(inflight_.front().group);
    inflight_.pop_front();
  }
  std::lock_guard l(mu_);
  sync_want_ = sync_done_;
  inflight_count_ = 0;
}

void Log::Impl::drain_syncs() {
  while (!inflight_.empty()) {
    {
      std::unique_lock l(mu_);
      cv_.wait(l, [&] { return sync_answered(); });
    }
    complete_synced();
  }
}

void Log::Impl::fail_writer(const Status& cause) {
  std::lock_guard l(status_mu_);
  if (!writer_status_.is_ok()) return;
  writer_status_ = Status(
      Errc::kWriterFailed,
      fmt::format("log writer stopped after a failure; restart to recover: {}", cause.to_string()));
  failed_.store(true, std::memory_order_release);
  spdlog::error("annal log {}: {}", opts_.dir, writer_status_.message());
}

Status Log::Impl::check_floor() {
  if (opts_.min_free_bytes == 0) return Status::ok();
  // statfs per group cost one syscall per 1-in-flight append. A comfortable
  // answer is reused for a short while and for a quarter of the headroom it
  // showed; a low or unknown answer is never reused. The active segment is
  // preallocated, so the floor is a policy, not what stops a write failing.
  const std::uint64_t written = std::exchange(written_since_floor_check_, 0);
  floor_budget_ = written >= floor_budget_ ? 0 : floor_budget_ - written;
  const auto now = std::chrono::steady_clock::now();
  if (floor_budget_ > 0 && now < floor_checked_ + opts_.floor_check_interval) return Status::ok();
  floor_budget_ = 0;
  auto free = fs_->free_bytes(opts_.dir);
  if (!free) return Status::ok();  // cannot tell: allocation will still catch a full disk
  if (*free < opts_.min_free_bytes)
    return Status(Errc::kNoSpace,
                  fmt::format("{} bytes free on the file system of {}, below the floor of {}",
                              *free, opts_.dir, opts_.min_free_bytes));
  floor_checked_ = now;
  floor_budget_ = (*free - opts_.min_free_bytes) / 4;
  return Status::ok();
}

void Log::Impl::process(std::deque<Queued>& batch) {
  std::vector<Entry> group;
  buf_.clear();
  const Status floor = check_floor();
  while (!batch.empty()) {
    Queued q = std::move(batch.front());
    batch.pop_front();
    Entry e{std::move(q.req), {}, false};
    if (failed_.load(std::memory_order_acquire)) {
      e.outcome.status = writer_status();
      group.push_back(std::move(e));
      continue;
    }
    if (!floor) {
      e.outcome.status = floor;
      if (opts_.metrics) metrics_.appends_refused_no_space.fetch_add(1, std::memory_order_relaxed);
      group.push_back(std::move(e));
      continue;
    }
    if (Status v = validate_events(e.req.events, record_capacity()); !v) {
      e.outcome.status = v;
      group.push_back(std::move(e));
      continue;
    }
    const auto decision = hooks_ != nullptr
                              ? hooks_->prepare(e.req, GlobalPosition(next_), e.outcome)
                              : WriteHooks::Decision::kWrite;
    if (decision == WriteHooks::Decision::kComplete) {
      group.push_back(std::move(e));
      continue;
    }
    auto& events = e.req.events;
    if (Status v = validate_events(events, record_capacity()); !v) {
      if (hooks_ != nullptr) hooks_->aborted(e.req);
      e.outcome.status = v;
      group.push_back(std::move(e));
      continue;
    }
    std::size_t size = 0;
    for (std::size_t i = 0; i < events.size(); ++i) {
      events[i].position = GlobalPosition(next_ + i);
      events[i].flags &= ~f::kFlagCommit;
      if (i + 1 == events.size()) events[i].flags |= f::kFlagCommit;
      size += encoded_size(events[i]);
    }
    // An append never spans segments: roll first. And extended records go
    // only into segments whose header says they may (an older node then
    // refuses the segment instead of misreading it).
    const bool must_roll = active_->sealed.load(std::memory_order_relaxed) ||
                           active_end_ + buf_.size() + size > active_->allocated;
    const bool must_upgrade = active_->version < f::kSegmentVersion &&
                              std::any_of(events.begin(), events.end(),
                                          [](const EventRecord& ev) { return ev.has_extension(); });
    if (must_roll || must_upgrade) {
      commit_group(group);
      drain_syncs();  // a segment is sealed only once everything in it is durable
      Status s = failed_.load(std::memory_order_acquire) ? writer_status()
                 : must_roll                             ? roll()
                                                         : upgrade_active();
      if (!s) {
        if (hooks_ != nullptr) hooks_->aborted(e.req);
        e.outcome.status = s;
        group.push_back(std::move(e));
        continue;
      }
    }
    // buf_ holds the bytes that go at active_end_ onwards.
    std::size_t at = buf_.size();
    buf_.resize(at + size);
    for (const auto& ev : events) {
      const std::size_t n = encoded_size(ev);
      active_->offsets[ev.position.value - active_->first.value] =
          static_cast<std::uint32_t>(active_end_ + at);
      encode_into(ev, std::span<std::byte>(reinterpret_cast<std::byte*>(buf_.data() + at), n));
      at += n;
    }
    e.written = true;
    e.outcome.first_position = GlobalPosition(next_);
    e.outcome.first_revision = events.front().revision;
    e.outcome.count = static_cast<std::uint32_t>(events.size());
    next_ += events.size();
    group.push_back(std::move(e));
    if (buf_.size() >= opts_.max_group_bytes) commit_group(group);
  }
  commit_group(group);
}

void Log::Impl::deliver(std::vector<Entry>& group) {
  for (auto& e : group)
    if (e.req.done) e.req.done(e.outcome);
  group.clear();
}

Status Log::Impl::timed_datasync(File& file) {
  if (!opts_.metrics) return file.datasync();
  const auto start = std::chrono::steady_clock::now();
  Status s = file.datasync();
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count();
  metrics_.syncs.fetch_add(1, std::memory_order_relaxed);
  metrics_.sync_ns.observe(static_cast<std::uint64_t>(ns));
  if (!s) metrics_.sync_errors.fetch_add(1, std::memory_order_relaxed);
  return s;
}

void Log::Impl::count_durable(std::uint64_t events) {
  if (!opts_.metrics || events == 0) return;
  metrics_.group_commits.fetch_add(1, std::memory_order_relaxed);
  metrics_.events_written.fetch_add(events, std::memory_order_relaxed);
  metrics_.group_events.observe(events);
}

void Log::Impl::commit_group(std::vector<Entry>& group) {
  if (group.empty()) return;
  Status s;
  bool acked_early = false;
  bool sync_now = sync_here_;
  File* written_to = nullptr;
  if (!buf_.empty()) {
    ANNAL_CHECK(!active_->sealed.load(std::memory_order_relaxed), "writing into a sealed segment");
    File& file = *active_->file;
    written_to = &file;
    s = file.pwrite(active_end_, as_bytes(buf_));
    if (!s) {
      // Settle the groups written before (their syncs are under way), so
      // that what follows concerns this group alone.
      drain_syncs();
    }
    if (!s && s.code() == Errc::kNoSpace) {
      // Some of the group may have reached the file. Overwrite it with zeros so
      // valid-looking records can never surface later, then carry on.
      const std::string zeros(buf_.size(), '\0');
      Status z = file.pwrite(active_end_, as_bytes(zeros));
      if (z) z = file.datasync();
      if (!z)
        fail_writer(Status(
            z.code(), fmt::format("zeroing a failed write in {}: {}", file.path(), z.message())));
      s = Status(Errc::kNoSpace,
                 fmt::format("writing to segment {}: {}", active_->name, s.message()));
    } else if (!s) {
      fail_writer(s);
      s = writer_status();
    }
    if (s && opts_.test_ack_before_sync) {
      // TEST ONLY: the broken contract the power-loss test must catch.
      for (auto& e : group)
        if (e.req.done) e.req.done(e.outcome);
      acked_early = true;
    }
    if (s && !sync_here_) {
      // Hand the sync to the syncer only when there is something to do
      // meanwhile (appends queued, or syncs under way that this one must
      // follow); otherwise a lone append would pay two more wake-ups.
      std::lock_guard l(mu_);
      sync_now = queue_.empty() && inflight_count_ == 0;
    }
    if (s && sync_now) {
      s = timed_datasync(file);
      if (!s) {
        fail_writer(s);
        s = writer_status();
      }
    }
  }
  if (!s) {
    for (auto it = group.rbegin(); it != group.rend(); ++it)
      if (it->written && hooks_ != nullptr) hooks_->aborted(it->req);
    for (auto& e : group) {
      if (e.written || e.outcome.status.is_ok()) {
        e.outcome = AppendOutcome{};
        e.outcome.status = s;
      }
    }
    next_ = durable_end_.load(std::memory_order_relaxed);
    buf_.clear();
    if (acked_early)
      group.clear();
    else
      deliver(group);
    return;
  }
  active_end_ += buf_.size();
  written_since_floor_check_ += buf_.size();
  if (opts_.metrics) metrics_.bytes_written.fetch_add(buf_.size(), std::memory_order_relaxed);
  buf_.clear();
  if (acked_early) group.clear();
  if (sync_now || (written_to == nullptr && inflight_.empty())) {
    // Synced on this thread (nothing else was in flight), or nothing to sync.
    if (written_to != nullptr) {
      count_durable(next_ - durable_end_.load(std::memory_order_relaxed));
      if (hooks_ != nullptr) hooks_->on_disk(GlobalPosition(next_));
      active_->count.store(next_ - active_->first.value, std::memory_order_release);
      active_->data_end.store(active_end_, std::memory_order_release);
      durable_end_.store(next_, std::memory_order_release);
      {
        std::lock_guard l(mu_);
        sync_want_ = sync_done_ = next_;
      }
      if (hooks_ != nullptr) hooks_->durable(GlobalPosition(next_));
    }
    deliver(group);
    return;
  }
  // Completed by complete_synced() once a sync covers it; a group that wrote
  // nothing (every request answered without writing) waits for the groups
  // before it all the same, so answers never overtake an earlier write.
  inflight_.push_back(Written{std::move(group), next_, active_end_});
  group.clear();
  {
    std::lock_guard l(mu_);
    ++inflight_count_;
    if (written_to != nullptr) {
      sync_want_ = next_;
      sync_file_ = written_to;
    }
  }
  if (written_to != nullptr) sync_cv_.notify_one();
}

// ---------------------------------------------------------------------------
// Readers

std::pair<std::shared_ptr<Segment>, std::uint64_t> Log::Impl::find(GlobalPosition p) const {
  std::lock_guard l(segments_mu_);
  auto it = std::upper_bound(
      segments_.begin(), segments_.end(), p,
      [](GlobalPosition v, const std::shared_ptr<Segment>& s) { return v < s->first; });
  ANNAL_CHECK(it != segments_.begin(), fmt::format("no segment holds position {}", p.value));
  const std::uint64_t limit = it == segments_.end() ? UINT64_MAX : (*it)->first.value;
  return {*std::prev(it), limit};
}

Status Log::Impl::view_at(const Segment& seg, GlobalPosition p, RecordView& out) const {
  const std::uint64_t i = p.value - seg.first.value;
  ANNAL_CHECK(i < seg.capacity,
              fmt::format("position {} beyond the offsets of segment {}", p.value, seg.name));
  const std::uint64_t off = seg.offsets[i];
  const auto bytes = seg.map->bytes();
  if (off >= bytes.size())
    return Status(Errc::kCorruption,
                  fmt::format("segment {}: position {} indexed at offset {}, beyond the segment",
                              seg.name, p.value, off));
  DecodeResult r = decode(bytes.subspan(off));
  if (r.outcome != DecodeOutcome::kOk)
    return Status(Errc::kCorruption, fmt::format("segment {} offset {} (position {}): {}", seg.name,
                                                 off, p.value, r.reason));
  if (r.view.position != p)
    return Status(Errc::kCorruption,
                  fmt::format("segment {} offset {}: record has position {}, expected {}", seg.name,
                              off, r.view.position.value, p.value));
  out = r.view;
  return Status::ok();
}

Status Log::Impl::scan_forward(GlobalPosition from, std::uint64_t max_count,
                               const std::function<bool(const RecordView&)>& fn) const {
  const std::uint64_t end = durable_end_.load(std::memory_order_acquire);
  if (from.value >= end || max_count == 0) return Status::ok();
  const std::uint64_t stop = from.value + std::min(max_count, end - from.value);
  std::shared_ptr<Segment> seg;
  std::uint64_t limit = 0;
  RecordView v;
  for (std::uint64_t p = from.value; p < stop; ++p) {
    if (!seg || p >= limit) std::tie(seg, limit) = find(GlobalPosition(p));
    ANNAL_RETURN_IF_ERROR(view_at(*seg, GlobalPosition(p), v));
    if (!fn(v)) break;
  }
  return Status::ok();
}

Status Log::Impl::scan_backward(GlobalPosition from, std::uint64_t max_count,
                                const std::function<bool(const RecordView&)>& fn) const {
  const std::uint64_t end = durable_end_.load(std::memory_order_acquire);
  if (end == 0 || max_count == 0) return Status::ok();
  std::uint64_t p = std::min(from.value, end - 1);
  std::shared_ptr<Segment> seg;
  RecordView v;
  for (std::uint64_t n = 0; n < max_count; ++n) {
    if (!seg || p < seg->first.value) seg = find(GlobalPosition(p)).first;
    ANNAL_RETURN_IF_ERROR(view_at(*seg, GlobalPosition(p), v));
    if (!fn(v) || p == 0) break;
    --p;
  }
  return Status::ok();
}

Status Log::Impl::visit(GlobalPosition p, const std::function<void(const RecordView&)>& fn) const {
  const std::uint64_t end = durable_end_.load(std::memory_order_acquire);
  if (p.value >= end)
    return Status(Errc::kNotFound, fmt::format("position {} is beyond the durable end {} of log {}",
                                               p.value, end, opts_.dir));
  auto seg = find(p).first;
  RecordView v;
  ANNAL_RETURN_IF_ERROR(view_at(*seg, p, v));
  fn(v);
  return Status::ok();
}

Status Log::Impl::visit_many(std::span<const std::uint64_t> positions,
                             const std::function<bool(std::size_t, const RecordView&)>& fn,
                             const std::function<bool(std::size_t)>& skip) const {
  const std::uint64_t end = durable_end_.load(std::memory_order_acquire);
  std::shared_ptr<Segment> seg;
  std::uint64_t limit = 0;  // seg holds [seg->first, limit)
  for (std::size_t i = 0; i < positions.size(); ++i) {
    if (skip && skip(i)) continue;
    const GlobalPosition p(positions[i]);
    if (p.value >= end)
      return Status(Errc::kNotFound,
                    fmt::format("position {} is beyond the durable end {} of log {}", p.value, end,
                                opts_.dir));
    if (!seg || p < seg->first || p.value >= limit) std::tie(seg, limit) = find(p);
    RecordView v;
    ANNAL_RETURN_IF_ERROR(view_at(*seg, p, v));
    if (!fn(i, v)) break;
  }
  return Status::ok();
}

Result<std::uint64_t> Log::Impl::end_offset(GlobalPosition end) const {
  const std::uint64_t durable = durable_end_.load(std::memory_order_acquire);
  if (end.value == 0 || end.value > durable)
    return Status(Errc::kNotFound,
                  fmt::format("no record ends the log at position {} (durable end {}) in {}",
                              end.value, durable, opts_.dir));
  const GlobalPosition last(end.value - 1);
  auto seg = find(last).first;
  RecordView v;
  ANNAL_RETURN_IF_ERROR(view_at(*seg, last, v));
  return std::uint64_t{seg->offsets[last.value - seg->first.value]} + v.size;
}

std::vector<SegmentInfo> Log::Impl::segments() const {
  std::lock_guard l(segments_mu_);
  std::vector<SegmentInfo> out;
  for (const auto& s : segments_) {
    SegmentInfo i;
    i.file = s->name;
    i.first = s->first;
    i.count = s->count.load(std::memory_order_acquire);
    i.bytes_used = s->data_end.load(std::memory_order_acquire);
    i.bytes_allocated = s->allocated;
    i.sealed = s->sealed.load(std::memory_order_relaxed);
    out.push_back(i);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Log

Log::Log(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Log::~Log() = default;

Result<std::unique_ptr<Log>> Log::open(LogOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  ANNAL_RETURN_IF_ERROR(impl->recover());
  impl->start();
  return std::unique_ptr<Log>(new Log(std::move(impl)));
}

Result<std::uint64_t> Log::end_offset(GlobalPosition end) const {
  return impl_->end_offset(end);
}

const RecoveryReport& Log::recovery() const {
  return impl_->report_;
}
void Log::append(AppendRequest req) {
  impl_->append(std::move(req));
}

AppendOutcome Log::append_sync(std::vector<EventRecord> events) {
  std::promise<AppendOutcome> p;
  auto fut = p.get_future();
  AppendRequest req;
  req.events = std::move(events);
  req.done = [&p](const AppendOutcome& o) { p.set_value(o); };
  impl_->append(std::move(req));
  return fut.get();
}

GlobalPosition Log::durable_end() const {
  return impl_->durable_end();
}
void Log::release_resident() const {
  impl_->release_resident();
}
Status Log::writer_status() const {
  return impl_->writer_status();
}
const LogMetrics& Log::metrics() const {
  return impl_->metrics_;
}
Status Log::scan_forward(GlobalPosition from, std::uint64_t max_count,
                         const std::function<bool(const RecordView&)>& fn) const {
  return impl_->scan_forward(from, max_count, fn);
}
Status Log::scan_backward(GlobalPosition from, std::uint64_t max_count,
                          const std::function<bool(const RecordView&)>& fn) const {
  return impl_->scan_backward(from, max_count, fn);
}
Result<EventRecord> Log::read(GlobalPosition position) const {
  std::optional<EventRecord> out;
  Status s = impl_->visit(position, [&](const RecordView& v) { out = v.to_record(); });
  if (!s) return s;
  return std::move(*out);
}
Status Log::visit(GlobalPosition position, const std::function<void(const RecordView&)>& fn) const {
  return impl_->visit(position, fn);
}
Status Log::visit_many(std::span<const std::uint64_t> positions,
                       const std::function<bool(std::size_t, const RecordView&)>& fn,
                       const std::function<bool(std::size_t)>& skip) const {
  return impl_->visit_many(positions, fn, skip);
}
std::vector<SegmentInfo> Log::segments() const {
  return impl_->segments();
}
const LogOptions& Log::options() const {
  return impl_->opts_;
}

}  // namespace annal::engine
