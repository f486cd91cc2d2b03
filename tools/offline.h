#pragma once
// The offline tools as a library: inspect, dump, dump-index, verify and
// repair a data directory without a node. tools/offline_cli.cc is the
// command-line front end; tests call these directly too. Documented for
// operators in docs/operations.md.
//
// Thread safety: none; each call works on its own directory survey.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/status.h"
#include "engine/types.h"
#include "tools/offline_scan.h"

namespace annal::tools {

// One finding as a text line: "KIND FILE offset=O bytes=B positions=[A,B): detail".
std::string finding_text(const Finding& f);
// The same as one JSON object (see docs/operations.md for the shape).
std::string finding_json(const Finding& f);

// ---- verify ------------------------------------------------------------------

struct VerifyOptions {
  // Progress (bytes done, total) while segments are scanned.
  std::function<void(std::uint64_t, std::uint64_t)> on_progress;
  bool check_stream_index = true;
};

struct VerifyReport {
  DirectorySurvey survey;               // findings include the stream index checks
  std::uint64_t index_entries = 0;      // entries in stream index files
  std::uint64_t indexed_through = 0;    // from the index manifest
  std::uint64_t lost_revisions = 0;     // index entries pointing at lost markers
  std::uint64_t secondary_entries = 0;  // entries in secondary index files
  double seconds = 0;
  bool clean() const { return survey.findings.empty(); }
  double mib_per_second() const;
};

Result<VerifyReport> verify_directory(const std::string& dir, const VerifyOptions& options = {});

// Stream index checks (DIR/index): appends findings to `report`. Needs, per
// log position below report.survey.end, the stream hash and revision of the
// record there (lost markers flagged).
struct PositionKey {
  std::uint64_t hash = 0;
  std::uint64_t revision = 0;
  std::uint8_t state = 0;  // 0 unknown (damaged / missing), 1 event, 2 lost marker
};
void check_stream_index(const std::string& dir, const std::vector<PositionKey>& keys,
                        VerifyReport& report);

// Secondary index checks (DIR/secondary), against what the log's records
// say (filled record by record during the survey).
struct SecondaryExpect {
  static constexpr std::int64_t kNoTime = INT64_MIN;  // no event there
  char separator = '-';
  std::vector<std::uint64_t> digest;  // per position: the record's keys, mixed
  std::vector<std::int64_t> time;     // per position: write time, or kNoTime
  // Per position: a removed marker (scavenge), whose keys are not checked:
  // index entries written before the scavenge may still name it.
  std::vector<bool> removed;
  void add(const engine::RecordView& v);
  std::int64_t time_at(std::uint64_t p) const { return p < time.size() ? time[p] : kNoTime; }
  bool removed_at(std::uint64_t p) const { return p < removed.size() && removed[p]; }
};
// The separator DIR/secondary/KEYS records, if it is readable.
std::optional<char> secondary_separator(const std::string& dir);
void check_secondary_index(const std::string& dir, const SecondaryExpect& expect,
                           std::uint64_t log_end, VerifyReport& report);

// ---- backups (docs/operations.md, "Backup and restore") -------------------

// A backup directory's files against its MANIFEST (index/backup_manifest.h):
// one kBackupMismatch finding per file missing, of another size or checksum,
// or not in the manifest (MANIFEST itself aside). kNotFound if DIR has no
// MANIFEST, kCorruption if it does not parse.
Result<std::vector<Finding>> check_backup_manifest(const std::string& dir);

struct RestoreOptions {
  // Hard-link the backup's files instead of copying them (the newest
  // segment, which the node writes into, is always copied).
  bool link = false;
  std::function<void(const std::string&)> out;  // progress lines
};
struct RestoreReport {
  std::uint64_t position = 0;  // the backup holds every event below it
  std::uint64_t files = 0;
  std::uint64_t bytes = 0;
  std::uint64_t linked = 0;
  std::string node_version;
  double seconds = 0;
};
// Checks every file of BACKUP against its MANIFEST (a mismatch or missing
// file fails naming it, before anything is written), then copies (or links)
// them into DATA, which must not exist or be an empty directory: into
// DATA/.restore.partial first, synced, then moved into place segments last,
// newest first (an interrupted move leaves a log without its first segment,
// which a node refuses to open, never a shorter log).
Result<RestoreReport> restore_backup(const std::string& backup, const std::string& data,
                                     const RestoreOptions& options);

// ---- repair ------------------------------------------------------------------

struct RepairAction {
  enum class Kind {
    kRebuildHeader,  // header unreadable: original moved aside whole, a copy gets a fresh header
    kFillLost,       // overwrite [offset, end) with lost markers for positions [first, first+count)
    kCutTail,        // zero [offset, end) at the end of the log
    kCreateSegment,  // a segment of lost markers for positions [first, first+count)
    kRestoreSize,    // extend a truncated segment to its allocated size (fallocate)
    kRewriteIdx,     // (re)build the .idx of a sealed segment from the segment
    kMoveAside,      // move a file or directory into the backup folder
    kDropStreamIndex,  // move DIR/index aside: the node rebuilds it at open
  };
  Kind kind;
  std::string file;
  std::uint64_t offset = 0;
  std::uint64_t end = 0;
  GlobalPosition first;
  std::uint64_t count = 0;
  std::string why;
};
const char* repair_action_name(RepairAction::Kind k);
std::string repair_action_text(const RepairAction& a);

struct RepairPlan {
  std::vector<RepairAction> actions;
  std::vector<Finding> unrepairable;
  // Positions lost (markers written or records cut), in order, as ranges.
  std::vector<std::pair<GlobalPosition, GlobalPosition>> lost;
  std::vector<std::string> lost_guesses;  // "position:stream@revision", unverified
  std::uint64_t cut_positions = 0;        // of which cut at the log's end
  bool empty() const { return actions.empty(); }
};

RepairPlan plan_repair(const VerifyReport& report);

struct RepairOptions {
  bool apply = false;
  // Microseconds since the epoch, stamped on markers and new segment headers
  // and naming the backup folder; 0 = now.
  std::int64_t now_us = 0;
  // Called with each line of the report as it is produced.
  std::function<void(const std::string&)> out;
};

struct RepairResult {
  RepairPlan plan;
  bool applied = false;
  std::string backup_dir;  // empty if nothing was changed
  std::uint64_t bytes_backed_up = 0;
  bool clean_after = false;        // a verify after applying found nothing
  std::vector<Finding> remaining;  // findings of that verify
};

// Takes the directory lock (kLocked if a node holds it), verifies, plans, and
// with options.apply performs the plan and verifies again.
Result<RepairResult> repair_directory(const std::string& dir, const RepairOptions& options);

// ---- inspect / dump ------------------------------------------------------------

struct InspectOptions {
  bool json = false;
};
// Writes the inspect report to `out` line by line. Non-ok only when the
// directory cannot be read.
Status inspect_directory(const std::string& dir, const InspectOptions& options,
                         const std::function<void(const std::string&)>& out);

struct DumpOptions {
  std::optional<std::uint64_t> from;
  std::optional<std::uint64_t> count;
  std::optional<std::string> stream;
  std::string segment;  // one segment file only
  bool data = false;
};
// One JSON line per record (and per damaged span). Returns the number of
// damaged spans seen via `damaged`.
Status dump_directory(const std::string& dir, const DumpOptions& options,
                      const std::function<void(const std::string&)>& out,
                      std::uint64_t* damaged = nullptr);

// What DIR/index holds, from its manifest (files are not opened).
struct StreamIndexSummary {
  bool present = false;  // DIR/index exists
  bool manifest_ok = false;
  std::string error;
  std::uint64_t indexed_through = 0;
  std::uint64_t files = 0;
  std::uint64_t entries = 0;
};
StreamIndexSummary stream_index_summary(const std::string& dir);
// The same for DIR/secondary (the secondary index).
StreamIndexSummary secondary_index_summary(const std::string& dir);

// "2026-11-27T09:00:00.000000Z"
std::string format_timestamp(std::int64_t us);

// One JSON line per manifest, index file and entry of DIR/index.
Status dump_index(const std::string& dir, const std::function<void(const std::string&)>& out);

}  // namespace annal::tools
