#pragma once
// Hands work from a foreign thread (the log writer) to one network thread with
// one post per burst instead of one per item: the writer pushes every
// acknowledgement of a group commit, and the network thread runs them all in
// one handler. Items are kept in two vectors that swap, so a steady state
// allocates nothing.
//
// Thread safety: push() and close() from any thread; the handler runs on the
// io_context's thread. Requires that the io_context is run by exactly one
// thread (the server runs one per network thread), so the handler may call
// into anything that lives on that io_context without going through a strand.

#include <functional>
#include <mutex>
#include <vector>

#include "net/asio.h"

namespace annal::net::detail {

template <class T>
class Inbox {
 public:
  Inbox(asio::io_context& io, std::function<void(T&)> run) : io_(io), run_(std::move(run)) {}
  Inbox(const Inbox&) = delete;
  Inbox& operator=(const Inbox&) = delete;

  asio::io_context& context() const { return io_; }

  // After close() an item is dropped at once (destroyed outside the lock).
  void push(T item) {
    bool post = false;
    {
      std::lock_guard lock(mu_);
      if (closed_) return;  // `item` is destroyed on return, without the lock
      items_.push_back(std::move(item));
      post = !posted_;
      posted_ = true;
    }
    if (post) asio::post(io_, [this] { drain(); });
  }

  // Drops what is queued and everything pushed later: for a server that has
  // stopped its threads (queued items may hold connections alive).
  void close() {
    std::vector<T> dropped;
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      dropped.swap(items_);
    }
  }

 private:
  void drain() {
    {
      std::lock_guard lock(mu_);
      running_.swap(items_);
      posted_ = false;
    }
    for (T& item : running_) run_(item);
    running_.clear();
  }

  asio::io_context& io_;
  std::function<void(T&)> run_;
  std::mutex mu_;
  std::vector<T> items_;    // guarded by mu_
  bool posted_ = false;     // guarded by mu_: a drain is queued
  bool closed_ = false;     // guarded by mu_
  std::vector<T> running_;  // the io_context's thread only
};

}  // namespace annal::net::detail
