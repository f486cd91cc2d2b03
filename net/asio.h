#pragma once
// The one place annal includes Boost.Asio. Boost 1.74's Asio uses
// std::exchange without including <utility>, which GCC 12 in C++20 mode does
// not pull in transitively: include it first. Clang 14 with libstdc++ needs
// the coroutine support switched on explicitly.

#include <utility>

// TSan does not model atomic_thread_fence (GCC 12 errors with -Wtsan). Asio
// fences handler invocations only as an extra guarantee over the mutexes of
// its scheduler and strands: under TSan, use its no-op fenced block.
#if defined(__SANITIZE_THREAD__) && !defined(BOOST_ASIO_DISABLE_FENCED_BLOCK)
#define BOOST_ASIO_DISABLE_FENCED_BLOCK 1
#endif

#if defined(__clang__) && !defined(BOOST_ASIO_HAS_CO_AWAIT)
#define BOOST_ASIO_HAS_CO_AWAIT 1
#define BOOST_ASIO_HAS_STD_COROUTINE 1
#endif

#include <boost/asio.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace annal::net {
namespace asio = boost::asio;
using tcp = boost::asio::ip::tcp;
}  // namespace annal::net
