#pragma once
// The receive buffer of one connection: bytes a recv brought, from which the
// reader takes every complete frame in place (the payload a view into the
// buffer), and into which the next recv writes. Grows to hold the frame it
// is in the middle of (whose length was checked against max_frame before),
// and gives back what a large frame made it take once that frame is done.
// Not thread-safe (one per connection, used on its strand).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace annal::net::detail {

class FrameBuffer {
 public:
  static constexpr std::size_t kInitial = 16 * 1024;
  static constexpr std::size_t kKeep = 1u << 20;  // larger than this is freed when empty

  // Bytes received and not consumed yet.
  std::span<const std::uint8_t> data() const { return {buf_.get() + begin_, end_ - begin_}; }
  std::string_view view(std::size_t offset, std::size_t n) const {
    return {reinterpret_cast<const char*>(buf_.get() + begin_ + offset), n};
  }
  void consume(std::size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }

  // Room for the next recv, at least `want` bytes of buffered data in all
  // (the frame being read), and never less than kInitial free. Moves the
  // unconsumed bytes to the front; frees an oversized buffer once empty.
  std::span<std::uint8_t> room(std::size_t want) {
    const std::size_t have = end_ - begin_;
    if (have == 0 && cap_ > kKeep && want <= kKeep) {
      buf_.reset();
      cap_ = 0;
      begin_ = end_ = 0;
    }
    const std::size_t need = std::max(want, have + kInitial / 2);
    if (!buf_ || need > cap_) {
      const std::size_t cap = std::max({need, cap_ * 2, kInitial});
      // make_unique_for_overwrite: no zero-fill of receive space.
      auto next = std::make_unique_for_overwrite<std::uint8_t[]>(cap);
      if (have) std::copy_n(buf_.get() + begin_, have, next.get());
      buf_ = std::move(next);
      cap_ = cap;
      begin_ = 0;
      end_ = have;
    } else if (begin_ > 0 && cap_ - end_ < need - have) {
      std::copy(buf_.get() + begin_, buf_.get() + end_, buf_.get());
      begin_ = 0;
      end_ = have;
    }
    return {buf_.get() + end_, cap_ - end_};
  }
  void commit(std::size_t n) { end_ += n; }
  std::size_t capacity() const { return cap_; }

 private:
  std::unique_ptr<std::uint8_t[]> buf_;
  std::size_t cap_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace annal::net::detail
