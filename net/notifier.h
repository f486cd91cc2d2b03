#pragma once
// Subscriptions waiting for new durable events, and the fan-out that wakes
// them once per group commit (internal to annal_net).

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/types.h"
#include "net/inbox.h"

namespace annal::net::detail {

// A subscription waiting for new durable events. `wake` runs on the
// subscription's network thread; it is queued at most once per arming.
struct Waiter {
  std::atomic<bool> armed{false};
  std::function<void()> wake;
  Inbox<std::shared_ptr<Waiter>>* inbox = nullptr;  // that thread's wake-up inbox
};

// Fans the store's durable-end notifications out to armed waiters: each is
// pushed to its thread's inbox, which posts once per commit for all of them.
// Thread safety: all methods may be called from any thread.
class DurableNotifier {
 public:
  void notify(GlobalPosition end);
  void add(const std::shared_ptr<Waiter>& w);
  void remove(const std::shared_ptr<Waiter>& w);
  // After close() no waiter is ever woken again (the I/O context may be gone).
  void close();

 private:
  std::mutex mu_;
  bool closed_ = false;
  std::vector<std::shared_ptr<Waiter>> waiters_;
};

}  // namespace annal::net::detail
