#pragma once
// annal wire protocol version 6: online backup (docs/protocol.md section
// 3.9, docs/operations.md "Backup and restore"), declared like every message
// in proto/protocol.h (which includes this header at its end; the codec's
// encode/decode are instantiated for them in protocol.cc).

#include <cstdint>
#include <string>

#include "proto/protocol.h"

namespace annal::net::proto {

// Takes a backup of the node's data directory into `dest`, a path on the
// node's machine, while appends go on; answered with backup_ok when it is
// complete (seconds to hours, throttled), or an error: invalid_argument
// (relative path, inside the data directory, no parent directory),
// already_exists (dest is not an empty directory), busy (a backup or a
// scavenge is running), no_space, io_error, shutting_down.
struct BackupReq {
  static constexpr Op kOp = Op::kBackup;
  static constexpr const char* kName = "backup";
  std::string dest;
  bool link = false;  // hard-link immutable files (same file system)
  // Bytes read per second at most: 0 the node's default (--backup-mb-per-s),
  // kNone as fast as the disk.
  std::uint64_t bytes_per_second = 0;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.str(m.dest, "dest");
    v.boolean(m.link, "link");
    v.u64(m.bytes_per_second, "bytes_per_second");
  }
};
struct BackupOk {
  static constexpr Op kOp = Op::kBackupOk;
  static constexpr const char* kName = "backup_ok";
  std::uint64_t position = 0;  // the backup holds every event below this
  std::uint32_t files = 0;     // in the manifest
  std::uint64_t bytes = 0;     // their sizes summed
  std::uint32_t linked = 0;    // of the files, hard-linked rather than copied
  std::uint64_t duration_us = 0;
  std::string dest;  // where it is (absolute)
  std::string note;  // e.g. why --link fell back to copying; empty if none
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.u64(m.position, "position");
    v.u32(m.files, "files");
    v.u64(m.bytes, "bytes");
    v.u32(m.linked, "linked");
    v.u64(m.duration_us, "duration_us");
    v.str(m.dest, "dest");
    v.str(m.note, "note");
  }
};

}  // namespace annal::net::proto
