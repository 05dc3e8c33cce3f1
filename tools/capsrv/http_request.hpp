// Parses one HTTP/1.x request head from the front of a buffer. capsrv only
// needs the path, whether the connection stays open, and where the request
// ends (a Content-Length body is skipped, never read).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace capsrv {

struct Request {
    enum class State { Incomplete, Complete, Bad };
    State state = State::Incomplete;
    size_t length = 0;  // head plus body, when Complete
    std::string method;
    std::string path;
    bool keep_alive = false;
    std::string error;  // when Bad
};

inline constexpr size_t kMaxRequestHead = 16 * 1024;

Request parse_request(std::string_view buffer);

}  // namespace capsrv
