#pragma once
// A consumer group's settings and a named consumer's identity
// (docs/consumer-groups.md). Plain data: the wire codec (proto/protocol.h),
// the group file (groups/group_file.h) and the node all use these.

#include <cstdint>
#include <string>

#include "engine/status.h"
#include "index/secondary.h"

namespace annal::groups {

// What a group reads: one stream, the global log (optionally filtered by
// stream and type prefixes), or one secondary index key (category, type,
// tag, correlation or causation id).
enum class Target : std::uint8_t { kStream = 0, kAll = 1, kIndex = 2 };
inline constexpr std::uint8_t kMaxTarget = 2;

// Where a new group starts: the first event, the durable end at creation,
// a global position, or the first event written at or after a time.
enum class Start : std::uint8_t { kBeginning = 0, kEnd = 1, kPosition = 2, kTime = 3 };
inline constexpr std::uint8_t kMaxStart = 3;

// kRoundRobin: events go to whichever consumer has room, in no particular
// order. kOrdered: the events of one stream go to one consumer at a time,
// each only after its predecessor is resolved (acked, skipped or parked).
enum class Strategy : std::uint8_t { kRoundRobin = 0, kOrdered = 1 };
inline constexpr std::uint8_t kMaxStrategy = 1;

enum class Kind : std::uint8_t {
  kGroup = 0,  // a consumer group: settings and progress
  kNamed = 1,  // a named consumer's checkpoint (progress.checkpoint only)
};

// How a consumer gives an event back (nack).
enum class NackAction : std::uint8_t {
  kRetry = 0,       // redeliver now (counts as a failed attempt)
  kRetryLater = 1,  // redeliver after retry_delay_ms (counts as a failed attempt)
  kPark = 2,        // move to the parked list at once
  kSkip = 3,        // resolve without processing (as if acked)
};
inline constexpr std::uint8_t kMaxNackAction = 3;

struct Settings {
  Target target = Target::kAll;
  std::string stream;                                         // kStream
  std::string stream_prefix;                                  // kAll: empty = every stream
  std::string type_prefix;                                    // kAll: empty = every type
  index::IndexKind index_kind = index::IndexKind::kCategory;  // kIndex
  std::string index_value;                                    // kIndex
  Start start = Start::kBeginning;
  std::uint64_t start_value = 0;  // kPosition: a position; kTime: microseconds since the epoch
  Strategy strategy = Strategy::kRoundRobin;
  std::uint32_t max_in_flight = 64;  // events delivered and not yet resolved, per consumer
  std::uint32_t ack_timeout_ms = 30'000;
  std::uint32_t max_retries = 10;  // failed attempts (timeouts, nacks) before an event is parked
  std::uint32_t retry_delay_ms = 1'000;  // nack "retry later"
};

// Limits on settings; a violation is invalid_argument naming the field.
inline constexpr std::uint32_t kMaxInFlightLimit = 10'000;
inline constexpr std::size_t kMaxNameLength = 256;
Status validate_name(const std::string& name);
Status validate(const Settings& s);

const char* target_name(Target t);
const char* strategy_name(Strategy s);
const char* start_name(Start s);

}  // namespace annal::groups
