#pragma once
// One HTTP answer of the admin endpoint, built without a socket so the
// handlers can be tested as plain functions.

#include <string>
#include <string_view>

namespace annal::admin {

struct Reply {
  unsigned status = 200;
  std::string content_type = "application/json; charset=utf-8";
  std::string body;
};

// {"error":{"code":...,"message":...}} with `status`.
Reply error_reply(unsigned status, std::string_view code, std::string_view message);
// 200 with a JSON body.
Reply json_reply(std::string body);

}  // namespace annal::admin
