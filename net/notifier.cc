#include "net/notifier.h"

namespace annal::net::detail {

void DurableNotifier::notify(GlobalPosition) {
  std::lock_guard lock(mu_);
  if (closed_) return;
  for (const auto& w : waiters_)
    if (w->armed.exchange(false)) w->inbox->push(w);
}

void DurableNotifier::add(const std::shared_ptr<Waiter>& w) {
  std::lock_guard lock(mu_);
  if (!closed_) waiters_.push_back(w);
}

void DurableNotifier::remove(const std::shared_ptr<Waiter>& w) {
  std::lock_guard lock(mu_);
  std::erase(waiters_, w);
}

void DurableNotifier::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  waiters_.clear();
}

}  // namespace annal::net::detail
