// annal inspect and annal dump.

#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <unordered_set>

#include "engine/file.h"
#include "engine/format.h"
#include "engine/segment.h"
#include "tools/offline.h"
#include "tools/offline_json.h"

// Findings and actions are built with designated initializers that leave
// defaulted members out on purpose; GCC 12 warns about that.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace annal::tools {

namespace f = engine::format;

std::string format_timestamp(std::int64_t us) {
  const std::int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
  const std::int64_t frac = us - secs * 1000000;
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:06d}Z", buf, frac);
}

Status inspect_directory(const std::string& dir, const InspectOptions& options,
                         const std::function<void(const std::string&)>& out) {
  std::unordered_set<std::uint64_t> streams;
  SurveyOptions so;
  so.on_record = [&streams](const SegmentSurvey&, std::uint64_t, const engine::RecordView& v) {
    if (!(v.flags & f::kFlagLost)) streams.insert(XXH3_64bits(v.stream.data(), v.stream.size()));
  };
  auto survey = survey_directory(dir, so);
  if (!survey) return survey.status();
  const DirectorySurvey& d = *survey;
  const StreamIndexSummary ix = stream_index_summary(dir);
  const StreamIndexSummary sx = secondary_index_summary(dir);
  auto free = engine::FileSystem::posix().free_bytes(dir);
  std::uint64_t used = 0, allocated = 0;
  for (const auto& s : d.segments) {
    used += s.data_end;
    allocated += s.file_size;
  }
  const std::uint64_t events = d.records - d.lost_markers;

  if (options.json) {
    std::string segs = "[";
    for (std::size_t i = 0; i < d.segments.size(); ++i) {
      const auto& s = d.segments[i];
      JsonObject o;
      o.str("file", s.file).num("first_position", s.first.value).num("end_position", s.end.value);
      o.num("events", s.records - s.lost_markers).num("lost_markers", s.lost_markers);
      if (s.records > s.lost_markers)
        o.str("first_timestamp", format_timestamp(s.first_ts))
            .str("last_timestamp", format_timestamp(s.last_ts));
      else
        o.null("first_timestamp").null("last_timestamp");
      o.num("bytes_used", s.data_end).num("bytes_allocated", s.file_size);
      o.str("state", s.last ? "active" : "sealed").boolean("header_ok", s.header_ok);
      o.boolean("idx_present", s.idx_present).str("idx", idx_state_name(s.idx));
      o.num("damaged_spans", static_cast<std::uint64_t>(s.spans.size() + (s.torn_tail ? 1 : 0)));
      if (i) segs += ",";
      segs += o.done();
    }
    segs += "]";
    JsonObject ixo;
    ixo.boolean("present", ix.present).boolean("manifest_ok", ix.manifest_ok);
    ixo.num("indexed_through", ix.indexed_through)
        .num("files", ix.files)
        .num("entries", ix.entries);
    if (!ix.error.empty()) ixo.str("error", ix.error);
    JsonObject sxo;
    sxo.boolean("present", sx.present).boolean("manifest_ok", sx.manifest_ok);
    sxo.num("indexed_through", sx.indexed_through)
        .num("files", sx.files)
        .num("entries", sx.entries);
    if (!sx.error.empty()) sxo.str("error", sx.error);
    JsonObject sum;
    sum.num("positions", d.end.value).num("events", events).num("lost_markers", d.lost_markers);
    sum.num("streams", static_cast<std::uint64_t>(streams.size()))
        .num("segments", static_cast<std::uint64_t>(d.segments.size()));
    sum.num("bytes_used", used).num("bytes_allocated", allocated);
    if (free)
      sum.num("free_bytes", *free);
    else
      sum.null("free_bytes");
    sum.num("findings", static_cast<std::uint64_t>(d.findings.size()));
    out(JsonObject()
            .str("dir", dir)
            .raw("segments", segs)
            .raw("stream_index", ixo.done())
            .raw("secondary_index", sxo.done())
            .raw("summary", sum.done())
            .done());
    return Status::ok();
  }

  out(fmt::format("{:<24} {:>12} {:>12} {:>10} {:>6} {:<27} {:<27} {:>12} {:>12} {:<7} {}",
                  "segment", "first", "last", "events", "lost", "first timestamp", "last timestamp",
                  "bytes used", "allocated", "state", "idx"));
  for (const auto& s : d.segments) {
    const bool any = s.records > s.lost_markers;
    std::string note;
    if (!s.header_ok) note += "  HEADER DAMAGED";
    if (!s.spans.empty()) note += fmt::format("  {} DAMAGED SPAN(S)", s.spans.size());
    if (s.torn_tail) note += "  TORN TAIL";
    out(fmt::format(
        "{:<24} {:>12} {:>12} {:>10} {:>6} {:<27} {:<27} {:>12} {:>12} {:<7} {}{}", s.file,
        s.first.value, s.end.value > s.first.value ? fmt::format("{}", s.end.value - 1) : "-",
        s.records - s.lost_markers, s.lost_markers, any ? format_timestamp(s.first_ts) : "-",
        any ? format_timestamp(s.last_ts) : "-", s.data_end, s.file_size,
        s.last ? "active" : "sealed",
        s.idx_present ? idx_state_name(s.idx) : (s.last ? "none" : "MISSING"), note));
  }
  out(fmt::format("positions: [0, {}): {} events, {} lost at repair; {} streams", d.end.value,
                  events, d.lost_markers, streams.size()));
  out(fmt::format("segments: {}, {} bytes used of {} allocated", d.segments.size(), used,
                  allocated));
  if (!ix.present)
    out("stream index: none (the node builds it at open)");
  else if (!ix.manifest_ok)
    out("stream index: " + ix.error);
  else
    out(fmt::format(
        "stream index: {} file(s), {} entries, covering positions [0, {}); [{}, {}) indexed by the "
        "node "
        "at open{}",
        ix.files, ix.entries, ix.indexed_through, std::min(ix.indexed_through, d.end.value),
        d.end.value, ix.error.empty() ? "" : "; " + ix.error));
  if (!sx.present)
    out("secondary index: none (the node builds it at open unless --secondary-index off)");
  else if (!sx.manifest_ok)
    out("secondary index: " + sx.error);
  else
    out(fmt::format(
        "secondary index (categories, types, tags, ids, time): {} file(s), {} "
        "entries, covering positions [0, {}){}",
        sx.files, sx.entries, sx.indexed_through, sx.error.empty() ? "" : "; " + sx.error));
  if (free) out(fmt::format("free space: {} bytes", *free));
  if (!d.findings.empty())
    out(fmt::format("damage: {} finding(s); run `annal verify {}` for details", d.findings.size(),
                    dir));
  return Status::ok();
}

namespace {

std::string payload_json(std::string_view bytes, bool is_json) {
  if (is_json && is_valid_json(bytes)) return std::string(bytes);
  return {};
}

}  // namespace

Status dump_directory(const std::string& dir, const DumpOptions& o,
                      const std::function<void(const std::string&)>& out, std::uint64_t* damaged) {
  auto& fs = engine::FileSystem::posix();
  auto names = fs.list(dir);
  if (!names) return names.status();
  std::map<std::uint64_t, std::string> segs;
  for (const auto& n : *names)
    if (auto p = engine::parse_segment_file_name(n)) segs.emplace(p->value, n);
  if (!o.segment.empty()) {
    auto p = engine::parse_segment_file_name(o.segment);
    if (!p || !segs.count(p->value))
      return Status(Errc::kNotFound, fmt::format("{}: no segment {}", dir, o.segment));
    segs = {{p->value, o.segment}};
  }
  std::uint64_t emitted = 0, spans = 0;
  const std::uint64_t limit = o.count.value_or(UINT64_MAX);
  auto it = segs.begin();
  if (o.from) {
    auto after = segs.upper_bound(*o.from);
    if (after != segs.begin()) it = std::prev(after);
  }
  for (; it != segs.end() && emitted < limit; ++it) {
    const std::string& name = it->second;
    auto file = fs.open(dir + "/" + name, engine::OpenOptions{.read_only = true});
    if (!file) return file.status();
    auto size = (*file)->size();
    if (!size) return size.status();
    if (*size <= f::kSegmentHeaderSize) continue;
    auto map = (*file)->map(*size);
    if (!map) return map.status();
    auto b = (*map)->bytes();
    ::madvise(const_cast<std::byte*>(b.data()), b.size(), MADV_SEQUENTIAL);
    GlobalPosition pos(it->first);
    std::uint64_t off = f::kSegmentHeaderSize;
    while (emitted < limit) {
      engine::SegmentScanner sc(b, pos, off);
      engine::RecordView v;
      std::uint64_t at = 0;
      while (emitted < limit && sc.next(v, at)) {
        if (o.from && v.position.value < *o.from) continue;
        if (o.stream && v.stream != *o.stream) continue;
        const bool lost = v.flags & f::kFlagLost;
        JsonObject j;
        j.num("position", v.position.value).str("segment", name).num("offset", at);
        if (lost) {
          j.boolean("lost", true);
        } else {
          j.str("stream", v.stream)
              .num("revision", v.revision.value)
              .str("type", v.type)
              .str("id", v.id.to_string());
          if (v.flags & f::kFlagRemoved) j.boolean("removed", true);  // a scavenge's marker
        }
        j.num("timestamp_us", v.timestamp_us).str("timestamp", format_timestamp(v.timestamp_us));
        if (v.flags & f::kFlagExtended) {
          std::string tags = "[";
          for (std::string_view t : v.tags) {
            if (tags.size() > 1) tags += ',';
            append_json_string(tags, t);
          }
          tags += ']';
          j.num("epoch", v.epoch).raw("tags", tags);
          if (!v.correlation_id.empty()) j.str("correlation_id", v.correlation_id);
          if (!v.causation_id.empty()) j.str("causation_id", v.causation_id);
        }
        j.num("flags", static_cast<std::uint64_t>(v.flags))
            .num("size", static_cast<std::uint64_t>(v.size));
        j.num("metadata_size", static_cast<std::uint64_t>(v.metadata.size()))
            .num("data_size", static_cast<std::uint64_t>(v.data.size()));
        j.str("checksum", fmt::format("{:016x}", v.checksum)).str("checksum_status", "ok");
        if (o.data && !lost) {
          auto add = [&](const char* key, std::string_view bytes, bool json) {
            const std::string js = payload_json(bytes, json);
            if (!js.empty())
              j.raw(key, js);
            else
              j.str(std::string(key) + "_base64", base64_encode(bytes));
          };
          if (!v.metadata.empty()) add("metadata", v.metadata, v.flags & f::kFlagMetadataJson);
          add("data", v.data, v.flags & f::kFlagDataJson);
        }
        out(j.done());
        ++emitted;
      }
      if (emitted >= limit) break;
      const engine::ScanStop& st = sc.stop();
      if (st.kind == engine::ScanStopKind::kEnd) break;
      ++spans;
      const std::uint64_t end = st.next_valid_offset.value_or(st.garbage_end);
      JsonObject j;
      j.str("segment", name)
          .num("offset", st.offset)
          .num("bytes", end - st.offset)
          .boolean("damaged", true);
      j.num("first_position", st.position.value);
      if (st.next_valid_position) j.num("end_position", st.next_valid_position->value);
      j.str("checksum_status", "bad").str("reason", st.reason);
      if (!o.stream) out(j.done());
      if (!st.next_valid_offset) break;
      off = *st.next_valid_offset;
      pos = *st.next_valid_position;
    }
  }
  if (damaged) *damaged = spans;
  return Status::ok();
}

}  // namespace annal::tools
