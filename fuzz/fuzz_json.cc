// libFuzzer target: the JSON validation path. The node validates the data
// and metadata of events flagged as JSON with simdjson's DOM parser over a
// padded copy (net/connection.cc, Connection::validate_json); `annal verify`
// and `dump` use tools::is_valid_json. The target runs both on the same
// bytes and requires that they agree, so the node and the offline tools
// never disagree about what is JSON.

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "tools/offline_json.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static simdjson::dom::parser parser;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // As net/connection.cc does it: a reused buffer with SIMDJSON_PADDING slack.
  std::vector<char> buf(size + simdjson::SIMDJSON_PADDING);
  std::copy(text.begin(), text.end(), buf.begin());
  const bool node_ok = parser.parse(buf.data(), size, false).error() == simdjson::SUCCESS;
  const bool tools_ok = annal::tools::is_valid_json(text);
  FUZZ_CHECK(node_ok == tools_ok);
  return 0;
}
