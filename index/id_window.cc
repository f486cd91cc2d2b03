#include "index/id_window.h"

#include <xxhash.h>

#include <algorithm>

#include "engine/status.h"

namespace annal::index {

IdWindow::IdWindow(std::uint64_t capacity) : capacity_(capacity) {
  if (capacity_ > 0) {
    ring_ = ZeroedTable<std::uint64_t>(capacity_);
    slots_ = ZeroedTable<Slot>(1024);
  }
  memory_ = slots_.size() * sizeof(Slot) + capacity_ * sizeof(std::uint64_t);
}

std::uint64_t IdWindow::digest(const EventId& id) {
  std::uint64_t h = XXH3_64bits(id.bytes.data(), id.bytes.size());
  return h == 0 ? 1 : h;
}

void IdWindow::reserve(std::size_t n) {
  if (capacity_ == 0) return;
  n = std::min<std::size_t>(n, capacity_);
  std::size_t want = slots_.size();
  while (want < 2 * n) want *= 2;  // load <= 1/2, as insert() keeps it
  while (slots_.size() < want) grow();
}

void IdWindow::grow() {
  ZeroedTable<Slot> old(slots_.size() * 2);
  std::swap(old, slots_);
  memory_ = slots_.size() * sizeof(Slot) + capacity_ * sizeof(std::uint64_t);
  const std::size_t mask = slots_.size() - 1;
  for (const auto& s : old) {
    if (s.key == 0) continue;
    std::size_t i = s.key & mask;
    while (slots_[i].key != 0) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

std::uint64_t IdWindow::digest_at(std::uint64_t position) const {
  if (capacity_ == 0 || position >= end_ || position + capacity_ < end_) return 0;
  return ring_[position % capacity_];
}

void IdWindow::insert_digest(std::uint64_t key, std::uint64_t position) {
  if (capacity_ == 0 || key == 0) return;
  end_ = std::max(end_, position + 1);
  std::uint64_t& ring_slot = ring_[position % capacity_];
  // The event forgotten a few inserts from now: start loading its slot, so
  // that erase does not wait for memory (the table is far larger than the
  // cache and is hit at random).
  if (const std::uint64_t ahead = ring_[(position + kPrefetchDistance) % capacity_]; ahead != 0)
    __builtin_prefetch(&slots_[ahead & (slots_.size() - 1)], 1);
  if (ring_slot != 0 && position >= capacity_) erase_slot(ring_slot, position - capacity_);
  ring_slot = key;
  if ((used_ + 1) * 2 > slots_.size()) grow();
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = key & mask;
  while (slots_[i].key != 0) i = (i + 1) & mask;
  slots_[i] = Slot{key, position};
  ++used_;
}

void IdWindow::erase(const EventId& id, std::uint64_t position) {
  if (capacity_ == 0) return;
  std::uint64_t& ring_slot = ring_[position % capacity_];
  if (ring_slot == digest(id)) {
    erase_slot(ring_slot, position);
    ring_slot = 0;
  }
}

void IdWindow::erase_slot(std::uint64_t key, std::uint64_t position) {
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = key & mask;
  while (slots_[i].key != 0 && !(slots_[i].key == key && slots_[i].position == position))
    i = (i + 1) & mask;
  if (slots_[i].key == 0) return;
  // Backward-shift deletion keeps linear probing chains intact.
  std::size_t hole = i;
  for (std::size_t j = (i + 1) & mask; slots_[j].key != 0; j = (j + 1) & mask) {
    std::size_t home = slots_[j].key & mask;
    // Move j into the hole if its home is not in (hole, j] cyclically.
    bool in_range = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!in_range) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole] = Slot{};
  --used_;
}

void IdWindow::find(const EventId& id, std::vector<std::uint64_t>& out) const {
  if (capacity_ == 0) return;
  const std::uint64_t key = digest(id);
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = key & mask; slots_[i].key != 0; i = (i + 1) & mask)
    if (slots_[i].key == key) out.push_back(slots_[i].position);
}

}  // namespace annal::index
