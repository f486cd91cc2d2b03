#pragma once
// A fixed-size array of trivially copyable slots, zero-filled and committed
// lazily (an anonymous mapping: untouched pages cost no memory), advised to
// use transparent huge pages. For the writer's large random-access tables
// (the idempotency window, the stream head cache): with 4 KiB pages every
// lookup in a table of tens of MB misses the TLB as well as the cache.
//
// Thread safety: none of its own (the owner's).

#include <sys/mman.h>

#include <cstddef>
#include <type_traits>
#include <utility>

#include "engine/status.h"

namespace annal::index {

template <class T>
class ZeroedTable {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  ZeroedTable() = default;
  explicit ZeroedTable(std::size_t n) : size_(n) {
    if (n == 0) return;
    bytes_ = n * sizeof(T);
    void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ANNAL_CHECK(p != MAP_FAILED, "out of memory for an index table");
    // Advice only: without transparent huge pages the table still works.
    if (bytes_ >= kHugePage) (void)::madvise(p, bytes_, MADV_HUGEPAGE);
    data_ = static_cast<T*>(p);
  }
  ~ZeroedTable() { release(); }
  ZeroedTable(ZeroedTable&& o) noexcept { *this = std::move(o); }
  ZeroedTable& operator=(ZeroedTable&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  ZeroedTable(const ZeroedTable&) = delete;
  ZeroedTable& operator=(const ZeroedTable&) = delete;

  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }

 private:
  static constexpr std::size_t kHugePage = 2u << 20;
  void release() {
    if (data_ != nullptr) ::munmap(data_, bytes_);
    data_ = nullptr;
  }
  T* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t bytes_ = 0;
};

}  // namespace annal::index
