#pragma once
// The one place the admin endpoint includes Boost.Beast (after the
// project's Asio header, which fixes Boost 1.74's includes for GCC 12).

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "net/asio.h"

namespace annal::admin {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
}  // namespace annal::admin
