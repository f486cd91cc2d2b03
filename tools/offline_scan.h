#pragma once
// A read-only survey of a data directory: every segment scanned record by
// record (checksums, dense positions), damaged spans located by
// resynchronising on the next valid record, position indexes compared with
// the segments, and stray files noted. inspect, dump, verify and repair are
// all built on it. Never writes.
//
// Thread safety: none needed; one survey per thread.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/record.h"
#include "engine/segment.h"
#include "engine/status.h"
#include "engine/types.h"

namespace annal::tools {

// A span of bytes inside a segment that holds no valid record, between two
// valid records (or between a valid record and the end of a sealed segment).
// Repair overwrites [offset, fill_end) with lost markers for positions
// [first, end).
struct DamagedSpan {
  std::uint64_t offset = 0;
  std::uint64_t garbage_end = 0;  // one past the last damaged (non-zero) byte
  GlobalPosition first;           // positions lost
  GlobalPosition end;
  std::string reason;
  // What the damaged bytes still seem to say (unverified: checksums failed):
  // "stream@revision" per position, where readable.
  std::vector<std::string> guesses;
  bool at_segment_end = false;  // no valid record follows in this segment
};

enum class IdxState { kNotExpected, kOk, kMissing, kCorrupt, kMismatch };
const char* idx_state_name(IdxState s);

struct SegmentSurvey {
  std::string file;  // name, e.g. 00000000000000000000.seg
  std::string path;
  GlobalPosition name_first;  // from the file name
  std::uint64_t file_size = 0;
  bool header_ok = false;
  std::string header_error;      // when !header_ok
  engine::SegmentHeader header;  // when header_ok
  bool last = false;             // the active segment (highest first position)

  // Records with a valid checksum at their expected positions (lost markers
  // included), and what they span.
  std::uint64_t records = 0;
  std::uint64_t lost_markers = 0;
  GlobalPosition first;  // first position this segment holds
  GlobalPosition end;    // one past the last position it accounts for (valid or lost)
  std::int64_t first_ts = 0, last_ts = 0;  // of real events (markers excluded)
  std::uint64_t data_end = 0;              // one past the last valid record
  std::vector<std::uint32_t>
      offsets;  // of valid records in position order (no gaps only if no spans)

  std::vector<DamagedSpan> spans;
  // Last segment only: bytes after the last valid record that no valid record
  // follows ([offset, garbage_end) to zero), and positions a record there
  // would have had.
  std::optional<DamagedSpan> torn_tail;
  // Last segment only: valid records after the last commit flag (an append
  // that never completed): [committed_end, data_end).
  std::uint64_t committed_end = 0;
  std::uint64_t uncommitted_records = 0;

  IdxState idx = IdxState::kNotExpected;
  std::string idx_detail;
  bool idx_present = false;
};

// The kinds of finding (stable names, used in output and docs).
enum class FindingKind {
  kSegmentHeader,     // header unreadable (or disagrees with the file name)
  kCorruptRecord,     // damaged span followed by a valid record: positions lost
  kSegmentTail,       // damaged or missing records at the end of a sealed segment
  kTornTail,          // invalid bytes after the last record of the log
  kIncompleteAppend,  // records at the log's end after the last commit flag
  kMissingSegment,    // positions between two segments that no segment holds
  kSegmentOverlap,    // a segment starts before the previous one ends
  kTruncatedSegment,  // the file is shorter than the size its header says was allocated
  kIdxMissing,
  kIdxCorrupt,
  kIdxMismatch,
  kIdxOrphan,     // a .idx without its segment
  kIndexMissing,  // stream index
  kIndexCorrupt,
  kIndexMismatch,
  kUnknownFile,
  kGroupCorrupt,    // a consumer group's file (DATA/groups) that does not decode
  kBackupMismatch,  // a backup's file missing or differing from its MANIFEST
};
const char* finding_kind_name(FindingKind k);

struct Finding {
  FindingKind kind;
  std::string file;  // segment or other file (relative to DIR)
  std::optional<std::uint64_t> offset;
  std::uint64_t bytes = 0;                   // damaged bytes, when meaningful
  std::optional<GlobalPosition> first, end;  // positions affected [first, end)
  std::string detail;
  std::vector<std::string> guesses;  // see DamagedSpan::guesses
  bool repairable = true;
};

struct DirectorySurvey {
  std::string dir;
  std::vector<SegmentSurvey> segments;  // in position order
  std::vector<std::string> unknown_files;
  std::vector<std::string> orphan_idx;
  bool has_stream_index = false;     // DIR/index exists
  bool has_secondary_index = false;  // DIR/secondary exists
  bool has_lifecycle = false;        // DIR/lifecycle exists (stream rules, a cache of the log)
  std::vector<Finding> findings;     // filled by survey_directory in log order
  std::uint64_t bytes_scanned = 0;
  std::uint64_t records = 0;
  std::uint64_t lost_markers = 0;
  GlobalPosition end;  // one past the last position of the log
};

struct SurveyOptions {
  // Called with a record as it is scanned (segment, offset, view). Optional.
  std::function<void(const SegmentSurvey&, std::uint64_t, const engine::RecordView&)> on_record;
  // Called after each segment with bytes scanned so far (progress). Optional.
  std::function<void(std::uint64_t bytes_done, std::uint64_t bytes_total)> on_progress;
  // Only this segment file (dump --segment). Continuity checks are skipped.
  std::string only_segment;
};

// Surveys `dir`. Errors only for what prevents a survey (the directory cannot
// be listed); damage is described in the returned findings.
Result<DirectorySurvey> survey_directory(const std::string& dir, const SurveyOptions& options = {});

// Names of entries in DIR that belong to annal (not reported as unknown).
bool is_known_entry(const std::string& name);

}  // namespace annal::tools
