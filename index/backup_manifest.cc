#include "index/backup_manifest.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <ctime>

namespace annal::index {

namespace {

void json_string(std::string& out, const std::string& s) {
  out += '"';
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      out += fmt::format("\\u{:04x}", u);
    } else {
      out += c;
    }
  }
  out += '"';
}

std::string utc(std::int64_t us) {
  const std::time_t t = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

std::uint64_t BackupManifest::bytes() const {
  std::uint64_t b = 0;
  for (const auto& f : files) b += f.size;
  return b;
}

std::string encode_backup_manifest(const BackupManifest& m) {
  std::string out =
      fmt::format("{{\"format\":\"annal-backup\",\"version\":{},\"node_version\":", m.version);
  json_string(out, m.node_version);
  out +=
      fmt::format(",\"created_us\":{},\"created\":\"{}\",\"position\":{},\"mode\":", m.created_us,
                  utc(m.created_us), m.position);
  json_string(out, m.mode);
  out += fmt::format(",\"linked\":{},\"bytes\":{},\"files\":[", m.linked, m.bytes());
  for (std::size_t i = 0; i < m.files.size(); ++i) {
    out += i == 0 ? "\n " : ",\n ";
    out += "{\"path\":";
    json_string(out, m.files[i].path);
    out += fmt::format(",\"size\":{},\"xxh3\":\"{:016x}\"}}", m.files[i].size, m.files[i].xxh3);
  }
  out += "]}\n";
  return out;
}

Result<BackupManifest> decode_backup_manifest(const std::string& json, const std::string& path) {
  auto bad = [&](const std::string& what) {
    return Status(Errc::kCorruption, fmt::format("backup manifest {}: {}", path, what));
  };
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto e = parser.parse(json).get(root); e != simdjson::SUCCESS)
    return bad(fmt::format("not JSON ({})", simdjson::error_message(e)));
  std::string_view format;
  if (root["format"].get(format) != simdjson::SUCCESS || format != "annal-backup")
    return bad("\"format\" is not \"annal-backup\"");
  BackupManifest m;
  std::uint64_t version = 0;
  if (root["version"].get(version) != simdjson::SUCCESS) return bad("no \"version\"");
  if (version > kBackupManifestVersion)
    return Status(Errc::kInvalidArgument,
                  fmt::format("backup manifest {}: version {} is newer than this annal reads ({})",
                              path, version, kBackupManifestVersion));
  m.version = static_cast<std::uint32_t>(version);
  std::string_view sv;
  if (root["node_version"].get(sv) != simdjson::SUCCESS) return bad("no \"node_version\"");
  m.node_version = std::string(sv);
  if (root["created_us"].get(m.created_us) != simdjson::SUCCESS) return bad("no \"created_us\"");
  if (root["position"].get(m.position) != simdjson::SUCCESS) return bad("no \"position\"");
  if (root["mode"].get(sv) != simdjson::SUCCESS) return bad("no \"mode\"");
  m.mode = std::string(sv);
  if (root["linked"].get(m.linked) != simdjson::SUCCESS) return bad("no \"linked\"");
  simdjson::dom::array files;
  if (root["files"].get(files) != simdjson::SUCCESS) return bad("no \"files\" array");
  for (simdjson::dom::element f : files) {
    BackupFile bf;
    std::string_view p, h;
    if (f["path"].get(p) != simdjson::SUCCESS || f["size"].get(bf.size) != simdjson::SUCCESS ||
        f["xxh3"].get(h) != simdjson::SUCCESS)
      return bad("a file entry without \"path\", \"size\" or \"xxh3\"");
    if (p.empty() || p.front() == '/' || p.find("..") != std::string_view::npos)
      return bad(fmt::format("file path '{}' is not a plain relative path", p));
    if (h.size() != 16 || h.find_first_not_of("0123456789abcdef") != std::string_view::npos)
      return bad(fmt::format("file {}: checksum '{}' is not 16 hex digits", p, h));
    bf.path = std::string(p);
    bf.xxh3 = std::stoull(std::string(h), nullptr, 16);
    m.files.push_back(std::move(bf));
  }
  std::uint64_t bytes = 0;
  if (root["bytes"].get(bytes) != simdjson::SUCCESS || bytes != m.bytes())
    return bad("\"bytes\" is missing or differs from the files' sizes summed");
  return m;
}

}  // namespace annal::index
