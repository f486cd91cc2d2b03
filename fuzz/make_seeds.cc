// Writes the small seed corpora under fuzz/corpus/<target>/ from the real
// encoders, so the seeds follow the formats. Run after a format change:
//   build/fuzz/fuzz/annal_fuzz_make_seeds fuzz/corpus

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/file.h"
#include "engine/format.h"
#include "engine/record.h"
#include "engine/segment.h"
#include "index/index_file.h"
#include "index/manifest.h"
#include "proto/protocol.h"

using namespace annal;
namespace proto = annal::net::proto;
namespace fs = std::filesystem;

namespace {

fs::path root;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(root / target);
  std::ofstream(root / target / name, std::ios::binary) << bytes;
}

engine::EventRecord event(std::uint64_t pos, std::uint32_t flags) {
  engine::EventRecord r;
  for (int i = 0; i < 16; ++i) r.id.bytes[i] = static_cast<std::uint8_t>(pos * 17 + i);
  r.stream = "orders-" + std::to_string(pos % 3);
  r.type = "OrderPlaced";
  r.revision = StreamRevision(pos / 3);
  r.position = GlobalPosition(pos);
  r.timestamp_us = 1700000000000000;
  r.flags = flags;
  r.metadata = pos % 2 ? "{\"m\":1}" : "";
  r.data = "{\"n\":" + std::to_string(pos) + "}";
  return r;
}

index::NewEvent new_event(int i) {
  index::NewEvent e;
  e.id.bytes[0] = static_cast<std::uint8_t>(i + 1);
  e.type = "T";
  e.flags = engine::format::kFlagDataJson;
  e.data = "{\"i\":" + std::to_string(i) + "}";
  return e;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_ROOT\n", argv[0]);
    return 2;
  }
  root = argv[1];
  namespace format = engine::format;
  // record: mode byte + one record.
  std::string rec;
  engine::encode(event(0, format::kFlagDataJson | format::kFlagCommit), rec);
  put("fuzz_record", "one", std::string(1, '\0') + rec);
  put("fuzz_record", "one-backward", std::string(1, '\3') + rec);
  put("fuzz_record", "truncated", std::string(1, '\1') + rec.substr(0, rec.size() - 9));
  std::string lost;
  engine::EventRecord l;
  l.position = GlobalPosition(5);
  l.flags = format::kFlagLost | format::kFlagCommit;
  engine::encode(l, lost);
  put("fuzz_record", "lost-marker", std::string(1, '\0') + lost);
  engine::EventRecord x = event(9, format::kFlagDataJson | format::kFlagCommit);
  x.epoch = 2;
  x.tags = {"a:1", "b:2"};
  x.correlation_id = "corr";
  x.causation_id = "cause";
  std::string extended;
  engine::encode(x, extended);
  put("fuzz_record", "extended", std::string(1, '\0') + extended);
  put("fuzz_record", "extended-backward", std::string(1, '\3') + extended);

  // segment: mode, first position, records after the header.
  std::string recs;
  for (std::uint64_t p = 3; p < 8; ++p)
    engine::encode(event(p, format::kFlagDataJson | (p == 5 || p == 7 ? format::kFlagCommit : 0)),
                   recs);
  put("fuzz_segment", "five-records", std::string("\x00\x03", 2) + recs);
  put("fuzz_segment", "torn-tail", std::string("\x00\x03", 2) + recs.substr(0, recs.size() - 20));
  std::string damaged = recs;
  damaged[100] ^= 0x40;
  put("fuzz_segment", "damaged-middle", std::string("\x00\x03", 2) + damaged);
  engine::PositionIndex pi;
  pi.first = GlobalPosition(3);
  pi.offsets = {4096, 4200, 4304};
  pi.data_end = 4400;
  put("fuzz_segment", "position-index",
      std::string("\x04\x03", 2) + engine::encode_position_index(pi));
  engine::SegmentHeader sh;
  sh.first = GlobalPosition(3);
  sh.allocated_size = 65536;
  put("fuzz_segment", "segment-header",
      std::string("\x02\x03", 2) + engine::encode_segment_header(sh));

  // protocol: a stream of frames.
  proto::AppendReq ap;
  ap.stream = "orders-1";
  ap.expected = ExpectedRevision::exact(4);
  ap.events = {new_event(0), new_event(1)};
  proto::SubscribeReq sub;
  sub.target = proto::Target::kAll;
  sub.stream_prefix = "ord";
  proto::ReadOk rok;
  rok.events = {event(1, format::kFlagDataJson), event(2, format::kFlagCommit)};
  rok.next = 3;
  // A v1 session (events without tags), then a v2 one: the fuzzer decodes a
  // frame in the version the last hello asked for, as the node does.
  put("fuzz_protocol", "session",
      proto::encode_hello(1, proto::Hello{proto::kHelloMagic, 1, "fuzz"}) +
          proto::encode_append(2, ap, 1) +
          proto::encode_read_stream(
              3, proto::ReadStreamReq{"orders-1", 0, 10, index::Direction::kForward}) +
          proto::encode_read_all(4,
                                 proto::ReadAllReq{proto::kNone, 5, index::Direction::kBackward}) +
          proto::encode_subscribe(5, sub, 1) +
          proto::encode_unsubscribe(6, proto::UnsubscribeReq{1}) +
          proto::encode_empty(proto::Op::kPing, 7));
  proto::AppendReq tagged = ap;
  tagged.events[0].tags = {"customer:42", "region:eu"};
  tagged.events[0].correlation_id = "cmd-9";
  tagged.events[1].causation_id = "evt-3";
  proto::ReadOk rok2 = rok;
  rok2.events[0].tags = {"customer:42"};
  rok2.events[0].correlation_id = "cmd-9";
  put("fuzz_protocol", "session-v2",
      proto::encode_hello(1, proto::Hello{proto::kHelloMagic, 2, "fuzz"}) +
          proto::encode_append(2, tagged, 2) + proto::encode_read_ok(3, rok2, 2) +
          proto::encode_seek_time(6, proto::SeekTimeReq{1'700'000'000'000'000}, 2) +
          proto::encode_seek_time_ok(6, proto::SeekTimeOk{12, 40}, 2) +
          proto::encode_read_index(4,
                                   proto::ReadIndexReq{index::IndexKind::kTag, "customer:42", 0, 10,
                                                       index::Direction::kForward},
                                   2) +
          proto::encode_subscribe(5,
                                  proto::SubscribeReq{proto::Target::kIndex, "", false, 0, "", "",
                                                      0, index::IndexKind::kCategory, "order"},
                                  2));
  proto::AppendMultiReq multi;
  multi.streams = {{"account-1", ExpectedRevision::exact(3), {new_event(0)}},
                   {"account-2", ExpectedRevision::no_stream(), {new_event(1)}},
                   {"limits", ExpectedRevision::stream_exists(), {}}};
  multi.condition.items = {{{"Enrolled", "Dropped"}, {"course:7"}}, {{}, {"student:3"}}};
  multi.after = 41;
  proto::SubscribeReq by_query;
  by_query.target = proto::Target::kQuery;
  by_query.query = multi.condition;
  put("fuzz_protocol", "session-v3",
      proto::encode_hello(1, proto::Hello{proto::kHelloMagic, 3, "fuzz"}) +
          proto::encode(2, multi, 3) +
          proto::encode(3, proto::ReadQueryReq{multi.condition, 0, 10, index::Direction::kForward},
                        3) +
          proto::encode_subscribe(4, by_query, 3) +
          proto::encode(5, proto::AppendMultiOk{7, 2, false, {{3, 1}, {0, 1}, {proto::kNone, 0}}},
                        3) +
          proto::encode(
              6, proto::AppendRefused{proto::Code::kAppendConditionFailed, "taken", 12, {}}, 3));
  put("fuzz_protocol", "responses",
      proto::encode_read_ok(1, rok) + proto::encode_append_ok(2, proto::AppendOk{10, 4, 2, false}) +
          proto::encode_error(3, proto::Error{proto::Code::kWrongExpectedRevision, 3, "wrong"}));

  // json
  put("fuzz_json", "object", "{\"a\":[1,2.5,-3e7,true,false,null,\"x\\u00e9\"],\"b\":{}}");
  put("fuzz_json", "bad", "{\"a\":[1,2,}}");
  put("fuzz_json", "scalar", "\"just a string\"");

  // index files: one written by the real writer, and a manifest.
  fs::path tmp = fs::temp_directory_path() / "annal-make-seeds";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  index::IndexFileMeta meta;
  meta.number = 7;
  meta.first_position = 0;
  meta.end_position = 40;
  int i = 0;
  Status st = index::write_index_file(
      engine::FileSystem::posix(), tmp.string(), meta,
      [&](index::IndexEntry& e) {
        if (i == 40) return false;
        e = index::IndexEntry{static_cast<std::uint64_t>(i / 4) * 1000003,
                              static_cast<std::uint64_t>(i % 4), static_cast<std::uint64_t>(i)};
        ++i;
        return true;
      },
      [](std::uint64_t pos) { return pos * 0x9E3779B97F4A7C15ull; },
      /*summary_interval=*/8);
  if (!st.is_ok()) {
    std::fprintf(stderr, "%s\n", st.to_string().c_str());
    return 1;
  }
  std::ifstream in(tmp / index::index_file_name(7), std::ios::binary);
  std::string ix((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  put("fuzz_index_file", "index-file", std::string(1, '\x08') + ix);
  put("fuzz_index_file", "index-file-fixup", std::string(1, '\x0e') + ix);
  // A secondary index's file: no id digests, entries (key, position,
  // position) and time entries (key, time, position) with residuals.
  meta.number = 8;
  i = 0;
  st = index::write_index_file(
      engine::FileSystem::posix(), tmp.string(), meta,
      [&](index::IndexEntry& e) {
        if (i == 40) return false;
        e = i < 30 ? index::IndexEntry{static_cast<std::uint64_t>(i / 10) * 77,
                                       static_cast<std::uint64_t>(i % 10 * 3),
                                       static_cast<std::uint64_t>(i % 10 * 3)}
                   : index::IndexEntry{0x74696D652D6D6170ull, 1700000000000000ull + i * 1000,
                                       static_cast<std::uint64_t>(i)};
        ++i;
        return true;
      },
      nullptr, /*summary_interval=*/8);
  if (!st.is_ok()) {
    std::fprintf(stderr, "%s\n", st.to_string().c_str());
    return 1;
  }
  std::ifstream in2(tmp / index::index_file_name(8), std::ios::binary);
  std::string ix2((std::istreambuf_iterator<char>(in2)), std::istreambuf_iterator<char>());
  put("fuzz_index_file", "index-file-secondary", std::string(1, '\x0e') + ix2);
  index::Manifest m;
  m.indexed_through = 40;
  m.next_file_number = 8;
  m.files = {meta};
  put("fuzz_index_file", "manifest", std::string(1, '\x01') + index::encode_manifest(m));
  fs::remove_all(tmp);
  return 0;
}
