#pragma once
// What the log counts for the node's metrics (docs/operations.md,
// "Metrics"): written by the writer and syncer threads, read by anyone.
//
// Thread safety: every member is an atomic or a Histogram; read them from any
// thread. When LogOptions::metrics is false nothing is counted (the
// histograms' clock reads are skipped too).

#include <atomic>
#include <cstdint>

#include "engine/histogram.h"

namespace annal::engine {

struct LogMetrics {
  std::atomic<std::uint64_t> group_commits{0};   // groups that wrote bytes and became durable
  std::atomic<std::uint64_t> events_written{0};  // events made durable
  std::atomic<std::uint64_t> bytes_written{0};   // record bytes made durable
  std::atomic<std::uint64_t> syncs{0};           // fdatasync calls of group commits
  std::atomic<std::uint64_t> sync_errors{0};
  std::atomic<std::uint64_t> appends_refused_no_space{0};  // below the free-space floor / ENOSPC
  Histogram sync_ns{kLatencyBucketsNs};                    // fdatasync duration of group commits
  Histogram group_events{kCountBuckets};                   // events per durable group commit
};

}  // namespace annal::engine
