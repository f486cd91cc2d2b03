#include <fmt/format.h>
#include <xxhash.h>

#include <chrono>

#include "engine/format.h"
#include "groups/group_file.h"
#include "tools/offline.h"
#include "tools/offline_json.h"

// Findings and actions are built with designated initializers that leave
// defaulted members out on purpose; GCC 12 warns about that.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace annal::tools {

namespace f = engine::format;

std::string finding_text(const Finding& fd) {
  std::string s = fmt::format("{} {}", finding_kind_name(fd.kind), fd.file);
  if (fd.offset) s += fmt::format(" offset={}", *fd.offset);
  if (fd.bytes) s += fmt::format(" bytes={}", fd.bytes);
  if (fd.first) {
    if (fd.end && *fd.end != *fd.first)
      s += fmt::format(" positions=[{},{})", fd.first->value, fd.end->value);
    else
      s += fmt::format(" position={}", fd.first->value);
  }
  s += ": " + fd.detail;
  if (!fd.guesses.empty()) {
    s += " (unverified, from the damaged bytes:";
    for (const auto& g : fd.guesses) s += " " + g;
    s += ")";
  }
  if (!fd.repairable) s += " [not repairable]";
  return s;
}

std::string finding_json(const Finding& fd) {
  JsonObject o;
  o.str("kind", finding_kind_name(fd.kind)).str("file", fd.file);
  if (fd.offset)
    o.num("offset", *fd.offset);
  else
    o.null("offset");
  o.num("bytes", fd.bytes);
  if (fd.first) {
    o.num("first_position", fd.first->value);
    o.num("end_position", (fd.end ? *fd.end : *fd.first).value);
  } else {
    o.null("first_position").null("end_position");
  }
  o.boolean("repairable", fd.repairable).str("detail", fd.detail);
  std::string g = "[";
  for (std::size_t i = 0; i < fd.guesses.size(); ++i) {
    if (i) g += ",";
    append_json_string(g, fd.guesses[i]);
  }
  g += "]";
  o.raw("guesses", g);
  return o.done();
}

double VerifyReport::mib_per_second() const {
  return seconds > 0 ? static_cast<double>(survey.bytes_scanned) / (1024.0 * 1024.0) / seconds
                     : 0.0;
}

namespace {
// Consumer groups' files (DATA/groups): each must decode. Read only: a
// leftover .tmp (a write that did not reach its rename) is the node's to
// remove. Not repairable here: the operator deletes and recreates the group.
void check_group_files(const std::string& dir, VerifyReport& report) {
  const std::string gdir = dir + "/groups";
  engine::FileSystem& fs = engine::FileSystem::posix();
  if (!fs.exists(gdir)) return;
  auto names = fs.list(gdir);
  if (!names) return;
  std::sort(names->begin(), names->end());
  for (const std::string& n : *names) {
    if (!n.ends_with(".group") && !n.ends_with(".consumer")) continue;
    auto file = fs.open(gdir + "/" + n, engine::OpenOptions{.read_only = true});
    Status st = file.status();
    std::string bytes;
    if (st.is_ok()) {
      auto size = (*file)->size();
      st = size.status();
      if (st.is_ok()) {
        bytes.resize(*size);
        st = (*file)->pread(
            0, std::span<std::byte>(reinterpret_cast<std::byte*>(bytes.data()), bytes.size()));
      }
    }
    if (st.is_ok()) st = groups::decode_group_file(bytes).status();
    if (!st.is_ok())
      report.survey.findings.push_back(Finding{.kind = FindingKind::kGroupCorrupt,
                                               .file = "groups/" + n,
                                               .detail = st.message(),
                                               .repairable = false});
  }
}
}  // namespace

Result<VerifyReport> verify_directory(const std::string& dir, const VerifyOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<PositionKey> keys;
  SecondaryExpect secondary;
  const std::optional<char> separator =
      options.check_stream_index ? secondary_separator(dir) : std::nullopt;
  if (separator) secondary.separator = *separator;
  SurveyOptions so;
  so.on_progress = options.on_progress;
  if (options.check_stream_index) {
    so.on_record = [&keys, &secondary, check_secondary = separator.has_value()](
                       const SegmentSurvey&, std::uint64_t, const engine::RecordView& v) {
      if (check_secondary) secondary.add(v);
      const std::uint64_t p = v.position.value;
      if (p >= keys.size()) keys.resize(std::max<std::uint64_t>(p + 1, keys.size() * 2));
      PositionKey& k = keys[p];
      if (v.flags & f::kFlagLost) {
        k.state = 2;
      } else {
        k.state = 1;
        k.hash = XXH3_64bits(v.stream.data(), v.stream.size());
        k.revision = v.revision.value;
      }
    };
  }
  auto survey = survey_directory(dir, so);
  if (!survey) return survey.status();
  VerifyReport report;
  report.survey = std::move(*survey);
  if (options.check_stream_index) {
    keys.resize(report.survey.end.value);
    check_stream_index(dir, keys, report);
    // Without a readable KEYS the node rebuilds the index at open: nothing to check.
    if (separator) check_secondary_index(dir, secondary, report.survey.end.value, report);
  }
  check_group_files(dir, report);
  // A backup (DIR/MANIFEST): every file against its size and checksum.
  if (engine::FileSystem::posix().exists(dir + "/MANIFEST")) {
    auto backup = check_backup_manifest(dir);
    if (!backup)
      report.survey.findings.push_back(Finding{.kind = FindingKind::kBackupMismatch,
                                               .file = "MANIFEST",
                                               .detail = backup.status().message(),
                                               .repairable = false});
    else
      for (auto& fd : *backup) report.survey.findings.push_back(std::move(fd));
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace annal::tools
