// Log::rewrite_sealed: a scavenge's rewrite of one sealed segment (see
// engine/log.h and docs/storage-format.md, "Scavenged segments").
#include "engine/log_impl.h"

namespace annal::engine {

Result<SegmentRewrite> Log::Impl::rewrite_sealed(
    GlobalPosition first, const std::function<bool(const RecordView&)>& remove,
    const std::function<void(std::uint64_t)>& pace) {
  std::shared_ptr<Segment> seg;
  {
    std::lock_guard l(segments_mu_);
    for (std::size_t i = 0; i + 1 < segments_.size(); ++i)
      if (segments_[i]->first == first) seg = segments_[i];
  }
  if (!seg || !seg->sealed.load(std::memory_order_acquire))
    return Status(Errc::kInvalidArgument,
                  fmt::format("no sealed segment starts at position {} (the newest segment is "
                              "never rewritten)",
                              first.value));
  // Everything of a sealed segment is durable: this acquire pairs with the
  // writer's release of the durable end, after its offsets were written.
  ANNAL_CHECK(seg->first.value + seg->count.load(std::memory_order_acquire) <=
                  durable_end_.load(std::memory_order_acquire),
              "a sealed segment beyond the durable end");
  SegmentRewrite report;
  report.file = seg->name;
  report.bytes_before = seg->allocated;
  const std::uint64_t n = seg->count.load(std::memory_order_acquire);

  // Which records go, and the new layout.
  std::vector<std::uint32_t> offsets(n);
  std::vector<bool> gone(n, false);
  std::uint64_t at = f::kSegmentHeaderSize;
  RecordView v;
  auto marker_of = [](const RecordView& r) {
    EventRecord m;
    m.id = r.id;
    m.stream.assign(r.stream);
    m.revision = r.revision;
    m.position = r.position;
    m.timestamp_us = r.timestamp_us;
    m.flags = f::kFlagRemoved | (r.flags & f::kFlagCommit);
    return m;
  };
  for (std::uint64_t i = 0; i < n; ++i) {
    ANNAL_RETURN_IF_ERROR(view_at(*seg, first + i, v));
    offsets[i] = static_cast<std::uint32_t>(at);
    const bool skip = (v.flags & (f::kFlagRemoved | f::kFlagLost)) != 0;
    if (!skip && remove(v)) {
      gone[i] = true;
      ++report.removed;
      at += encoded_size(marker_of(v));
    } else {
      at += v.size;
    }
  }
  if (report.removed == 0) {
    report.bytes_after = report.bytes_before;
    return report;
  }
  const std::uint64_t data_end = at;
  // Zeros after the last record (at least a length field's worth), to a page.
  const std::uint64_t allocated = (data_end + 8 + 4095) / 4096 * 4096;

  // 1. The new file, complete and synced, beside the segment.
  const std::string tmp_name = seg->name + std::string(kScavengeTmpSuffix);
  const std::string tmp = path_of(tmp_name);
  if (fs_->exists(tmp)) ANNAL_RETURN_IF_ERROR(fs_->remove(tmp));
  {
    auto file = fs_->open(tmp, OpenOptions{.create = true, .exclusive = true});
    if (!file) return file.status();
    ANNAL_RETURN_IF_ERROR((*file)->allocate(allocated));
    SegmentHeader h;
    h.version = f::kScavengedSegmentVersion;
    h.first = first;
    h.allocated_size = allocated;
    h.created_us = now_us();
    ANNAL_RETURN_IF_ERROR((*file)->pwrite(0, as_bytes(encode_segment_header(h))));
    std::string chunk;
    std::uint64_t chunk_at = f::kSegmentHeaderSize;
    auto flush = [&]() -> Status {
      if (chunk.empty()) return Status::ok();
      ANNAL_RETURN_IF_ERROR((*file)->pwrite(chunk_at, as_bytes(chunk)));
      chunk_at += chunk.size();
      if (pace) pace(chunk.size());
      chunk.clear();
      return Status::ok();
    };
    for (std::uint64_t i = 0; i < n; ++i) {
      ANNAL_RETURN_IF_ERROR(view_at(*seg, first + i, v));
      if (gone[i]) {
        encode(marker_of(v), chunk);
      } else {
        const auto bytes = seg->map->bytes().subspan(seg->offsets[i], v.size);
        chunk.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      }
      if (chunk.size() >= (1u << 20)) ANNAL_RETURN_IF_ERROR(flush());
    }
    ANNAL_RETURN_IF_ERROR(flush());
    ANNAL_CHECK(chunk_at == data_end, "a scavenged segment's size differs from its plan");
    ANNAL_RETURN_IF_ERROR((*file)->datasync());
  }
  // 2. The switch: without the old index, then under the segment's name,
  // then with the new index; each step synced. A crash in between leaves a
  // whole segment (old or new) without an index, which open rebuilds.
  ANNAL_RETURN_IF_ERROR(fs_->remove(path_of(index_file_name(first))));
  ANNAL_RETURN_IF_ERROR(fs_->sync_dir(opts_.dir));
  ANNAL_RETURN_IF_ERROR(fs_->rename(tmp, path_of(seg->name)));
  ANNAL_RETURN_IF_ERROR(fs_->sync_dir(opts_.dir));
  ANNAL_RETURN_IF_ERROR(
      write_position_index(*fs_, opts_.dir, PositionIndex{first, data_end, offsets}));

  // 3. Readers move to the new file.
  auto file = fs_->open(path_of(seg->name), OpenOptions{.read_only = true});
  if (!file) return file.status();
  auto fresh = map_segment(std::move(*file), first, seg->name);
  if (!fresh) return fresh.status();
  auto& ns = *fresh;
  ns->file.reset();
  ns->capacity = n;
  ns->offsets = std::make_unique<std::uint32_t[]>(n);
  std::copy(offsets.begin(), offsets.end(), ns->offsets.get());
  ns->count.store(n, std::memory_order_relaxed);
  ns->data_end.store(data_end, std::memory_order_relaxed);
  ns->sealed.store(true, std::memory_order_release);
  {
    std::lock_guard l(segments_mu_);
    for (auto& s : segments_)
      if (s == seg) s = ns;
  }
  report.rewritten = true;
  report.bytes_after = allocated;
  spdlog::info("annal log {}: scavenged segment {}: {} events removed, {} -> {} bytes", opts_.dir,
               seg->name, report.removed, report.bytes_before, report.bytes_after);
  return report;
}

Result<SegmentRewrite> Log::rewrite_sealed(GlobalPosition first,
                                           const std::function<bool(const RecordView&)>& remove,
                                           const std::function<void(std::uint64_t)>& pace) {
  return impl_->rewrite_sealed(first, remove, pace);
}

}  // namespace annal::engine
