#include "engine/file.h"

namespace annal::engine {

Status write_file_atomically(FileSystem& fs, const std::string& dir, const std::string& name,
                             std::string_view bytes) {
  const std::string path = dir + "/" + name;
  const std::string tmp = path + ".tmp";
  if (fs.exists(tmp)) ANNAL_RETURN_IF_ERROR(fs.remove(tmp));
  {
    auto file = fs.open(tmp, OpenOptions{.create = true, .exclusive = true});
    if (!file) return file.status();
    ANNAL_RETURN_IF_ERROR(
        (*file)->pwrite(0, std::span<const std::byte>(
                               reinterpret_cast<const std::byte*>(bytes.data()), bytes.size())));
    ANNAL_RETURN_IF_ERROR((*file)->datasync());
  }
  ANNAL_RETURN_IF_ERROR(fs.rename(tmp, path));
  return fs.sync_dir(dir);
}

Result<std::string> read_whole_file(FileSystem& fs, const std::string& path) {
  auto file = fs.open(path, OpenOptions{.read_only = true});
  if (!file) return file.status();
  auto size = (*file)->size();
  if (!size) return size.status();
  std::string bytes(static_cast<std::size_t>(*size), '\0');
  ANNAL_RETURN_IF_ERROR((*file)->pread(
      0, std::span<std::byte>(reinterpret_cast<std::byte*>(bytes.data()), bytes.size())));
  return bytes;
}

}  // namespace annal::engine
