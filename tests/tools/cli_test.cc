// The real `annal` binary: exit codes, output shapes.

#include <simdjson.h>

#include <filesystem>
#include <sstream>

#include "engine/format.h"
#include "engine/log.h"
#include "tools_fixture.h"

// Options are built with designated initializers that leave defaulted
// members out on purpose; GCC 12 warns about that.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace annal::tools::testing {
namespace {

namespace f = engine::format;

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

class CliTest : public DataDirTest {};

TEST_F(CliTest, UsageErrorsExitTwoAndHelpExitsZero) {
  EXPECT_EQ(run_annal("verify"), 2);
  EXPECT_EQ(run_annal("verify a b"), 2);
  EXPECT_EQ(run_annal("verify /tmp --bogus"), 2);
  EXPECT_EQ(run_annal("dump /tmp --count"), 2);
  EXPECT_EQ(run_annal("dump /tmp --from minus-one"), 2);
  EXPECT_EQ(run_annal("repair /tmp --apply=yes"), 2);
  for (const char* cmd : {"inspect", "dump", "dump-index", "verify", "repair"}) {
    std::string out;
    EXPECT_EQ(run_annal(std::string(cmd) + " --help", &out), 0) << cmd;
    EXPECT_NE(out.find("usage: annal"), std::string::npos) << cmd;
  }
}

TEST_F(CliTest, VerifyExitsZeroWhenCleanOneOnDamageAndRepairFixesIt) {
  populate(600);
  std::string out;
  EXPECT_EQ(run_annal("verify " + dir_, &out), 0) << out;
  EXPECT_NE(out.find("MiB/s"), std::string::npos) << out;

  const std::string seg = segments().at(1);
  const std::string bytes_before = read_file(seg);
  flip_bit(seg, 4096 + 100);  // inside the first record
  EXPECT_EQ(run_annal("verify " + dir_, &out), 1);
  EXPECT_EQ(out.rfind("corrupt-record " + seg + " offset=4096 ", 0), 0u) << out;

  // A dry run changes nothing and exits 1 (damage found).
  const std::string damaged = read_file(seg);
  EXPECT_EQ(run_annal("repair " + dir_, &out), 1);
  EXPECT_NE(out.find("dry run"), std::string::npos) << out;
  EXPECT_EQ(read_file(seg), damaged);

  EXPECT_EQ(run_annal("repair --apply " + dir_, &out), 0) << out;
  EXPECT_NE(out.find("positions lost: [" + std::to_string(first_of(seg).value)), std::string::npos)
      << out;
  EXPECT_EQ(run_annal("verify " + dir_, &out), 0) << out;
  EXPECT_EQ(run_annal("repair --apply " + dir_, &out), 0) << out;
  EXPECT_NE(out.find("nothing to repair"), std::string::npos) << out;
  EXPECT_EQ(run_annal("verify /nonexistent/annal-dir"), 1);
}

TEST_F(CliTest, VerifyJsonIsOneObjectWithFindings) {
  populate(400);
  const std::string seg = segments().at(1);
  flip_bit(seg, 4096 + 80);
  std::string out;
  EXPECT_EQ(run_annal("verify --json " + dir_, &out), 1);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(out).get(doc), simdjson::SUCCESS) << out;
  EXPECT_FALSE(doc["clean"].get_bool().value());
  auto findings = doc["findings"].get_array().value();
  ASSERT_EQ(findings.size(), 1u) << out;
  simdjson::dom::element fd = findings.at(0).value();
  EXPECT_EQ(std::string_view(fd["kind"].get_string().value()), "corrupt-record");
  EXPECT_EQ(std::string_view(fd["file"].get_string().value()), seg);
  EXPECT_EQ(fd["offset"].get_uint64().value(), 4096u);
  EXPECT_EQ(fd["first_position"].get_uint64().value(), first_of(seg).value);
  EXPECT_EQ(fd["end_position"].get_uint64().value(), first_of(seg).value + 1);
  EXPECT_GT(doc["mib_per_s"].get_double().value(), 0.0);
}

TEST_F(CliTest, DumpPrintsRecordsAsJsonLinesWithPayloads) {
  populate(300);
  std::string out;
  ASSERT_EQ(run_annal("dump " + dir_ + " --from 9 --count 3 --data", &out), 0);
  auto ls = lines(out);
  ASSERT_EQ(ls.size(), 3u) << out;
  simdjson::dom::parser parser;
  for (std::size_t i = 0; i < ls.size(); ++i) {
    simdjson::dom::element doc;
    ASSERT_EQ(parser.parse(ls[i]).get(doc), simdjson::SUCCESS) << ls[i];
    const std::uint64_t pos = 9 + i;
    const auto& rec = original_.at(pos);
    EXPECT_EQ(doc["position"].get_uint64().value(), pos);
    EXPECT_EQ(std::string_view(doc["stream"].get_string().value()), rec.stream);
    EXPECT_EQ(doc["revision"].get_uint64().value(), rec.revision.value);
    EXPECT_EQ(std::string_view(doc["id"].get_string().value()), rec.id.to_string());
    EXPECT_EQ(std::string_view(doc["checksum_status"].get_string().value()), "ok");
    if (rec.flags & f::kFlagDataJson) {
      // Embedded as JSON, not as a string.
      EXPECT_EQ(doc["data"]["n"].get_int64().value(), static_cast<std::int64_t>(pos));
    } else {
      EXPECT_EQ(pos, 9u);  // event 9 is the binary one
      EXPECT_FALSE(std::string_view(doc["data_base64"].get_string().value()).empty());
    }
  }
  ASSERT_EQ(run_annal("dump " + dir_ + " --stream order-3", &out), 0);
  std::size_t want = 0;
  for (const auto& [p, r] : original_) want += r.stream == "order-3";
  EXPECT_EQ(lines(out).size(), want);
  ASSERT_EQ(run_annal("dump " + dir_ + " --segment " + segments().at(1), &out), 0);
  EXPECT_EQ(lines(out).size(), offsets(segments().at(1)).size());

  flip_bit(segments().at(0), 4096 + 100);
  ASSERT_EQ(run_annal("dump " + dir_ + " --count 2", &out), 1);
  auto dl = lines(out);
  ASSERT_GE(dl.size(), 2u);
  EXPECT_NE(dl[0].find("\"damaged\":true"), std::string::npos) << dl[0];
}

TEST_F(CliTest, InspectAndDumpIndexDescribeTheDirectory) {
  populate(500);
  std::string out;
  ASSERT_EQ(run_annal("inspect --json " + dir_, &out), 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(out).get(doc), simdjson::SUCCESS) << out;
  EXPECT_EQ(doc["segments"].get_array().value().size(), segments().size());
  EXPECT_EQ(doc["summary"]["events"].get_uint64().value(), 500u);
  EXPECT_EQ(doc["summary"]["streams"].get_uint64().value(), 5u);
  EXPECT_TRUE(doc["stream_index"]["present"].get_bool().value());
  EXPECT_TRUE(doc["secondary_index"]["present"].get_bool().value());
  EXPECT_TRUE(doc["secondary_index"]["manifest_ok"].get_bool().value());
  // Category and type of each of the 500 events at least, plus tags and ids.
  EXPECT_GE(doc["secondary_index"]["entries"].get_uint64().value(), 1000u);
  ASSERT_EQ(run_annal("inspect " + dir_, &out), 0);
  EXPECT_EQ(lines(out).size(), 1 + segments().size() + 5) << out;
  EXPECT_NE(out.find("secondary index (categories, types, tags, ids, time):"), std::string::npos)
      << out;

  ASSERT_EQ(run_annal("dump-index " + dir_, &out), 0);
  std::uint64_t entries = 0;
  for (const auto& l : lines(out)) {
    simdjson::dom::element e;
    ASSERT_EQ(parser.parse(l).get(e), simdjson::SUCCESS) << l;
    if (e["position"].error() == simdjson::SUCCESS) ++entries;
  }
  EXPECT_EQ(entries, 500u);
  EXPECT_EQ(run_annal("dump-index " + dir_ + "/nothing-here"), 1);
}

}  // namespace
}  // namespace annal::tools::testing

namespace annal::tools::testing {
namespace {

// Extended records (storage format version 2): dump shows their epoch, tags
// and correlation and causation ids; records without them show none.
TEST_F(CliTest, DumpShowsTheExtensionOfExtendedRecords) {
  {
    engine::LogOptions o;
    o.dir = dir_;
    o.segment_size = 64 << 10;
    o.min_free_bytes = 0;
    auto log = engine::Log::open(o);
    ASSERT_TRUE(log) << log.status().to_string();
    engine::EventRecord plain;
    plain.id = *EventId::parse("00000000-0000-4000-8000-000000000001");
    plain.stream = "order-1";
    plain.type = "Placed";
    plain.data = "{}";
    plain.flags = f::kFlagDataJson;
    engine::EventRecord ext = plain;
    ext.id = *EventId::parse("00000000-0000-4000-8000-000000000002");
    ext.epoch = 4;
    ext.tags = {"customer:\"42\"", "region:eu"};
    ext.correlation_id = "corr-1";
    ext.causation_id = "cause-1";
    ASSERT_TRUE((*log)->append_sync({plain}).status);
    ASSERT_TRUE((*log)->append_sync({ext}).status);
  }
  std::string out;
  ASSERT_EQ(run_annal("dump " + dir_, &out), 0) << out;
  auto ls = lines(out);
  ASSERT_EQ(ls.size(), 2u) << out;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(ls[0]).get(doc), simdjson::SUCCESS) << ls[0];
  EXPECT_EQ(doc["tags"].error(), simdjson::NO_SUCH_FIELD) << ls[0];
  ASSERT_EQ(parser.parse(ls[1]).get(doc), simdjson::SUCCESS) << ls[1];
  EXPECT_EQ(doc["epoch"].get_uint64().value(), 4u);
  auto tags = doc["tags"].get_array().value();
  ASSERT_EQ(tags.size(), 2u);
  EXPECT_EQ(std::string_view(tags.at(0).get_string().value()), "customer:\"42\"");
  EXPECT_EQ(std::string_view(tags.at(1).get_string().value()), "region:eu");
  EXPECT_EQ(std::string_view(doc["correlation_id"].get_string().value()), "corr-1");
  EXPECT_EQ(std::string_view(doc["causation_id"].get_string().value()), "cause-1");
  EXPECT_EQ(run_annal("verify " + dir_, &out), 0) << out;
}

}  // namespace
}  // namespace annal::tools::testing
