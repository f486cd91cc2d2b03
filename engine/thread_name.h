#pragma once

// Names the calling thread as `top -H`, `perf` and /proc/<pid>/task/*/comm
// show it, so an operator can tell the log writer from a network thread.
// Linux keeps at most 15 characters; longer names are cut.

#include <pthread.h>

#include <string>

namespace annal::engine {

inline void set_thread_name(const std::string& name) {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace annal::engine
