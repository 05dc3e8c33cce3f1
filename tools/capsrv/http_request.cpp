#include "http_request.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace capsrv {

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}

bool icontains(std::string_view haystack, std::string_view needle) {
    return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(), [](char x, char y) {
               return std::tolower(x) == std::tolower(y);
           }) != haystack.end();
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

Request bad(std::string why) {
    Request r;
    r.state = Request::State::Bad;
    r.error = std::move(why);
    return r;
}

}  // namespace

Request parse_request(std::string_view buffer) {
    size_t end = buffer.find("\r\n\r\n");
    if (end == std::string_view::npos) {
        if (buffer.size() > kMaxRequestHead) return bad("request head too large");
        return {};
    }
    size_t head_length = end + 4;
    std::string_view head = buffer.substr(0, end + 2);

    // "GET /path HTTP/1.1"
    size_t line_end = head.find("\r\n");
    std::string_view line = head.substr(0, line_end);
    size_t sp1 = line.find(' ');
    size_t sp2 = line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 == sp1) return bad("malformed request line");
    std::string_view version = line.substr(sp2 + 1);
    if (version != "HTTP/1.1" && version != "HTTP/1.0") return bad("unsupported HTTP version");

    Request r;
    r.method = std::string(line.substr(0, sp1));
    r.path = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
    r.keep_alive = version == "HTTP/1.1";
    uint64_t body = 0;
    size_t pos = line_end + 2;
    while (pos < head.size()) {
        size_t eol = head.find("\r\n", pos);
        std::string_view header = head.substr(pos, eol - pos);
        pos = eol + 2;
        size_t colon = header.find(':');
        if (colon == std::string_view::npos) return bad("malformed header");
        auto name = trim(header.substr(0, colon));
        auto value = trim(header.substr(colon + 1));
        if (iequals(name, "connection")) {
            if (icontains(value, "close")) r.keep_alive = false;
            else if (icontains(value, "keep-alive")) r.keep_alive = true;
        } else if (iequals(name, "content-length")) {
            auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), body);
            if (ec != std::errc() || p != value.data() + value.size() || body > (1u << 20))
                return bad("bad Content-Length");
        } else if (iequals(name, "transfer-encoding")) {
            return bad("chunked request bodies are not supported");
        }
    }
    if (buffer.size() < head_length + body) return {};  // the body is still coming
    r.state = Request::State::Complete;
    r.length = head_length + body;
    return r;
}

}  // namespace capsrv
